//! `quantpipe bench shard`: model-shards against PyTorch eager (Hugging Face transformers) on the
//! same libtorch, same weights, same thread count, measured in one run, alternating rounds.

use super::print;
use anyhow::{bail, Context, Result};
use quantpipe_model_shards::presets::export_preset;
use quantpipe_model_shards::profile::{median, profile_model, sample_input};
use quantpipe_model_shards::{ModelSource, UnitRange};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// ViT preset to compare.
    #[arg(long, default_value = "vit-base-patch16-224")]
    preset: String,
    #[arg(long, default_value_t = 8)]
    ubatch: usize,
    /// Intra-op threads for both sides.
    #[arg(long, default_value_t = 2)]
    threads: i32,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    #[arg(long, default_value_t = 7)]
    repeats: usize,
    /// Alternating rounds of (quantpipe, transformers); each side keeps its best round.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct UnitRow {
    unit: usize,
    quantpipe_s: f64,
    transformers_s: f64,
    ratio: f64,
}

#[derive(Serialize)]
struct Report {
    model: String,
    ubatch: usize,
    threads: i32,
    units: Vec<UnitRow>,
    /// Sums of per-unit medians.
    quantpipe_units_total_s: f64,
    transformers_units_total_s: f64,
    units_ratio: f64,
    /// Whole-model forward medians (one call each side).
    quantpipe_whole_s: f64,
    transformers_whole_s: f64,
    whole_ratio: f64,
}

#[derive(Deserialize)]
struct PythonTimes {
    units: Vec<f64>,
    whole_s: f64,
}

fn python() -> Result<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    if !python.exists() {
        bail!(
            "{} is missing: run scripts/setup --tests first",
            python.display()
        );
    }
    Ok(python)
}

fn transformers_round(dir: &Path, args: &Args) -> Result<PythonTimes> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/bench/hf_vit_units.py");
    let out = Command::new(python()?)
        .arg(script)
        .arg(dir)
        .args(
            [
                args.ubatch,
                args.threads as usize,
                args.warmup,
                args.repeats,
            ]
            .map(|v| v.to_string()),
        )
        .output()
        .context("running the transformers timing script")?;
    if !out.status.success() {
        bail!(
            "transformers timing failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn quantpipe_round(source: &ModelSource, args: &Args) -> Result<(Vec<f64>, f64)> {
    let profile = profile_model(source, args.ubatch, args.warmup, args.repeats)?;
    let shard = source.load_shard(UnitRange::full(source.config().units()))?;
    let input = sample_input(source.config(), args.ubatch as i64, 0);
    let mut whole = Vec::new();
    for r in 0..args.warmup + args.repeats {
        let start = Instant::now();
        shard.forward(&input)?;
        if r >= args.warmup {
            whole.push(start.elapsed().as_secs_f64());
        }
    }
    Ok((
        profile.units.iter().map(|u| u.time_s).collect(),
        median(&mut whole),
    ))
}

fn elementwise_min(a: &mut Vec<f64>, b: Vec<f64>) {
    if a.is_empty() {
        *a = b;
    } else {
        a.iter_mut().zip(b).for_each(|(x, y)| *x = x.min(y));
    }
}

pub fn run(args: Args) -> Result<()> {
    tch::set_num_threads(args.threads);
    let dir = tempfile_dir()?;
    export_preset(
        &args.preset,
        quantpipe_model_shards::DEFAULT_PRESET_SEED,
        dir.path(),
    )?;
    let source = ModelSource::open_dir(dir.path())?;
    let (mut qp_units, mut hf_units) = (Vec::new(), Vec::new());
    let (mut qp_whole, mut hf_whole) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..args.rounds.max(1) {
        let (units, whole) = quantpipe_round(&source, &args)?;
        elementwise_min(&mut qp_units, units);
        qp_whole = qp_whole.min(whole);
        let hf = transformers_round(dir.path(), &args)?;
        elementwise_min(&mut hf_units, hf.units);
        hf_whole = hf_whole.min(hf.whole_s);
    }
    let units: Vec<UnitRow> = qp_units
        .iter()
        .zip(&hf_units)
        .enumerate()
        .map(|(i, (&q, &h))| UnitRow {
            unit: i + 1,
            quantpipe_s: q,
            transformers_s: h,
            ratio: q / h,
        })
        .collect();
    let (qt, ht) = (qp_units.iter().sum::<f64>(), hf_units.iter().sum::<f64>());
    let report = Report {
        model: args.preset.clone(),
        ubatch: args.ubatch,
        threads: args.threads,
        units,
        quantpipe_units_total_s: qt,
        transformers_units_total_s: ht,
        units_ratio: qt / ht,
        quantpipe_whole_s: qp_whole,
        transformers_whole_s: hf_whole,
        whole_ratio: qp_whole / hf_whole,
    };
    print(&report, args.json, table)
}

/// The report as a per-unit table and the totals.
fn table(r: &Report) -> String {
    let mut s = format!(
        "{} ubatch {} threads {}\nunit  quantpipe_ms  transformers_ms  ratio\n",
        r.model, r.ubatch, r.threads
    );
    for u in &r.units {
        s += &format!(
            "{:>4}  {:>12.2}  {:>15.2}  {:>5.2}\n",
            u.unit,
            u.quantpipe_s * 1e3,
            u.transformers_s * 1e3,
            u.ratio
        );
    }
    s += &format!(
        "sum of units: {:.1} ms vs {:.1} ms (ratio {:.3})\nwhole model:  {:.1} ms vs {:.1} ms (ratio {:.3})",
        r.quantpipe_units_total_s * 1e3,
        r.transformers_units_total_s * 1e3,
        r.units_ratio,
        r.quantpipe_whole_s * 1e3,
        r.transformers_whole_s * 1e3,
        r.whole_ratio
    );
    s
}

fn tempfile_dir() -> Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new()
        .prefix("quantpipe-bench-")
        .tempdir()?)
}
