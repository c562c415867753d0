//! Re-planning on membership events: a node's token appearing or going makes the actor compare
//! who is alive with the current plan ([`crate::runtime::planning::replan`]). A node that left
//! lately counts as alive only once the flap damping lets it back in (see the `rejoins`
//! module): leaving re-plans at once, coming back waits. A leader that lost every stage of its
//! plan holds it instead (see the `partition_hold` module).

use super::{Phase, PlannerActor};
use crate::runtime::membership;
use crate::runtime::planning::release::plan_nodes;
use crate::runtime::planning::replan::{self, Replan};
use actix::prelude::*;
use anyhow::Result;
use quantpipe_messages::PlanInfo;
use std::sync::atomic::Ordering;

/// How many times a re-plan is tried when it fails (a node may die while it is assigned).
const REPLAN_ATTEMPTS: u32 = 3;

impl PlannerActor {
    /// Compares who is alive with the current plan and plans again when a stage's node left,
    /// or when a device joined and a plan with it predicts enough more throughput. Nodes the
    /// flap damping holds out count as gone: neither asked nor planned. A leader that hears no
    /// stage of its plan keeps it (see the `partition_hold` module).
    fn reconsider(&mut self, ctx: &SyncContext<Self>) -> Result<()> {
        let Phase::Running(current) = &self.phase else {
            return Ok(());
        };
        let current = current.clone();
        let planned = plan_nodes(&current);
        let alive = self.io.alive_nodes()?;
        if self.holds_plan_cut_off(&current, &planned, &alive, ctx) {
            return Ok(());
        }
        let alive = self.undamped(&alive, &planned, ctx);
        self.devices.learn(&alive, |n| self.io.device_info(n));
        let change = membership::change(&planned, &alive, &self.devices.names());
        if change.is_empty() {
            return Ok(());
        }
        let infos = self
            .devices
            .infos(&self.io.stage_stats(&alive)?, &self.io.keys);
        if infos.is_empty() {
            tracing::error!(
                "every stage node left ({:?}): waiting for a device to join",
                change.left
            );
            return Ok(());
        }
        let candidate = self.plan_for(&infos, current.epoch)?;
        let verdict = replan::verdict(
            &change,
            current.predicted_items_per_s,
            candidate.predicted_items_per_s,
            self.settings.replan_min_gain,
        );
        self.log_verdict(verdict, &change, &current, &candidate);
        if verdict == Replan::Keep {
            return Ok(());
        }
        self.io.assign(&candidate)?;
        self.publish(candidate)
    }

    fn log_verdict(
        &self,
        verdict: Replan,
        change: &membership::Change,
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
            Phase::Running(_) => ctx.address().do_send(Reconsider::first()),
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

impl Reconsider {
    pub(super) fn first() -> Self {
        Reconsider { attempt: 1 }
    }
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
