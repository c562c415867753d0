//! `quantpipe infer`: run a model, or a unit range of it, on local inputs.

use crate::model_args::ModelArgs;
use anyhow::{bail, Context, Result};
use quantpipe_model_shards::preprocess::{image_files, ImagePreprocessor, TextTokenizer};
use quantpipe_model_shards::profile::resident_bytes;
use quantpipe_model_shards::{Boundary, Family, ModelSource, Shard, UnitRange};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::Tensor;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Units to run, 1-based inclusive `L..R` (default: the whole model).
    #[arg(long)]
    units: Option<UnitRange>,
    /// Images (a PNG/JPEG file or a folder of them), a text file (one item per line), or, when
    /// `--units` starts past 1, a boundary file written by `--save-boundary`.
    #[arg(long)]
    input: PathBuf,
    /// Items per forward pass.
    #[arg(long, default_value_t = 8)]
    ubatch: i64,
    /// Maximum tokens per text item.
    #[arg(long, default_value_t = 128)]
    max_len: usize,
    /// Write what leaves the last unit of the range (safetensors).
    #[arg(long)]
    save_boundary: Option<PathBuf>,
    /// Print a JSON report on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    model: String,
    units: String,
    items: i64,
    ubatch: i64,
    /// "logits", "embeddings" or "boundary".
    output: &'static str,
    /// Per-item outputs (logits or embeddings); omitted for boundaries.
    #[serde(skip_serializing_if = "Option::is_none")]
    outputs: Option<Vec<Vec<f32>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top1: Option<Vec<i64>>,
    /// Shapes of the tensors leaving the range, when it stops before the last unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    boundary_shapes: Option<Vec<Vec<i64>>>,
    /// Growth of resident memory while loading the shard's weights.
    weights_rss_mb: f64,
    forward_s: f64,
}

pub fn run(args: Args) -> Result<()> {
    let source = args.model.open()?;
    let config = source.config().clone();
    let range = args
        .units
        .unwrap_or(UnitRange::full(config.units()))
        .validate(config.units())?;
    if args.ubatch < 1 {
        bail!("--ubatch must be at least 1");
    }
    let input = read_input(&source, range, &args.input, args.max_len)?;
    let before = resident_bytes();
    let shard = source.load_shard(range)?;
    let weights_rss_mb = resident_bytes().saturating_sub(before) as f64 / 1e6;

    let start = Instant::now();
    let output = forward_in_batches(&shard, &input, args.ubatch)?;
    let forward_s = start.elapsed().as_secs_f64();
    if let Some(path) = &args.save_boundary {
        output
            .save(path)
            .with_context(|| format!("writing {}", path.display()))?;
    }

    let last = range.end == config.units();
    let kind = match (last, config.head.is_classifier()) {
        (false, _) => "boundary",
        (true, true) => "logits",
        (true, false) => "embeddings",
    };
    let report = Report {
        model: source.name(),
        units: range.to_string(),
        items: input.batch(),
        ubatch: args.ubatch,
        output: kind,
        top1: (kind == "logits")
            .then(|| Vec::<i64>::try_from(&output.tensors[0].argmax(1, false)))
            .transpose()?,
        outputs: last
            .then(|| Vec::<Vec<f32>>::try_from(&output.tensors[0]))
            .transpose()?,
        boundary_shapes: (!last).then(|| output.tensors.iter().map(|t| t.size()).collect()),
        weights_rss_mb,
        forward_s,
    };
    super::print(&report, args.json, human)
}

/// The report as text: a summary line, then top-1 classes or boundary shapes where present.
fn human(r: &Report) -> String {
    let mut text = format!(
        "{} units {}: {} items in {:.3}s ({}); weights added {:.1} MB resident",
        r.model, r.units, r.items, r.forward_s, r.output, r.weights_rss_mb
    );
    if let Some(top1) = &r.top1 {
        text += &format!("\ntop-1 classes: {top1:?}");
    }
    if let Some(shapes) = &r.boundary_shapes {
        text += &format!("\nboundary tensors: {shapes:?}");
    }
    text
}

/// `input` through `shard` in microbatches of `ubatch` items, the outputs concatenated.
fn forward_in_batches(shard: &Shard, input: &Boundary, ubatch: i64) -> Result<Boundary> {
    let items = input.batch();
    let mut outs: Vec<Boundary> = Vec::new();
    for first in (0..items).step_by(ubatch as usize) {
        let n = ubatch.min(items - first);
        let part = Boundary::new(
            input
                .tensors
                .iter()
                .map(|t| t.narrow(0, first, n))
                .collect(),
            input.mask.as_ref().map(|m| m.narrow(0, first, n)),
        );
        outs.push(shard.forward(&part)?);
    }
    Ok(concat(outs))
}

/// Builds the input of the range's first unit from the user's file(s).
fn read_input(
    source: &ModelSource,
    range: UnitRange,
    path: &Path,
    max_len: usize,
) -> Result<Boundary> {
    let config = source.config();
    if !path.exists() {
        bail!("input {} does not exist", path.display());
    }
    if range.start > 1 {
        return Ok(Boundary::load(path)?);
    }
    match config.family {
        Family::Bert => {
            let dir = source.dir().context(
                "text input needs a model folder with tokenizer.json (presets have none)",
            )?;
            let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"), max_len)?;
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            if lines.is_empty() {
                bail!("{} has no non-empty line", path.display());
            }
            Ok(tokenizer.encode_batch(&lines)?)
        }
        Family::Vit | Family::Deit => {
            let pre = ImagePreprocessor::for_model(config, source.dir())?;
            let files = image_files(path)?;
            if files.is_empty() {
                bail!("no PNG or JPEG file in {}", path.display());
            }
            let images = files
                .iter()
                .map(|f| pre.load_file(f, config))
                .collect::<quantpipe_model_shards::Result<Vec<_>>>()?;
            Ok(Boundary::new(vec![Tensor::stack(&images, 0)], None))
        }
    }
}

fn concat(parts: Vec<Boundary>) -> Boundary {
    let n = parts[0].tensors.len();
    let tensors = (0..n)
        .map(|i| {
            Tensor::cat(
                &parts
                    .iter()
                    .map(|p| p.tensors[i].shallow_clone())
                    .collect::<Vec<_>>(),
                0,
            )
        })
        .collect();
    let mask = parts[0].mask.as_ref().map(|_| {
        Tensor::cat(
            &parts
                .iter()
                .map(|p| p.mask.as_ref().unwrap().shallow_clone())
                .collect::<Vec<_>>(),
            0,
        )
    });
    Boundary::new(tensors, mask)
}
