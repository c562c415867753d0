//! The StageActor: receives a stage's microbatches, checks them, and moves each one through
//! decode (QuantizerActor) -> forward (ForwardWorker) -> encode (QuantizerActor) -> send
//! (TransportActor). Everything that computes or may block runs on SyncArbiter threads; the
//! StageActor itself only routes and counts, on the node's arbiter.
//!
//! It also closes the loop of the outgoing link's bitwidth: it acknowledges every message it
//! accepts to the stage before it ([`LinkAck`]), hands the acknowledgements of its own messages
//! to the BandwidthProbeActor, and every `quantizer.window_s` routes the probe's window to the
//! QuantizerActor's policy (sending a small probe message when the link was idle).

use crate::runtime::config::QuantizerSettings;
use crate::runtime::cpu_time::{process_cpu_s, thread_cpu_s};
use crate::runtime::emulation::Pacing;
use crate::runtime::link_credits::LinkCredits;
use crate::runtime::metrics::{unix_s, MetricsWriter, OutLinkWindow, WindowAccumulator};
use crate::runtime::probe::{
    Acked, Arrived, BandwidthProbeActor, CloseWindow, Links, Outgoing, Watch, WatchLink,
};
use crate::runtime::quantizer::{
    link_policy, mask_from_wire, mask_to_wire, tokens_from_wire, Decode, Encode, QuantizerActor,
    SetPolicy, TransferObserved, WindowObserved,
};
use crate::runtime::transport::{
    unix_ns, zbytes_of, zbytes_with_header, Put, Received, Reply, Subscribe, TransportActor,
    UnsubscribeOthers,
};
use crate::runtime::wire::{
    self, Activation, AssignAck, Assignment, Body, Keys, LinkAck, NextHop, NodeStats, Output,
    Release, WireError, WIRE_VERSION,
};
use actix::prelude::*;
use anyhow::{anyhow, bail, Context as _, Result};
use quantpipe_adaptive::link_monitor::LinkWindow;
use quantpipe_adaptive::policy::PolicyKind;
use quantpipe_messages::Bits;
use quantpipe_model_shards::{Boundary, ModelSource, Shard, UnitRange};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use zenoh::query::Query;

/// Holds the node's shard and runs its forward passes on a SyncArbiter thread.
pub struct ForwardWorker {
    pub model_dir: PathBuf,
    /// Emulated slowdown (>= 1): each pass is padded to `slowdown x` its profiled time
    /// ([`Pacing`]); without a profile, followed by a sleep of `(slowdown - 1) x` its time.
    pub slowdown: f64,
    pacing: Option<Pacing>,
    shard: Option<(u64, Shard)>,
}

impl ForwardWorker {
    /// `pacing` is the node's profile scaled by `slowdown` (used only when `slowdown > 1`).
    pub fn new(model_dir: PathBuf, slowdown: f64, pacing: Option<Pacing>) -> Self {
        ForwardWorker {
            model_dir,
            slowdown,
            pacing,
            shard: None,
        }
    }
}

impl Actor for ForwardWorker {
    type Context = SyncContext<Self>;
}

/// Load units `[l, r]` of the local model for plan `epoch`.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct Load {
    pub epoch: u64,
    pub model: String,
    pub l: usize,
    pub r: usize,
}

/// What one forward pass took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForwardTime {
    /// Wall-clock seconds, emulated slowdown included.
    pub busy_s: f64,
    /// CPU seconds of the pass on the worker's own thread: all of it with one intra-op thread;
    /// with more, libtorch's other threads' share is not in it.
    pub cpu_s: f64,
}

/// One forward pass; answers the output and what it took.
#[derive(Message)]
#[rtype(result = "Result<(Boundary, ForwardTime)>")]
pub struct Forward {
    pub input: Boundary,
    /// The plan epoch the microbatch travels under: a shard loaded for another epoch refuses it
    /// (a re-plan may reload the shard between a microbatch's arrival and its forward pass).
    pub epoch: u64,
}

