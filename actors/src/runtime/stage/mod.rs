//! The StageActor: receives a stage's microbatches, checks them, and moves each one through
//! decode (QuantizerActor) -> forward (ForwardWorker) -> encode (QuantizerActor) -> send
//! (TransportActor). Everything that computes or may block runs on SyncArbiter threads; the
//! StageActor itself only routes and counts, on the node's arbiter.
//!
//! It also closes the loop of the outgoing link's bitwidth: it acknowledges every message it
//! accepts to the stage before it ([`LinkAck`](quantpipe_messages::LinkAck)), hands the acknowledgements of its own messages
//! to the BandwidthProbeActor, and every `quantizer.window_s` routes the probe's window to the
//! QuantizerActor's policy (sending a small probe message when the link was idle).

mod assignment;
mod expected_input;
mod link;
mod microbatch;
pub mod rules;

pub use assignment::{AssignQuery, ReleaseQuery};

use crate::runtime::config::QuantizerSettings;
use crate::runtime::cpu_time::process_cpu_s;
use crate::runtime::forward_worker::ForwardWorker;
use crate::runtime::link_credits::LinkCredits;
use crate::runtime::metrics::{unix_s, MetricsWriter, OutLinkWindow, WindowAccumulator};
use crate::runtime::probe::{BandwidthProbeActor, Links};
use crate::runtime::quantizer::QuantizerActor;
use crate::runtime::transport::{Received, Reply, TransportActor};
use actix::prelude::*;
use quantpipe_messages::admission::{self, Expected, Reason};
use quantpipe_messages::{envelope, AssignAck, Assignment, DecodeLimits, Keys, NodeStats};
use rules::{Refusal, Running};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Semaphore;
use zenoh::query::Query;

/// A query for this node's [`NodeStats`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct StatsQuery {
    pub query: Query,
}

/// The node's counters (also answered to [`StatsQuery`]).
#[derive(Message)]
#[rtype(result = "NodeStats")]
pub struct GetStats;

pub struct StageActor {
    pub keys: Keys,
    pub name: String,
    pub forward: Addr<ForwardWorker>,
    pub quant: Addr<QuantizerActor>,
    pub transport: Addr<TransportActor>,
    /// Where acknowledgements, replies and error results go: a transport of their own, so
    /// that they never wait behind a tensor put blocked on a slow link (the stage before
    /// this one sends only as fast as its acknowledgements come back).
    control: Addr<TransportActor>,
    pub probe: Addr<BandwidthProbeActor>,
    quantizer: QuantizerSettings,
    current: Option<Assignment>,
    /// The local model's folder, whose `config.json` says what each stage takes in.
    model_dir: Option<PathBuf>,
    /// What the running stage takes in: every incoming microbatch is checked against it
    /// ([`admission`]) before anything is allocated for it.
    expected: Option<Expected>,
    /// The node's decode limits (the stage's [`Expected`] narrows the message size further).
    limits: DecodeLimits,
    /// The epoch of the last plan that left this node out (0: none): assignments of that plan
    /// or older ones are refused.
    released_at: u64,
    stats: NodeStats,
    metrics: Option<StageMetrics>,
    /// The outgoing link's last window, for metrics rows.
    out_link: Option<OutLinkWindow>,
    /// Whether the next stage acknowledged a message of the current plan (probe messages are
    /// sent only then: a put to a stage not yet listening would hold the transport).
    link_live: bool,
    probes_sent: u64,
    /// One microbatch at a time is encoded and sent: the next one is encoded only once the
    /// link took the previous one, so its bitwidth is chosen with what the link is doing now
    /// rather than queued behind the link at a bitwidth chosen before a drop.
    send_slot: Arc<Semaphore>,
    /// Messages on the outgoing link not yet acknowledged, bounded (see [`LinkCredits`]);
    /// renewed with each assignment, so credits of an older plan's messages do not count.
    credits: LinkCredits,
}

/// The per-window metrics of a stage: the accumulator, where rows go, and the window length.
struct StageMetrics {
    acc: WindowAccumulator,
    writer: MetricsWriter,
    window_s: f64,
}

impl StageActor {
    pub fn new(
        keys: Keys,
        name: String,
        forward: Addr<ForwardWorker>,
        quant: Addr<QuantizerActor>,
        transport: Addr<TransportActor>,
        probe: Addr<BandwidthProbeActor>,
        quantizer: QuantizerSettings,
    ) -> Self {
        let stats = NodeStats {
            node: name.clone(),
            ..Default::default()
        };
        StageActor {
            keys,
            name,
            forward,
            quant,
            control: transport.clone(),
            transport,
            probe,
            quantizer,
            current: None,
            model_dir: None,
            expected: None,
            limits: DecodeLimits::default(),
            released_at: 0,
            stats,
            metrics: None,
            out_link: None,
            link_live: false,
            probes_sent: 0,
            send_slot: Arc::new(Semaphore::new(1)),
            credits: LinkCredits::new(LINK_CREDITS, ACK_TIMEOUT),
        }
    }

    /// Sends control traffic (acknowledgements, replies) through `control` instead of the
    /// tensor transport.
    pub fn with_control_transport(mut self, control: Addr<TransportActor>) -> Self {
        self.control = control;
        self
    }

    /// Checks incoming microbatches against what the model in `model_dir` takes at the
    /// assigned stage's first unit. Without it, assignments are refused: a stage never runs
    /// unchecked input.
    pub fn with_model_dir(mut self, model_dir: PathBuf) -> Self {
        self.model_dir = Some(model_dir);
        self
    }

