//! `quantpipe demo`: a leader and three heterogeneous device nodes as separate processes on
//! loopback, MiniLM over the BBC News test articles, compared with one device at fp32.
//!
//! Heterogeneity: the nodes get different libtorch thread counts and an *emulated* slowdown factor
//! (each forward pass is padded to `factor x` its profiled time), so a 2-core machine stands in
//! for a fleet of slower boards; padded stages leave the cores to the others, which keeps the
//! emulated devices' speed from depending on how the real cores are shared.

mod chart;
mod dataset;
mod devices;
mod figures;
mod fleet;
mod local;
mod serve;
mod summary;

use crate::eval::metrics::nearest_neighbour;
use crate::logging::LogFormat;
use anyhow::{anyhow, bail, Context, Result};
use chart::ChartInputs;
use dataset::Dataset;
use figures::{accuracy, stage_report, StageReport};
use fleet::DemoFleet;
use local::Baseline;
use quantpipe_actors::runtime::client::{node_stats, run_texts_on, RunReport};
use quantpipe_launcher::Fleet;
use quantpipe_messages::{Keys, PlanInfo};
use quantpipe_model_shards::preprocess::TextTokenizer;
use quantpipe_model_shards::ModelSource;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zenoh::Wait;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model folder every node loads its shard from.
    #[arg(long, default_value = "data/minilm")]
    model_dir: PathBuf,
    /// BBC News folder (`<class>/*.txt`).
    #[arg(long, default_value = "data/bbc")]
    bbc: PathBuf,
    /// Test articles to run through the pipeline.
    #[arg(long, default_value_t = 120)]
    limit: usize,
    /// Training articles embedded as the 1-NN reference.
    #[arg(long, default_value_t = 400)]
    train_limit: usize,
    /// Items per microbatch.
    #[arg(long, default_value_t = 8)]
    ubatch: usize,
    /// Bitwidth of every cut (32 = raw f32, 1..=16 quantized).
    #[arg(long, default_value_t = 8)]
    bits: u8,
    /// Clipping of quantized cuts: naive, aciq, ds-aciq (at 8 bits min-max keeps MiniLM's
    /// outlier channels; ACIQ's Laplace clipping cuts them).
    #[arg(long, default_value = "naive")]
    clip: String,
    /// First of the loopback TCP ports (leader, then one per node).
    #[arg(long, default_value_t = 17450)]
    base_port: u16,
    /// Folder for the report, the generated configs and the nodes' logs.
    #[arg(long, default_value = "target/demo")]
    out: PathBuf,
    /// Print the JSON report on stdout.
    #[arg(long)]
    json: bool,
    /// Instead of the measured run, keep the fleet up behind an HTTP gateway on this port
    /// (OpenAI embeddings, Open Inference Protocol, /metrics) until Ctrl-C.
    #[arg(long, value_name = "PORT")]
    serve: Option<u16>,
}

#[derive(Serialize)]
pub struct DemoReport {
    pub model: String,
    /// How the fleet's links were made (TLS under the demo's throwaway CA).
    pub links: String,
    pub classes: Vec<String>,
    pub test_items: usize,
    pub reference_items: usize,
    pub ubatch: usize,
    pub bits: u8,
    pub clip: String,
    pub plan: PlanInfo,
    pub stages: Vec<StageReport>,
    pub pipeline: RunReport,
    pub pipeline_accuracy: f64,
    /// The fastest demo device (threads and emulated slowdown) running the whole model at fp32.
    pub single_device_items_per_s: f64,
    pub single_device_accuracy: f64,
    pub single_device: String,
    /// Test items whose 1-NN label is the same as the single-device fp32 one.
    pub agreement: f64,
    /// The PNG chart: per-stage utilisation, throughput, per-window items/s.
    pub chart: PathBuf,
    /// Each device node's per-window metrics (JSON lines), by node name.
    pub metrics_files: Vec<(String, PathBuf)>,
}

/// Length of the nodes' metrics windows, seconds.
const METRICS_WINDOW_S: f64 = 1.0;

pub fn run(args: Args, log_format: LogFormat) -> Result<()> {
    let model_dir = model_dir(&args.model_dir)?;
    let out = output_dir(&args.out)?;
    if let Some(port) = args.serve {
        return serve_fleet(&args, &model_dir, &out, port, log_format);
    }
    let data = Dataset::load(&args.bbc, args.limit, args.train_limit)?;

    // Reference embeddings, the single-device fp32 baseline and the profiles, on this process.
    let source = ModelSource::open_dir(&model_dir)?;
    let tok = TextTokenizer::from_file(&model_dir.join("tokenizer.json"), 128)?;
    let baseline = local::baseline(&source, &tok, &data, args.ubatch)?;
    let profiles = local::measure_profiles(&source, args.ubatch, &out)?;

    let fleet = DemoFleet::new(
        format!("demo{}", std::process::id()),
        &model_dir,
        &out,
        args.base_port,
    )?;
    let started = fleet.start(&args, &profiles, log_format)?;
    // With --json, stdout carries the report alone (the plan is in it).
    let measured = run_pipeline(&fleet, started.nodes, &data.test_texts, !args.json)?;

    let chart = out.join("demo.png");
    chart::write(
        &chart,
        &ChartInputs {
            title: format!(
                "{} over {} stages, cuts at {} bits ({} BBC test articles)",
                measured.plan.model,
                measured.plan.stages.len(),
                args.bits,
                data.test_texts.len()
            ),
            plan: &measured.plan,
            run: &measured.run,
            stages: &measured.stages,
            single_device_items_per_s: baseline.items_per_s,
            metrics_files: &started.metrics_files,
        },
    )?;
    let demo = demo_report(
        &args,
        data,
        baseline,
        measured,
        chart,
        started.metrics_files,
        fleet.links.describe(),
    );
    write_report(&demo, &out, args.json)
}

