//! Where a client learns the leader's plan without polling: announcements on
//! [`Keys::plan_changed`], and the plan queryable, asked as soon as one appears (the leader
//! declares it with its first plan; a new leader declares its own).

use super::Event;
use anyhow::{anyhow, Result};
use quantpipe_messages::{envelope, Keys, PlanInfo};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};
use zenoh::matching::MatchingListener;
use zenoh::pubsub::Subscriber;
use zenoh::qos::Priority;
use zenoh::query::Querier;
use zenoh::{Session, Wait};

/// How long one plan query may wait for the leader's answer.
const PLAN_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// A run's event stream with the plan's sources feeding it: plan announcements, and a
/// notification whenever a plan queryable appears. Results are fed in by [`PlanWatch::sender`].
pub struct PlanWatch {
    // Fields drop in this order: the matching listener goes before the querier it belongs to
    // (the querier's undeclaration takes its listeners along, and zenoh logs an error when a
    // listener is undeclared after that).
    _served: MatchingListener<()>,
    _announcements: Subscriber<()>,
    querier: Querier<'static>,
    fleet: String,
    events: Receiver<Event>,
    sender: Sender<Event>,
}

impl PlanWatch {
    /// Subscribes to announcements and watches for the plan queryable. Declared before the
    /// first question, so that no announcement falls between the two.
    pub fn declare(session: &Session, keys: &Keys) -> Result<PlanWatch> {
        let (sender, events) = channel();
        let announcements = {
            let tx = sender.clone();
            session
                .declare_subscriber(keys.plan_changed())
                .callback(move |s| {
                    let _ = tx.send(Event::Plan(s.payload().to_bytes().into_owned()));
                })
                .wait()
                .map_err(|e| anyhow!("subscribing to plan changes: {e}"))?
        };
        let querier = session
            .declare_querier(keys.plan())
            .priority(Priority::InteractiveHigh)
            .timeout(PLAN_QUERY_TIMEOUT)
            .wait()
            .map_err(|e| anyhow!("declaring the plan querier: {e}"))?;
        let served = {
            let tx = sender.clone();
            querier
                .matching_listener()
                .callback(move |m| {
                    if m.matching() {
                        let _ = tx.send(Event::PlanServed);
                    }
                })
                .wait()
                .map_err(|e| anyhow!("watching for the plan queryable: {e}"))?
        };
        Ok(PlanWatch {
            fleet: keys.fleet.clone(),
            querier,
            events,
            sender,
            _announcements: announcements,
            _served: served,
        })
    }

    /// A sender into this watch's event stream (for the run's results).
    pub fn sender(&self) -> Sender<Event> {
        self.sender.clone()
    }

    /// The next event, or `None` after `limit` without one.
    pub fn recv(&self, limit: Duration) -> Result<Option<Event>> {
        match self.events.recv_timeout(limit) {
            Ok(e) => Ok(Some(e)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => {
                Err(anyhow!("the client's subscriptions closed"))
            }
        }
    }

    /// Asks the plan queryable once, when one is there; `None` when nobody serves a plan or
    /// nobody answered in time.
    pub fn ask(&self) -> Option<PlanInfo> {
        let served = self
            .querier
            .matching_status()
            .wait()
            .is_ok_and(|m| m.matching());
        if !served {
            return None;
        }
        let replies = self.querier.get().wait().ok()?;
        while let Ok(reply) = replies.recv() {
            if let Ok(sample) = reply.result() {
                if let Some(p) = self.decode(&sample.payload().to_bytes()) {
                    return Some(p);
                }
            }
        }
        None
    }

    /// A plan message of this fleet; `None` (and a warning) for anything else.
    pub fn decode(&self, bytes: &[u8]) -> Option<PlanInfo> {
        envelope::decode::<PlanInfo>(bytes, &self.fleet)
            .map_err(|e| tracing::warn!("ignoring a plan message: {e}"))
            .ok()
    }

    /// The leader's plan as soon as one is served or announced; `None` when `until` passes
    /// first. Other events (results of earlier runs) are dropped.
    pub fn next(&self, until: Instant) -> Result<Option<PlanInfo>> {
        if let Some(p) = self.ask() {
            return Ok(Some(p));
        }
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let plan = match self.recv(left)? {
                None => return Ok(None),
                Some(Event::Plan(bytes)) => self.decode(&bytes),
                Some(Event::PlanServed) => self.ask(),
                Some(Event::Result(_)) => None,
            };
            if plan.is_some() {
                return Ok(plan);
            }
        }
    }
}
