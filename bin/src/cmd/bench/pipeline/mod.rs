//! `quantpipe bench pipeline`: a ViT preset (seeded random weights, one exported folder that
//! every node loads, so all agree on the weights) run as 2- and 3-stage pipelines of separate
//! `quantpipe node` processes on loopback, planned by the leader from the nodes' own profiles.
//! For each: the measured steady-state throughput against the planner's predicted bound for that
//! plan, and each stage's overhead: the CPU its node spends outside the forward passes (codec,
//! transport, runtime) as a share of the forward passes' own CPU, beside the wall-clock share.
//!
//! Pipelines on few cores (see DESIGN.md, "Measuring pipelines on a 2-core machine"): each node
//! runs one intra-op thread, pinned to one core with `taskset` (all its threads: forward, codec,
//! zenoh). The profile every node announces is measured once, before any node starts, by a
//! `quantpipe profile` process with one thread pinned to the core of the bottleneck-to-be (the
//! one no emulated node shares), so that nodes profiling at once on shared cores do not inflate
//! it. With more nodes than cores, the nodes that
//! share a core are emulated slower devices (`device.slowdown`: each forward pass is followed by
//! a sleep of `(slowdown - 1) x` its time), so they use a fraction of their core and the
//! bottleneck stage is the one alone on its core; the report says which nodes are emulated.
//!
//! With `--compare-tls`, every depth runs twice, over plain TCP and over TLS with mutual
//! authentication under a throwaway CA (every member enrolled, the access control generated
//! from the member list, as a secured fleet runs), from the same profile, so the leader makes
//! the same plan: the report sets TLS throughput against plain (goal: >= 0.95) and the CPU each
//! spends outside the forward passes.

mod figures;
mod fleet;
mod inputs;
mod measure;
mod placement;
mod profile;

use anyhow::{bail, Context, Result};
use figures::{tls_cost, RunFigures, TlsCost};
use quantpipe_model_shards::presets::export_preset;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model preset (seeded random weights).
    #[arg(long, default_value = "vit-base-patch16-224")]
    preset: String,
    #[arg(long, default_value_t = 8)]
    ubatch: usize,
    /// Pipeline depths to run (node processes per run).
    #[arg(long, value_delimiter = ',', default_value = "2,3")]
    stages: Vec<usize>,
    /// Microbatches measured per run (after `warmup` more).
    #[arg(long, default_value_t = 16)]
    microbatches: usize,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Microbatches in flight.
    #[arg(long, default_value_t = 4)]
    window: usize,
    /// Emulated slowdown of nodes that share a core (only with more nodes than cores).
    #[arg(long, default_value_t = 3.0)]
    shared_core_slowdown: f64,
    /// Run every depth over plain TCP and over TLS (mutual authentication, throwaway CA), and
    /// report what TLS costs.
    #[arg(long)]
    compare_tls: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    preset: String,
    ubatch: usize,
    bits: u8,
    microbatches: usize,
    warmup: usize,
    window: usize,
    goal_ratio_to_bound: f64,
    goal_max_overhead_share: f64,
    runs: Vec<RunFigures>,
    /// With `--compare-tls`: per depth, TLS against plain TCP.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tls_cost: Vec<TlsCost>,
    goal_tls_ratio: f64,
}

pub fn run(args: Args) -> Result<()> {
    check(&args)?;
    let work = tempfile::tempdir()?;
    let model = export_model(&args.preset, work.path())?;
    // The core no emulated node shares: the last one (round-robin fills the first cores twice).
    let core = placement::have_taskset().then_some(placement::cores() - 1);
    let profile = profile::measure_profile(&model, args.ubatch, core, work.path())?;
    let mut runs = Vec::new();
    let mut costs = Vec::new();
    for &n in &args.stages {
        let plain = measure::run_one(&args, &model, &profile, n, false, work.path())
            .with_context(|| format!("{n} nodes"))?;
        if args.compare_tls {
            let tls = measure::run_one(&args, &model, &profile, n, true, work.path())
                .with_context(|| format!("{n} nodes over TLS"))?;
            costs.push(tls_cost(&plain, &tls));
            runs.push(plain);
            runs.push(tls);
        } else {
            runs.push(plain);
        }
    }
    let report = Report {
        preset: args.preset.clone(),
        ubatch: args.ubatch,
        bits: 32,
        microbatches: args.microbatches,
        warmup: args.warmup,
        window: args.window,
        goal_ratio_to_bound: 0.9,
        goal_max_overhead_share: 0.05,
        runs,
        tls_cost: costs,
        goal_tls_ratio: 0.95,
    };
    super::print(&report, args.json, text)
}

/// Refuses arguments the bench cannot run with.
fn check(args: &Args) -> Result<()> {
    if args.stages.iter().any(|&n| n < 2) {
        bail!(
            "--stages: pipelines of 2 or more nodes, got {:?}",
            args.stages
        );
    }
    if args.microbatches < 2 || args.window == 0 || args.ubatch == 0 {
        bail!("--microbatches must be >= 2, --window and --ubatch >= 1");
    }
    if args.shared_core_slowdown.is_nan() || args.shared_core_slowdown < 1.0 {
        bail!("--shared-core-slowdown must be >= 1");
    }
    Ok(())
}

/// Exports `preset` into `work`: one folder for every node, so same seed, same weights.
fn export_model(preset: &str, work: &Path) -> Result<PathBuf> {
    let model = work.join(preset);
    export_preset(preset, quantpipe_model_shards::DEFAULT_PRESET_SEED, &model)
        .with_context(|| format!("exporting preset {preset}"))?;
    Ok(model)
}

/// The report as text: one line per run.
fn text(r: &Report) -> String {
    let mut out = format!("{} ubatch {} at 32 bits\n", r.preset, r.ubatch);
    for run in &r.runs {
        out += &format!(
            "{}{} nodes, {} stages: {:.2} items/s measured, {:.2} predicted bound ({:.0}%), \
             {:.0}% of the measured slowest stage; overhead up to {:.1}% of forward CPU \
             ({:.1}% wall-clock); bottleneck {}\n",
            if run.tls { "TLS: " } else { "" },
            run.nodes,
            run.stages,
            run.measured_items_per_s,
            run.predicted_items_per_s,
            run.ratio_to_bound * 100.0,
            run.ratio_to_measured_bottleneck * 100.0,
            run.max_overhead_share * 100.0,
            run.max_wall_overhead_share * 100.0,
            run.bottleneck
        );
    }
    for c in &r.tls_cost {
        out +=
            &format!(
            "{} nodes, TLS against plain TCP: {:.2} against {:.2} items/s, ratio {:.3} (goal >= \
             {}){}; CPU outside the forward passes {:.1} ms against {:.1} ms a microbatch over \
             all stages, largest stage overhead {:.1}% against {:.1}% of forward CPU\n",
            c.nodes,
            c.tls_items_per_s,
            c.plain_items_per_s,
            c.ratio,
            r.goal_tls_ratio,
            if c.same_plan { "" } else { " (the plans differ)" },
            c.tls_outside_forward_cpu_s * 1e3,
            c.plain_outside_forward_cpu_s * 1e3,
            c.tls_max_overhead_share * 100.0,
            c.plain_max_overhead_share * 100.0,
        );
    }
    out
}