/// `--serve PORT`: the demo fleet (profiled here as for the measured run) behind a gateway.
fn serve_fleet(
    args: &Args,
    model_dir: &Path,
    out: &Path,
    port: u16,
    log_format: LogFormat,
) -> Result<()> {
    let source = ModelSource::open_dir(model_dir)?;
    let profiles = local::measure_profiles(&source, args.ubatch, out)?;
    let fleet = DemoFleet::new(
        format!("demo{}", std::process::id()),
        model_dir,
        out,
        args.base_port,
    )?;
    let started = fleet.start(args, &profiles, log_format)?;
    serve::serve(&fleet, started.nodes, port)
}

/// The model folder, canonical, once it holds a model.
fn model_dir(dir: &Path) -> Result<PathBuf> {
    if !dir.join("config.json").exists() {
        bail!(
            "no model in {} (run scripts/setup to fetch MiniLM)",
            dir.display()
        );
    }
    Ok(dir.canonicalize()?)
}

/// The output folder, created if missing, canonical.
fn output_dir(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir.canonicalize()?)
}

/// What the pipeline run measured: the plan, the client's figures and each stage's.
struct Measured {
    plan: PlanInfo,
    run: RunReport,
    stages: Vec<StageReport>,
}

/// Waits for the plan, streams `texts` through the fleet, asks every stage for its counters,
/// then stops the fleet once its nodes closed their last metrics window.
fn run_pipeline(
    fleet: &DemoFleet,
    mut nodes: Fleet,
    texts: &[String],
    show_plan: bool,
) -> Result<Measured> {
    let settings = fleet.client_settings(fleet::CLIENT)?;
    let keys = Keys::new(&settings.fleet);
    let session = zenoh::open(settings.zenoh_config()?)
        .wait()
        .map_err(|e| anyhow!("opening the zenoh session: {e}"))?;
    // The client may not read the stages' stats: the fleet's observer asks them. Opened now,
    // so that it has linked to every node by the time it asks.
    let observer = fleet.observer_session()?;
    let plan = nodes.wait_for_plan(&session, &keys, Duration::from_secs(180))?;
    if show_plan {
        summary::print_plan(&plan);
    }
    let run = run_texts_on(&session, &keys, &settings, texts)?;
    let mut stages = Vec::new();
    for s in &plan.stages {
        let stats = node_stats(&observer, &keys, &s.node, Duration::from_secs(5))?;
        stages.push(stage_report(s, &stats, run.elapsed_s));
    }
    // Let every node close the window the run ended in before the fleet stops.
    std::thread::sleep(Duration::from_secs_f64(METRICS_WINDOW_S * 1.5));
    let _ = observer.close().wait();
    let _ = session.close().wait();
    drop(nodes);
    Ok(Measured { plan, run, stages })
}

/// The report: what was run, the plan and its stages, and the pipeline beside the baseline.
fn demo_report(
    args: &Args,
    data: Dataset,
    baseline: Baseline,
    measured: Measured,
    chart: PathBuf,
    metrics_files: Vec<(String, PathBuf)>,
    links: String,
) -> DemoReport {
    let labels = nearest_neighbour(
        &baseline.reference,
        &data.train_labels,
        &measured.run.outputs,
    );
    let device = baseline.device;
    DemoReport {
        model: measured.plan.model.clone(),
        links,
        classes: data.classes,
        test_items: data.test_texts.len(),
        reference_items: data.train_texts.len(),
        ubatch: args.ubatch,
        bits: args.bits,
        clip: args.clip.clone(),
        plan: measured.plan,
        stages: measured.stages,
        pipeline_accuracy: accuracy(&labels, &data.test_labels),
        single_device_items_per_s: baseline.items_per_s,
        single_device_accuracy: accuracy(&baseline.labels, &data.test_labels),
        single_device: format!(
            "{} ({} thread(s), emulated slowdown x{})",
            device.name, device.threads, device.slowdown
        ),
        agreement: accuracy(&labels, &baseline.labels),
        pipeline: measured.run,
        chart,
        metrics_files,
    }
}

/// Writes `report.json` to `out`, then prints the report as JSON or as the summary.
fn write_report(demo: &DemoReport, out: &Path, json: bool) -> Result<()> {
    let path = out.join("report.json");
    std::fs::write(&path, serde_json::to_vec_pretty(demo)?)?;
    if json {
        println!("{}", serde_json::to_string(demo)?);
    } else {
        summary::print_summary(demo, &path);
    }
    Ok(())
}
