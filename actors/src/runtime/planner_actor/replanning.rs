//! Re-planning on membership events: a node's token appearing or going makes the actor compare
//! who is alive with the current plan ([`crate::runtime::planning::replan`]), unless it lost
//! most of its stages at once: then it is the one cut off, and it holds the plan
//! ([`crate::runtime::planning::partition`]) and looks again every [`HOLD_LOOK_EVERY`]. Back in
//! touch, it makes sure the stages run its plan ([`crate::runtime::planning::convergence`]).

use super::{Phase, PlannerActor};
use crate::runtime::membership;
use crate::runtime::planning::convergence::{self, Divergence};
use crate::runtime::planning::partition::{self, Hold};
use crate::runtime::planning::release::plan_nodes;
use crate::runtime::planning::replan::{self, Replan};
use actix::prelude::*;
use anyhow::Result;
use quantpipe_messages::PlanInfo;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How many times a re-plan is tried when it fails (a node may die while it is assigned).
const REPLAN_ATTEMPTS: u32 = 3;

/// How often a leader holding its plan while cut off looks at the fleet again.
const HOLD_LOOK_EVERY: Duration = Duration::from_secs(2);

impl PlannerActor {
    /// Compares who is alive with the current plan and plans again when a stage's node left,
    /// when a device joined and a plan with it predicts enough more throughput, or when the
    /// stages do not all run the plan (after a partition). Holds the plan while the leader is
    /// cut off from most of its stages ([`partition`]).
    fn reconsider(&mut self, ctx: &SyncContext<Self>) -> Result<()> {
        let Phase::Running(current) = &self.phase else {
            return Ok(());
        };
        let current = current.clone();
        let alive = self.io.alive_nodes()?;
        self.devices.learn(&alive, |n| self.io.device_info(n));
        let planned = plan_nodes(&current);
        let stats = self.io.stage_stats(&alive)?;
        let answered = stats.iter().map(|s| s.node.clone()).collect();
        let heard = partition::heard_from(&planned, &alive, &answered);
        match self.hold.look(&planned, &heard, Instant::now()) {
            Hold::Holding { since_s, until } => {
                tracing::warn!(
                    "cut off from the fleet: hearing {heard:?} of plan epoch {} ({planned:?}) for \
                     {since_s:.1} s; keeping the plan while its stages run it",
                    current.epoch
                );
                self.look_again_by(ctx, until);
                return Ok(());
            }
            Hold::BoundPassed { held_s } => tracing::warn!(
                "cut off from most of plan epoch {} for {held_s:.1} s, past the bound of {} s: \
                 planning over the stages heard ({heard:?})",
                current.epoch,
                self.settings.partition_hold_s
            ),
            Hold::Proceed {
                after_s: Some(held_s),
            } => tracing::warn!(
                "back in touch with the fleet after {held_s:.1} s: hearing {heard:?} of plan \
                 epoch {}",
                current.epoch
            ),
            Hold::Proceed { after_s: None } => {}
        }
        let change = membership::change(&planned, &alive, &self.devices.names());
        let divergence = convergence::divergence(&current, &stats);
        self.release_strays(&divergence.strays, current.epoch);
        if change.is_empty() && !divergence.needs_replan() {
            return Ok(());
        }
        let infos = self.devices.infos(&stats, &self.io.keys);
        if infos.is_empty() {
            tracing::error!(
                "every stage node left ({:?}): waiting for a device to join",
                change.left
            );
            return Ok(());
        }
        let candidate = self.plan_for(&infos, divergence.plan_above(current.epoch))?;
        let verdict = replan::verdict(
            &change,
            divergence.needs_replan(),
            current.predicted_items_per_s,
            candidate.predicted_items_per_s,
            self.settings.replan_min_gain,
        );
        self.log_verdict(verdict, &change, &divergence, &current, &candidate);
        if verdict == Replan::Keep {
            return Ok(());
        }
        self.io.assign(&candidate)?;
        if self.stepped_down() {
            // Another leader leads (a partition healed): its plan is the one.
            tracing::info!("plan epoch {} not published: stepped down", candidate.epoch);
            return Ok(());
        }
        self.publish(candidate)
    }

