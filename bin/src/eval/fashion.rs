//! Fashion-MNIST test images through an image classifier (the ViT `train-vit` makes).

use super::metrics::{agreement, argmax};
use super::sweep::{sweep, Request, Scorer};
use super::table::{Row, Scores};
use crate::datasets::fashion_mnist::{self, Split};
use anyhow::{bail, Result};
use quantpipe_model_shards::preprocess::ImagePreprocessor;
use quantpipe_model_shards::{Boundary, Family, ModelSource, UnitRange};
use tch::Tensor;

/// Rows for every cut and setting; `limit` keeps the first N test images.
pub fn evaluate(source: &ModelSource, request: &Request) -> Result<Vec<Row>> {
    let config = source.config();
    if config.family == Family::Bert || !config.head.is_classifier() {
        bail!(
            "--dataset fashion-mnist needs an image classifier (ViTForImageClassification), \
             but {} is {}",
            source.name(),
            config.architecture
        );
    }
    request.check_cuts(config.units())?;
    let test = fashion_mnist::load(request.data, Split::Test)?;
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
    let pixels = PixelScaling::of(&ImagePreprocessor::for_model(config, source.dir())?);
    let n = request
        .limit
        .map_or(test.len(), |l| (l as i64).min(test.len()));
    let ubatch = request.ubatch as i64;
    let batches = || {
        (0..n).step_by(request.ubatch).map(|first| {
            let m = ubatch.min(n - first);
            Ok(Boundary::new(
                vec![pixels.apply(&test.pixels.narrow(0, first, m))],
                None,
            ))
        })
    };
    let scorer = Top1 {
        labels: Vec::<i64>::try_from(test.labels.narrow(0, 0, n))?,
    };
    let shard = source.load_shard(UnitRange::full(config.units()))?;
    sweep(source, "fashion-mnist", request, &shard, batches, &scorer)
}

/// The model's own pixel preprocessing (rescale, then normalise), for u8 grey images.
struct PixelScaling {
    scale: f64,
    mean: f64,
    std: f64,
}

impl PixelScaling {
    fn of(pre: &ImagePreprocessor) -> PixelScaling {
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
        PixelScaling { scale, mean, std }
    }

    fn apply(&self, pixels: &Tensor) -> Tensor {
        // `normalise` divides by 255; fold in a preprocessor's other rescale factor.
        fashion_mnist::normalise(&(pixels * self.scale), self.mean, self.std)
    }
}

/// Top-1 class against the labels and against fp32's top-1.
struct Top1 {
    labels: Vec<i64>,
}

impl Scorer for Top1 {
    type Reference = Vec<i64>;

    fn reference(&self, fp32: &Tensor) -> Vec<i64> {
        argmax(fp32)
    }

    fn score(&self, logits: &Tensor, fp32_pred: &Vec<i64>) -> Scores {
        let pred = argmax(logits);
        Scores {
            items: self.labels.len(),
            accuracy: agreement(&pred, &self.labels),
            agreement: agreement(&pred, fp32_pred),
            accuracy_k5: None,
            cosine_mean: None,
            cosine_min: None,
        }
    }
}
