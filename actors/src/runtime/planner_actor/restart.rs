//! A planner that panics: its decisions may have been left half-made (a phase half-changed, a
//! device book half-learnt), so they start again from a fresh state, as a newly elected leader's
//! would: [`Begin`] looks at the fleet and, when stages run a plan, plans at once above its
//! epoch over the alive nodes. The leader token and the membership watcher stay, so no election
//! starts meanwhile. Past its [`RestartBudget`] the planner gives up leadership: it withdraws
//! the leader token and the plan and reports [`LeaderFailed`], which ends the node, so the
//! candidates elect a leader (or the operator's fallback takes over).

use super::devices::DeviceBook;
use super::fatal::{LeaderFailed, Report};
use super::starting::Begin;
use super::{Phase, PlannerActor};
use crate::runtime::supervision::catch_panic;
use actix::prelude::*;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl PlannerActor {
    /// Runs a handler's body `f`; a panic in it restarts the planner's decisions, or, past the
    /// restart budget, gives up leadership.
    pub(super) fn shielded(
        &mut self,
        ctx: &mut SyncContext<Self>,
        what: &str,
        f: impl FnOnce(&mut Self, &mut SyncContext<Self>),
    ) {
        let Err(message) = catch_panic(|| f(self, ctx)) else {
            return;
        };
        tracing::error!("{}: planner panicked in {what}: {message}", self.name);
        if self.stepped_down() {
            self.phase = Phase::Retired;
            return;
        }
        if self.panics.panicked(Instant::now()) {
            self.phase = Phase::Starting;
            self.devices = DeviceBook::default();
            self.health.restarted();
            tracing::warn!(
                "{}: planner restarted: looking at the fleet afresh ({} worker restart(s))",
                self.name,
                self.health.restarts()
            );
            ctx.address().do_send(Begin);
        } else {
            let b = self.panics.budget();
            self.give_up_leading(format!(
                "its planner panicked more than {} times in {:?} (last: {message})",
                b.max_panics, b.within
            ));
        }
    }

    /// Stops leading for good and reports it: the node ends, its tokens go, and the fleet
    /// elects another leader.
    fn give_up_leading(&mut self, reason: String) {
        tracing::error!(
            "{} gives up leadership: {reason}; withdrawing the leader token and the plan",
            self.name
        );
        self.hosting.retired.store(true, Ordering::Relaxed);
        self.phase = Phase::Retired;
        self.token = None;
        self.io.withdraw_plan();
        self.watcher = None;
        self.hosting.failures.do_send(Report(LeaderFailed {
            leader: self.name.clone(),
            reason,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::super::fatal::{until_leader_fails, LeaderFailures};
    use super::super::io::PlannerIo;
    use super::super::Hosting;
    use super::*;
    use crate::runtime::config::{LeaderSettings, ZenohSettings};
    use crate::runtime::supervision::{RestartBudget, WorkerHealth};
    use quantpipe_messages::Keys;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use zenoh::Wait;

    /// A panic in a handler's body, as a bug in the planner's decisions would raise.
    #[derive(Message)]
    #[rtype(result = "()")]
    struct Fail;

    impl Handler<Fail> for PlannerActor {
        type Result = ();
        fn handle(&mut self, _: Fail, ctx: &mut SyncContext<Self>) {
            self.shielded(ctx, "a test", |_, _| panic!("a bug in the planner"));
        }
    }

    /// The restarts counted, and whether the planner still leads.
    #[derive(Message)]
    #[rtype(result = "(u64, bool)")]
    struct Look;

    impl Handler<Look> for PlannerActor {
        type Result = MessageResult<Look>;
        fn handle(&mut self, _: Look, _: &mut SyncContext<Self>) -> Self::Result {
            let leading = !matches!(self.phase, Phase::Retired) && self.token.is_some();
            MessageResult((self.health.restarts(), leading))
        }
    }

    #[test]
    fn a_planner_that_panics_restarts_then_gives_up_leadership_past_its_budget() {
        let config = ZenohSettings::peer(vec![], vec![]).config().unwrap();
        let session = zenoh::open(config).wait().unwrap();
        let health = Arc::new(WorkerHealth::default());
        let sys = actix::System::new();
        let failed = sys.block_on(async {
            let (timers, failures) = (Arbiter::current(), LeaderFailures::from_registry());
            let planner = {
                let health = health.clone();
                SyncArbiter::start(1, move || {
                    let io = PlannerIo::new(session.clone(), Keys::new("heal"), 1.0);
                    let mut p = PlannerActor::new(
                        io,
                        "lead".into(),
                        LeaderSettings::default(),
                        Hosting {
                            timers: timers.clone(),
                            failures: failures.clone(),
                            retired: Arc::new(AtomicBool::new(false)),
                        },
                    );
                    p.health = health.clone();
                    p
                })
            };
            let max = RestartBudget::default().max_panics as u64;
            for restarts in 1..=max {
                planner.send(Fail).await.unwrap();
                assert_eq!(planner.send(Look).await.unwrap(), (restarts, true));
            }
            planner.send(Fail).await.unwrap();
            assert_eq!(planner.send(Look).await.unwrap(), (max, false));
            until_leader_fails(std::future::pending()).await
        });
        let err = failed.unwrap_err();
        assert!(
            err.to_string().contains("planner panicked more than"),
            "{err}"
        );
    }
}
