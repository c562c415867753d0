//! `quantpipe run`: stream inputs through a running fleet and report throughput and latency,
//! and accuracy when the inputs' labels are known. Which inputs a run takes follows the fleet's
//! model: texts for a text model, images for an image model (see [`input`]).

mod input;
mod labels;

use crate::datasets::class_labels;
use anyhow::{bail, Context, Result};
use input::{InputKind, Items, RunInput};
use quantpipe_actors::runtime::client::{run_on, ImageInputs, Inputs, RunReport, TextInputs};
use quantpipe_actors::runtime::config::Settings;
use quantpipe_actors::runtime::timeline::{AccuracyTable, TimelineRow, TimelineSampler};
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
    /// Text models: a text file (one item per line) or a folder of .txt files (one item each).
    /// Image models: a PNG/JPEG file, a folder of them, a folder of class subfolders of them
    /// (each subfolder's name is its images' label), or Fashion-MNIST (the images IDX file,
    /// e.g. t10k-images-idx3-ubyte.gz, or the folder holding it; labels from its labels file).
    #[arg(long)]
    input: PathBuf,
    /// Labels, one per line in input order: a class index or one of the model's labels
    /// (config.json id2label), compared with the argmax of a classifier's logits. Given, they
    /// replace the labels the input itself carries (class subfolders, Fashion-MNIST).
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

pub fn run(args: Args) -> Result<()> {
    let settings = Settings::load(&args.config)?;
    let input = load_input(&args.input, &settings.model_dir, args.limit)?;
    let labels = match &args.labels {
        Some(path) => Some(labels::read_labels(
            path,
            input.len(),
            &model_labels(&settings.model_dir)?,
        )?),
        None => input.labels.clone(),
    };
    let bar = progress_bar(input.len());
    let accuracy_table = args
        .accuracy_table
        .as_ref()
        .map(|p| AccuracyTable::read(p, &args.accuracy_clip, &args.accuracy_cut))
        .transpose()?;
    if let Some(dir) = &args.report {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the report folder {}", dir.display()))?;
    }
    let mut inputs: Box<dyn Inputs + '_> = match &input.items {
        Items::Texts(texts) => Box::new(TextInputs::new(
            texts,
            &settings.model_dir,
            settings.client.max_len,
        )?),
        Items::Images(images) => Box::new(ImageInputs::new(images.clone(), &settings.model_dir)?),
    };
    let (report, timeline) = stream(&args, &settings, inputs.as_mut(), accuracy_table, &bar)?;
    let accuracy = labels
        .as_ref()
        .map(|l| labels::accuracy(&report.outputs, l));
    if let (Some(dir), Some(rows)) = (&args.report, &timeline) {
        write_report_folder(dir, &report, accuracy, rows)?;
    }
    if let Some(path) = &args.save_outputs {
        std::fs::write(path, serde_json::to_vec(&report.outputs)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    print_report(&report, accuracy, args.json)
}

/// The items of `input` (and their labels, when it carries them), the first `limit` of them
/// when given; at least one, and of the kind the model in `model_dir` takes.
fn load_input(input: &Path, model_dir: &Path, limit: Option<usize>) -> Result<RunInput> {
    let kind = InputKind::of(input)?;
    let model = input::model_of(model_dir)?;
    input::check(
        kind.modality(),
        model.as_ref().map(|(a, m)| (a.as_str(), *m)),
    )
    .with_context(|| format!("--input {}", input.display()))?;
    let mut items = RunInput::read(input, &kind, model_dir)?;
    if let Some(n) = limit {
        items.truncate(n);
    }
    if items.len() == 0 {
        bail!("{} holds no input item", input.display());
    }
    Ok(items)
}

/// The model's class names (id2label), or none when the client's folder has no config.json.
fn model_labels(model_dir: &Path) -> Result<Vec<String>> {
    if model_dir.join("config.json").exists() {
        class_labels::id2label(model_dir)
    } else {
        Ok(Vec::new())
    }
}

/// A progress bar over `items` on a terminal; hidden when stderr is not one (CI, logs).
fn progress_bar(items: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(items as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} items  {per_sec}  eta {eta}")
            .expect("a valid progress template"),
    );
    bar
}

/// Streams `inputs` through the fleet on a session of its own, sampling the timeline into the
/// report folder when there is one: the run's report and the timeline's windows.
fn stream(
    args: &Args,
    settings: &Settings,
    inputs: &mut dyn Inputs,
    accuracy_table: Option<AccuracyTable>,
    bar: &indicatif::ProgressBar,
) -> Result<(RunReport, Option<Vec<TimelineRow>>)> {
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
    let report = run_on(&session, &keys, settings, inputs, &mut |done| {
        answered.store(done, Ordering::Relaxed);
        bar.set_position(done as u64)
    });
    bar.finish_and_clear();
    let timeline = sampler.map(TimelineSampler::finish).transpose();
    if let Err(e) = session.close().wait() {
        tracing::warn!("closing the zenoh session: {e}");
    }
    Ok((report?, timeline?))
}

/// Writes report.json and the timeline chart into the report folder `dir`.
fn write_report_folder(
    dir: &Path,
    report: &RunReport,
    accuracy: Option<f64>,
    rows: &[TimelineRow],
) -> Result<()> {
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_vec_pretty(&Report {
            run: report,
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
    Ok(())
}

/// Prints the report as JSON or as a line of figures (and the accuracy when known).
fn print_report(report: &RunReport, accuracy: Option<f64>, json: bool) -> Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string(&Report {
                run: report,
                accuracy
            })?
        );
        return Ok(());
    }
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
    Ok(())
}
