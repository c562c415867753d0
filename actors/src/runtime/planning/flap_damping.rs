//! Flap damping of re-joins, as routers damp a flapping route: a node whose liveliness token
//! went is planned again only once its token has stayed up for a hold time, and each further
//! departure within a memory period multiplies the hold.
//!
//! A link that goes down and up every few seconds makes its node's lease expire on every cut
//! and its token come back on every restore. Planning it out and back in each time costs the
//! fleet a shard load per stage and a resend of everything in flight per plan, so a fleet that
//! follows the flaps makes no progress. A node leaving is still acted on at once (it cannot run
//! its stage); only its return waits:
//!
//! - after its first departure, a node is planned again once it has been present (token up)
//!   without a break for `hold_s`;
//! - each departure counts for `memory_s`; with `n` departures remembered the hold is
//!   `hold_s * factor^(n-1)`, at most `max_hold_s`;
//! - departures older than `memory_s` are forgotten, so the hold of a node that stays shrinks
//!   as they age and a node that stays `memory_s` after its last departure is forgiven.
//!
//! The price: a node that left once for a good reason (a restart) waits `hold_s` before it
//! runs a stage again, even though its link is sound.
//!
//! It lives beside the leader's other membership decisions ([`super::replan`],
//! [`super::release`], [`crate::runtime::membership`]): plain data in (node names, times in
//! seconds on the leader's monotonic clock), plain answers out; the PlannerActor feeds it the
//! token events and excludes the nodes it holds out when it plans.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// How re-joins are damped: the leader's `rejoin_*` settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DampingRule {
    /// Presence without a break a node needs after a first departure before it is planned
    /// again, s; 0 turns damping off.
    pub hold_s: f64,
    /// Each further departure remembered multiplies the hold by this (>= 1).
    pub factor: f64,
    /// The hold never exceeds this, s.
    pub max_hold_s: f64,
    /// How long a departure is remembered, s.
    pub memory_s: f64,
}

impl Default for DampingRule {
    fn default() -> Self {
        DampingRule::DEFAULT
    }
}

impl DampingRule {
    /// 5 s after a first departure, doubled for each further one within 2 minutes, at most
    /// 30 s: a link flapping every few seconds keeps its node out until it has stayed up 30 s.
    pub const DEFAULT: DampingRule = DampingRule {
        hold_s: 5.0,
        factor: 2.0,
        max_hold_s: 30.0,
        memory_s: 120.0,
    };

    /// Checks the rule; the error names the leader setting that is wrong.
    pub fn check(&self) -> Result<(), String> {
        let number = |name: &str, v: f64, ok: bool, what: &str| {
            if v.is_finite() && ok {
                Ok(())
            } else {
                Err(format!("leader.{name} must be {what}, got {v}"))
            }
        };
        number(
            "rejoin_hold_s",
            self.hold_s,
            self.hold_s >= 0.0,
            "a number >= 0 (0: no hold)",
        )?;
        number(
            "rejoin_hold_factor",
            self.factor,
            self.factor >= 1.0,
            "a number >= 1",
        )?;
        number(
            "rejoin_hold_max_s",
            self.max_hold_s,
            self.max_hold_s >= self.hold_s,
            &format!("a number >= leader.rejoin_hold_s ({})", self.hold_s),
        )?;
        number(
            "rejoin_memory_s",
            self.memory_s,
            self.memory_s > 0.0,
            "a number > 0",
        )
    }

    /// The hold of a node with `departures` departures remembered.
    pub fn hold_after(&self, departures: usize) -> f64 {
        if departures == 0 || self.hold_s <= 0.0 {
            return 0.0;
        }
        // Past 64 doublings the cap has long been reached.
        let further = (departures - 1).min(64) as i32;
        (self.hold_s * self.factor.powi(further)).min(self.max_hold_s)
    }
}

/// Where a node stands with the damping at some moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Standing {
    /// It may be planned.
    Free,
    /// It left and its token has not come back.
    Gone,
    /// Its token is back, but it is held out of plans until this time, s.
    HeldUntil(f64),
}

/// A node whose token came back while departures of it are remembered.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejoin {
    pub node: String,
    /// Since its last departure, s.
    pub after_s: f64,
    /// Departures remembered, the last one included.
    pub departures: usize,
    /// How long it is held out of plans from now, s.
    pub hold_s: f64,
    /// The rule's memory, s (for the log line).
    pub memory_s: f64,
}

impl fmt::Display for Rejoin {
    /// `b re-joined 1.2 s after leaving (2nd time in 120 s): held out of plans for 10.0 s`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} re-joined {:.1} s after leaving ({} time in {:.0} s): ",
            self.node,
            self.after_s,
            ordinal(self.departures),
            self.memory_s
        )?;
        write!(f, "held out of plans for {:.1} s", self.hold_s)
    }
}

fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// What is remembered of one node.
#[derive(Debug, Clone, Default)]
struct Record {
    /// Times of its departures still remembered, oldest first.
    departures: Vec<f64>,
    /// Since when its token is up again; `None` while it is gone.
    present_since: Option<f64>,
}

/// The damping state: the departures of every node that left lately.
#[derive(Debug, Clone)]
pub struct FlapDamping {
    rule: DampingRule,
    records: BTreeMap<String, Record>,
}

impl FlapDamping {
    pub fn new(rule: DampingRule) -> Self {
        FlapDamping {
            rule,
            records: BTreeMap::new(),
        }
    }

    /// `node`'s token went at `now`.
    pub fn departed(&mut self, node: &str, now: f64) {
        if self.rule.hold_s <= 0.0 {
            return;
        }
        self.forget(now);
        let record = self.records.entry(node.to_owned()).or_default();
        record.departures.push(now);
        record.present_since = None;
    }

    /// `node`'s token appeared at `now`. Answers how long it is held out when departures of it
    /// are remembered; `None` for a node that never left lately, or whose token was already
    /// known to be up.
    pub fn arrived(&mut self, node: &str, now: f64) -> Option<Rejoin> {
        self.forget(now);
        let record = self.records.get_mut(node)?;
        if record.present_since.is_some() {
            return None;
        }
        record.present_since = Some(now);
        let last = *record.departures.last()?;
        let hold_s = match self.standing(node, now) {
            Standing::HeldUntil(t) => t - now,
            Standing::Free | Standing::Gone => 0.0,
        };
        Some(Rejoin {
            node: node.to_owned(),
            after_s: now - last,
            departures: self.remembered(node, now),
            hold_s,
            memory_s: self.rule.memory_s,
        })
    }

    /// Where `node` stands at `now`.
    pub fn standing(&self, node: &str, now: f64) -> Standing {
        let Some(record) = self.records.get(node) else {
            return Standing::Free;
        };
        if self.remembered(node, now) == 0 {
            return Standing::Free;
        }
        let Some(since) = record.present_since else {
            return Standing::Gone;
        };
        let until = self.released_at(&record.departures, since, now);
        if until <= now {
            Standing::Free
        } else {
            Standing::HeldUntil(until)
        }
    }

    /// The nodes of `alive` that may be planned at `now`.
    pub fn plannable(&self, alive: &BTreeSet<String>, now: f64) -> BTreeSet<String> {
        alive
            .iter()
            .filter(|n| self.standing(n, now) == Standing::Free)
            .cloned()
            .collect()
    }

    /// The nodes of `alive` that may run a stage at `now` beside a current plan over `planned`:
    /// those [`plannable`](Self::plannable), and every node of the plan whose token is up. The
    /// damping delays a return into a plan; a stage that was never planned out (the re-plan
    /// around it could not be assigned, or the leader was the one cut off) still runs its stage,
    /// and holding it out would re-plan the fleet around a working stage.
    pub fn plannable_beside(
        &self,
        alive: &BTreeSet<String>,
        planned: &BTreeSet<String>,
        now: f64,
    ) -> BTreeSet<String> {
        let mut nodes = self.plannable(alive, now);
        nodes.extend(alive.intersection(planned).cloned());
        nodes
    }

    /// The nodes of `alive` held out at `now`, with the time each hold ends.
    pub fn held_out(&self, alive: &BTreeSet<String>, now: f64) -> BTreeMap<String, f64> {
        alive
            .iter()
            .filter_map(|n| match self.standing(n, now) {
                Standing::HeldUntil(t) => Some((n.clone(), t)),
                Standing::Free | Standing::Gone => None,
            })
            .collect()
    }

    /// The earliest end of a hold after `now`: when the leader should look again.
    pub fn next_release(&self, now: f64) -> Option<f64> {
        self.records
            .keys()
            .filter_map(|n| match self.standing(n, now) {
                Standing::HeldUntil(t) => Some(t),
                Standing::Free | Standing::Gone => None,
            })
            .min_by(f64::total_cmp)
    }

    /// How many departures of `node` are remembered at `now`.
    fn remembered(&self, node: &str, now: f64) -> usize {
        self.records.get(node).map_or(0, |r| {
            r.departures
                .iter()
                .filter(|d| **d + self.rule.memory_s > now)
                .count()
        })
    }

