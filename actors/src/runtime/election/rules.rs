//! The election as a function of the tokens a candidate sees: who is elected
//! ([`membership::elected`]), for how long without a break ([`Settle`]), and what the candidate
//! does about it ([`next_step`]).

use crate::runtime::membership;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How long a candidate must see itself elected before it claims. Candidates see tokens appear a
/// moment apart: one claiming at first sight could miss a smaller candidate whose token has not
/// reached it yet, and two would lead.
pub const SETTLE: Duration = Duration::from_secs(2);

/// Whether a candidate has been elected without a break for the settle period.
#[derive(Debug, Clone)]
pub struct Settle {
    period: Duration,
    since: Option<Instant>,
}

impl Settle {
    pub fn new(period: Duration) -> Self {
        Settle {
            period,
            since: None,
        }
    }

    /// Records one observation; true once `elected` has held for the whole period.
    pub fn observe(&mut self, elected: bool, now: Instant) -> bool {
        if !elected {
            self.since = None;
            return false;
        }
        let since = *self.since.get_or_insert(now);
        now.duration_since(since) >= self.period
    }

    /// When the period running now ends, if one runs: the moment to look again.
    pub fn due(&self) -> Option<Instant> {
        self.since.map(|s| s + self.period)
    }
}

/// Which kind of token an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `qp/<fleet>/leader/<name>`: whoever hosts the planner.
    Leader,
    /// `qp/<fleet>/candidate/<name>`: a node that may be elected.
    Candidate,
}

impl TokenKind {
    /// The kind's segment in a token key, `qp/<fleet>/<kind>/<name>`.
    pub fn segment(self) -> &'static str {
        match self {
            TokenKind::Leader => "leader",
            TokenKind::Candidate => "candidate",
        }
    }
}

/// The alive leader and candidate tokens, by name.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub leaders: BTreeSet<String>,
    pub candidates: BTreeSet<String>,
}

impl Observed {
    /// Takes in one token event: `name`'s token of `kind` appeared (`alive`) or went.
    pub fn apply(&mut self, kind: TokenKind, name: &str, alive: bool) {
        let set = match kind {
            TokenKind::Leader => &mut self.leaders,
            TokenKind::Candidate => &mut self.candidates,
        };
        if alive {
            set.insert(name.to_owned());
        } else {
            set.remove(name);
        }
    }
}

/// What a candidate does after one look at the tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing changes: it keeps leading, or keeps waiting.
    Stay,
    /// It has been the elected one for the whole settle period: start the planner.
    Lead,
    /// It leads but someone else is elected (a configured leader came up): stop.
    StepDown,
}