impl Handler<Load> for ForwardWorker {
    type Result = Result<()>;
    fn handle(&mut self, msg: Load, _: &mut SyncContext<Self>) -> Result<()> {
        if let Some((_, s)) = &self.shard {
            if s.range() == UnitRange::new(msg.l, msg.r) {
                self.shard = self.shard.take().map(|(_, s)| (msg.epoch, s));
                return Ok(());
            }
        }
        self.shard = None;
        let source = ModelSource::open_dir(&self.model_dir)
            .with_context(|| format!("opening the local model {}", self.model_dir.display()))?;
        if source.name() != msg.model {
            bail!(
                "the plan is for model `{}` but this node's model folder {} holds `{}`",
                msg.model,
                self.model_dir.display(),
                source.name()
            );
        }
        let range = UnitRange::new(msg.l, msg.r).validate(source.config().units())?;
        let shard = source.load_shard(range)?;
        self.shard = Some((msg.epoch, shard));
        Ok(())
    }
}

impl Handler<Forward> for ForwardWorker {
    type Result = Result<(Boundary, ForwardTime)>;
    fn handle(&mut self, msg: Forward, _: &mut SyncContext<Self>) -> Self::Result {
        let (epoch, shard) = self
            .shard
            .as_ref()
            .ok_or_else(|| anyhow!("no shard loaded"))?;
        if *epoch != msg.epoch {
            bail!(
                "microbatch of plan epoch {} reached a shard loaded for epoch {epoch}",
                msg.epoch
            );
        }
        let start = Instant::now();
        let cpu_start = thread_cpu_s();
        let out = tch::no_grad(|| shard.forward(&msg.input))?;
        let cpu_s = thread_cpu_s() - cpu_start;
        let took = start.elapsed();
        if self.slowdown > 1.0 {
            let range = shard.range();
            let items = msg.input.batch().max(0) as usize;
            let pad = self
                .pacing
                .as_ref()
                .and_then(|p| p.pad_s(range.start, range.end, items, took.as_secs_f64()))
                .map(std::time::Duration::from_secs_f64)
                .unwrap_or_else(|| took.mul_f64(self.slowdown - 1.0));
            std::thread::sleep(pad);
        }
        Ok((
            out,
            ForwardTime {
                busy_s: start.elapsed().as_secs_f64(),
                cpu_s,
            },
        ))
    }
}

/// An assignment from the leader, with the query to answer once it is in effect.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AssignQuery {
    pub bytes: Vec<u8>,
    pub query: Query,
}

/// A release from the leader ([`Release`]), with the query to answer once it is in effect.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReleaseQuery {
    pub bytes: Vec<u8>,
    pub query: Query,
}

/// Drop the shard: the node is in no stage of the current plan.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unload;

