//! The plan forced in the leader's settings (tests, cuts at chosen positions): when it applies,
//! and whether it is a plan at all.

use crate::runtime::config::ForcedStage;
use anyhow::{bail, Result};
use quantpipe_messages::PlanStage;
use std::collections::BTreeSet;

/// Whether the forced plan is the one to run over `alive`: there is one, and every node it
/// names is alive (else the planner plans over who is).
pub fn forced_plan_applies(forced: &[ForcedStage], alive: &BTreeSet<String>) -> bool {
    !forced.is_empty() && forced.iter().all(|s| alive.contains(&s.node))
}

/// A forced plan, checked: contiguous from unit 1 to `units`, on known nodes, each used once.
pub fn forced_stages(
    forced: &[ForcedStage],
    units: usize,
    nodes: &BTreeSet<String>,
    bits: u8,
) -> Result<Vec<PlanStage>> {
    let mut next = 1;
    let mut used = BTreeSet::new();
    for s in forced {
        let [l, r] = s.units;
        if l != next || r < l {
            bail!(
                "forced plan: stage on {} covers units {l}..{r}, expected it to start at unit {next}",
                s.node
            );
        }
        if !nodes.contains(&s.node) {
            bail!("forced plan names node {} which is not alive", s.node);
        }
        if !used.insert(&s.node) {
            bail!("forced plan uses node {} twice", s.node);
        }
        next = r + 1;
    }
    if next != units + 1 {
        bail!("forced plan covers units 1..{} of {units}", next - 1);
    }
    Ok(forced
        .iter()
        .map(|s| PlanStage {
            node: s.node.clone(),
            l: s.units[0],
            r: s.units[1],
            out_bits: bits,
            compute_s: 0.0,
            transfer_s: 0.0,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::planning::test_support::names;

    fn st(n: &str, l: usize, r: usize) -> ForcedStage {
        ForcedStage {
            node: n.into(),
            units: [l, r],
        }
    }

    #[test]
    fn forced_plans_are_checked() {
        let nodes = names(&["a", "b"]);
        assert_eq!(
            forced_stages(&[st("a", 1, 3), st("b", 4, 8)], 8, &nodes, 32)
                .unwrap()
                .len(),
            2
        );
        let err = forced_stages(&[st("a", 1, 3), st("b", 5, 8)], 8, &nodes, 32).unwrap_err();
        assert!(err.to_string().contains("start at unit 4"), "{err}");
        let err = forced_stages(&[st("a", 1, 3), st("c", 4, 8)], 8, &nodes, 32).unwrap_err();
        assert!(err.to_string().contains("not alive"), "{err}");
        let err = forced_stages(&[st("a", 1, 7)], 8, &nodes, 32).unwrap_err();
        assert!(err.to_string().contains("1..7 of 8"), "{err}");
    }

    #[test]
    fn a_forced_plan_applies_only_while_all_its_nodes_are_alive() {
        let forced = [st("a", 1, 3), st("b", 4, 8)];
        assert!(forced_plan_applies(&forced, &names(&["a", "b", "c"])));
        assert!(!forced_plan_applies(&forced, &names(&["a", "c"])));
        assert!(
            !forced_plan_applies(&[], &names(&["a", "b"])),
            "none forced"
        );
    }
}
