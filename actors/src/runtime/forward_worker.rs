//! The ForwardWorker: holds the node's shard and runs its forward passes on a SyncArbiter
//! thread, so that libtorch never blocks the node's arbiter. A shard is loaded for one plan epoch
//! and refuses microbatches of any other (a re-plan may reload it between a microbatch's arrival
//! and its forward pass); an emulated slowdown pads each pass ([`Pacing`]).
//!
//! A panic in a forward pass (libtorch panics on what it cannot compute) is caught: the shard,
//! which the panic may have left half-mutated, is dropped and loaded afresh for the current
//! assignment, and the microbatch is answered with [`WorkerPanicked`] (see
//! [`crate::runtime::supervision`]). When the shard does not load again, or the worker panicked
//! more often than its [`RestartBudget`] allows, it reports to the node's [`WorkerHealth`] that it
//! cannot restart, and refuses every later microbatch.

use crate::runtime::cpu_time::thread_cpu_s;
use crate::runtime::emulation::Pacing;
use crate::runtime::faults::{forced_at, FaultSettings};
use crate::runtime::supervision::{
    catch_panic, PanicHistory, RestartBudget, WorkerHealth, WorkerPanicked,
};
use actix::prelude::*;
use anyhow::{anyhow, bail, Context as _, Result};
use quantpipe_model_shards::{Boundary, ModelSource, Shard, UnitRange};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Holds the node's shard and runs its forward passes on a SyncArbiter thread.
pub struct ForwardWorker {
    pub model_dir: PathBuf,
    /// Emulated slowdown (>= 1): each pass is padded to `slowdown x` its profiled time
    /// ([`Pacing`]); without a profile, followed by a sleep of `(slowdown - 1) x` its time.
    pub slowdown: f64,
    pacing: Option<Pacing>,
    shard: Option<(u64, Shard)>,
    /// The last assignment loaded: what a restart loads again.
    assigned: Option<Load>,
    faults: FaultSettings,
    health: Arc<WorkerHealth>,
    panics: PanicHistory,
    /// Forward passes asked for so far (forced faults count them).
    passes: u64,
    /// Why the worker could not restart, once it could not: it then refuses every microbatch.
    broken: Option<String>,
}

impl ForwardWorker {
    /// `pacing` is the node's profile scaled by `slowdown` (used only when `slowdown > 1`).
    pub fn new(model_dir: PathBuf, slowdown: f64, pacing: Option<Pacing>) -> Self {
        ForwardWorker {
            model_dir,
            slowdown,
            pacing,
            shard: None,
            assigned: None,
            faults: FaultSettings::default(),
            health: Arc::default(),
            panics: PanicHistory::new(RestartBudget::default()),
            passes: 0,
            broken: None,
        }
    }

    /// Reports restarts to `health` (the node's), and forces the faults of `faults`.
    pub fn with_supervision(mut self, faults: FaultSettings, health: Arc<WorkerHealth>) -> Self {
        self.faults = faults;
        self.health = health;
        self
    }

    fn load(&mut self, msg: &Load) -> Result<()> {
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

    /// After a panic: drops the shard, loads it afresh for the current assignment, and answers
    /// the error the microbatch in hand gets.
    fn restart_after_panic(&mut self, pass: u64, message: String) -> WorkerPanicked {
        tracing::error!("forward worker panicked in pass {pass}: {message}; dropping its shard");
        self.shard = None;
        let restarted = match self.reload() {
            Ok(()) => {
                self.health.restarted();
                tracing::warn!(
                    "forward worker restarted with its shard loaded afresh ({} restart(s))",
                    self.health.restarts()
                );
                true
            }
            Err(why) => {
                let why = format!("the forward worker cannot restart: {why}");
                tracing::error!("{why}");
                self.health.cannot_restart(why.clone());
                self.broken = Some(why);
                false
            }
        };
        WorkerPanicked {
            worker: "forward",
            message,
            restarted,
        }
    }

    /// Loads the current assignment's shard again, if the restart budget allows.
    fn reload(&mut self) -> std::result::Result<(), String> {
        if !self.panics.panicked(Instant::now()) {
            let b = self.panics.budget();
            return Err(format!(
                "it panicked more than {} times in {:?}",
                b.max_panics, b.within
            ));
        }
        if self.faults.fail_restart {
            return Err("forced by [faults] fail_restart".into());
        }
        let Some(assigned) = self.assigned.clone() else {
            return Ok(());
        };
        match catch_panic(|| self.load(&assigned)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("reloading its shard: {e:#}")),
            Err(panic) => Err(format!("reloading its shard panicked: {panic}")),
        }
    }

    fn forward(&self, msg: Forward, pass: u64) -> Result<(Boundary, ForwardTime)> {
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
        if forced_at(&self.faults.panic_forward_at, pass) {
            panic!("forced by [faults] panic_forward_at: forward pass {pass}");
        }
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

impl Actor for ForwardWorker {
    type Context = SyncContext<Self>;
}

/// Load units `[l, r]` of the local model for plan `epoch`.
#[derive(Message, Debug, Clone)]
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
        if let Some(why) = &self.broken {
            bail!("{why}");
        }
        match catch_panic(|| self.load(&msg)) {
            Ok(loaded) => {
                self.assigned = loaded.is_ok().then_some(msg);
                loaded
            }
            Err(panic) => {
                // Whatever the panic left of the shard goes with it.
                self.shard = None;
                self.assigned = None;
                bail!("loading units {}..{} panicked: {panic}", msg.l, msg.r)
            }
        }
    }
}

