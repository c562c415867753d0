//! Hosting the planner: [`start_leading`] starts a PlannerActor on its own SyncArbiter thread
//! (gathering and assigning wait on the network) and [`Leading`] is the host's handle on it.

use super::fatal::LeaderFailures;
use super::io::PlannerIo;
use super::{Begin, Hosting, PlannerActor, StepDown};
use crate::runtime::config::LeaderSettings;
use actix::prelude::*;
use quantpipe_messages::Keys;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use zenoh::Session;

/// A node's hosted planner; the node leads while it holds this.
pub struct Leading {
    planner: Addr<PlannerActor>,
    retired: Arc<AtomicBool>,
}

impl Leading {
    /// Stops leading: a plan being made is not published, and the actor withdraws the leader
    /// token, the plan queryable and its watcher.
    pub fn step_down(self) {
        self.retired.store(true, Ordering::Relaxed);
        self.planner.do_send(StepDown);
    }
}

/// Starts a PlannerActor and has it make the first plan; a leader that cannot plan (and did not
/// step down meanwhile) reports [`super::LeaderFailed`], which ends the node
/// ([`super::until_leader_fails`]). Call on an actix arbiter.
pub fn start_leading(
    session: Session,
    keys: Keys,
    name: String,
    settings: LeaderSettings,
) -> Leading {
    let retired = Arc::new(AtomicBool::new(false));
    // A SyncArbiter thread has no timers: the actor sets its timers on this arbiter.
    let timers = Arbiter::current();
    let failures = LeaderFailures::from_registry();
    let planner = {
        let retired = retired.clone();
        SyncArbiter::start(1, move || {
            let io = PlannerIo::new(session.clone(), keys.clone(), settings.assign_timeout_s);
            PlannerActor::new(
                io,
                name.clone(),
                settings.clone(),
                Hosting {
                    timers: timers.clone(),
                    failures: failures.clone(),
                    retired: retired.clone(),
                },
            )
        })
    };
    planner.do_send(Begin);
    Leading { planner, retired }
}
