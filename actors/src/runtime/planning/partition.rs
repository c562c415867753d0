//! Whether the leader, losing the stages of its plan, is the one cut off.
//!
//! A stage that vanishes without closing its links is noticed when its zenoh lease expires. A
//! leader whose own link goes sees the same thing for every stage at once: their leases expire
//! one by one within a lease of each other, while the stages still run the plan and still reach
//! each other (and the clients that reach them). Re-planning over the stages it still sees would
//! make plans nobody hears, and leave a plan of one stage, or none, to compete with the one that
//! runs once the link is back.
//!
//! So the leader counts the stages of its plan it *hears from*: their liveliness token is up and
//! they answered its stats query of this look (a stage cut off with the leader still has its
//! token until its lease expires, but answers nothing). It is [`cut_off`] when it has lost more
//! than half of its plan's stages and at least two: one stage leaving (of a plan of any size)
//! still re-plans at once over the others. Cut off, it holds its plan ([`PartitionHold`]) until
//! it hears from every stage of it again or `leader.partition_hold_s` has passed; past that
//! bound the fleet itself shrank (most stages died at once, or one died while the leader was
//! away), and the leader plans over those it hears.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The stages of `planned` the leader hears from: alive (token up) and answering (`answered`:
/// the nodes whose stats arrived in this look).
pub fn heard_from(
    planned: &BTreeSet<String>,
    alive: &BTreeSet<String>,
    answered: &BTreeSet<String>,
) -> BTreeSet<String> {
    planned
        .iter()
        .filter(|n| alive.contains(*n) && answered.contains(*n))
        .cloned()
        .collect()
}

/// Whether a leader that hears from `heard` of its plan's stages `planned` is cut off from its
/// fleet: it lost at least two stages and more than half of them.
pub fn cut_off(planned: &BTreeSet<String>, heard: &BTreeSet<String>) -> bool {
    let lost = planned.difference(heard).count();
    lost >= 2 && 2 * lost > planned.len()
}

/// What the leader does with its plan after one look.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Hold {
    /// It hears from most of its stages: decide as usual (a stage that left is re-planned
    /// around). `after_s`: it had been holding for this long, if it was.
    Proceed { after_s: Option<f64> },
    /// Cut off: keep the current plan; look again by `until` at the latest.
    Holding { since_s: f64, until: Instant },
    /// Cut off for longer than the bound: plan over whoever it hears from.
    BoundPassed { held_s: f64 },
}

/// The leader's hold on its plan while it is [`cut_off`]: since when, and for how long at most.
#[derive(Debug, Clone)]
pub struct PartitionHold {
    bound: Duration,
    since: Option<Instant>,
}

impl PartitionHold {
    /// A hold of at most `bound`.
    pub fn new(bound: Duration) -> Self {
        PartitionHold { bound, since: None }
    }

    /// The longest hold.
    pub fn bound(&self) -> Duration {
        self.bound
    }

    /// Whether the leader holds its plan now.
    pub fn holding(&self) -> bool {
        self.since.is_some()
    }