    /// When a node present since `since` with `departures` is free, looking from `now`: its
    /// hold shrinks each time a departure is forgotten, so the end is the first moment its
    /// presence covers the hold of the departures still remembered then.
    fn released_at(&self, departures: &[f64], since: f64, now: f64) -> f64 {
        let memory = self.rule.memory_s;
        let mut t = now.max(since);
        loop {
            let remembered = departures.iter().filter(|d| **d + memory > t).count();
            let end = t.max(since + self.rule.hold_after(remembered));
            let next_forgotten = departures
                .iter()
                .map(|d| d + memory)
                .filter(|f| *f > t)
                .min_by(f64::total_cmp);
            match next_forgotten {
                Some(f) if f < end => t = f,
                _ => return end,
            }
        }
    }

    /// Drops departures no longer remembered, and the records left without any.
    fn forget(&mut self, now: f64) {
        let memory = self.rule.memory_s;
        self.records.retain(|_, r| {
            r.departures.retain(|d| d + memory > now);
            !r.departures.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> DampingRule {
        DampingRule {
            hold_s: 5.0,
            factor: 2.0,
            max_hold_s: 30.0,
            memory_s: 120.0,
        }
    }

    fn names(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_node_that_never_left_is_free() {
        let mut d = FlapDamping::new(rule());
        assert_eq!(d.arrived("c", 1.0), None);
        assert_eq!(d.standing("c", 1.0), Standing::Free);
        assert_eq!(d.plannable(&names(&["a", "c"]), 1.0), names(&["a", "c"]));
        assert_eq!(d.next_release(1.0), None);
    }

    #[test]
    fn a_node_that_left_is_out_until_it_comes_back() {
        let mut d = FlapDamping::new(rule());
        d.departed("b", 10.0);
        assert_eq!(d.standing("b", 11.0), Standing::Gone);
        assert_eq!(d.next_release(11.0), None, "no hold ends while it is gone");
    }

    #[test]
    fn a_stage_of_the_current_plan_is_never_held_out() {
        let mut d = FlapDamping::new(rule());
        // Every stage's token went (the leader was cut off) and came back: the plan was never
        // replaced, so its stages stay in it; a node outside it still waits its hold.
        for n in ["a", "b", "c", "d"] {
            d.departed(n, 10.0);
            d.arrived(n, 12.0);
        }
        let alive = names(&["a", "b", "c", "d"]);
        let planned = names(&["a", "b", "c"]);
        assert_eq!(d.plannable(&alive, 13.0), names(&[]));
        assert_eq!(d.plannable_beside(&alive, &planned, 13.0), planned);
        // A stage whose token is down is not planned, held or not.
        let up = names(&["a", "d"]);
        assert_eq!(d.plannable_beside(&up, &planned, 13.0), names(&["a"]));
    }

    #[test]
    fn a_node_that_rejoins_at_once_waits_the_hold() {
        let mut d = FlapDamping::new(rule());
        d.departed("b", 10.0);
        let rejoin = d.arrived("b", 10.5).unwrap();
        assert_eq!(rejoin.departures, 1);
        assert!((rejoin.after_s - 0.5).abs() < 1e-9);
        assert_eq!(rejoin.hold_s, 5.0);
        assert_eq!(d.standing("b", 12.0), Standing::HeldUntil(15.5));
        assert_eq!(d.plannable(&names(&["a", "b"]), 12.0), names(&["a"]));
        assert_eq!(d.next_release(12.0), Some(15.5));
        assert_eq!(d.standing("b", 15.5), Standing::Free);
        assert_eq!(d.plannable(&names(&["a", "b"]), 15.5), names(&["a", "b"]));
    }

    #[test]
    fn a_departure_during_the_hold_starts_it_again() {
        let mut d = FlapDamping::new(rule());
        d.departed("b", 0.0);
        d.arrived("b", 1.0);
        d.departed("b", 4.0);
        let rejoin = d.arrived("b", 5.0).unwrap();
        // Present since 5 s, two departures: 10 s.
        assert_eq!(rejoin.hold_s, 10.0);
        assert_eq!(d.standing("b", 14.9), Standing::HeldUntil(15.0));
    }

    #[test]
    fn repeated_departures_lengthen_the_hold() {
        let mut d = FlapDamping::new(rule());
        let mut holds = Vec::new();
        for k in 0..6 {
            let t = 4.0 * k as f64;
            d.departed("b", t);
            holds.push(d.arrived("b", t + 1.0).unwrap().hold_s);
        }
        assert_eq!(
            holds,
            vec![5.0, 10.0, 20.0, 30.0, 30.0, 30.0],
            "doubling up to the cap"
        );
    }

    #[test]
    fn a_stable_node_is_forgiven() {
        let mut d = FlapDamping::new(rule());
        for k in 0..6 {
            let t = 4.0 * k as f64;
            d.departed("b", t);
            d.arrived("b", t + 1.0);
        }
        // Present since 21 s with six departures: held for the cap.
        assert_eq!(d.standing("b", 21.0), Standing::HeldUntil(51.0));
        assert_eq!(d.standing("b", 51.0), Standing::Free);
        // Leaving once more within the memory: the six earlier departures still count.
        d.departed("b", 60.0);
        assert_eq!(d.arrived("b", 61.0).unwrap().hold_s, 30.0);
        // Once every departure is older than the memory, a departure is a first one again.
        d.departed("b", 200.0);
        let rejoin = d.arrived("b", 201.0).unwrap();
        assert_eq!((rejoin.departures, rejoin.hold_s), (1, 5.0));
    }

    #[test]
    fn the_hold_shrinks_as_departures_are_forgotten() {
        let rule = DampingRule {
            memory_s: 20.0,
            max_hold_s: 100.0,
            ..rule()
        };
        let mut d = FlapDamping::new(rule);
        for t in [0.0, 2.0, 4.0, 6.0] {
            d.departed("b", t);
        }
        // Present since 7 s with four departures: 40 s. The first is forgotten at 20 s (20 s,
        // until 27 s), the second at 22 s (10 s, until 17 s, already past): free at 22 s.
        d.arrived("b", 7.0);
        assert_eq!(d.standing("b", 7.0), Standing::HeldUntil(22.0));
        assert_eq!(d.standing("b", 22.0), Standing::Free);
    }

    #[test]
    fn a_repeated_token_event_does_not_restart_the_hold() {
        let mut d = FlapDamping::new(rule());
        d.departed("b", 0.0);
        assert!(d.arrived("b", 1.0).is_some());
        assert_eq!(d.arrived("b", 3.0), None);
        assert_eq!(d.standing("b", 5.0), Standing::HeldUntil(6.0));
    }

    #[test]
    fn holds_end_in_order_and_only_held_nodes_count() {
        let mut d = FlapDamping::new(rule());
        d.departed("b", 0.0);
        d.arrived("b", 1.0);
        d.departed("c", 2.0);
        d.arrived("c", 2.5);
        d.departed("d", 2.0);
        let alive = names(&["a", "b", "c"]);
        assert_eq!(d.next_release(3.0), Some(6.0));
        assert_eq!(
            d.held_out(&alive, 3.0),
            BTreeMap::from([("b".to_string(), 6.0), ("c".to_string(), 7.5)])
        );
        assert_eq!(d.next_release(6.0), Some(7.5));
        assert_eq!(d.plannable(&alive, 6.0), names(&["a", "b"]));
    }

    #[test]
    fn a_zero_hold_turns_damping_off() {
        let mut d = FlapDamping::new(DampingRule {
            hold_s: 0.0,
            ..rule()
        });
        d.departed("b", 0.0);
        assert_eq!(d.arrived("b", 0.1), None);
        assert_eq!(d.standing("b", 0.1), Standing::Free);
    }

    #[test]
    fn the_log_line_says_how_often_and_for_how_long() {
        let mut d = FlapDamping::new(rule());
        d.departed("b", 0.0);
        d.arrived("b", 1.0);
        d.departed("b", 3.0);
        let line = d.arrived("b", 4.2).unwrap().to_string();
        assert_eq!(
            line,
            "b re-joined 1.2 s after leaving (2nd time in 120 s): held out of plans for 10.0 s"
        );
        assert_eq!(ordinal(1), "1st");
        assert_eq!(ordinal(3), "3rd");
        assert_eq!(ordinal(12), "12th");
        assert_eq!(ordinal(22), "22nd");
    }

    #[test]
    fn bad_rules_are_refused_naming_the_setting() {
        assert_eq!(DampingRule::default().check(), Ok(()));
        let bad = |r: DampingRule| r.check().unwrap_err();
        let e = bad(DampingRule {
            hold_s: -1.0,
            ..rule()
        });
        assert!(
            e.contains("leader.rejoin_hold_s") && e.contains("-1"),
            "{e}"
        );
        let e = bad(DampingRule {
            hold_s: f64::NAN,
            ..rule()
        });
        assert!(
            e.contains("leader.rejoin_hold_s") && e.contains("NaN"),
            "{e}"
        );
        assert!(bad(DampingRule {
            factor: 0.5,
            ..rule()
        })
        .contains("leader.rejoin_hold_factor"));
        assert!(bad(DampingRule {
            max_hold_s: 1.0,
            ..rule()
        })
        .contains("leader.rejoin_hold_max_s"));
        assert!(bad(DampingRule {
            max_hold_s: f64::INFINITY,
            ..rule()
        })
        .contains("leader.rejoin_hold_max_s"));
        assert!(bad(DampingRule {
            memory_s: 0.0,
            ..rule()
        })
        .contains("leader.rejoin_memory_s"));
    }
}
