//! Leader election among `candidate` nodes: a fleet with no configured leader (or whose leader
//! died) elects one.
//!
//! A candidate holds the liveliness token `qp/<fleet>/candidate/<name>`; whoever hosts the
//! planner holds `qp/<fleet>/leader/<name>`. A thread polls both token sets (a liveliness `get`
//! every [`POLL`]: blocking, so off the arbiter) and hands what it saw to the [`Leadership`]
//! actor, which applies [`membership::elected`]: when this candidate has been the elected one for
//! [`SETTLE`] it starts the planner ([`start_leading`]), whose first plan gets an epoch above the
//! one the stages run; when a configured leader (or a smaller-named candidate that claimed at the
//! same moment) leads, it steps down.

use crate::runtime::config::LeaderSettings;
use crate::runtime::membership;
use crate::runtime::planner_actor::{start_leading, Leading};
use crate::runtime::wire::Keys;
use actix::prelude::*;
use anyhow::{anyhow, Result};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zenoh::{Session, Wait};

/// How often a candidate looks at the leader and candidate tokens.
pub const POLL: Duration = Duration::from_millis(300);

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
}

/// The alive leader and candidate tokens, by name.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Observed {
    pub leaders: BTreeSet<String>,
    pub candidates: BTreeSet<String>,
}

/// A candidate's view of who leads; hosts the planner while this candidate leads.
pub struct Leadership {
    session: Session,
    keys: Keys,
    name: String,
    settings: LeaderSettings,
    /// The hosted planner while this candidate leads.
    planner: Option<Leading>,
    settle: Settle,
}

impl Leadership {
    pub fn new(session: Session, keys: Keys, name: String, settings: LeaderSettings) -> Self {
        Leadership {
            session,
            keys,
            name,
            settings,
            planner: None,
            settle: Settle::new(SETTLE),
        }
    }
}

impl Actor for Leadership {
    type Context = Context<Self>;
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

impl Handler<Observed> for Leadership {
    type Result = ();
    fn handle(&mut self, seen: Observed, _: &mut Context<Self>) {
        let leaders = seen.leaders.clone();
        let candidates = seen.candidates.clone();
        let leading = self.planner.is_some();
        match next_step(&self.name, leading, seen, &mut self.settle, Instant::now()) {
            Step::Stay => {}
            Step::Lead => {
                tracing::warn!(
                    "{} elected leader (leaders {leaders:?}; candidates {candidates:?})",
                    self.name
                );
                self.planner = Some(start_leading(
                    self.session.clone(),
                    self.keys.clone(),
                    self.name.clone(),
                    self.settings.clone(),
                ));
            }
            Step::StepDown => {
                tracing::warn!("{} stops leading: leaders {leaders:?} are alive", self.name);
                if let Some(leading) = self.planner.take() {
                    leading.step_down();
                }
            }
        }
    }
}

/// Names of the alive liveliness tokens on `selector` ([`Keys::leaders`] or
/// [`Keys::candidates`]), whose keys are `qp/<fleet>/<kind>/<name>`.
fn alive_tokens(
    session: &Session,
    keys: &Keys,
    selector: &str,
    kind: &str,
) -> Result<BTreeSet<String>> {
    let replies = session
        .liveliness()
        .get(selector)
        .timeout(Duration::from_secs(2))
        .wait()
        .map_err(|e| anyhow!("liveliness query {selector}: {e}"))?;
    let mut names = BTreeSet::new();
    while let Ok(reply) = replies.recv() {
        if let Ok(sample) = reply.result() {
            if let Some(name) = keys.token_name(kind, sample.key_expr().as_str()) {
                names.insert(name.to_owned());
            }
        }
    }
    Ok(names)
}

/// The polling thread; it stops when dropped.
pub struct TokenWatch {
    stop: Arc<AtomicBool>,
}

impl Drop for TokenWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts the thread that tells `to` which leader and candidate tokens are alive, every [`POLL`].
/// A failed query is logged and tried again at the next poll.
pub fn watch_tokens(session: Session, keys: Keys, to: Addr<Leadership>) -> Result<TokenWatch> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::Builder::new()
        .name("election".into())
        .spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let seen =
                    alive_tokens(&session, &keys, &keys.leaders(), "leader").and_then(|leaders| {
                        Ok(Observed {
                            leaders,
                            candidates: alive_tokens(
                                &session,
                                &keys,
                                &keys.candidates(),
                                "candidate",
                            )?,
                        })
                    });
                match seen {
                    Ok(seen) => {
                        if let Err(SendError::Closed(_)) = to.try_send(seen) {
                            return;
                        }
                    }
                    Err(e) if !stopped.load(Ordering::Relaxed) => {
                        tracing::warn!("election: {e:#}; trying again")
                    }
                    Err(_) => return,
                }
                std::thread::sleep(POLL);
            }
        })
        .map_err(|e| anyhow!("starting the election thread: {e}"))?;
    Ok(TokenWatch { stop })
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
}