    /// Tells the nodes outside the plan that still hold a stage of an older one to drop it.
    fn release_strays(&self, strays: &[String], epoch: u64) {
        for node in strays {
            tracing::warn!("{node} still holds a stage of a plan before epoch {epoch}");
            if let Err(e) = self.io.release(node, epoch) {
                tracing::warn!("{e:#}");
            }
        }
    }

    /// Has the actor reconsider by `until` at the latest, and every [`HOLD_LOOK_EVERY`] until
    /// then (a link mended within the lease brings no token event); one look at a time.
    fn look_again_by(&self, ctx: &SyncContext<Self>, until: Instant) {
        if self.look_queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let wait = until
            .saturating_duration_since(Instant::now())
            .min(HOLD_LOOK_EVERY);
        self.wake_after(ctx, wait, HoldLook);
    }

    fn log_verdict(
        &self,
        verdict: Replan,
        change: &membership::Change,
        divergence: &Divergence,
        current: &PlanInfo,
        candidate: &PlanInfo,
    ) {
        let (from, to) = (
            current.predicted_items_per_s,
            candidate.predicted_items_per_s,
        );
        match verdict {
            Replan::Keep => tracing::info!(
                "{:?} joined; keeping plan epoch {} ({from:.2} items/s predicted, {to:.2} with them)",
                change.joined,
                current.epoch,
            ),
            Replan::JoinedAndFaster => tracing::info!(
                "{:?} joined: re-planning from epoch {} to {} ({from:.2} -> {to:.2} items/s predicted)",
                change.joined,
                current.epoch,
                candidate.epoch,
            ),
            Replan::Diverged => tracing::warn!(
                "the stages do not all run plan epoch {} (newer epoch running: {:?}; behind it: \
                 {:?}): re-planning to epoch {} over {:?}",
                current.epoch,
                divergence.newer,
                divergence.behind,
                candidate.epoch,
                self.devices.names()
            ),
            Replan::NodeLeft => tracing::warn!(
                "{:?} left: re-planning from epoch {} to {} over {:?}",
                change.left,
                current.epoch,
                candidate.epoch,
                self.devices.names()
            ),
        }
    }
}

/// A node's liveliness token appeared or went.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct NodesChanged;

impl Handler<NodesChanged> for PlannerActor {
    type Result = ();
    fn handle(&mut self, _: NodesChanged, ctx: &mut SyncContext<Self>) {
        self.change_queued.store(false, Ordering::Release);
        self.shielded(ctx, "a membership change", |act, ctx| match &act.phase {
            Phase::Waiting { .. } => {
                let ready = act
                    .io
                    .alive_nodes()
                    .and_then(|a| act.plan_if_expected_are_up(a));
                if let Err(e) = ready {
                    act.first_plan_failed(e);
                }
            }
            Phase::Running(_) => ctx.address().do_send(Reconsider { attempt: 1 }),
            Phase::Starting | Phase::Retired => {}
        })
    }
}

/// Check the plan against who is alive; `attempt` counts tries after failures (a node may die
/// while it is being assigned: the next try sees the new alive set).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Reconsider {
    attempt: u32,
}

impl Handler<Reconsider> for PlannerActor {
    type Result = ();
    fn handle(&mut self, Reconsider { attempt }: Reconsider, ctx: &mut SyncContext<Self>) {
        self.shielded(ctx, "re-planning", |act, ctx| {
            if let Err(e) = act.reconsider(ctx) {
                tracing::error!("re-planning (attempt {attempt} of {REPLAN_ATTEMPTS}): {e:#}");
                if attempt < REPLAN_ATTEMPTS {
                    ctx.address().do_send(Reconsider {
                        attempt: attempt + 1,
                    });
                }
            }
        })
    }
}

/// A look at the fleet while holding the plan (see [`PlannerActor::look_again_by`]).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct HoldLook;

impl Handler<HoldLook> for PlannerActor {
    type Result = ();
    fn handle(&mut self, _: HoldLook, ctx: &mut SyncContext<Self>) {
        self.look_queued.store(false, Ordering::Release);
        if self.hold.holding() {
            ctx.address().do_send(Reconsider { attempt: 1 });
        }
    }
}
