//! One run of the bench: start a fleet of `nodes` processes, stream the warm-up and the
//! measured microbatches through the client library, and derive the run's figures.

use super::figures::{run_figures, stage_figures, steady_items_per_s, Measured, RunFigures};
use super::fleet::{self, BenchFleet};
use super::inputs::{pixel_payload, Repeated};
use super::placement::{cores, have_taskset, Layout};
use super::Args;
use anyhow::{anyhow, bail, Result};
use quantpipe_actors::runtime::client::{node_stats, run_on, RunReport};
use quantpipe_actors::runtime::config::Settings;
use quantpipe_launcher::Fleet;
use quantpipe_messages::{Keys, NodeStats, PlanInfo};
use std::path::Path;
use std::time::Duration;
use zenoh::{Session, Wait};

/// How long a node may take to answer its stats.
const STATS_LIMIT: Duration = Duration::from_secs(10);

/// Runs the bench on a pipeline of `nodes` node processes over TLS (`tls`) or plain TCP, their
/// files under `work`.
pub fn run_one(
    args: &Args,
    model: &Path,
    profile: &Path,
    nodes: usize,
    tls: bool,
    work: &Path,
) -> Result<RunFigures> {
    let tag = if tls { "tls" } else { "plain" };
    let dir = work.join(format!("run{nodes}-{tag}"));
    std::fs::create_dir_all(&dir)?;
    let layout = Layout::new(nodes, cores(), have_taskset(), args.shared_core_slowdown);
    let fleet_name = format!("bench{}x{nodes}{tag}", std::process::id());
    let links = fleet::links(tls, &fleet_name, &layout, &dir)?;
    let BenchFleet {
        mut fleet,
        client,
        observer,
    } = fleet::start(args, &fleet_name, &layout, (model, profile), &links, &dir)?;
    let keys = Keys::new(&fleet_name);
    let open = |s: &Settings| {
        zenoh::open(s.zenoh_config()?)
            .wait()
            .map_err(|e| anyhow!("opening the zenoh session of {}: {e}", s.name))
    };
    let session = open(&client)?;
    let observer = open(&observer)?;
    let bench = Bench {
        args,
        session: &session,
        observer: &observer,
        keys: &keys,
        client: &client,
    };
    let result = bench.measure(&mut fleet, &layout).map(|mut f| {
        f.tls = tls;
        f
    });
    for s in [session, observer] {
        if let Err(e) = s.close().wait() {
            tracing::warn!("closing the zenoh session: {e}");
        }
    }
    drop(fleet);
    result
}

/// The bench's client on an open session, and the observer's session that reads the stats.
struct Bench<'a> {
    args: &'a Args,
    session: &'a Session,
    observer: &'a Session,
    keys: &'a Keys,
    client: &'a Settings,
}

impl Bench<'_> {
    /// Waits for the planner's plan, streams the warm-up then the measured microbatches, and
    /// derives the figures from the stages' counters over the measured part.
    fn measure(&self, fleet: &mut Fleet, layout: &Layout) -> Result<RunFigures> {
        let plan = fleet.wait_for_plan(self.session, self.keys, Duration::from_secs(600))?;
        if plan.source != "planner" {
            bail!(
                "the leader's plan is {} rather than the planner's",
                plan.source
            );
        }
        let payload = pixel_payload(self.args.ubatch)?;
        if self.args.warmup > 0 {
            self.stream(&payload, self.args.warmup)?;
        }
        // Counters after the warm-up: the measured run's share is the difference.
        let before = self.stats(&plan)?;
        let run = self.stream(&payload, self.args.microbatches)?;
        let after = self.stats(&plan)?;
        let mut stage = Vec::new();
        for (k, s) in plan.stages.iter().enumerate() {
            let (core, slowdown) = layout.of(&s.node);
            let stats = after[k].since(&before[k]);
            let incoming = self.keys.stage_input(k as u32);
            let core = layout.pinned.then_some(core);
            stage.push(stage_figures(s, &stats, &incoming, core, slowdown));
        }
        let measured = Measured {
            measured_items_per_s: steady_items_per_s(
                &run.arrivals_s,
                self.args.microbatches,
                self.args.ubatch,
            ),
            latency_p50_s: run.latency_p50_s,
            stage,
        };
        Ok(run_figures(&plan, layout, self.args.ubatch, measured))
    }

    /// Streams `count` copies of `payload` through the pipeline.
    fn stream(&self, payload: &[u8], count: usize) -> Result<RunReport> {
        let mut inputs = Repeated {
            payload,
            ubatch: self.args.ubatch,
            count,
        };
        run_on(
            self.session,
            self.keys,
            self.client,
            &mut inputs,
            &mut |_| {},
        )
    }

    /// Every stage's counters, in plan order.
    fn stats(&self, plan: &PlanInfo) -> Result<Vec<NodeStats>> {
        plan.stages
            .iter()
            .map(|s| node_stats(self.observer, self.keys, &s.node, STATS_LIMIT))
            .collect()
    }
}
