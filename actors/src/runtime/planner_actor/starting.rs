//! The first plan: look at the fleet, take over at once or wait (for the expected nodes, or a
//! timer at the end of `leader.wait_s`), then plan over who is alive.

use super::fatal::{self, LeaderFailed};
use super::{Phase, PlannerActor};
use crate::runtime::planning::first_plan::{self, Start};
use actix::prelude::*;
use anyhow::{anyhow, bail, Result};
use quantpipe_messages::NodeStats;
use std::collections::BTreeSet;
use std::time::Duration;

impl PlannerActor {
    /// Looks at the fleet: takes over at once when stages run a plan, else waits for the
    /// expected nodes until `wait_s` is over.
    fn begin(&mut self, ctx: &mut SyncContext<Self>) -> Result<()> {
        let alive = self.io.alive_nodes()?;
        let stats = self.io.stage_stats(&alive)?;
        match first_plan::start(&stats) {
            Start::TakeOver { running } => {
                tracing::warn!(
                    "{} takes over as leader: stages run plan epoch {running}, planning now over \
                     the alive nodes",
                    self.name
                );
                self.first_plan(&alive, &stats, running)
            }
            Start::WaitForNodes => {
                self.phase = Phase::Waiting { stats };
                let wait = Duration::try_from_secs_f64(self.settings.wait_s).unwrap_or_default();
                self.wake_after(ctx, wait, WaitOver);
                self.plan_if_expected_are_up(alive)
            }
        }
    }

    /// Sends `msg` to this actor after `delay`, from the host's arbiter.
    pub(super) fn wake_after<M>(&self, ctx: &SyncContext<Self>, delay: Duration, msg: M)
    where
        M: Message<Result = ()> + Send + 'static,
        Self: Handler<M>,
    {
        let me = ctx.address();
        self.hosting.timers.spawn(async move {
            actix_rt::time::sleep(delay).await;
            me.do_send(msg);
        });
    }

    pub(super) fn plan_if_expected_are_up(&mut self, alive: BTreeSet<String>) -> Result<()> {
        let Phase::Waiting { stats } = &self.phase else {
            return Ok(());
        };
        if !first_plan::expected_are_up(&self.expected(), &alive) {
            return Ok(());
        }
        let stats = stats.clone();
        self.first_plan(&alive, &stats, 0)
    }

    /// The wait for the expected nodes is over: plan with whoever is alive.
    fn wait_over(&mut self) -> Result<()> {
        let Phase::Waiting { stats } = &self.phase else {
            return Ok(());
        };
        let stats = stats.clone();
        let alive = self.io.alive_nodes()?;
        let wait_s = self.settings.wait_s;
        if alive.is_empty() {
            bail!(
                "no node of fleet {} came up within {wait_s}s",
                self.io.keys.fleet
            );
        }
        let missing = first_plan::missing(&self.expected(), &alive);
        if !missing.is_empty() {
            tracing::warn!("planning without {missing:?}: not up after {wait_s}s");
        }
        self.first_plan(&alive, &stats, 0)
    }

    /// Plans over the alive expected nodes above epoch `running`, assigns and publishes.
    fn first_plan(
        &mut self,
        alive: &BTreeSet<String>,
        stats: &[NodeStats],
        running: u64,
    ) -> Result<()> {
        let nodes = first_plan::nodes_to_plan(&self.expected(), alive);
        self.devices.learn(&nodes, |n| self.io.device_info(n));
        let infos = self.devices.infos(stats, &self.io.keys);
        let plan = self.plan_and_assign(&infos, running)?;
        if self.stepped_down() {
            bail!("{} stepped down as leader before publishing", self.name);
        }
        self.publish(plan.clone())?;
        tracing::info!(
            "plan epoch {} ready: {} stage(s) ({})",
            plan.epoch,
            plan.stages.len(),
            plan.source
        );
        Ok(())
    }

    /// The first plan failed: report it, unless the host stepped down meanwhile.
    pub(super) fn first_plan_failed(&mut self, e: anyhow::Error) {
        self.phase = Phase::Retired;
        if self.stepped_down() {
            tracing::info!("first plan abandoned: {e:#}");
            return;
        }
        tracing::error!("planning failed: {e:#}");
        self.hosting.failures.do_send(fatal::Report(LeaderFailed {
            leader: self.name.clone(),
            reason: format!("{e:#}"),
        }));
    }
}

/// Look at the fleet and start on the first plan (sent by [`start_leading`]).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Begin;

impl Handler<Begin> for PlannerActor {
    type Result = ();
    fn handle(&mut self, _: Begin, ctx: &mut SyncContext<Self>) {
        self.shielded(ctx, "the first plan", |act, ctx| {
            if act.stepped_down() {
                return act.first_plan_failed(anyhow!("{} stepped down as leader", act.name));
            }
            if let Err(e) = act.begin(ctx) {
                act.first_plan_failed(e);
            }
        })
    }
}

/// The end of `leader.wait_s`: plan with whoever is alive.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct WaitOver;

impl Handler<WaitOver> for PlannerActor {
    type Result = ();
    fn handle(&mut self, _: WaitOver, ctx: &mut SyncContext<Self>) {
        self.shielded(ctx, "the first plan", |act, _| {
            if let Err(e) = act.wait_over() {
                act.first_plan_failed(e);
            }
        })
    }
}