    /// Appends a metrics row to `writer` every `window_s` seconds while the actor runs.
    pub fn with_metrics(mut self, writer: MetricsWriter, window_s: f64) -> Self {
        self.metrics = Some(StageMetrics {
            acc: WindowAccumulator::new(unix_s()),
            writer,
            window_s,
        });
        self
    }

    fn close_metrics_window(&mut self) {
        let s = &self.stats;
        let dropped = s.dropped_malformed
            + s.dropped_foreign_fleet
            + s.dropped_stale_epoch
            + s.dropped_wrong_stage
            + s.failed;
        if let Some(m) = &mut self.metrics {
            let mut row = m.acc.close(unix_s(), &self.name, s.stage, s.epoch, dropped);
            row.out_link = self.out_link;
            if let Err(e) = m.writer.write(&row) {
                tracing::warn!("{}: metrics: {e:#}", self.name);
            }
        }
    }

    fn ack(&self, query: Query, epoch: u64, error: Option<String>) {
        let ack = AssignAck {
            node: self.name.clone(),
            epoch,
            error,
        };
        self.control.do_send(Reply {
            query,
            bytes: envelope::encode(&self.keys.fleet, &ack),
        });
    }
}

impl Actor for StageActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(m) = &self.metrics {
            let every = std::time::Duration::from_secs_f64(m.window_s);
            ctx.run_interval(every, |act, _| act.close_metrics_window());
        }
        let every = std::time::Duration::from_secs_f64(self.quantizer.window_s);
        ctx.run_interval(every, |act, ctx| act.close_link_window(ctx));
    }
}

/// Messages a stage may have on its outgoing link unacknowledged: one crossing it, one queued
/// behind so that the link does not idle for the acknowledgement's round trip.
const LINK_CREDITS: usize = 2;
/// When an acknowledgement is taken for lost: far beyond a message's time on any link a
/// pipeline runs over (1.6 MB at 1 Mbit/s is 13 s).
const ACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The run id of probe messages (clients draw theirs at random; 0 is never one in practice).
const PROBE_RUN: u64 = 0;

impl StageActor {
    /// The target rate the outgoing link's policy works to under `a` (0 under `fixed`).
    fn link_target(&self, a: &Assignment) -> f64 {
        let q = &self.quantizer;
        rules::link_target(
            q.policy_kind().ok(),
            q.target_items_per_s,
            a.target_items_per_s,
        )
    }

    /// Whether a message of plan `epoch` for `stage` is for the stage this node runs.
    fn admit(&self, epoch: u64, stage: u32) -> Result<(), Refusal> {
        let running = self.current.as_ref().map(|a| Running {
            epoch: a.epoch,
            stage: a.stage,
        });
        rules::admit(running, epoch, stage)
    }

    /// Counts and logs a message on `key` that could not be read: under its reason in
    /// `refused`, and as foreign or malformed.
    fn drop_undecodable(&mut self, key: &str, r: admission::Refusal) {
        self.count_refusal(r.reason);
        if r.reason == Reason::ForeignFleet {
            tracing::warn!("{}: dropped a {} on {key}", self.name, r.message);
        } else {
            tracing::warn!("{}: dropped a message on {key}: {r}", self.name);
        }
    }

    /// Counts a refused message under its reason; the refused messages of another fleet are
    /// also `dropped_foreign_fleet`, all others `dropped_malformed`.
    fn count_refusal(&mut self, reason: Reason) {
        *self
            .stats
            .refused
            .entry(reason.as_str().to_owned())
            .or_insert(0) += 1;
        if reason == Reason::ForeignFleet {
            self.stats.dropped_foreign_fleet += 1;
        } else {
            self.stats.dropped_malformed += 1;
        }
    }
}

/// Messages on the stage's inputs and on its link's acknowledgements arrive here.
impl Handler<Received> for StageActor {
    type Result = ();
    fn handle(&mut self, msg: Received, ctx: &mut Context<Self>) {
        let is_ack = self
            .current
            .as_ref()
            .is_some_and(|a| msg.key == self.keys.link_ack(a.stage));
        if is_ack {
            self.on_link_ack(msg, ctx);
        } else {
            self.on_activation(msg, ctx);
        }
    }
}

impl Handler<GetStats> for StageActor {
    type Result = ResponseActFuture<Self, NodeStats>;
    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        let links = self.probe.send(Links);
        Box::pin(
            async move { links.await.unwrap_or_default() }
                .into_actor(self)
                .map(|links, act, _| {
                    let mut s = act.stats.clone();
                    s.links = links;
                    s.process_cpu_s = process_cpu_s();
                    s.worker_restarts =
                        crate::runtime::supervision::WorkerHealth::node().restarts();
                    let held = crate::runtime::declarations::Declarations::node().held();
                    s.subscribers = held.subscribers;
                    s.queryables = held.queryables;
                    s.liveliness_tokens = held.liveliness_tokens;
                    s
                }),
        )
    }
}

impl Handler<StatsQuery> for StageActor {
    type Result = ();
    fn handle(&mut self, msg: StatsQuery, ctx: &mut Context<Self>) {
        let me = ctx.address();
        let control = self.control.clone();
        let fleet = self.keys.fleet.clone();
        actix::spawn(async move {
            if let Ok(stats) = me.send(GetStats).await {
                control.do_send(Reply {
                    query: msg.query,
                    bytes: envelope::encode(&fleet, &stats),
                });
            }
        });
    }
}