/// The step of candidate `me` (leading or not) that saw `seen`, under [`membership::elected`]
/// held for `settle`'s period. Its own tokens count whether or not its session sees them.
pub fn next_step(
    me: &str,
    leading: bool,
    mut seen: Observed,
    settle: &mut Settle,
    now: Instant,
) -> Step {
    seen.candidates.insert(me.to_owned());
    if leading {
        seen.leaders.insert(me.to_owned());
    }
    let elected = membership::elected(&seen.leaders, &seen.candidates).as_deref() == Some(me);
    let settled = settle.observe(elected && !leading, now);
    match (leading, elected) {
        (false, true) if settled => Step::Lead,
        (true, false) => Step::StepDown,
        _ => Step::Stay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candidate_claims_only_after_being_elected_for_the_whole_period() {
        let t0 = Instant::now();
        let mut s = Settle::new(Duration::from_secs(2));
        assert!(!s.observe(true, t0));
        assert!(!s.observe(true, t0 + Duration::from_secs(1)));
        assert!(s.observe(true, t0 + Duration::from_secs(2)));
    }

    fn names(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn seen(leaders: &[&str], candidates: &[&str]) -> Observed {
        Observed {
            leaders: names(leaders),
            candidates: names(candidates),
        }
    }

    #[test]
    fn the_smallest_candidate_leads_once_settled_and_the_others_wait() {
        let t0 = Instant::now();
        let later = t0 + SETTLE;
        let (mut a, mut b) = (Settle::new(SETTLE), Settle::new(SETTLE));
        let both = || seen(&[], &["a", "b"]);
        assert_eq!(next_step("a", false, both(), &mut a, t0), Step::Stay);
        assert_eq!(next_step("a", false, both(), &mut a, later), Step::Lead);
        assert_eq!(next_step("b", false, both(), &mut b, t0), Step::Stay);
        assert_eq!(next_step("b", false, both(), &mut b, later), Step::Stay);
    }

    #[test]
    fn a_candidate_counts_its_own_token_before_its_session_sees_it() {
        let t0 = Instant::now();
        let mut s = Settle::new(SETTLE);
        assert_eq!(
            next_step("a", false, seen(&[], &[]), &mut s, t0),
            Step::Stay
        );
        assert_eq!(
            next_step("a", false, seen(&[], &[]), &mut s, t0 + SETTLE),
            Step::Lead
        );
    }

    #[test]
    fn the_next_candidate_takes_over_when_the_leader_is_gone() {
        let t0 = Instant::now();
        let mut b = Settle::new(SETTLE);
        // `a` leads: `b` waits, however long.
        let a_leads = || seen(&["a"], &["a", "b", "c"]);
        assert_eq!(next_step("b", false, a_leads(), &mut b, t0), Step::Stay);
        assert_eq!(
            next_step("b", false, a_leads(), &mut b, t0 + SETTLE),
            Step::Stay
        );
        // `a` died: `b` claims after the settle period, counted from when `a` went.
        let t1 = t0 + 3 * SETTLE;
        let gone = || seen(&[], &["b", "c"]);
        assert_eq!(next_step("b", false, gone(), &mut b, t1), Step::Stay);
        assert_eq!(
            next_step("b", false, gone(), &mut b, t1 + SETTLE),
            Step::Lead
        );
    }

    #[test]
    fn a_leading_candidate_steps_down_for_a_configured_leader_only() {
        let t0 = Instant::now();
        let mut s = Settle::new(SETTLE);
        // A smaller candidate coming up does not depose it.
        assert_eq!(
            next_step("b", true, seen(&["b"], &["a", "b"]), &mut s, t0),
            Step::Stay
        );
        // `boss` holds a leader token and no candidate token: a configured leader.
        assert_eq!(
            next_step("b", true, seen(&["b", "boss"], &["a", "b"]), &mut s, t0),
            Step::StepDown
        );
        // Of two candidates that claimed at once, the larger steps down.
        assert_eq!(
            next_step("c", true, seen(&["b", "c"], &["b", "c"]), &mut s, t0),
            Step::StepDown
        );
    }

    #[test]
    fn a_break_in_the_election_starts_the_period_again() {
        let t0 = Instant::now();
        let mut s = Settle::new(Duration::from_secs(2));
        assert!(!s.observe(true, t0));
        assert!(!s.observe(false, t0 + Duration::from_secs(1)));
        assert!(!s.observe(true, t0 + Duration::from_millis(2500)));
        assert!(s.observe(true, t0 + Duration::from_millis(4500)));
    }

    #[test]
    fn a_settle_period_is_due_only_while_it_runs() {
        let t0 = Instant::now();
        let mut s = Settle::new(SETTLE);
        assert_eq!(s.due(), None);
        s.observe(true, t0);
        assert_eq!(s.due(), Some(t0 + SETTLE));
        s.observe(false, t0 + Duration::from_secs(1));
        assert_eq!(s.due(), None);
    }

    #[test]
    fn token_events_add_and_remove_names_by_kind() {
        let mut o = Observed::default();
        o.apply(TokenKind::Candidate, "a", true);
        o.apply(TokenKind::Candidate, "b", true);
        o.apply(TokenKind::Leader, "a", true);
        o.apply(TokenKind::Candidate, "a", false);
        assert_eq!(o.candidates, names(&["b"]));
        assert_eq!(o.leaders, names(&["a"]));
    }
}