impl Handler<Unload> for ForwardWorker {
    type Result = ();
    fn handle(&mut self, _: Unload, _: &mut SyncContext<Self>) {
        self.shard = None;
    }
}

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
            version: WIRE_VERSION,
            fleet: keys.fleet.clone(),
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
            version: WIRE_VERSION,
            fleet: self.keys.fleet.clone(),
            node: self.name.clone(),
            epoch,
            error,
        };
        self.control.do_send(Reply {
            query,
            bytes: wire::to_bytes(&ack),
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

impl StageActor {
    /// Closes the outgoing link's window: the probe's observation goes to the policy; an idle
    /// link gets a probe message so that its estimate is current when traffic resumes.
    fn close_link_window(&mut self, ctx: &mut Context<Self>) {
        let probe = self.probe.send(CloseWindow);
        let quant = self.quant.clone();
        let fut = async move {
            let w: Option<LinkWindow> = probe.await.ok().flatten();
            let choice = match &w {
                Some(w) => quant
                    .send(WindowObserved(w.observation))
                    .await
                    .ok()
                    .flatten(),
                None => None,
            };
            (w, choice)
        };
        ctx.spawn(fut.into_actor(self).map(|(w, choice), act, _| {
            let (Some(w), Some(a)) = (w, act.current.clone()) else {
                act.out_link = None;
                return;
            };
            let target = link_target(&act.quantizer, &a);
            act.out_link = Some(OutLinkWindow {
                mbps: w.observation.mbps.unwrap_or(0.0),
                utilisation: w.observation.utilisation,
                items_per_s: w.observation.items_per_s,
                bits_mean: choice.map_or(f64::from(a.out_bits), |c| c.mean_bits()),
                target_items_per_s: target,
            });
            if let Some(c) = choice {
                tracing::debug!(
                    "{}: link {:.2} Mbit/s ({:.0}% busy), {:.1} items/s: next window {}/{} bits ({:.0}% at {})",
                    act.name,
                    w.observation.mbps.unwrap_or(0.0),
                    100.0 * w.observation.utilisation,
                    w.observation.items_per_s,
                    c.lo.get(),
                    c.hi.get(),
                    100.0 * c.hi_share,
                    c.hi.get()
                );
            }
            if w.idle() && act.link_live && act.quantizer.probe_bytes > 0 {
                act.send_probe(&a);
            }
        }));
    }

    /// A filler message to the next stage, acknowledged like a payload and discarded there.
    fn send_probe(&mut self, a: &Assignment) {
        let NextHop::Stage(next) = a.next else {
            return;
        };
        self.probes_sent += 1;
        let msg = Activation {
            version: WIRE_VERSION,
            fleet: self.keys.fleet.clone(),
            run: PROBE_RUN,
            client: self.name.clone(),
            seq: self.probes_sent,
            epoch: a.epoch,
            stage: next,
            sent_unix_ns: unix_ns(),
            body: Body::Probe,
            body_len: 0,
            mask: None,
        };
        self.transport.do_send(Put {
            key: self.keys.stage_in(next),
            bytes: zbytes_of(msg.into_message(vec![0; self.quantizer.probe_bytes])),
            control: false,
        });
    }

    /// Acknowledges an accepted message to the stage that sent it.
    fn acknowledge(&self, act: &Activation, bytes: u64, arrived_unix_ns: u64) {
        let Some(sender) = act.stage.checked_sub(1) else {
            return;
        };
        let ack = LinkAck {
            version: WIRE_VERSION,
            fleet: self.keys.fleet.clone(),
            epoch: act.epoch,
            stage: sender,
            run: act.run,
            seq: act.seq,
            bytes,
            sent_unix_ns: act.sent_unix_ns,
            arrived_unix_ns,
        };
        self.control.do_send(Put {
            key: self.keys.link_ack(sender),
            bytes: wire::to_bytes(&ack).into(),
            control: true,
        });
    }

    /// An acknowledgement of one of this stage's messages: to the probe, and the message's
    /// transfer rate on to the policy.
    fn on_link_ack(&mut self, msg: Received, ctx: &mut Context<Self>) {
        let ack: LinkAck = match wire::from_bytes(&msg.bytes, &self.keys.fleet) {
            Ok(a) => a,
            Err(WireError::ForeignFleet { found, .. }) => {
                self.stats.dropped_foreign_fleet += 1;
                tracing::warn!("{}: dropped an ack of fleet `{found}`", self.name);
                return;
            }
            Err(e) => {
                self.stats.dropped_malformed += 1;
                tracing::warn!("{}: dropped a message on {}: {e}", self.name, msg.key);
                return;
            }
        };
        match &self.current {
            Some(a) if a.epoch == ack.epoch && a.stage == ack.stage => {}
            _ => {
                self.stats.dropped_stale_epoch += 1;
                tracing::debug!(
                    "{}: ignored an ack of stage {} epoch {}",
                    self.name,
                    ack.stage,
                    ack.epoch
                );
                return;
            }
        }
        self.link_live = true;
        self.credits.acknowledged((ack.run, ack.seq));
        // A probe is small: over a token-bucket shaper it can pass within the bucket's burst
        // and read far above the link's rate, so it feeds the window's estimate only, never
        // the policy's per-message fast path.
        let is_probe = ack.run == PROBE_RUN;
        let probe = self.probe.send(Acked(ack));
        let quant = self.quant.clone();
        ctx.spawn(
            async move {
                if let (Ok(Some(t)), false) = (probe.await, is_probe) {
                    quant.do_send(TransferObserved(t));
                }
            }
            .into_actor(self),
        );
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

/// The target rate the outgoing link's policy works to (0 under `fixed`).
fn link_target(q: &QuantizerSettings, a: &Assignment) -> f64 {
    match q.policy_kind() {
        Ok(PolicyKind::Fixed) | Err(_) => 0.0,
        _ if q.target_items_per_s > 0.0 => q.target_items_per_s,
        _ => a.target_items_per_s,
    }
}

impl Handler<AssignQuery> for StageActor {
    type Result = ();
    fn handle(&mut self, msg: AssignQuery, ctx: &mut Context<Self>) {
        let a: Assignment = match wire::from_bytes(&msg.bytes, &self.keys.fleet) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("dropping an assignment: {e}");
                self.stats.dropped_malformed += 1;
                self.ack(msg.query, 0, Some(format!("bad assignment: {e}")));
                return;
            }
        };
        let running = self.current.as_ref().map_or(0, |c| c.epoch);
        if a.epoch < running || a.epoch <= self.released_at {
            self.stats.dropped_stale_epoch += 1;
            let known = running.max(self.released_at);
            let err = format!("assignment of epoch {} after epoch {known}", a.epoch);
            // The ack names the newest epoch this node knows: a leader that took over learns
            // from it which epoch its plan must exceed.
            self.ack(msg.query, known, Some(err));
            return;
        }
        let plan_bits = match Bits::new(a.out_bits) {
            Ok(b) => b,
            Err(e) => {
                self.ack(msg.query, a.epoch, Some(format!("out_bits: {e}")));
                return;
            }
        };
        let last = a.next == NextHop::Client;
        let policy = if last {
            None
        } else {
            match link_policy(&self.quantizer, plan_bits, a.target_items_per_s) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::error!("{}: refusing the assignment: {e:#}", self.name);
                    self.ack(msg.query, a.epoch, Some(format!("{e:#}")));
                    return;
                }
            }
        };
        let watch = match a.next {
            NextHop::Stage(next) if !last => Some(Watch {
                key: self.keys.stage_in(next),
                stage: a.stage,
                epoch: a.epoch,
                window_s: self.quantizer.window_s,
                target_items_per_s: link_target(&self.quantizer, &a),
            }),
            _ => None,
        };
        tracing::info!(
            "{}: assigned stage {} of {}, units {}..{}, epoch {}, output at {} bits",
            self.name,
            a.stage,
            a.stages,
            a.l,
            a.r,
            a.epoch,
            a.out_bits
        );
        let load = self.forward.send(Load {
            epoch: a.epoch,
            model: a.model.clone(),
            l: a.l,
            r: a.r,
        });
        let mut keys = vec![self.keys.stage_in(a.stage)];
        if !last {
            keys.push(self.keys.link_ack(a.stage));
        }
        let transport = self.transport.clone();
        let (quant, probe) = (self.quant.clone(), self.probe.clone());
        let me = ctx.address().recipient::<Received>();
        let fut = async move {
            load.await.map_err(|e| anyhow!("forward worker: {e}"))??;
            quant
                .send(SetPolicy(policy))
                .await
                .map_err(|e| anyhow!("quantizer: {e}"))?;
            probe
                .send(WatchLink(watch))
                .await
                .map_err(|e| anyhow!("probe: {e}"))?
                .map_err(|e| anyhow!("quantizer.window_s: {e}"))?;
            transport
                .send(UnsubscribeOthers { keep: keys.clone() })
                .await
                .map_err(|e| anyhow!("transport: {e}"))?;
            for key in keys {
                transport
                    .send(Subscribe {
                        key,
                        to: me.clone(),
                    })
                    .await
                    .map_err(|e| anyhow!("transport: {e}"))??;
            }
            Ok::<(), anyhow::Error>(())
        };
        let query = msg.query;
        // Wait: no microbatch is handled while the assignment changes.
        ctx.wait(fut.into_actor(self).map(move |res, act, _| {
            let epoch = a.epoch;
            match res {
                Ok(()) => {
                    act.stats.epoch = epoch;
                    act.stats.stage = Some(a.stage);
                    act.link_live = false;
                    act.out_link = None;
                    act.credits = LinkCredits::new(LINK_CREDITS, ACK_TIMEOUT);
                    act.current = Some(a);
                    act.ack(query, epoch, None);
                }
                Err(e) => {
                    tracing::error!("{}: assignment failed: {e:#}", act.name);
                    act.ack(query, epoch, Some(format!("{e:#}")));
                }
            }
        }));
    }
}

