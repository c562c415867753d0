//! The leader cut off from its stages ([`crate::runtime::planning::partition`]): before a
//! membership change is acted on, the leader looks at how many stages of its plan it still
//! hears. Having lost every one, it keeps its plan (the stages still run it among themselves)
//! and looks again every [`LOOK_EVERY`] until it hears them all again or the bound
//! (`leader.partition_hold_s`) has passed.

use super::replanning::Reconsider;
use super::PlannerActor;
use crate::runtime::planning::partition::{self, Hold};
use actix::prelude::*;
use quantpipe_messages::PlanInfo;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How often a leader holding its plan looks at the fleet again (tokens coming back bring
/// events of their own; the look also ends a hold at its bound).
const LOOK_EVERY: Duration = Duration::from_secs(2);

impl PlannerActor {
    /// Whether the leader keeps `current` as it is now, cut off from the stages of it (their
    /// tokens: `alive`); logs when a hold begins, ends or passes its bound.
    pub(super) fn holds_plan_cut_off(
        &mut self,
        current: &PlanInfo,
        planned: &BTreeSet<String>,
        alive: &BTreeSet<String>,
        ctx: &SyncContext<Self>,
    ) -> bool {
        let heard = partition::heard_from(planned, alive);
        let was_holding = self.partition.holding();
        match self.partition.look(planned, &heard, Instant::now()) {
            Hold::Holding { since_s, until } => {
                if !was_holding {
                    tracing::warn!(
                        "cut off from the fleet: hearing {heard:?} of plan epoch {} ({planned:?}); \
                         keeping the plan while its stages run it, for at most {} s",
                        current.epoch,
                        self.settings.partition_hold_s
                    );
                } else {
                    tracing::info!(
                        "still cut off after {since_s:.1} s: hearing {heard:?} of plan epoch {}",
                        current.epoch
                    );
                }
                self.look_again_before(ctx, until);
                true
            }
            Hold::BoundPassed { held_s } => {
                tracing::warn!(
                    "cut off from plan epoch {} for {held_s:.1} s, past leader.partition_hold_s: \
                     planning over the stages heard ({heard:?})",
                    current.epoch
                );
                false
            }
            Hold::Proceed {
                after_s: Some(held_s),
            } => {
                tracing::warn!(
                    "back in touch with the fleet after {held_s:.1} s: hearing every stage of \
                     plan epoch {} again",
                    current.epoch
                );
                false
            }
            Hold::Proceed { after_s: None } => false,
        }
    }

    /// A look within [`LOOK_EVERY`], and by `until` at the latest; one pending at a time.
    fn look_again_before(&mut self, ctx: &SyncContext<Self>, until: Instant) {
        if self.partition_look_due {
            return;
        }
        self.partition_look_due = true;
        let wait = until
            .saturating_duration_since(Instant::now())
            .min(LOOK_EVERY);
        self.wake_after(ctx, wait, PartitionLook);
    }
}

/// Time for a leader holding its plan to look at the fleet again.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct PartitionLook;

impl Handler<PartitionLook> for PlannerActor {
    type Result = ();
    fn handle(&mut self, _: PartitionLook, ctx: &mut SyncContext<Self>) {
        self.partition_look_due = false;
        ctx.address().do_send(Reconsider::first());
    }
}
