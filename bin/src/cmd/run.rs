//! `quantpipe run`: stream inputs through a running fleet and report throughput and latency.

use anyhow::{bail, Context, Result};
use quantpipe_actors::runtime::client::{run_texts_on_with_progress, RunReport};
use quantpipe_actors::runtime::config::Settings;
use quantpipe_actors::runtime::timeline::{AccuracyTable, TimelineSampler};
use quantpipe_messages::Keys;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use zenoh::Wait;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Client settings (TOML: fleet, name, model_dir for the tokenizer, zenoh endpoints).
    #[arg(long)]
    config: PathBuf,
    /// A text file (one item per line) or a folder of .txt files (one item each).
    #[arg(long)]
    input: PathBuf,
    /// Labels, one per line in input order: class indices, compared with the argmax of a
    /// classifier's logits.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Run only the first N items.
    #[arg(long)]
    limit: Option<usize>,
    /// Write every item's output row (JSON array of arrays).
    #[arg(long)]
    save_outputs: Option<PathBuf>,
    /// Print a JSON report on stdout.
    #[arg(long)]
    json: bool,
    /// Write the run's timeline to this folder: timeline.csv (written as the run goes),
    /// timeline.png and report.json. Per window: throughput against target, and per
    /// inter-stage link its measured bandwidth, mean bitwidth and accuracy cost.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Window of the timeline, seconds.
    #[arg(long, default_value_t = 1.0)]
    report_window_s: f64,
    /// `quantpipe eval-quant --json` output for this model: the accuracy cost of each bitwidth.
    #[arg(long)]
    accuracy_table: Option<PathBuf>,
    /// Rows of the accuracy table to use: clipping method and cut name.
    #[arg(long, default_value = "aciq")]
    accuracy_clip: String,
    #[arg(long, default_value = "mid")]
    accuracy_cut: String,
}

#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    run: &'a RunReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    accuracy: Option<f64>,
}

/// Items of a text file (non-empty lines) or a folder of `.txt` files (sorted by name).
pub fn read_texts(path: &Path) -> Result<Vec<String>> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("listing {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display())))
            .collect()
    } else {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading input {}", path.display()))?;
        Ok(text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect())
    }
}

pub fn run(args: Args) -> Result<()> {
    let settings = Settings::load(&args.config)?;
    let mut texts = read_texts(&args.input)?;
    if let Some(n) = args.limit {
        texts.truncate(n);
    }
    if texts.is_empty() {
        bail!("{} holds no input item", args.input.display());
    }
    // A progress bar on a terminal; hidden when stderr is not one (CI, logs).
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(texts.len() as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} items  {per_sec}  eta {eta}")
            .expect("a valid progress template"),
    );
    let accuracy_table = args
        .accuracy_table
        .as_ref()
        .map(|p| AccuracyTable::read(p, &args.accuracy_clip, &args.accuracy_cut))
        .transpose()?;
    if let Some(dir) = &args.report {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the report folder {}", dir.display()))?;
    }
    let keys = Keys::new(&settings.fleet);
    let session = zenoh::open(settings.zenoh_config()?)
        .wait()
        .map_err(|e| anyhow::anyhow!("opening the zenoh session: {e}"))?;
    let answered = Arc::new(AtomicUsize::new(0));
    let sampler = match &args.report {
        Some(dir) => Some(TimelineSampler::start(
            session.clone(),
            keys.clone(),
            args.report_window_s,
            answered.clone(),
            &dir.join("timeline.csv"),
            accuracy_table,
        )?),
        None => None,
    };
    let report = run_texts_on_with_progress(&session, &keys, &settings, &texts, &mut |done| {
        answered.store(done, Ordering::Relaxed);
        bar.set_position(done as u64)
    });
    bar.finish_and_clear();
    let timeline = sampler.map(TimelineSampler::finish).transpose();
    if let Err(e) = session.close().wait() {
        tracing::warn!("closing the zenoh session: {e}");
    }
    let report = report?;
    let timeline = timeline?;
    let accuracy = match &args.labels {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading labels {}", path.display()))?;
            let labels: Vec<usize> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .take(texts.len())
                .enumerate()
                .map(|(i, l)| {
                    l.trim().parse().with_context(|| {
                        format!(
                            "{} line {}: `{l}` is not a class index",
                            path.display(),
                            i + 1
                        )
                    })
                })
                .collect::<Result<_>>()?;
            if labels.len() != texts.len() {
                bail!("{} labels for {} items", labels.len(), texts.len());
            }
            let correct = report
                .outputs
                .iter()
                .zip(&labels)
                .filter(|(row, &l)| argmax(row) == l)
                .count();
            Some(correct as f64 / labels.len() as f64)
        }
    };
    if let (Some(dir), Some(rows)) = (&args.report, &timeline) {
        std::fs::write(
            dir.join("report.json"),
            serde_json::to_vec_pretty(&Report {
                run: &report,
                accuracy,
            })?,
        )
        .with_context(|| format!("writing {}", dir.join("report.json").display()))?;
        let title = format!(
            "{} on {} stage(s): adaptive quantization timeline",
            report.plan.model,
            report.plan.stages.len()
        );
        match crate::timeline_chart::write_timeline_chart(&dir.join("timeline.png"), &title, rows) {
            Ok(()) => {}
            // A run shorter than a window has no timeline to draw; the CSV says so too.
            Err(e) => tracing::warn!("{e:#}"),
        }
    }
    if let Some(path) = &args.save_outputs {
        std::fs::write(path, serde_json::to_vec(&report.outputs)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&Report {
                run: &report,
                accuracy
            })?
        );
    } else {
        println!(
            "{} items in {} microbatches of {} through {} stage(s) (plan epoch {}): {:.2} items/s; \
             microbatch latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms",
            report.items,
            report.microbatches,
            report.plan.ubatch,
            report.plan.stages.len(),
            report.plan.epoch,
            report.items_per_s,
            report.latency_p50_s * 1e3,
            report.latency_p90_s * 1e3,
            report.latency_p99_s * 1e3
        );
        if let Some(a) = accuracy {
            println!("accuracy {:.2}%", a * 100.0);
        }
    }
    Ok(())
}

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap_or(0)
}