impl Handler<ReleaseQuery> for StageActor {
    type Result = ();
    fn handle(&mut self, msg: ReleaseQuery, ctx: &mut Context<Self>) {
        let r: Release = match wire::from_bytes(&msg.bytes, &self.keys.fleet) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("dropping a release: {e}");
                self.stats.dropped_malformed += 1;
                self.ack(msg.query, 0, Some(format!("bad release: {e}")));
                return;
            }
        };
        if let Some(cur) = self.current.as_ref().filter(|c| r.epoch <= c.epoch) {
            // A plan this node runs, or an older one, cannot leave it out.
            self.stats.dropped_stale_epoch += 1;
            let err = format!(
                "release of epoch {} while running epoch {}",
                r.epoch, cur.epoch
            );
            self.ack(msg.query, cur.epoch, Some(err));
            return;
        }
        tracing::info!(
            "{}: left out of plan epoch {}: dropping the shard",
            self.name,
            r.epoch
        );
        let (forward, quant, probe) =
            (self.forward.clone(), self.quant.clone(), self.probe.clone());
        let transport = self.transport.clone();
        let fut = async move {
            forward.send(Unload).await?;
            quant.send(SetPolicy(None)).await?;
            // Unwatching cannot fail: only a window length is checked.
            let _ = probe.send(WatchLink(None)).await?;
            transport.send(UnsubscribeOthers { keep: vec![] }).await
        };
        let query = msg.query;
        ctx.wait(fut.into_actor(self).map(move |res, act, _| match res {
            Ok(()) => {
                act.current = None;
                act.released_at = act.released_at.max(r.epoch);
                act.stats.epoch = act.released_at;
                act.stats.stage = None;
                act.link_live = false;
                act.out_link = None;
                act.ack(query, r.epoch, None);
            }
            Err(e) => act.ack(query, r.epoch, Some(format!("releasing: {e}"))),
        }));
    }
}