    /// One look at `now`, hearing from `heard` of the plan's stages `planned`. A hold begins
    /// when the leader is [`cut_off`] and ends only when it hears from every stage again (or
    /// at the bound): coming back, it sees the stages' tokens return one by one, and planning
    /// over the first ones back would replace the plan every stage still runs.
    pub fn look(
        &mut self,
        planned: &BTreeSet<String>,
        heard: &BTreeSet<String>,
        now: Instant,
    ) -> Hold {
        let holds = match self.since {
            None => cut_off(planned, heard),
            Some(_) => !planned.is_subset(heard),
        };
        if !holds {
            let after_s = self
                .since
                .take()
                .map(|s| now.saturating_duration_since(s).as_secs_f64());
            return Hold::Proceed { after_s };
        }
        let since = *self.since.get_or_insert(now);
        let held = now.saturating_duration_since(since);
        if held >= self.bound {
            // Plan over who is heard; the hold ends with the next look that hears every stage
            // of the (new) plan, so a leader still alone passes the bound again.
            return Hold::BoundPassed {
                held_s: held.as_secs_f64(),
            };
        }
        Hold::Holding {
            since_s: held.as_secs_f64(),
            until: since + self.bound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::planning::test_support::names;

    #[test]
    fn one_stage_leaving_is_not_a_partition_whatever_the_plan_size() {
        assert!(!cut_off(&names(&["a", "b", "c"]), &names(&["a", "c"])));
        assert!(!cut_off(&names(&["a", "b"]), &names(&["a"])));
        assert!(!cut_off(&names(&["a"]), &names(&[])));
    }

    #[test]
    fn losing_most_stages_at_once_is_a_partition() {
        let planned = names(&["a", "b", "c"]);
        assert!(cut_off(&planned, &names(&[])));
        assert!(cut_off(&planned, &names(&["a"])));
        assert!(cut_off(&names(&["a", "b"]), &names(&[])));
        // Half of the stages is not most of them.
        assert!(!cut_off(&names(&["a", "b", "c", "d"]), &names(&["a", "b"])));
        assert!(cut_off(&names(&["a", "b", "c", "d"]), &names(&["a"])));
    }

    #[test]
    fn a_stage_whose_token_is_up_but_that_answers_nothing_is_not_heard() {
        let planned = names(&["a", "b", "c"]);
        // The leader's link went: b's lease expired first, a and c still have tokens.
        let heard = heard_from(&planned, &names(&["a", "c"]), &names(&[]));
        assert!(heard.is_empty());
        assert!(cut_off(&planned, &heard));
        // b alone went: a and c answer.
        let heard = heard_from(&planned, &names(&["a", "c"]), &names(&["a", "c"]));
        assert_eq!(heard, names(&["a", "c"]));
        assert!(!cut_off(&planned, &heard));
        // A node outside the plan never counts.
        let heard = heard_from(&planned, &names(&["d"]), &names(&["d"]));
        assert!(heard.is_empty());
    }

    #[test]
    fn a_cut_off_leader_holds_its_plan_until_the_bound() {
        let t0 = Instant::now();
        let bound = Duration::from_secs(30);
        let mut hold = PartitionHold::new(bound);
        let planned = names(&["a", "b", "c"]);
        let none = names(&[]);
        assert_eq!(
            hold.look(&planned, &none, t0),
            Hold::Holding {
                since_s: 0.0,
                until: t0 + bound
            }
        );
        assert!(hold.holding());
        // Later looks keep the first moment: the bound does not move.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(
            hold.look(&planned, &none, later),
            Hold::Holding {
                since_s: 10.0,
                until: t0 + bound
            }
        );
        assert_eq!(
            hold.look(&planned, &none, t0 + bound),
            Hold::BoundPassed { held_s: 30.0 }
        );
    }

    #[test]
    fn hearing_every_stage_again_ends_the_hold_and_says_for_how_long() {
        let t0 = Instant::now();
        let mut hold = PartitionHold::new(Duration::from_secs(30));
        let planned = names(&["a", "b", "c"]);
        assert_eq!(
            hold.look(&planned, &planned, t0),
            Hold::Proceed { after_s: None }
        );
        hold.look(&planned, &names(&[]), t0);
        assert_eq!(
            hold.look(&planned, &planned, t0 + Duration::from_secs(8)),
            Hold::Proceed { after_s: Some(8.0) }
        );
        assert!(!hold.holding());
        // A new cut starts a new hold with a bound of its own.
        let t1 = t0 + Duration::from_secs(100);
        assert!(matches!(
            hold.look(&planned, &names(&["b"]), t1),
            Hold::Holding { until, .. } if until == t1 + Duration::from_secs(30)
        ));
    }

    #[test]
    fn coming_back_the_leader_holds_until_the_last_stage_is_heard_again() {
        let t0 = Instant::now();
        let mut hold = PartitionHold::new(Duration::from_secs(30));
        let planned = names(&["a", "b", "c"]);
        hold.look(&planned, &names(&[]), t0);
        // Tokens return one by one: two of three is not cut off, but not back either.
        let t1 = t0 + Duration::from_secs(9);
        assert!(matches!(
            hold.look(&planned, &names(&["a", "b"]), t1),
            Hold::Holding { .. }
        ));
        assert_eq!(
            hold.look(&planned, &planned, t1 + Duration::from_secs(1)),
            Hold::Proceed {
                after_s: Some(10.0)
            }
        );
        // Without a hold, two of three is a stage that left: re-planned at once.
        assert_eq!(
            hold.look(&planned, &names(&["a", "b"]), t1 + Duration::from_secs(2)),
            Hold::Proceed { after_s: None }
        );
    }

    #[test]
    fn a_stage_that_died_while_the_leader_was_away_is_planned_around_at_the_bound() {
        let t0 = Instant::now();
        let mut hold = PartitionHold::new(Duration::from_secs(30));
        let planned = names(&["a", "b", "c"]);
        hold.look(&planned, &names(&[]), t0);
        assert_eq!(
            hold.look(&planned, &names(&["a", "b"]), t0 + Duration::from_secs(30)),
            Hold::BoundPassed { held_s: 30.0 }
        );
    }
}
