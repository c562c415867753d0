//! The PlannerActor (hosted by the leader): waits for the expected nodes (liveliness tokens),
//! gathers their device info, plans with [`quantpipe_planner::plan()`] (or takes the plan forced in
//! the leader's settings), sends each stage its assignment and waits for every node to confirm
//! its shard is loaded, then answers the plan on `qp/<fleet>/plan` and announces it on
//! `qp/<fleet>/plan/changed`.
//!
//! Re-planning: the actor watches the fleet's liveliness tokens. When a node holding a stage
//! leaves, it plans again over the alive devices (the forced plan of the settings when all its
//! nodes are still alive, else the planner's) at a larger epoch, assigns, and announces. When a
//! device joins after the first plan, it plans with it and adopts that plan only when it predicts
//! at least `leader.replan_min_gain` (default 10%) more throughput than the current one
//! ([`crate::runtime::planning::replan`]): a re-plan reloads shards and makes clients resend what
//! is in flight, so a device that would not speed the pipeline up stays idle; a forced plan is
//! kept on a join. Clients move to the new epoch and resend (see [`crate::runtime::inflight`]).
//! A node that left counts as alive again only once it has stayed up for the flap damping's hold
//! (`leader.rejoin_*`, [`crate::runtime::planning::flap_damping`]), so a flapping link does not
//! make the fleet re-plan on every flap. A leader that lost every stage of its plan takes itself
//! for the one cut off and keeps the plan until it hears them all again
//! (`leader.partition_hold_s`, [`crate::runtime::planning::partition`]).
//!
//! Taking over: while it hosts the planner, a node holds the liveliness token
//! `qp/<fleet>/leader/<name>` (candidates elect a leader only when none is held, see
//! [`crate::runtime::membership::elected`]). Before its first plan the actor asks every alive
//! node for its stats: when stages already run a plan, the first plan gets an epoch above the
//! highest one running and is made at once over the alive nodes
//! ([`crate::runtime::planning::first_plan`]).
//!
//! Everything happens on events: token events (put or delete, coalesced while the actor is
//! busy) and the end of `leader.wait_s` (a timer) move the first plan on or trigger a re-plan.
//! Decisions are the functions of [`crate::runtime::planning`]; the zenoh calls are in its `io`
//! module; the actor holds the state and routes. It runs on a SyncArbiter thread: gathering and
//! assigning wait on the network.
//!
//! A panic in its decisions is caught: the planner starts again from a fresh state, or gives
//! up leadership when it keeps panicking (see its `restart` module).

mod devices;
mod fatal;
mod io;
mod leading;
mod partition_hold;
mod plan_making;
mod rejoins;
mod replanning;
mod restart;
mod starting;

pub use fatal::{until_leader_fails, LeaderFailed, LeaderFailures};
pub use leading::{start_leading, Leading};

use crate::runtime::config::LeaderSettings;
use crate::runtime::planning::flap_damping::FlapDamping;
use crate::runtime::planning::partition::PartitionHold;
use crate::runtime::supervision::{PanicHistory, RestartBudget, WorkerHealth};
use actix::prelude::*;
use actix_rt::ArbiterHandle;
use devices::DeviceBook;
use io::PlannerIo;
use quantpipe_messages::{NodeStats, PlanInfo};
use rejoins::Rejoins;
use replanning::NodesChanged;
use starting::Begin;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::Subscriber;

/// Where the first plan stands.
enum Phase {
    /// Not begun: [`Begin`] looks at the fleet.
    Starting,
    /// No stage runs a plan: waiting for the expected nodes, or for the end of `wait_s`.
    /// `stats` are the stages' stats at the start (their measured bandwidths).
    Waiting { stats: Vec<NodeStats> },
    /// The current plan runs.
    Running(PlanInfo),
    /// The host stepped down, or the first plan failed: the actor no longer plans.
    Retired,
}

