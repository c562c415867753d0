//! Whether the leader, losing the stages of its plan, is the one cut off.
//!
//! A stage that vanishes without closing its links is noticed when its zenoh lease expires. A
//! leader whose own link goes sees the same thing for every stage: their leases expire one by
//! one within about a lease of each other, while the stages still run the plan and still reach
//! each other (and the clients that reach them). Nothing it plans meanwhile can be assigned.
//! The harm comes when the link is back: the stages' tokens return one by one, and a leader
//! that re-planned on the first ones back would replace the plan every stage still runs with a
//! plan over one or two of them, and re-plan again as the others return.
//!
//! So a leader that has lost **every** stage of its plan (at least two) takes itself for cut
//! off and holds its plan ([`PartitionHold`]) until it hears every stage of it again (their
//! tokens are up), or `leader.partition_hold_s` has passed: past that bound the fleet itself
//! shrank (every stage died, or one died while the leader was away) and the leader plans over
//! those it hears.
//!
//! Only liveliness tokens count, never answers to queries: a stage busy loading a new shard
//! answers late but keeps its token (zenoh's keep-alives run on their own threads), and must
//! not be taken for unreachable. And only the loss of every stage counts, not of most: a second
//! stage failing while the leader re-plans around the first is a shrinking fleet, to be planned
//! around at once, and a leader that still hears one stage of its plan plans over it (the cost:
//! a leader cut off together with one of its stages re-plans over that stage, and again when
//! the others return; each item is still answered once).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The stages of `planned` whose liveliness token is up.
pub fn heard_from(planned: &BTreeSet<String>, alive: &BTreeSet<String>) -> BTreeSet<String> {
    planned.intersection(alive).cloned().collect()
}

/// Whether a leader that hears `heard` of its plan's stages `planned` is cut off from its
/// fleet: a plan of two stages or more, none of which it hears.
pub fn cut_off(planned: &BTreeSet<String>, heard: &BTreeSet<String>) -> bool {
    planned.len() >= 2 && planned.is_disjoint(heard)
}

/// What the leader does with its plan after one look.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Hold {
    /// Decide as usual (a stage that left is re-planned around). `after_s`: it had been
    /// holding for this long, if it was.
    Proceed { after_s: Option<f64> },
    /// Cut off, or back and waiting for the last stages: keep the current plan; look again by
    /// `until` at the latest.
    Holding { since_s: f64, until: Instant },
    /// Held for longer than the bound: plan over whoever it hears.
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

    /// Whether the leader holds its plan now.
    pub fn holding(&self) -> bool {
        self.since.is_some()
    }

    /// One look at `now`, hearing `heard` of the plan's stages `planned`. A hold begins when the
    /// leader is [`cut_off`] and ends only when it hears every stage again (or at the bound).
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
            // of the (new) plan.
            self.since = None;
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
    fn losing_some_stages_is_not_a_partition_whatever_the_plan_size() {
        assert!(!cut_off(&names(&["a", "b", "c"]), &names(&["a", "c"])));
        assert!(!cut_off(&names(&["a", "b"]), &names(&["a"])));
        // A second stage failing during a re-plan: the one left is heard.
        assert!(!cut_off(&names(&["a", "b", "c"]), &names(&["a"])));
        // A plan of one stage has nobody to be cut off from but that stage.
        assert!(!cut_off(&names(&["a"]), &names(&[])));
    }

    #[test]
    fn losing_every_stage_is_a_partition() {
        assert!(cut_off(&names(&["a", "b", "c"]), &names(&[])));
        assert!(cut_off(&names(&["a", "b"]), &names(&[])));
        // Nodes outside the plan do not count.
        let planned = names(&["a", "b"]);
        assert!(cut_off(&planned, &heard_from(&planned, &names(&["d"]))));
    }

    #[test]
    fn only_tokens_count_a_busy_stage_is_heard() {
        let planned = names(&["a", "b", "c"]);
        // b's link was cut; a is busy loading its new shard and answers nothing, but its token
        // is up: heard.
        let heard = heard_from(&planned, &names(&["a", "c", "leader"]));
        assert_eq!(heard, names(&["a", "c"]));
        assert!(!cut_off(&planned, &heard));
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
        assert!(!hold.holding(), "past the bound the leader plans again");
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
            hold.look(&planned, &names(&[]), t1),
            Hold::Holding { until, .. } if until == t1 + Duration::from_secs(30)
        ));
    }

    #[test]
    fn coming_back_the_leader_holds_until_the_last_stage_is_heard_again() {
        let t0 = Instant::now();
        let mut hold = PartitionHold::new(Duration::from_secs(30));
        let planned = names(&["a", "b", "c"]);
        hold.look(&planned, &names(&[]), t0);
        // Tokens return one by one: the first back are not the fleet.
        let t1 = t0 + Duration::from_secs(9);
        assert!(matches!(
            hold.look(&planned, &names(&["a"]), t1),
            Hold::Holding { .. }
        ));
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
