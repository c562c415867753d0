//! When the leader makes its first plan, over which nodes, and above which epoch.
//!
//! A leader starting while stages already run a plan (a candidate taking over from a leader that
//! died, or a leader restarting) plans at once over the alive nodes, at an epoch above the
//! highest one running, so the stages accept it. Otherwise it waits until every node of
//! `leader.expected` is alive, or until `leader.wait_s` has passed, and plans with whoever is.

use quantpipe_messages::NodeStats;
use std::collections::BTreeSet;

/// How a leader's first plan starts, from the stats of the alive stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Stages run plan epoch `running`: the fleet is up, plan now above it.
    TakeOver { running: u64 },
    /// No stage runs a plan yet: wait for the expected nodes.
    WaitForNodes,
}

/// The highest plan epoch the stages run (0 when none runs a plan yet).
pub fn running_epoch(stats: &[NodeStats]) -> u64 {
    stats.iter().map(|s| s.epoch).max().unwrap_or(0)
}

/// How the first plan starts given the stages' stats.
pub fn start(stats: &[NodeStats]) -> Start {
    match running_epoch(stats) {
        0 => Start::WaitForNodes,
        running => Start::TakeOver { running },
    }
}

/// Whether every expected node is alive; a leader with no expected list waits the whole period.
pub fn expected_are_up(expected: &BTreeSet<String>, alive: &BTreeSet<String>) -> bool {
    !expected.is_empty() && expected.is_subset(alive)
}

/// The nodes the first plan is made over: the alive expected ones, or every alive node when
/// none is expected.
pub fn nodes_to_plan(expected: &BTreeSet<String>, alive: &BTreeSet<String>) -> BTreeSet<String> {
    if expected.is_empty() {
        alive.clone()
    } else {
        alive.intersection(expected).cloned().collect()
    }
}

/// The expected nodes that are not alive.
pub fn missing(expected: &BTreeSet<String>, alive: &BTreeSet<String>) -> Vec<String> {
    expected.difference(alive).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::planning::test_support::names;

    fn stats(node: &str, epoch: u64) -> NodeStats {
        NodeStats {
            node: node.into(),
            epoch,
            ..Default::default()
        }
    }

    #[test]
    fn a_leader_over_running_stages_takes_over_above_the_highest_epoch() {
        let s = [stats("b", 7), stats("c", 9), stats("d", 0)];
        assert_eq!(start(&s), Start::TakeOver { running: 9 });
    }

    #[test]
    fn a_leader_over_idle_stages_waits_for_its_nodes() {
        assert_eq!(start(&[stats("b", 0)]), Start::WaitForNodes);
        assert_eq!(start(&[]), Start::WaitForNodes);
    }

    #[test]
    fn the_first_plan_waits_for_every_expected_node() {
        let expected = names(&["a", "b"]);
        assert!(!expected_are_up(&expected, &names(&["a", "leader"])));
        assert!(expected_are_up(&expected, &names(&["a", "b", "leader"])));
        assert_eq!(missing(&expected, &names(&["a"])), ["b".to_string()]);
    }

    #[test]
    fn without_expected_nodes_the_leader_waits_the_whole_period() {
        assert!(!expected_are_up(&names(&[]), &names(&["a", "b"])));
    }

    #[test]
    fn the_first_plan_is_made_over_the_alive_expected_nodes_only() {
        let alive = names(&["a", "b", "stranger"]);
        assert_eq!(
            nodes_to_plan(&names(&["a", "b", "c"]), &alive),
            names(&["a", "b"])
        );
        assert_eq!(nodes_to_plan(&names(&[]), &alive), alive);
    }
}
