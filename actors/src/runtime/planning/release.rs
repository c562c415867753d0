//! Which nodes a new plan releases: those that ran a stage of the old plan, run none of the new
//! one, and are still alive (see [`quantpipe_messages::Release`]).

use crate::runtime::membership;
use quantpipe_messages::PlanInfo;
use std::collections::BTreeSet;

/// The nodes that run a stage of `plan`.
pub fn plan_nodes(plan: &PlanInfo) -> BTreeSet<String> {
    plan.stages.iter().map(|s| s.node.clone()).collect()
}

/// Whether replacing `old` by `new` may leave a node out: most plans keep every node, and then
/// the leader need not ask who is alive.
pub fn may_leave_out(old: Option<&PlanInfo>, new: &PlanInfo) -> bool {
    old.is_some_and(|old| !plan_nodes(old).is_subset(&plan_nodes(new)))
}

/// The alive nodes `new` leaves out of `old`'s stages: they must drop their shard and stage
/// subscriptions.
pub fn released(
    old: Option<&PlanInfo>,
    new: &PlanInfo,
    alive: &BTreeSet<String>,
) -> BTreeSet<String> {
    match old {
        Some(old) => membership::left_out(&plan_nodes(old), &plan_nodes(new), alive),
        None => BTreeSet::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::planning::test_support::{names, plan_over};

    fn plan(nodes: &[&str]) -> PlanInfo {
        plan_over(1, nodes)
    }

    #[test]
    fn a_new_plan_releases_the_alive_nodes_it_leaves_out() {
        let (old, new) = (plan(&["a", "b", "c"]), plan(&["a", "c"]));
        assert!(may_leave_out(Some(&old), &new));
        assert_eq!(
            released(Some(&old), &new, &names(&["a", "b", "c"])),
            names(&["b"])
        );
        assert_eq!(released(Some(&old), &new, &names(&["a", "c"])), names(&[]));
    }

    #[test]
    fn a_plan_keeping_every_node_or_the_first_plan_releases_nobody() {
        let (old, new) = (plan(&["a", "b"]), plan(&["b", "a", "d"]));
        assert!(!may_leave_out(Some(&old), &new));
        assert!(!may_leave_out(None, &new));
        assert!(released(None, &new, &names(&["a", "b"])).is_empty());
    }
}
