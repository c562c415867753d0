//! `quantpipe demo`: a leader and three heterogeneous device nodes as separate processes on
//! loopback, MiniLM over BBC News test articles, telling the product's story in about a minute:
//! the planner's plan; the link between stages stepping down and back up while each stage's
//! bitwidth follows it and throughput holds its target; a device leaving mid-run and the fleet
//! re-planning with every item answered once; then accuracy beside one device at fp32.
//!
//! Everything slow or unreliable is emulated on one host, without root: each node's speed (its
//! libtorch thread count and a slowdown factor: each forward pass is padded to `factor x` its
//! profiled time, which leaves the cores to the others) and each device's uplink (its data
//! messages are held until they would have crossed a link following the story's bandwidth
//! trace, `[emulation] link_trace`).

mod chart;
mod dataset;
mod devices;
mod figures;
mod fleet;
mod local;
mod serve;
mod story;
mod summary;
mod timeline;

use crate::eval::metrics::nearest_neighbour;
use crate::logging::LogFormat;
use anyhow::{anyhow, bail, Context, Result};
use chart::ChartInputs;
use dataset::Dataset;
use figures::{accuracy, stage_report, StageReport};
use fleet::{DemoFleet, EmulatedLink};
use local::Baseline;
use quantpipe_actors::runtime::client::{node_stats, run_texts_on_with_progress, RunReport};
use quantpipe_actors::runtime::config::ClientSettings;
use quantpipe_actors::runtime::metrics::read_jsonl;
use quantpipe_launcher::Fleet;
use quantpipe_messages::{envelope, Keys, PlanInfo};
use quantpipe_model_shards::preprocess::TextTokenizer;
use quantpipe_model_shards::ModelSource;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use story::Story;
use timeline::{BitsByPhase, Timeline};
use zenoh::Wait;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model folder every node loads its shard from.
    #[arg(long, default_value = "data/minilm")]
    model_dir: PathBuf,
    /// BBC News folder (`<class>/*.txt`).
    #[arg(long, default_value = "data/bbc")]
    bbc: PathBuf,
    /// Test articles (the run cycles through them for as long as the story lasts).
    #[arg(long, default_value_t = 200)]
    limit: usize,
    /// Training articles embedded as the 1-NN reference.
    #[arg(long, default_value_t = 300)]
    train_limit: usize,
    /// Items per microbatch.
    #[arg(long, default_value_t = 8)]
    ubatch: usize,
    /// Bitwidth of the plan's cuts (32 = raw f32, 1..=16 quantized): the most the adaptive
    /// bitwidth sends.
    #[arg(long, default_value_t = 8)]
    bits: u8,
    /// Clipping of quantized cuts: naive, aciq, ds-aciq.
    #[arg(long, default_value = "ds-aciq")]
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
    /// Distinct test articles; the run cycles through them (`items`).
    pub test_items: usize,
    pub items: usize,
    pub reference_items: usize,
    pub ubatch: usize,
    pub bits: u8,
    pub clip: String,
    /// The first plan.
    pub plan: PlanInfo,
    /// Every plan of the run, numbered in order, with the second it was heard (the first at 0).
    pub plans: Vec<NumberedPlan>,
    /// The stages of the plan the run ended under.
    pub stages: Vec<StageReport>,
    pub pipeline: RunReport,
    pub pipeline_accuracy: f64,
    /// The fastest demo device (threads and emulated slowdown) running the whole model at fp32.
    pub single_device_items_per_s: f64,
    pub single_device_accuracy: f64,
    pub single_device: String,
    /// Items whose 1-NN label is the same as the single-device fp32 one.
    pub agreement: f64,
    /// The story: the emulated link's trace, the target, when the device left.
    pub story: Story,
    pub timeline: Timeline,
    /// Mean bitwidth sent before, during and after the low step.
    pub bits_by_phase: BitsByPhase,
    pub bits_followed_link: bool,
    /// Every item got its answer, exactly one (the client keeps the first and drops others).
    pub answered_once: bool,
    /// The PNG chart of the timeline.
    pub chart: PathBuf,
    /// Each device node's per-window metrics (JSON lines), by node name.
    pub metrics_files: Vec<(String, PathBuf)>,
}

#[derive(Serialize, Clone)]
pub struct NumberedPlan {
    pub number: usize,
    pub at_s: f64,
    pub plan: PlanInfo,
}

/// Length of the nodes' metrics windows, seconds.
const METRICS_WINDOW_S: f64 = 1.0;