/// What the host gives the actor.
pub struct Hosting {
    /// The arbiter the actor's timers run on (a SyncArbiter thread has none).
    pub timers: ArbiterHandle,
    /// Where a failed first plan is reported.
    pub failures: Addr<LeaderFailures>,
    /// Set when the host steps down; shared, so a plan being made sees it before publishing.
    pub retired: Arc<AtomicBool>,
}

pub struct PlannerActor {
    io: PlannerIo,
    /// The hosting node's name: its leader token says who leads.
    name: String,
    settings: LeaderSettings,
    hosting: Hosting,
    phase: Phase,
    devices: DeviceBook,
    /// `qp/<fleet>/leader/<name>`, held while this actor leads.
    token: Option<LivelinessToken>,
    /// Liveliness subscriber on the nodes' tokens: sends [`NodesChanged`].
    watcher: Option<Subscriber<()>>,
    /// A [`NodesChanged`] is queued: token events meanwhile need no other.
    change_queued: Arc<AtomicBool>,
    /// Panics lately: the planner restarts within the budget, and gives up leadership past it.
    panics: PanicHistory,
    /// Where restarts are counted (the node's).
    health: Arc<WorkerHealth>,
    /// Departures and returns of nodes, fed by the watcher: who is held out of plans.
    rejoins: Rejoins,
    /// When the pending look at the end of a hold is due (s on the damping's clock).
    hold_wake: Option<f64>,
    /// The hold on the plan while the leader is cut off from every stage of it.
    partition: PartitionHold,
    /// A look at the fleet is due while the plan is held.
    partition_look_due: bool,
}

impl PlannerActor {
    pub fn new(io: PlannerIo, name: String, settings: LeaderSettings, hosting: Hosting) -> Self {
        let rejoins = Rejoins::new(FlapDamping::new(settings.rejoin_damping()));
        let partition = PartitionHold::new(settings.partition_hold());
        PlannerActor {
            io,
            name,
            settings,
            hosting,
            phase: Phase::Starting,
            devices: DeviceBook::default(),
            token: None,
            watcher: None,
            change_queued: Arc::new(AtomicBool::new(false)),
            panics: PanicHistory::new(RestartBudget::default()),
            health: WorkerHealth::node(),
            rejoins,
            hold_wake: None,
            partition,
            partition_look_due: false,
        }
    }

    fn stepped_down(&self) -> bool {
        self.hosting.retired.load(Ordering::Relaxed)
    }

    fn expected(&self) -> BTreeSet<String> {
        self.settings.expected.iter().cloned().collect()
    }
}

impl Actor for PlannerActor {
    type Context = SyncContext<Self>;

    fn started(&mut self, ctx: &mut SyncContext<Self>) {
        let me = ctx.address();
        let queued = self.change_queued.clone();
        let rejoins = self.rejoins.clone();
        let watching = self.io.watch_nodes(move |node, up| {
            rejoins.token_event(node, up);
            // One queued look sees every change that arrives before it is handled.
            if !queued.swap(true, Ordering::AcqRel) {
                me.do_send(NodesChanged);
            }
        });
        match watching {
            Ok(w) => self.watcher = Some(w),
            Err(e) => tracing::error!("{e:#}"),
        }
        // Candidates elect nobody while this token is alive.
        match self.io.declare_leader_token(&self.name) {
            Ok(t) => self.token = Some(t),
            Err(e) => tracing::error!("{e:#}"),
        }
    }
}

/// Stop leading (a configured leader, or a candidate with a smaller name, leads): withdraw the
/// leader token, the plan queryable and the membership watcher. The watcher's callback holds
/// this actor's address, so dropping it lets the actor end once its host drops its address.
/// Sent by [`Leading::step_down`].
#[derive(Message)]
#[rtype(result = "()")]
struct StepDown;

impl Handler<StepDown> for PlannerActor {
    type Result = ();
    fn handle(&mut self, _: StepDown, _: &mut SyncContext<Self>) {
        tracing::warn!("{} steps down as leader", self.name);
        self.hosting.retired.store(true, Ordering::Relaxed);
        self.phase = Phase::Retired;
        self.token = None;
        self.io.withdraw_plan();
        self.watcher = None;
    }
}
