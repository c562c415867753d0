//! `quantpipe demo`: a leader and three heterogeneous device nodes as separate processes on
//! loopback, MiniLM over the BBC News test articles, compared with one device at fp32.
//!
//! Heterogeneity: the nodes get different libtorch thread counts and an *emulated* slowdown factor
//! (each forward pass is padded to `factor x` its profiled time), so a 2-core machine stands in
//! for a fleet of slower boards; padded stages leave the cores to the others, which keeps the
//! emulated devices' speed from depending on how the real cores are shared.

use crate::chart::{write_chart, ChartData, StageBar, Timeline};
use crate::datasets::bbc::{Article, Corpus};
use crate::eval::metrics::nearest_neighbour;
use crate::logging::LogFormat;
use anyhow::{anyhow, bail, Context, Result};
use quantpipe_actors::runtime::client::{node_stats, run_texts_on, RunReport};
use quantpipe_actors::runtime::config::{Role, Settings};
use quantpipe_actors::runtime::metrics::{read_jsonl, MetricsRow};
use quantpipe_launcher::{config_file, loopback, Fleet, Place};
use quantpipe_messages::{Keys, PlanInfo};
use quantpipe_model_shards::preprocess::TextTokenizer;
use quantpipe_model_shards::profile::profile_model;
use quantpipe_model_shards::{ModelSource, UnitRange};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
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
}

/// One emulated device of the demo fleet.
struct DemoDevice {
    name: &'static str,
    threads: i32,
    slowdown: f64,
}

const DEVICES: [DemoDevice; 3] = [
    DemoDevice {
        name: "board-a",
        threads: 1,
        slowdown: 4.0,
    },
    DemoDevice {
        name: "board-b",
        threads: 1,
        slowdown: 6.0,
    },
    DemoDevice {
        name: "laptop-c",
        threads: 2,
        slowdown: 3.0,
    },
];

#[derive(Serialize)]
struct StageReport {
    node: String,
    threads: i32,
    emulated_slowdown: f64,
    units: [usize; 2],
    out_bits: u8,
    predicted_compute_s: f64,
    microbatches: u64,
    busy_forward_s: f64,
    busy_codec_s: f64,
    /// Busy time over the run's wall time.
    utilisation: f64,
    dropped: u64,
}

#[derive(Serialize)]
struct DemoReport {
    model: String,
    classes: Vec<String>,
    test_items: usize,
    reference_items: usize,
    ubatch: usize,
    bits: u8,
    clip: String,
    plan: PlanInfo,
    stages: Vec<StageReport>,
    pipeline: RunReport,
    pipeline_accuracy: f64,
    /// The fastest demo device (threads and emulated slowdown) running the whole model at fp32.
    single_device_items_per_s: f64,
    single_device_accuracy: f64,
    single_device: String,
    /// Test items whose 1-NN label is the same as the single-device fp32 one.
    agreement: f64,
    /// The PNG chart: per-stage utilisation, throughput, per-window items/s.
    chart: PathBuf,
    /// Each device node's per-window metrics (JSON lines), by node name.
    metrics_files: Vec<(String, PathBuf)>,
}

/// Length of the nodes' metrics windows, seconds.
const METRICS_WINDOW_S: f64 = 1.0;

/// Embeds texts on this process (fp32, whole model), `ubatch` at a time; answers rows and the
/// forward seconds (emulated slowdown applied to the time, as the nodes do).
fn embed_local(
    source: &ModelSource,
    tok: &TextTokenizer,
    texts: &[String],
    ubatch: usize,
) -> Result<(Vec<Vec<f32>>, f64)> {
    let shard = source.load_shard(UnitRange::full(source.config().units()))?;
    let mut rows = Vec::with_capacity(texts.len());
    let mut secs = 0.0;
    for chunk in texts.chunks(ubatch) {
        let refs: Vec<&str> = chunk.iter().map(|s| s.as_str()).collect();
        let b = tok.encode_batch(&refs)?;
        let start = Instant::now();
        let out = tch::no_grad(|| shard.forward(&b))?;
        secs += start.elapsed().as_secs_f64();
        let m: Vec<Vec<f32>> = Vec::<Vec<f32>>::try_from(&out.tensors[0])?;
        rows.extend(m);
    }
    Ok((rows, secs))
}

