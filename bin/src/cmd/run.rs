//! `quantpipe run`: stream inputs through a running fleet and report throughput and latency.

use anyhow::{bail, Context, Result};
use quantpipe_actors::runtime::client::{run_texts_on_with_progress, RunReport};
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
    let texts = load_texts(&args.input, args.limit)?;
    let bar = progress_bar(texts.len());
    let accuracy_table = args
        .accuracy_table
        .as_ref()
        .map(|p| AccuracyTable::read(p, &args.accuracy_clip, &args.accuracy_cut))
        .transpose()?;
    if let Some(dir) = &args.report {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the report folder {}", dir.display()))?;
    }
    let (report, timeline) = stream(&args, &settings, &texts, accuracy_table, &bar)?;
    let accuracy = match &args.labels {
        None => None,
        Some(path) => Some(accuracy(&report.outputs, &read_labels(path, texts.len())?)),
    };
    if let (Some(dir), Some(rows)) = (&args.report, &timeline) {
        write_report_folder(dir, &report, accuracy, rows)?;
    }
    if let Some(path) = &args.save_outputs {
        std::fs::write(path, serde_json::to_vec(&report.outputs)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    print_report(&report, accuracy, args.json)
}

/// The items of `input`, the first `limit` of them when given; at least one.
fn load_texts(input: &Path, limit: Option<usize>) -> Result<Vec<String>> {
    let mut texts = read_texts(input)?;
    if let Some(n) = limit {
        texts.truncate(n);
    }
    if texts.is_empty() {
        bail!("{} holds no input item", input.display());
    }
    Ok(texts)
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

/// Streams `texts` through the fleet on a session of its own, sampling the timeline into the
/// report folder when there is one: the run's report and the timeline's windows.
fn stream(
    args: &Args,
    settings: &Settings,
    texts: &[String],
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
    let report = run_texts_on_with_progress(&session, &keys, settings, texts, &mut |done| {
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

/// The labels file at `path`: one class index per non-empty line, `items` of them.
fn read_labels(path: &Path, items: usize) -> Result<Vec<usize>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading labels {}", path.display()))?;
    parse_labels(&text, items, &path.display().to_string())
}

/// Class indices, one per non-empty line of `text` (`name` says where it came from), the
/// first `items` of them; fewer than `items` is an error.
fn parse_labels(text: &str, items: usize, name: &str) -> Result<Vec<usize>> {
    let labels: Vec<usize> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(items)
        .enumerate()
        .map(|(i, l)| {
            l.trim()
                .parse()
                .with_context(|| format!("{name} line {}: `{l}` is not a class index", i + 1))
        })
        .collect::<Result<_>>()?;
    if labels.len() != items {
        bail!("{} labels for {} items", labels.len(), items);
    }
    Ok(labels)
}

/// Share of output rows whose argmax is the item's label.
fn accuracy(outputs: &[Vec<f32>], labels: &[usize]) -> f64 {
    let correct = outputs
        .iter()
        .zip(labels)
        .filter(|(row, &l)| argmax(row) == l)
        .count();
    correct as f64 / labels.len() as f64
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

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_skip_blank_lines_and_keep_the_first_of_each_item() {
        assert_eq!(
            parse_labels("2\n\n 0 \n1\n3\n", 3, "l").unwrap(),
            vec![2, 0, 1]
        );
    }

    #[test]
    fn too_few_labels_or_a_non_index_is_an_error_that_names_the_line() {
        let short = parse_labels("1\n2\n", 3, "l").unwrap_err();
        assert_eq!(short.to_string(), "2 labels for 3 items");
        let bad = parse_labels("1\nsport\n", 2, "labels.txt").unwrap_err();
        assert_eq!(
            bad.to_string(),
            "labels.txt line 2: `sport` is not a class index"
        );
    }

    #[test]
    fn accuracy_compares_each_row_s_argmax_with_its_label() {
        let outputs = vec![vec![0.1, 0.9], vec![0.8, 0.2], vec![0.3, 0.7], vec![]];
        assert_eq!(accuracy(&outputs, &[1, 1, 1, 0]), 0.75);
    }
}
