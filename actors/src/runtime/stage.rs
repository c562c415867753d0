//! The StageActor: receives a stage's microbatches, checks them, and moves each one through
//! decode (QuantizerActor) -> forward (ForwardWorker) -> encode (QuantizerActor) -> send
//! (TransportActor). Everything that computes or may block runs on SyncArbiter threads; the
//! StageActor itself only routes and counts, on the node's arbiter.

use crate::runtime::emulation::Pacing;
use crate::runtime::metrics::{unix_s, MetricsWriter, WindowAccumulator};
use crate::runtime::probe::{Arrived, BandwidthProbeActor, Links};
use crate::runtime::quantizer::{
    mask_from_wire, mask_to_wire, tokens_from_wire, Decode, Encode, QuantizerActor,
};
use crate::runtime::transport::{
    unix_ns, Put, Received, Reply, Subscribe, TransportActor, UnsubscribeOthers,
};
use crate::runtime::wire::{
    self, Activation, AssignAck, Assignment, Body, Keys, NextHop, NodeStats, Output, WireError,
    WIRE_VERSION,
};
use actix::prelude::*;
use anyhow::{anyhow, bail, Context as _, Result};
use quantpipe_messages::Bits;
use quantpipe_model_shards::{Boundary, ModelSource, Shard, UnitRange};
use std::path::PathBuf;
use std::time::Instant;
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

/// One forward pass; answers the output and the busy seconds (emulated slowdown included).
#[derive(Message)]
#[rtype(result = "Result<(Boundary, f64)>")]
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
    type Result = Result<(Boundary, f64)>;
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
        let out = tch::no_grad(|| shard.forward(&msg.input))?;
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
        Ok((out, start.elapsed().as_secs_f64()))
    }
}

/// An assignment from the leader, with the query to answer once it is in effect.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AssignQuery {
    pub bytes: Vec<u8>,
    pub query: Query,
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
    pub probe: Addr<BandwidthProbeActor>,
    current: Option<Assignment>,
    stats: NodeStats,
    metrics: Option<StageMetrics>,
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
            transport,
            probe,
            current: None,
            stats,
            metrics: None,
        }
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
            let row = m.acc.close(unix_s(), &self.name, s.stage, s.epoch, dropped);
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
        self.transport.do_send(Reply {
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
        if let Some(cur) = &self.current {
            if a.epoch < cur.epoch {
                self.stats.dropped_stale_epoch += 1;
                let err = format!("assignment of epoch {} after epoch {}", a.epoch, cur.epoch);
                // The ack names the epoch this stage runs: a leader that took over learns from
                // it which epoch its plan must exceed.
                self.ack(msg.query, cur.epoch, Some(err));
                return;
            }
        }
        if let Err(e) = Bits::new(a.out_bits) {
            self.ack(msg.query, a.epoch, Some(format!("out_bits: {e}")));
            return;
        }
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
        let key = self.keys.stage_in(a.stage);
        let transport = self.transport.clone();
        let me = ctx.address().recipient::<Received>();
        let fut = async move {
            load.await.map_err(|e| anyhow!("forward worker: {e}"))??;
            transport
                .send(UnsubscribeOthers { keep: key.clone() })
                .await
                .map_err(|e| anyhow!("transport: {e}"))?;
            transport
                .send(Subscribe { key, to: me })
                .await
                .map_err(|e| anyhow!("transport: {e}"))??;
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

/// What can go wrong with one microbatch, for the counters.
enum Failure {
    Malformed(anyhow::Error),
    Failed(anyhow::Error),
}

impl Handler<Received> for StageActor {
    type Result = ();
    fn handle(&mut self, msg: Received, ctx: &mut Context<Self>) {
        let act: Activation = match wire::from_bytes(&msg.bytes, &self.keys.fleet) {
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
        // The last stage sends raw f32 rows to the client.
        let out_bits = if last { 32 } else { a.out_bits };
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
                Body::Payload(bytes) => {
                    let (t, s) = quant
                        .send(Decode { bytes })
                        .await
                        .map_err(|e| Failure::Failed(anyhow!("quantizer: {e}")))?
                        .map_err(Failure::Malformed)?;
                    codec_s += s;
                    t
                }
            };
            let (out, forward_s) = forward
                .send(Forward {
                    input: Boundary::new(tensors, mask.as_ref().map(|m| m.shallow_clone())),
                    epoch: act.epoch,
                })
                .await
                .map_err(|e| Failure::Failed(anyhow!("forward worker: {e}")))?
                .map_err(Failure::Failed)?;
            let items = out.batch().max(0) as u64;
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
            } else {
                let (payload, s) = quant
                    .send(Encode {
                        tensors: out.tensors,
                        cut: a.r,
                        bits: Bits::new(a.out_bits).expect("checked on assignment"),
                    })
                    .await
                    .map_err(|e| Failure::Failed(anyhow!("quantizer: {e}")))?
                    .map_err(Failure::Failed)?;
                codec_s += s;
                wire::to_bytes(&Activation {
                    version: WIRE_VERSION,
                    fleet: keys.fleet.clone(),
                    run: act.run,
                    client: act.client.clone(),
                    seq: act.seq,
                    epoch: act.epoch,
                    stage: a.stage + 1,
                    sent_unix_ns: unix_ns(),
                    body: Body::Payload(payload),
                    mask: mask
                        .as_ref()
                        .map(mask_to_wire)
                        .transpose()
                        .map_err(Failure::Failed)?,
                })
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
            Ok::<_, Failure>((items, forward_s, codec_s, sent))
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, _| match res {
            Ok((items, forward_s, codec_s, (key, bytes))) => {
                if let Some(m) = &mut act.metrics {
                    m.acc
                        .finished(items, forward_s, codec_s, &key, bytes, out_bits);
                }
                act.stats.microbatches += 1;
                act.stats.items += items;
                act.stats.busy_forward_s += forward_s;
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
                act.transport.do_send(Put {
                    key: act.keys.result(&header.3),
                    bytes: wire::to_bytes(&out),
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
                    s
                }),
        )
    }
}

impl Handler<StatsQuery> for StageActor {
    type Result = ();
    fn handle(&mut self, msg: StatsQuery, ctx: &mut Context<Self>) {
        let me = ctx.address();
        let transport = self.transport.clone();
        let fleet = self.keys.fleet.clone();
        actix::spawn(async move {
            if let Ok(stats) = me.send(GetStats).await {
                debug_assert_eq!(stats.fleet, fleet);
                transport.do_send(Reply {
                    query: msg.query,
                    bytes: wire::to_bytes(&stats),
                });
            }
        });
    }
}
