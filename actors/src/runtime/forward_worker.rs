//! The ForwardWorker: holds the node's shard and runs its forward passes on a SyncArbiter
//! thread, so that libtorch never blocks the node's arbiter. A shard is loaded for one plan epoch
//! and refuses microbatches of any other (a re-plan may reload it between a microbatch's arrival
//! and its forward pass); an emulated slowdown pads each pass ([`Pacing`]).

use crate::runtime::cpu_time::thread_cpu_s;
use crate::runtime::emulation::Pacing;
use actix::prelude::*;
use anyhow::{anyhow, bail, Context as _, Result};
use quantpipe_model_shards::{Boundary, ModelSource, Shard, UnitRange};
use std::path::PathBuf;
use std::time::Instant;

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