pub fn run(args: Args, log_format: LogFormat) -> Result<()> {
    if !args.model_dir.join("config.json").exists() {
        bail!(
            "no model in {} (run scripts/setup to fetch MiniLM)",
            args.model_dir.display()
        );
    }
    let model_dir = args.model_dir.canonicalize()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let out = args.out.canonicalize()?;
    let corpus = Corpus::load(&args.bbc)?;
    let (train_idx, test_idx) = corpus.split();
    let pick = |idx: &[usize], n: usize| -> Vec<&Article> {
        idx.iter().take(n).map(|&i| &corpus.articles[i]).collect()
    };
    let test = pick(&test_idx, args.limit);
    let train = pick(&train_idx, args.train_limit);
    let test_texts: Vec<String> = test.iter().map(|a| a.text.clone()).collect();
    let train_texts: Vec<String> = train.iter().map(|a| a.text.clone()).collect();
    let test_labels: Vec<usize> = test.iter().map(|a| a.label).collect();
    let train_labels: Vec<usize> = train.iter().map(|a| a.label).collect();

    // Reference embeddings and the single-device fp32 baseline, on this process.
    let source = ModelSource::open_dir(&model_dir)?;
    let tok = TextTokenizer::from_file(&model_dir.join("tokenizer.json"), 128)?;
    tch::set_num_threads(2);
    let (reference, _) = embed_local(&source, &tok, &train_texts, 32)?;
    let best = DEVICES
        .iter()
        .min_by(|a, b| (a.slowdown / a.threads as f64).total_cmp(&(b.slowdown / b.threads as f64)))
        .expect("demo devices");
    tch::set_num_threads(best.threads);
    let (single_rows, single_s) = embed_local(&source, &tok, &test_texts, args.ubatch)?;
    let single_items_per_s = test_texts.len() as f64 / (single_s * best.slowdown);
    let single_pred = nearest_neighbour(&reference, &train_labels, &single_rows);

    // Profiles at 1 and 2 threads, measured here one after the other on an otherwise idle
    // machine (nodes profiling at once would slow each other down); each node scales its
    // thread count's profile by its emulated slowdown.
    let mut profiles = std::collections::BTreeMap::new();
    for threads in DEVICES
        .iter()
        .map(|d| d.threads)
        .collect::<std::collections::BTreeSet<_>>()
    {
        tch::set_num_threads(threads);
        let p = tch::no_grad(|| profile_model(&source, args.ubatch, 1, 3))?;
        let path = out.join(format!("profile-{threads}t.json"));
        std::fs::write(&path, serde_json::to_vec(&p)?)?;
        profiles.insert(threads, path);
    }

    // The fleet: configs and logs in the output folder.
    let fleet = format!("demo{}", std::process::id());
    let exe = std::env::current_exe()?;
    let mut nodes = Fleet::new(&exe, &out).log_format(log_format.as_arg());
    let leader_port = args.base_port;
    let node = |name: &str, role: Role, port: u16, connect: Option<u16>| {
        let connect = connect.map(loopback).into_iter().collect();
        config_file::peer(
            &fleet,
            name,
            role,
            &model_dir,
            vec![loopback(port)],
            connect,
        )
    };
    let mut leader = node("leader", Role::Leader, leader_port, None);
    leader.leader.expected = DEVICES.iter().map(|d| d.name.to_string()).collect();
    leader.leader.wait_s = 120.0;
    leader.leader.ubatch = args.ubatch;
    leader.leader.bits = args.bits;
    nodes.start(&leader, Place::Here)?;
    let mut metrics_files = Vec::new();
    for (i, d) in DEVICES.iter().enumerate() {
        let metrics = out.join(format!("metrics-{}.jsonl", d.name));
        // The writer appends: start each demo with fresh files.
        if metrics.exists() {
            std::fs::remove_file(&metrics)
                .with_context(|| format!("removing the old {}", metrics.display()))?;
        }
        let port = leader_port + 1 + i as u16;
        let mut device = node(d.name, Role::Device, port, Some(leader_port));
        device.device.threads = d.threads;
        device.device.slowdown = d.slowdown;
        device.device.profile_ubatch = args.ubatch;
        device.device.profile_file = Some(profiles[&d.threads].clone());
        device.quantizer.clip = args.clip.clone();
        device.metrics.file = Some(metrics.clone());
        device.metrics.window_s = METRICS_WINDOW_S;
        nodes.start(&device, Place::Here)?;
        metrics_files.push((d.name.to_string(), metrics));
    }
    eprintln!(
        "started leader and {} nodes (fleet {fleet}; logs in {})",
        DEVICES.len(),
        out.display()
    );

    // The pipeline.
    let mut client = node(
        "demo-client",
        Role::Device,
        leader_port + 10,
        Some(leader_port),
    );
    client.client.window = 4;
    client.client.plan_wait_s = 5.0;
    client.client.result_timeout_s = 120.0;
    // Read back like any client's settings: `QUANTPIPE_*` overrides apply.
    let settings = Settings::load(&config_file::write(&out, &client)?)?;
    let keys = Keys::new(&settings.fleet);
    let session = zenoh::open(settings.zenoh_config()?)
        .wait()
        .map_err(|e| anyhow!("opening the zenoh session: {e}"))?;
    let plan = nodes.wait_for_plan(&session, &keys, Duration::from_secs(180))?;
    // With --json, stdout carries the report alone (the plan is in it).
    if !args.json {
        print_plan(&plan);
    }
    let report = run_texts_on(&session, &keys, &settings, &test_texts)?;
    let pred = nearest_neighbour(&reference, &train_labels, &report.outputs);
    let acc = |p: &[usize]| {
        p.iter().zip(&test_labels).filter(|(a, b)| a == b).count() as f64 / p.len() as f64
    };
    let agreement = pred
        .iter()
        .zip(&single_pred)
        .filter(|(a, b)| a == b)
        .count() as f64
        / pred.len() as f64;

    let mut stages = Vec::new();
    for s in &plan.stages {
        let st = node_stats(&session, &keys, &s.node, Duration::from_secs(5))?;
        let d = DEVICES.iter().find(|d| d.name == s.node);
        stages.push(StageReport {
            node: s.node.clone(),
            threads: d.map(|d| d.threads).unwrap_or(0),
            emulated_slowdown: d.map(|d| d.slowdown).unwrap_or(1.0),
            units: [s.l, s.r],
            out_bits: s.out_bits,
            predicted_compute_s: s.compute_s,
            microbatches: st.microbatches,
            busy_forward_s: st.busy_forward_s,
            busy_codec_s: st.busy_codec_s,
            utilisation: (st.busy_forward_s + st.busy_codec_s) / report.elapsed_s,
            dropped: st.dropped_malformed
                + st.dropped_foreign_fleet
                + st.dropped_stale_epoch
                + st.dropped_wrong_stage,
        });
    }
    // Let every node close the window the run ended in before the fleet stops.
    std::thread::sleep(Duration::from_secs_f64(METRICS_WINDOW_S * 1.5));
    let _ = session.close().wait();
    drop(nodes);

    let chart = out.join("demo.png");
    let mut rows = Vec::new();
    for (name, path) in &metrics_files {
        rows.push((name.clone(), read_jsonl(path)?));
    }
    let chart_data = ChartData {
        title: format!(
            "{} over {} stages, cuts at {} bits ({} BBC test articles)",
            plan.model,
            plan.stages.len(),
            args.bits,
            test_texts.len()
        ),
        stages: stages
            .iter()
            .map(|s| StageBar {
                label: format!("{} ({}..{})", s.node, s.units[0], s.units[1]),
                forward: s.busy_forward_s / report.elapsed_s,
                codec: s.busy_codec_s / report.elapsed_s,
            })
            .collect(),
        throughput: vec![
            ("pipeline".into(), report.items_per_s),
            ("planner bound".into(), plan.predicted_items_per_s),
            ("1 device fp32".into(), single_items_per_s),
        ],
        timelines: timelines(&rows),
    };
    write_chart(&chart, &chart_data)?;

    let demo = DemoReport {
        model: plan.model.clone(),
        classes: corpus.classes.clone(),
        test_items: test_texts.len(),
        reference_items: train_texts.len(),
        ubatch: args.ubatch,
        bits: args.bits,
        clip: args.clip.clone(),
        plan: plan.clone(),
        stages,
        pipeline_accuracy: acc(&pred),
        single_device_items_per_s: single_items_per_s,
        single_device_accuracy: acc(&single_pred),
        single_device: format!(
            "{} ({} thread(s), emulated slowdown x{})",
            best.name, best.threads, best.slowdown
        ),
        agreement,
        pipeline: report,
        chart,
        metrics_files,
    };
    let path = out.join("report.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&demo)?)?;
    if args.json {
        println!("{}", serde_json::to_string(&demo)?);
    } else {
        print_summary(&demo, &path);
    }
    Ok(())
}

/// Per-node items/s per window while the node held a stage, on a common clock: seconds since
/// the earliest such window of any node.
fn timelines(rows: &[(String, Vec<MetricsRow>)]) -> Vec<Timeline> {
    let staged = |r: &&MetricsRow| r.stage.is_some();
    let t0 = rows
        .iter()
        .flat_map(|(_, r)| r.iter().filter(staged))
        .map(|r| r.start_unix_s)
        .fold(f64::INFINITY, f64::min);
    rows.iter()
        .map(|(name, r)| Timeline {
            label: name.clone(),
            points: r
                .iter()
                .filter(staged)
                .map(|r| (r.start_unix_s + r.window_s - t0, r.items_per_s))
                .collect(),
        })
        .collect()
}

fn print_plan(plan: &PlanInfo) {
    println!(
        "plan (epoch {}, {}; predicted {:.2} items/s):",
        plan.epoch, plan.source, plan.predicted_items_per_s
    );
    for (i, s) in plan.stages.iter().enumerate() {
        println!(
            "  stage {i}: {:<9} units {:>2}..{:<2}  output {:>2} bits  predicted {:.1} ms/microbatch",
            s.node, s.l, s.r, s.out_bits, s.compute_s * 1e3
        );
    }
}

fn print_summary(d: &DemoReport, path: &Path) {
    let p = &d.pipeline;
    println!(
        "{} on {} BBC test articles (1-NN over {} training articles), microbatch {}, cuts at {} bits ({}):",
        d.model, d.test_items, d.reference_items, d.ubatch, d.bits, d.clip
    );
    for s in &d.stages {
        println!(
            "  {:<9} {} thread(s), emulated x{:<4} units {:>2}..{:<2} busy {:>5.1}%  ({} microbatches, {} dropped)",
            s.node, s.threads, s.emulated_slowdown, s.units[0], s.units[1], s.utilisation * 100.0, s.microbatches, s.dropped
        );
    }
    println!(
        "  pipeline     : {:.2} items/s, accuracy {:.2}%, microbatch latency p50 {:.0} ms p99 {:.0} ms",
        p.items_per_s, d.pipeline_accuracy * 100.0, p.latency_p50_s * 1e3, p.latency_p99_s * 1e3
    );
    println!(
        "  single device: {:.2} items/s, accuracy {:.2}% (fp32, {})",
        d.single_device_items_per_s,
        d.single_device_accuracy * 100.0,
        d.single_device
    );
    println!(
        "  pipeline labels equal to single-device fp32 labels: {:.2}%",
        d.agreement * 100.0
    );
    println!("report: {}", path.display());
    println!("chart: {}", d.chart.display());
    for (name, f) in &d.metrics_files {
        println!("metrics of {name}: {}", f.display());
    }
}