/// The client's items/s is shown over this many seconds (a result carries a whole microbatch).
const RATE_SPAN_S: f64 = 3.0;

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

    // The story is sized from the profiles: a target below what the fleet reaches, and link
    // rates around what 8 bits need at that target.
    let balanced =
        devices::balanced_items_per_s(&devices::DEVICES, &profiles.whole_model_s, args.ubatch);
    let max_len = ClientSettings::default().max_len as f64;
    let mbit_per_item = max_len * source.config().hidden_size as f64 * 8.0 / 1e6;
    let story = story::plan(balanced, mbit_per_item);
    let trace = out.join("link-trace.csv");
    std::fs::write(&trace, story.trace_csv())
        .with_context(|| format!("writing {}", trace.display()))?;

    let fleet = DemoFleet::new(
        format!("demo{}", std::process::id()),
        &model_dir,
        &out,
        args.base_port,
    )?;
    let link = EmulatedLink {
        trace,
        story: &story,
    };
    let started = fleet.start(&args, &profiles.files, Some(&link), log_format)?;
    let texts = story::cycled(&data.test_texts, story.items);
    // With --json, stdout carries the report alone (the plan is in it).
    let measured = run_pipeline(&fleet, started.nodes, &texts, &story, !args.json)?;

    let mut rows = Vec::new();
    for (name, file) in &started.metrics_files {
        rows.push((name.clone(), read_jsonl(file)?));
    }
    let timeline = Timeline {
        trace: story.steps().to_vec(),
        target_items_per_s: story.target_items_per_s,
        items_per_s: timeline::items_per_s(&measured.arrivals(args.ubatch), RATE_SPAN_S),
        links: timeline::links(&rows, measured.t0_unix_s),
        left: measured.left.clone(),
        replans: measured
            .plans
            .iter()
            .skip(1)
            .map(|p| (p.number, p.at_s))
            .collect(),
    };
    let chart = out.join("demo.png");
    chart::write(
        &chart,
        &ChartInputs {
            title: format!(
                "{} on {} emulated devices: link, bitwidth, throughput and a device leaving",
                measured.plans[0].plan.model,
                devices::DEVICES.len()
            ),
            timeline: &timeline,
            plans: &measured.plans,
        },
    )?;
    let demo = demo_report(
        &args,
        data,
        baseline,
        measured,
        story,
        timeline,
        chart,
        started.metrics_files,
        fleet.links.describe(),
    );
    write_report(&demo, &out, args.json)
}

/// `--serve PORT`: the demo fleet (profiled here as for the measured run, no emulated link)
/// behind a gateway.
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
    let started = fleet.start(args, &profiles.files, None, log_format)?;
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

/// What the pipeline run measured: the plans, the client's figures, each final stage's, and
/// when the device left.
struct Measured {
    plans: Vec<NumberedPlan>,
    run: RunReport,
    stages: Vec<StageReport>,
    left: Option<(String, f64)>,
    /// The run's start, seconds since the Unix epoch (the timeline's 0).
    t0_unix_s: f64,
}

impl Measured {
    /// Each result's arrival (seconds since the start) and its items: whole microbatches, the
    /// last one what is left.
    fn arrivals(&self, ubatch: usize) -> Vec<(f64, usize)> {
        let mut left = self.run.items;
        self.run
            .arrivals_s
            .iter()
            .map(|&t| {
                let n = ubatch.min(left);
                left -= n;
                (t, n)
            })
            .collect()
    }
}

/// The node that leaves: the middle stage of the first plan (the last of a shorter one), so
/// that both its neighbours are re-planned around it.
fn leaving_node(plan: &PlanInfo) -> Option<String> {
    if plan.stages.len() < 2 {
        return None;
    }
    Some(plan.stages[plan.stages.len() / 2].node.clone())
}

