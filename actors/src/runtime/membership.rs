//! Membership decisions as plain functions of who is alive: which candidate leads when no leader
//! is configured, when the leader plans again, which epoch the new plan gets, and whether a
//! joining device is worth a re-plan.
//!
//! The leader learns who is alive from zenoh liveliness tokens (`qp/<fleet>/node/<name>`), and
//! candidates learn who leads from `qp/<fleet>/leader/<name>` and `qp/<fleet>/candidate/<name>`;
//! these functions only see the names.

use std::collections::BTreeSet;

/// How the alive set differs from the nodes the current plan uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Change {
    /// Nodes holding a stage of the current plan whose token is gone.
    pub left: Vec<String>,
    /// Alive device nodes the current plan does not use.
    pub joined: Vec<String>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.left.is_empty() && self.joined.is_empty()
    }
}

/// Compares the plan's nodes with the alive ones. `devices` are the alive nodes known to host a
/// stage (the leader itself, a leader-only node and clients never count as joined).
pub fn change(
    plan_nodes: &BTreeSet<String>,
    alive: &BTreeSet<String>,
    devices: &BTreeSet<String>,
) -> Change {
    Change {
        left: plan_nodes.difference(alive).cloned().collect(),
        joined: devices
            .intersection(alive)
            .filter(|n| !plan_nodes.contains(*n))
            .cloned()
            .collect(),
    }
}

/// The candidate that leads the fleet, or `None` when a configured leader leads (or no candidate
/// is alive).
///
/// `leaders` are the alive leader tokens: configured leaders (role `leader` or `both`) hold one
/// for life, an elected candidate while it leads. `candidates` are the alive candidate tokens; a
/// leader token whose name is not among them is a configured leader's.
///
/// The rule, in order:
/// 1. a configured leader is alive: it leads, and a candidate acting as leader steps down;
/// 2. a candidate already acts as leader: it keeps leading (a smaller-named candidate joining
///    later does not depose a working leader); when two candidates claimed at once, the smaller
///    name keeps leading;
/// 3. nobody leads: the alive candidate with the smallest name is elected.
pub fn elected(leaders: &BTreeSet<String>, candidates: &BTreeSet<String>) -> Option<String> {
    if leaders.iter().any(|l| !candidates.contains(l)) {
        return None;
    }
    leaders
        .iter()
        .next()
        .or_else(|| candidates.iter().next())
        .cloned()
}

/// The epoch of the next plan: the leader's clock in milliseconds, but always above the
/// previous epoch (stages refuse assignments of an older epoch, so a clock step back must not
/// stall re-planning).
pub fn next_epoch(previous: u64, now_unix_ms: u64) -> u64 {
    now_unix_ms.max(previous.saturating_add(1))
}

/// Whether a plan that includes joined devices replaces the current one: only when it predicts
/// at least `min_gain` (a fraction) more throughput. A re-plan has a price (shards reload,
/// microbatches in flight are sent again), so a device that does not speed the pipeline up is
/// left idle; a current plan with no prediction (forced) is never replaced on a join.
pub fn adopt_on_join(current_items_per_s: f64, candidate_items_per_s: f64, min_gain: f64) -> bool {
    current_items_per_s > 0.0 && candidate_items_per_s > current_items_per_s * (1.0 + min_gain)
}

/// The alive nodes that ran a stage of the old plan and run none of the new one: they must
/// drop their shard and their stage subscriptions (see [`quantpipe_messages::Release`]).
pub fn left_out(
    old_plan: &BTreeSet<String>,
    new_plan: &BTreeSet<String>,
    alive: &BTreeSet<String>,
) -> BTreeSet<String> {
    old_plan
        .difference(new_plan)
        .filter(|n| alive.contains(*n))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_alive_nodes_of_the_old_plan_missing_from_the_new_one_are_left_out() {
        let left = left_out(
            &set(&["a", "b", "c", "d"]),
            &set(&["a", "c", "e"]),
            &set(&["a", "b", "c", "e", "leader"]),
        );
        // d is gone, e is new, the leader never ran a stage.
        assert_eq!(left, set(&["b"]));
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_stage_node_whose_token_is_gone_has_left() {
        let c = change(
            &set(&["a", "b", "c"]),
            &set(&["a", "c", "leader"]),
            &set(&["a", "c"]),
        );
        assert_eq!(c.left, vec!["b".to_string()]);
        assert!(c.joined.is_empty());
    }

    #[test]
    fn an_alive_device_outside_the_plan_has_joined_but_not_the_leader() {
        let c = change(
            &set(&["a", "b"]),
            &set(&["a", "b", "d", "leader"]),
            &set(&["a", "b", "d"]),
        );
        assert!(c.left.is_empty());
        assert_eq!(c.joined, vec!["d".to_string()]);
        assert!(change(&set(&["a"]), &set(&["a", "leader"]), &set(&["a"])).is_empty());
    }

    #[test]
    fn a_known_device_that_is_not_alive_has_not_joined() {
        let c = change(&set(&["a"]), &set(&["a"]), &set(&["a", "gone"]));
        assert!(c.is_empty());
    }

    #[test]
    fn with_nobody_leading_the_smallest_candidate_is_elected() {
        assert_eq!(
            elected(&set(&[]), &set(&["c", "a", "b"])),
            Some("a".to_string())
        );
        assert_eq!(elected(&set(&[]), &set(&["b"])), Some("b".to_string()));
    }

    #[test]
    fn a_candidate_acting_as_leader_is_never_deposed_by_a_smaller_one() {
        assert_eq!(
            elected(&set(&["b"]), &set(&["a", "b", "c"])),
            Some("b".to_string())
        );
    }

    #[test]
    fn of_two_candidates_that_claimed_at_once_the_smaller_keeps_leading() {
        assert_eq!(
            elected(&set(&["c", "b"]), &set(&["a", "b", "c"])),
            Some("b".to_string())
        );
    }

    #[test]
    fn a_configured_leader_is_preferred_to_every_candidate() {
        // `boss` holds a leader token but no candidate token: a configured leader.
        assert_eq!(elected(&set(&["boss"]), &set(&["a", "b"])), None);
        // A candidate that took over before the configured leader came up steps down.
        assert_eq!(elected(&set(&["a", "boss"]), &set(&["a", "b"])), None);
    }

    #[test]
    fn without_candidates_nobody_is_elected() {
        assert_eq!(elected(&set(&[]), &set(&[])), None);
    }

    #[test]
    fn epochs_grow_even_when_the_clock_steps_back() {
        assert_eq!(next_epoch(100, 5_000), 5_000);
        assert_eq!(next_epoch(5_000, 5_000), 5_001);
        assert_eq!(next_epoch(9_000, 5_000), 9_001);
    }

    #[test]
    fn a_join_replaces_the_plan_only_for_enough_gain() {
        assert!(adopt_on_join(100.0, 120.0, 0.1));
        assert!(!adopt_on_join(100.0, 105.0, 0.1));
        assert!(!adopt_on_join(100.0, 100.0, 0.0));
        assert!(!adopt_on_join(0.0, 50.0, 0.1), "a forced plan stays");
    }
}
