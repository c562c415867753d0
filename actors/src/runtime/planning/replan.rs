//! Whether a change in who is alive replaces the current plan.

use crate::runtime::membership::{self, Change};

/// What the leader does with a plan made after a membership change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replan {
    /// A stage's node left: the current plan cannot run, adopt the new one.
    NodeLeft,
    /// The stages do not all run the current plan (another leader planned while this one was
    /// cut off, or a stage missed its assignment): adopt the new one, above every epoch seen,
    /// so the fleet has one plan again (see [`crate::runtime::planning::convergence`]).
    Diverged,
    /// Devices joined and the plan with them predicts enough more throughput: adopt it.
    JoinedAndFaster,
    /// Devices joined but would not speed the pipeline up enough: keep the current plan.
    Keep,
}

/// The verdict on `change` for a current plan predicting `current_items_per_s` and a candidate
/// predicting `candidate_items_per_s` (see [`membership::adopt_on_join`]); `diverged`: the
/// stages the leader hears do not all run its plan.
pub fn verdict(
    change: &Change,
    diverged: bool,
    current_items_per_s: f64,
    candidate_items_per_s: f64,
    min_gain: f64,
) -> Replan {
    if !change.left.is_empty() {
        Replan::NodeLeft
    } else if diverged {
        Replan::Diverged
    } else if membership::adopt_on_join(current_items_per_s, candidate_items_per_s, min_gain) {
        Replan::JoinedAndFaster
    } else {
        Replan::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(left: &[&str], joined: &[&str]) -> Change {
        Change {
            left: left.iter().map(|s| s.to_string()).collect(),
            joined: joined.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_stage_node_leaving_always_replans() {
        assert_eq!(
            verdict(&change(&["b"], &[]), false, 100.0, 10.0, 0.1),
            Replan::NodeLeft
        );
        assert_eq!(
            verdict(&change(&["b"], &["d"]), false, 0.0, 10.0, 0.1),
            Replan::NodeLeft,
            "even from a forced plan"
        );
    }

    #[test]
    fn a_join_replans_only_when_enough_faster() {
        let joined = change(&[], &["d"]);
        assert_eq!(
            verdict(&joined, false, 100.0, 150.0, 0.1),
            Replan::JoinedAndFaster
        );
        assert_eq!(verdict(&joined, false, 100.0, 105.0, 0.1), Replan::Keep);
        assert_eq!(
            verdict(&joined, false, 0.0, 150.0, 0.1),
            Replan::Keep,
            "a forced plan stays"
        );
    }

    #[test]
    fn stages_running_another_plan_replan_even_without_a_membership_change() {
        let none = change(&[], &[]);
        assert_eq!(verdict(&none, true, 100.0, 50.0, 0.1), Replan::Diverged);
        assert_eq!(verdict(&none, false, 100.0, 50.0, 0.1), Replan::Keep);
        assert_eq!(
            verdict(&change(&[], &["d"]), true, 0.0, 10.0, 0.1),
            Replan::Diverged,
            "even from a forced plan"
        );
    }
}
