//! One plan after a partition: whether the stages the leader hears run its plan.
//!
//! While a leader is cut off, the fleet may go on without it: a candidate may be elected on the
//! other side and plan at a newer epoch ([`crate::runtime::election`]), or a stage may miss an
//! assignment. When the link is back, the leader compares what every node it hears runs (their
//! stats: epoch and stage) with its current plan ([`divergence`]): a node running a newer epoch,
//! or a stage of its plan behind its epoch, makes it plan again above every epoch it saw, so the
//! stages all accept its plan and the clients move to it; a node outside its plan still holding
//! a stage of an older plan is released. The fleet ends with one plan: the leader's latest.

use quantpipe_messages::{NodeStats, PlanInfo};
use std::collections::BTreeSet;

/// How the nodes the leader hears differ from its plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Divergence {
    /// The highest epoch some node runs above the plan's: another leader planned meanwhile.
    pub newer: Option<u64>,
    /// Stages of the plan running an older epoch (or none): they missed their assignment.
    pub behind: Vec<String>,
    /// Nodes outside the plan still holding a stage of an older plan.
    pub strays: Vec<String>,
}

impl Divergence {
    /// Whether the plan must be made again (and assigned) for the stages to run it.
    pub fn needs_replan(&self) -> bool {
        self.newer.is_some() || !self.behind.is_empty()
    }

    /// The epoch a new plan must be above: the plan's, or the newer one running.
    pub fn plan_above(&self, plan_epoch: u64) -> u64 {
        self.newer.unwrap_or(0).max(plan_epoch)
    }
}

/// Compares `stats` (the nodes that answered, each with the epoch and stage it runs) with
/// `plan`.
pub fn divergence(plan: &PlanInfo, stats: &[NodeStats]) -> Divergence {
    let planned: BTreeSet<&str> = plan.stages.iter().map(|s| s.node.as_str()).collect();
    let newer = stats
        .iter()
        .map(|s| s.epoch)
        .filter(|e| *e > plan.epoch)
        .max();
    let behind = stats
        .iter()
        .filter(|s| planned.contains(s.node.as_str()))
        .filter(|s| s.epoch < plan.epoch || s.stage.is_none())
        .map(|s| s.node.clone())
        .collect();
    let strays = stats
        .iter()
        .filter(|s| !planned.contains(s.node.as_str()))
        .filter(|s| s.stage.is_some() && s.epoch < plan.epoch)
        .map(|s| s.node.clone())
        .collect();
    Divergence {
        newer,
        behind,
        strays,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::planning::test_support::plan_over as plan;

    fn runs(node: &str, epoch: u64, stage: Option<u32>) -> NodeStats {
        NodeStats {
            node: node.into(),
            epoch,
            stage,
            ..Default::default()
        }
    }

    #[test]
    fn stages_running_the_plan_agree_with_it() {
        let p = plan(5, &["a", "b"]);
        let d = divergence(&p, &[runs("a", 5, Some(0)), runs("b", 5, Some(1))]);
        assert_eq!(d, Divergence::default());
        assert!(!d.needs_replan());
        // A node the plan released carries the release's epoch and no stage.
        let d = divergence(&p, &[runs("a", 5, Some(0)), runs("c", 5, None)]);
        assert_eq!(d, Divergence::default());
    }

    #[test]
    fn a_newer_epoch_planned_meanwhile_is_planned_above() {
        let p = plan(5, &["a", "b"]);
        let d = divergence(&p, &[runs("a", 9, Some(0)), runs("b", 7, Some(1))]);
        assert_eq!(d.newer, Some(9));
        assert!(d.needs_replan());
        assert_eq!(d.plan_above(p.epoch), 9);
        assert_eq!(Divergence::default().plan_above(5), 5);
    }

    #[test]
    fn a_stage_of_the_plan_that_missed_its_assignment_is_replanned() {
        let p = plan(5, &["a", "b"]);
        let d = divergence(&p, &[runs("a", 5, Some(0)), runs("b", 3, Some(1))]);
        assert_eq!(d.behind, ["b".to_string()]);
        let d = divergence(&p, &[runs("a", 5, Some(0)), runs("b", 0, None)]);
        assert_eq!(d.behind, ["b".to_string()]);
        assert!(d.needs_replan());
    }

    #[test]
    fn a_node_outside_the_plan_holding_an_old_stage_is_a_stray_to_release() {
        let p = plan(5, &["a"]);
        let d = divergence(&p, &[runs("a", 5, Some(0)), runs("b", 3, Some(1))]);
        assert_eq!(d.strays, ["b".to_string()]);
        assert!(!d.needs_replan(), "a stray is released, not planned around");
    }
}
