//! Fashion-MNIST test images through an image classifier (the ViT `train-vit` makes).

use super::metrics::{agreement, argmax};
use super::pipeline::{Pipeline, Setting};
use super::table::Row;
use super::CutSpec;
use crate::datasets::fashion_mnist::{self, Split};
use anyhow::{bail, Result};
use quantpipe_model_shards::preprocess::ImagePreprocessor;
use quantpipe_model_shards::{Boundary, Family, ModelSource, UnitRange};
use std::path::Path;

/// Rows for every cut and setting; `limit` keeps the first N test images.
pub fn evaluate(
    source: &ModelSource,
    data: &Path,
    cuts: &[CutSpec],
    settings: &[Setting],
    limit: Option<usize>,
    ubatch: usize,
) -> Result<Vec<Row>> {
    let config = source.config();
    if config.family == Family::Bert || !config.head.is_classifier() {
        bail!(
            "--dataset fashion-mnist needs an image classifier (ViTForImageClassification), \
             but {} is {}",
            source.name(),
            config.architecture
        );
    }
    // Bad cuts are reported before any data is read.
    for spec in cuts {
        spec.cuts(config.units())?;
    }
    let test = fashion_mnist::load(data, Split::Test)?;
    let side = test.pixels.size()[2];
    if config.num_channels != 1 || config.image_size != side {
        bail!(
            "{} takes {}x{}x{} images; Fashion-MNIST images are 1x{side}x{side}",
            source.name(),
            config.num_channels,
            config.image_size,
            config.image_size
        );
    }
    let pre = ImagePreprocessor::for_model(config, source.dir())?;
    let mean = pre.image_mean.as_ref().map_or(0.5, |m| m[0]);
    let std = pre.image_std.as_ref().map_or(0.5, |s| s[0]);
    let scale = if pre.do_rescale {
        pre.rescale_factor * 255.0
    } else {
        255.0
    };
    let (mean, std) = if pre.do_normalize {
        (mean, std)
    } else {
        (0.0, 1.0)
    };
    let n = limit.map_or(test.len(), |l| (l as i64).min(test.len()));
    let labels: Vec<i64> = Vec::<i64>::try_from(test.labels.narrow(0, 0, n))?;
    let batches = || {
        (0..n).step_by(ubatch).map(|first| {
            let m = (ubatch as i64).min(n - first);
            // `normalise` divides by 255; fold in a preprocessor's other rescale factor.
            let x = fashion_mnist::normalise(&(test.pixels.narrow(0, first, m) * scale), mean, std);
            Ok(Boundary::new(vec![x], None))
        })
    };
    let shard = source.load_shard(UnitRange::full(config.units()))?;
    let mut rows = Vec::new();
    let mut fp32_pred: Option<Vec<i64>> = None;
    for &spec in cuts {
        let pipeline = Pipeline::new(&shard, spec.cuts(config.units())?)?;
        // fp32 runs once, with the first cut, as the reference of every agreement.
        let mut todo: Vec<Setting> = settings.to_vec();
        if fp32_pred.is_some() {
            todo.retain(|s| *s != Setting::Fp32);
        } else if !todo.contains(&Setting::Fp32) {
            todo.insert(0, Setting::Fp32);
        }
        let start = std::time::Instant::now();
        let outputs = pipeline.run(batches(), &todo)?;
        tracing::info!(cut = %spec, cuts = ?pipeline.cuts(), settings = todo.len(),
            seconds = start.elapsed().as_secs_f64(), "fashion-mnist evaluated");
        let preds: Vec<Vec<i64>> = outputs.iter().map(argmax).collect();
        if let Some(i) = todo.iter().position(|s| *s == Setting::Fp32) {
            fp32_pred = Some(preds[i].clone());
        }
        let reference = fp32_pred.as_ref().expect("fp32 runs first");
        for (&setting, pred) in todo.iter().zip(&preds) {
            let (clip, bits) = Row::setting_columns(setting);
            let fp32 = setting == Setting::Fp32;
            if fp32 && !settings.contains(&Setting::Fp32) {
                continue;
            }
            rows.push(Row {
                model: source.name(),
                dataset: "fashion-mnist".into(),
                cut: if fp32 { "-".into() } else { spec.to_string() },
                cuts: if fp32 {
                    vec![]
                } else {
                    pipeline.cuts().to_vec()
                },
                clip,
                bits,
                items: labels.len(),
                accuracy: agreement(pred, &labels),
                agreement: agreement(pred, reference),
                accuracy_k5: None,
                cosine_mean: None,
                cosine_min: None,
            });
        }
    }
    Ok(rows)
}