/// What can go wrong with one microbatch, for the counters.
enum Failure {
    Malformed(anyhow::Error),
    Failed(anyhow::Error),
}

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

impl StageActor {
    fn on_activation(&mut self, msg: Received, ctx: &mut Context<Self>) {
        let (act, body_at) = match Activation::from_message(&msg.bytes, &self.keys.fleet) {
            Ok(a) => a,
            Err(WireError::ForeignFleet { found, .. }) => {
                self.stats.dropped_foreign_fleet += 1;
                tracing::warn!(
                    "{}: dropped a message of fleet `{found}` on {}",
                    self.name,
                    msg.key
                );
                return;
            }
            Err(e) => {
                self.stats.dropped_malformed += 1;
                tracing::warn!("{}: dropped a message on {}: {e}", self.name, msg.key);
                return;
            }
        };
        let Some(a) = self.current.clone() else {
            self.stats.dropped_stale_epoch += 1;
            tracing::warn!(
                "{}: dropped microbatch {} before any assignment",
                self.name,
                act.seq
            );
            return;
        };
        if act.epoch != a.epoch {
            self.stats.dropped_stale_epoch += 1;
            tracing::warn!(
                "{}: dropped microbatch {} of run {:x}: epoch {} but the plan is at {}",
                self.name,
                act.seq,
                act.run,
                act.epoch,
                a.epoch
            );
            return;
        }
        if act.stage != a.stage {
            self.stats.dropped_wrong_stage += 1;
            tracing::warn!(
                "{}: dropped microbatch {} addressed to stage {} (this is stage {})",
                self.name,
                act.seq,
                act.stage,
                a.stage
            );
            return;
        }
        if matches!(act.body, Body::Payload | Body::Probe) {
            self.acknowledge(&act, msg.bytes.len() as u64, msg.received_unix_ns);
        }
        if matches!(act.body, Body::Probe) {
            return;
        }
        if let Some(m) = &mut self.metrics {
            m.acc.accepted(&msg.key, msg.bytes.len() as u64);
        }
        self.probe.do_send(Arrived {
            on: msg.key,
            transfer_s: msg.received_unix_ns.saturating_sub(act.sent_unix_ns) as f64 / 1e9,
        });

        let quant = self.quant.clone();
        let forward = self.forward.clone();
        let transport = self.transport.clone();
        let keys = self.keys.clone();
        let last = a.next == NextHop::Client;
        let header = (act.run, act.seq, act.epoch, act.client.clone());
        let probe = self.probe.clone();
        let send_slot = self.send_slot.clone();
        let credits = self.credits.clone();
        let fut = async move {
            let mask = act
                .mask
                .as_ref()
                .map(mask_from_wire)
                .transpose()
                .map_err(Failure::Malformed)?;
            let mut codec_s = 0.0;
            let tensors = match act.body {
                Body::Tokens(t) => vec![tokens_from_wire(&t).map_err(Failure::Malformed)?],
                Body::Probe => unreachable!("probes are acknowledged and dropped above"),
                Body::Payload => {
                    let (t, s) = quant
                        .send(Decode {
                            message: msg.bytes,
                            body_at,
                        })
                        .await
                        .map_err(|e| Failure::Failed(anyhow!("quantizer: {e}")))?
                        .map_err(Failure::Malformed)?;
                    codec_s += s;
                    t
                }
            };
            let (out, forward_time) = forward
                .send(Forward {
                    input: Boundary::new(tensors, mask.as_ref().map(|m| m.shallow_clone())),
                    epoch: act.epoch,
                })
                .await
                .map_err(|e| Failure::Failed(anyhow!("forward worker: {e}")))?
                .map_err(Failure::Failed)?;
            let items = out.batch().max(0) as u64;
            // Held until the put returns (microbatches leave the forward worker in order, and
            // the semaphore is fair, so they keep their order).
            let _sending = send_slot
                .acquire_owned()
                .await
                .map_err(|e| Failure::Failed(anyhow!("send slot: {e}")))?;
            if !last {
                credits
                    .take((act.run, act.seq))
                    .await
                    .map_err(|e| Failure::Failed(anyhow!("link credits: {e}")))?;
            }
            // The last stage sends raw f32 rows to the client.
            let mut out_bits = 32;
            let bytes = if last {
                let t = &out.tensors[0];
                let values = Vec::<f32>::try_from(&t.contiguous().view(-1))
                    .map_err(|e| Failure::Failed(e.into()))?;
                wire::to_bytes(&Output {
                    version: WIRE_VERSION,
                    fleet: keys.fleet.clone(),
                    run: act.run,
                    seq: act.seq,
                    epoch: act.epoch,
                    shape: t.size().iter().map(|&d| d as u64).collect(),
                    values,
                    error: None,
                })
                .into()
            } else {
                let (payload, s, bits) = quant
                    .send(Encode {
                        tensors: out.tensors,
                        cut: a.r,
                    })
                    .await
                    .map_err(|e| Failure::Failed(anyhow!("quantizer: {e}")))?
                    .map_err(Failure::Failed)?;
                codec_s += s;
                out_bits = bits.get();
                probe.do_send(Outgoing {
                    run: act.run,
                    seq: act.seq,
                    items,
                    bits: out_bits,
                });
                let header = Activation {
                    version: WIRE_VERSION,
                    fleet: keys.fleet.clone(),
                    run: act.run,
                    client: act.client.clone(),
                    seq: act.seq,
                    epoch: act.epoch,
                    stage: a.stage + 1,
                    sent_unix_ns: unix_ns(),
                    body: Body::Payload,
                    body_len: 0,
                    mask: mask
                        .as_ref()
                        .map(mask_to_wire)
                        .transpose()
                        .map_err(Failure::Failed)?,
                };
                zbytes_with_header(header.header_for(payload.len()), payload)
            };
            let key = match &a.next {
                NextHop::Client => keys.result(&act.client),
                NextHop::Stage(i) => keys.stage_in(*i),
            };
            let sent = (key.clone(), bytes.len() as u64);
            transport
                .send(Put {
                    key,
                    bytes,
                    control: false,
                })
                .await
                .map_err(|e| Failure::Failed(anyhow!("transport: {e}")))?
                .map_err(Failure::Failed)?;
            Ok::<_, Failure>((items, forward_time, codec_s, sent, out_bits))
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, _| match res {
            Ok((items, forward_time, codec_s, (key, bytes), out_bits)) => {
                let forward_s = forward_time.busy_s;
                if let Some(m) = &mut act.metrics {
                    m.acc
                        .finished(items, forward_s, codec_s, &key, bytes, out_bits);
                }
                act.stats.microbatches += 1;
                act.stats.items += items;
                act.stats.busy_forward_s += forward_s;
                act.stats.forward_cpu_s += forward_time.cpu_s;
                act.stats.busy_codec_s += codec_s;
            }
            Err(Failure::Malformed(e)) => {
                if let Some(m) = &mut act.metrics {
                    m.acc.abandoned();
                }
                act.stats.dropped_malformed += 1;
                tracing::warn!(
                    "{}: dropped malformed microbatch {} of run {:x}: {e:#}",
                    act.name,
                    header.1,
                    header.0
                );
            }
            Err(Failure::Failed(e)) if act.current.as_ref().map(|c| c.epoch) != Some(header.2) => {
                // The plan changed under the microbatch (its shard was reloaded or released):
                // the client sends it again under the new plan, so this is no failure of the run.
                if let Some(m) = &mut act.metrics {
                    m.acc.abandoned();
                }
                act.stats.dropped_stale_epoch += 1;
                tracing::warn!(
                    "{}: dropped microbatch {} of run {:x}: its plan (epoch {}) was replaced: {e:#}",
                    act.name,
                    header.1,
                    header.0,
                    header.2
                );
            }
            Err(Failure::Failed(e)) => {
                if let Some(m) = &mut act.metrics {
                    m.acc.abandoned();
                }
                act.stats.failed += 1;
                tracing::error!(
                    "{}: microbatch {} of run {:x} failed: {e:#}",
                    act.name,
                    header.1,
                    header.0
                );
                // Tell the client now rather than let it time out.
                let out = Output {
                    version: WIRE_VERSION,
                    fleet: act.keys.fleet.clone(),
                    run: header.0,
                    seq: header.1,
                    epoch: header.2,
                    shape: vec![],
                    values: vec![],
                    error: Some(format!("{}: {e:#}", act.name)),
                };
                act.control.do_send(Put {
                    key: act.keys.result(&header.3),
                    bytes: wire::to_bytes(&out).into(),
                    control: true,
                });
            }
        }));
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
                debug_assert_eq!(stats.fleet, fleet);
                control.do_send(Reply {
                    query: msg.query,
                    bytes: wire::to_bytes(&stats),
                });
            }
        });
    }
}
