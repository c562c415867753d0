//! Flap damping in the PlannerActor ([`crate::runtime::planning::flap_damping`]): the token
//! watcher records every node's departures and returns as they happen, re-planning looks only
//! at the alive nodes the damping does not hold out, and a timer looks again when a hold ends.

use super::replanning::Reconsider;
use super::PlannerActor;
use crate::runtime::planning::flap_damping::FlapDamping;
use actix::prelude::*;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Margin past a hold's end before looking again, so the hold is over when the look comes.
const AFTER_HOLD: Duration = Duration::from_millis(50);

/// The damping state, shared by the token watcher (which feeds it) and the actor (which reads
/// it), on the leader's monotonic clock.
#[derive(Clone)]
pub(super) struct Rejoins {
    damping: Arc<Mutex<FlapDamping>>,
    clock: Instant,
}

impl Rejoins {
    pub(super) fn new(damping: FlapDamping) -> Self {
        Rejoins {
            damping: Arc::new(Mutex::new(damping)),
            clock: Instant::now(),
        }
    }

    fn now_s(&self) -> f64 {
        self.clock.elapsed().as_secs_f64()
    }

    fn damping(&self) -> std::sync::MutexGuard<'_, FlapDamping> {
        self.damping.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `node`'s token went (`up` false) or came (`up` true) now; a return while departures of
    /// the node are remembered is logged with its hold.
    pub(super) fn token_event(&self, node: &str, up: bool) {
        let now = self.now_s();
        if !up {
            self.damping().departed(node, now);
            return;
        }
        if let Some(rejoin) = self.damping().arrived(node, now) {
            tracing::warn!("{rejoin}");
        }
    }
}

impl PlannerActor {
    /// The nodes of `alive` the damping lets the leader plan with now beside its plan over
    /// `planned` (whose stages are never held out); when it holds some out, a [`HoldEnded`] is
    /// due at the end of the first hold.
    pub(super) fn undamped(
        &mut self,
        alive: &BTreeSet<String>,
        planned: &BTreeSet<String>,
        ctx: &SyncContext<Self>,
    ) -> BTreeSet<String> {
        let now = self.rejoins.now_s();
        let (plannable, next) = {
            let damping = self.rejoins.damping();
            (
                damping.plannable_beside(alive, planned, now),
                damping.next_release(now),
            )
        };
        if let Some(at) = next {
            self.look_again_at(ctx, at, now);
        }
        plannable
    }

    /// Sends [`HoldEnded`] at `at` (s on the damping's clock), unless one is due before it.
    fn look_again_at(&mut self, ctx: &SyncContext<Self>, at: f64, now: f64) {
        if self.hold_wake.is_some_and(|due| due > now && due <= at) {
            return;
        }
        self.hold_wake = Some(at);
        let delay = Duration::try_from_secs_f64(at - now).unwrap_or_default() + AFTER_HOLD;
        self.wake_after(ctx, delay, HoldEnded { at });
    }
}

/// A node's hold ended: plan with it if it is worth it.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct HoldEnded {
    at: f64,
}

impl Handler<HoldEnded> for PlannerActor {
    type Result = ();
    fn handle(&mut self, HoldEnded { at }: HoldEnded, ctx: &mut SyncContext<Self>) {
        if self.hold_wake == Some(at) {
            self.hold_wake = None;
        }
        ctx.address().do_send(Reconsider::first());
    }
}