/// Waits for the plan, streams `texts` through the fleet while the story runs (a device is
/// killed when the story says), asks every final stage for its counters, then stops the fleet
/// once its nodes closed their last metrics window.
fn run_pipeline(
    fleet: &DemoFleet,
    mut nodes: Fleet,
    texts: &[String],
    story: &Story,
    show: bool,
) -> Result<Measured> {
    let settings = fleet.client_settings(fleet::CLIENT)?;
    let keys = Keys::new(&settings.fleet);
    let session = zenoh::open(settings.zenoh_config()?)
        .wait()
        .map_err(|e| anyhow!("opening the zenoh session: {e}"))?;
    // The client may not read the stages' stats: the fleet's observer asks them. Opened now,
    // so that it has linked to every node by the time it asks.
    let observer = fleet.observer_session()?;
    let first = nodes.wait_for_plan(&session, &keys, Duration::from_secs(180))?;
    if show {
        summary::print_plan(1, &first);
        summary::print_story_start(story, texts.len());
    }
    let leaving = leaving_node(&first);
    let first_epoch = first.epoch;
    let mut plans = vec![NumberedPlan {
        number: 1,
        at_s: 0.0,
        plan: first,
    }];
    let start = Instant::now();
    // Each plan announcement with the second it arrived (the run's results may pause around a
    // re-plan, so the moment is taken where it is heard).
    let announced = Arc::new(Mutex::new(Vec::<(f64, Vec<u8>)>::new()));
    let announcements = {
        let announced = announced.clone();
        session
            .declare_subscriber(keys.plan_changed())
            .callback(move |s| {
                let at = start.elapsed().as_secs_f64();
                if let Ok(mut a) = announced.lock() {
                    a.push((at, s.payload().to_bytes().into_owned()));
                }
            })
            .wait()
            .map_err(|e| anyhow!("subscribing to plan changes: {e}"))?
    };
    let mut left: Option<(String, f64)> = None;
    let t0_unix_s = unix_s();
    let mut progress = |answered: usize| {
        let t = start.elapsed().as_secs_f64();
        if let (None, Some(node)) = (&left, &leaving) {
            if story.leaves_now(t, answered) {
                match nodes.procs().kill(node) {
                    Ok(()) => left = Some((node.clone(), t)),
                    Err(e) => tracing::warn!("stopping {node}: {e:#}"),
                }
            }
        }
    };
    let run = run_texts_on_with_progress(&session, &keys, &settings, texts, &mut progress)?;
    drop(announcements);
    let heard = announced.lock().map(|a| a.clone()).unwrap_or_default();
    for (at_s, bytes) in heard {
        match envelope::decode::<PlanInfo>(&bytes, &keys.fleet) {
            Ok(p) if p.epoch != first_epoch && plans.iter().all(|k| k.plan.epoch != p.epoch) => {
                plans.push(NumberedPlan {
                    number: plans.len() + 1,
                    at_s,
                    plan: p,
                })
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("ignoring a plan announcement: {e}"),
        }
    }
    // The plan the run ended under, had its announcement been missed.
    if plans.iter().all(|k| k.plan.epoch != run.plan.epoch) {
        plans.push(NumberedPlan {
            number: plans.len() + 1,
            at_s: run.elapsed_s,
            plan: run.plan.clone(),
        });
    }
    let mut stages = Vec::new();
    for s in &run.plan.stages {
        let stats = node_stats(&observer, &keys, &s.node, Duration::from_secs(5))?;
        stages.push(stage_report(s, &stats, run.elapsed_s));
    }
    // Let every node close the window the run ended in before the fleet stops.
    std::thread::sleep(Duration::from_secs_f64(METRICS_WINDOW_S * 1.5));
    let _ = observer.close().wait();
    let _ = session.close().wait();
    drop(nodes);
    Ok(Measured {
        plans,
        run,
        stages,
        left,
        t0_unix_s,
    })
}

fn unix_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The report: what was run, the plans and the final stages, the story's timeline, and the
/// pipeline beside the baseline.
#[allow(clippy::too_many_arguments)]
fn demo_report(
    args: &Args,
    data: Dataset,
    baseline: Baseline,
    measured: Measured,
    story: Story,
    timeline: Timeline,
    chart: PathBuf,
    metrics_files: Vec<(String, PathBuf)>,
    links: String,
) -> DemoReport {
    let run = measured.run;
    let labels = nearest_neighbour(&baseline.reference, &data.train_labels, &run.outputs);
    let truth = story::cycled(&data.test_labels, labels.len());
    let single = story::cycled(&baseline.labels, labels.len());
    let answered_once = run.items == story.items
        && run.outputs.len() == story.items
        && run.outputs.iter().all(|o| !o.is_empty());
    let bits_by_phase = BitsByPhase::of(&timeline.links, &story);
    let device = baseline.device;
    DemoReport {
        model: measured.plans[0].plan.model.clone(),
        links,
        classes: data.classes,
        test_items: data.test_texts.len(),
        items: story.items,
        reference_items: data.train_texts.len(),
        ubatch: args.ubatch,
        bits: args.bits,
        clip: args.clip.clone(),
        plan: measured.plans[0].plan.clone(),
        plans: measured.plans,
        stages: measured.stages,
        pipeline_accuracy: accuracy(&labels, &truth),
        single_device_items_per_s: baseline.items_per_s,
        single_device_accuracy: accuracy(&baseline.labels, &data.test_labels),
        single_device: format!(
            "{} ({} thread(s), emulated slowdown x{})",
            device.name, device.threads, device.slowdown
        ),
        agreement: accuracy(&labels, &single),
        pipeline: run,
        bits_followed_link: bits_by_phase.followed_the_link(),
        bits_by_phase,
        answered_once,
        story,
        timeline,
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

#[cfg(test)]
mod tests {
    use super::*;
    use quantpipe_messages::PlanStage;

    fn plan(nodes: &[&str]) -> PlanInfo {
        PlanInfo {
            epoch: 1,
            model: "m".into(),
            ubatch: 8,
            source: "planner".into(),
            stages: nodes
                .iter()
                .map(|n| PlanStage {
                    node: n.to_string(),
                    l: 1,
                    r: 1,
                    out_bits: 8,
                    compute_s: 0.1,
                    transfer_s: 0.0,
                })
                .collect(),
            predicted_items_per_s: 1.0,
        }
    }

    #[test]
    fn the_middle_stage_leaves_and_a_single_stage_never_does() {
        assert_eq!(leaving_node(&plan(&["a", "b", "c"])).as_deref(), Some("b"));
        assert_eq!(leaving_node(&plan(&["a", "b"])).as_deref(), Some("b"));
        assert_eq!(leaving_node(&plan(&["a"])), None);
    }
}