impl Handler<Forward> for ForwardWorker {
    type Result = Result<(Boundary, ForwardTime)>;
    fn handle(&mut self, msg: Forward, _: &mut SyncContext<Self>) -> Self::Result {
        if let Some(why) = &self.broken {
            return Err(WorkerPanicked {
                worker: "forward",
                message: why.clone(),
                restarted: false,
            }
            .into());
        }
        self.passes += 1;
        let pass = self.passes;
        match catch_panic(|| self.forward(msg, pass)) {
            Ok(done) => done,
            Err(message) => Err(self.restart_after_panic(pass, message).into()),
        }
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
        self.assigned = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantpipe_model_shards::presets::export_preset;
    use tch::{Kind, Tensor};

    /// A ForwardWorker over a small random DeiT holding units 1..=1 for epoch 1, with `faults`.
    fn worker(
        dir: &std::path::Path,
        faults: FaultSettings,
        health: Arc<WorkerHealth>,
    ) -> Addr<ForwardWorker> {
        export_preset("deit-tiny-distilled-patch16-224", 7, dir).unwrap();
        let dir = dir.to_path_buf();
        SyncArbiter::start(1, move || {
            ForwardWorker::new(dir.clone(), 1.0, None)
                .with_supervision(faults.clone(), health.clone())
        })
    }

    fn load(dir: &std::path::Path) -> Load {
        Load {
            epoch: 1,
            model: ModelSource::open_dir(dir).unwrap().name(),
            l: 1,
            r: 1,
        }
    }

    fn forward() -> Forward {
        Forward {
            input: Boundary::new(
                vec![Tensor::randn(
                    [1, 3, 224, 224],
                    (Kind::Float, tch::Device::Cpu),
                )],
                None,
            ),
            epoch: 1,
        }
    }

    fn panicked(e: &anyhow::Error) -> &WorkerPanicked {
        e.downcast_ref::<WorkerPanicked>()
            .expect("a WorkerPanicked")
    }

    #[test]
    fn a_panicking_forward_pass_restarts_the_worker_with_its_shard() {
        let dir = tempfile::tempdir().unwrap();
        let health = Arc::new(WorkerHealth::default());
        let faults = FaultSettings {
            panic_forward_at: vec![2],
            ..Default::default()
        };
        actix::System::new().block_on(async {
            let w = worker(dir.path(), faults, health.clone());
            w.send(load(dir.path())).await.unwrap().unwrap();
            assert!(w.send(forward()).await.unwrap().is_ok());
            let e = w.send(forward()).await.unwrap().unwrap_err();
            let p = panicked(&e);
            assert!(p.restarted, "{e}");
            assert!(p.message.contains("panic_forward_at"), "{e}");
            assert_eq!(health.restarts(), 1);
            // The same thread, with its shard loaded afresh, takes the next microbatch.
            assert!(w.send(forward()).await.unwrap().is_ok());
            assert_eq!(health.broken(), None);
        });
    }

    #[test]
    fn a_worker_that_cannot_restart_reports_it_and_refuses_what_follows() {
        let dir = tempfile::tempdir().unwrap();
        let health = Arc::new(WorkerHealth::default());
        let faults = FaultSettings {
            panic_forward_at: vec![1],
            fail_restart: true,
            ..Default::default()
        };
        actix::System::new().block_on(async {
            let w = worker(dir.path(), faults, health.clone());
            w.send(load(dir.path())).await.unwrap().unwrap();
            let e = w.send(forward()).await.unwrap().unwrap_err();
            assert!(!panicked(&e).restarted, "{e}");
            assert_eq!(health.restarts(), 0);
            let why = health.broken().expect("reported");
            assert!(why.contains("fail_restart"), "{why}");
            let e = w.send(forward()).await.unwrap().unwrap_err();
            assert!(!panicked(&e).restarted, "{e}");
        });
    }

    #[test]
    fn a_worker_that_keeps_panicking_gives_up() {
        let dir = tempfile::tempdir().unwrap();
        let health = Arc::new(WorkerHealth::default());
        let max = RestartBudget::default().max_panics as u64;
        let faults = FaultSettings {
            panic_forward_at: (1..=max + 1).collect(),
            ..Default::default()
        };
        actix::System::new().block_on(async {
            let w = worker(dir.path(), faults, health.clone());
            w.send(load(dir.path())).await.unwrap().unwrap();
            for _ in 0..max {
                let e = w.send(forward()).await.unwrap().unwrap_err();
                assert!(panicked(&e).restarted, "{e}");
            }
            let e = w.send(forward()).await.unwrap().unwrap_err();
            assert!(!panicked(&e).restarted, "{e}");
            assert_eq!(health.restarts(), max);
            assert!(health.broken().unwrap().contains("panicked more than"));
        });
    }
}
