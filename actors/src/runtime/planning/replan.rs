//! Whether a change in who is alive replaces the current plan.

use crate::runtime::membership::{self, Change};

/// What the leader does with a plan made after a membership change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replan {
    /// A stage's node left: the current plan cannot run, adopt the new one.
    NodeLeft,
    /// Devices joined and the plan with them predicts enough more throughput: adopt it.
    JoinedAndFaster,
    /// Devices joined but would not speed the pipeline up enough: keep the current plan.
    Keep,
}

/// The verdict on `change` for a current plan predicting `current_items_per_s` and a candidate
/// predicting `candidate_items_per_s` (see [`membership::adopt_on_join`]).
pub fn verdict(
    change: &Change,
    current_items_per_s: f64,
    candidate_items_per_s: f64,
    min_gain: f64,
) -> Replan {
    if !change.left.is_empty() {
        Replan::NodeLeft
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
            verdict(&change(&["b"], &[]), 100.0, 10.0, 0.1),
            Replan::NodeLeft
        );
        assert_eq!(
            verdict(&change(&["b"], &["d"]), 0.0, 10.0, 0.1),
            Replan::NodeLeft,
            "even from a forced plan"
        );
    }

    #[test]
    fn a_join_replans_only_when_enough_faster() {
        let joined = change(&[], &["d"]);
        assert_eq!(verdict(&joined, 100.0, 150.0, 0.1), Replan::JoinedAndFaster);
        assert_eq!(verdict(&joined, 100.0, 105.0, 0.1), Replan::Keep);
        assert_eq!(
            verdict(&joined, 0.0, 150.0, 0.1),
            Replan::Keep,
            "a forced plan stays"
        );
    }
}
