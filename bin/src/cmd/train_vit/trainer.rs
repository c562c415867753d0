//! The training loop of `train-vit`: AdamW steps over shuffled batches, with the learning rate of
//! [`Schedule`], label smoothing 0.1 and the gradient norm clipped at 1.
//!
//! Every random draw comes from libtorch's seeded generator, in a fixed order (one permutation per
//! epoch, then per batch the augmentation's shift and flips), so a run is reproducible for a given
//! seed and thread count.

use super::schedule::Schedule;
use super::{PIXEL_MEAN, PIXEL_STD};
use crate::datasets::fashion_mnist::{self, Images};
use anyhow::{bail, Result};
use quantpipe_model_shards::{Boundary, Shard};
use std::time::Instant;
use tch::nn::{Optimizer, OptimizerConfig};
use tch::{Kind, Tensor};

/// Loss per optimizer step, and its mean per epoch (the last epoch may be partial).
#[derive(Debug, Default)]
pub struct Losses {
    pub per_step: Vec<f64>,
    pub per_epoch: Vec<f64>,
}

/// Trains `shard` (loaded trainable) on `data`.
pub struct Trainer<'a> {
    shard: &'a Shard,
    data: &'a Images,
    opt: Optimizer,
    schedule: Schedule,
    batch: i64,
    augment: bool,
    total: usize,
}

impl<'a> Trainer<'a> {
    /// AdamW (beta 0.9/0.999, weight decay 0.05) over the variables of `vs`, for the run over
    /// `data` that `plan` describes.
    pub fn new(
        shard: &'a Shard,
        vs: &tch::nn::VarStore,
        data: &'a Images,
        plan: &TrainingPlan,
    ) -> Result<Trainer<'a>> {
        let opt = tch::nn::AdamW {
            wd: 0.05,
            ..Default::default()
        }
        .build(vs, plan.lr)?;
        let total = plan.total_steps(data.len());
        Ok(Trainer {
            shard,
            data,
            opt,
            schedule: Schedule::new(plan.lr, total),
            batch: plan.batch,
            augment: plan.augment,
            total,
        })
    }

    /// Runs up to `epochs` passes over the data, fewer when the step budget runs out first.
    pub fn run(&mut self, epochs: usize) -> Result<Losses> {
        let start = Instant::now();
        let mut losses = Losses::default();
        for epoch in 0..epochs {
            let per_step = self.epoch(losses.per_step.len())?;
            if !per_step.is_empty() {
                let mean = per_step.iter().sum::<f64>() / per_step.len() as f64;
                losses.per_epoch.push(mean);
                tracing::info!(
                    epoch,
                    loss = mean,
                    elapsed_s = start.elapsed().as_secs_f64(),
                    "train-vit epoch"
                );
            }
            losses.per_step.extend(per_step);
            if losses.per_step.len() == self.total {
                break;
            }
        }
        Ok(losses)
    }

    /// One pass over a fresh permutation of the data, starting at step `first_step` and stopping
    /// when the run's step budget is spent: the loss of each step.
    fn epoch(&mut self, first_step: usize) -> Result<Vec<f64>> {
        let n = self.data.len();
        let order = Tensor::randperm(n, (Kind::Int64, tch::Device::Cpu));
        let mut losses = Vec::new();
        for first in (0..n).step_by(self.batch as usize) {
            let step = first_step + losses.len();
            if step == self.total {
                break;
            }
            let idx = order.narrow(0, first, self.batch.min(n - first));
            losses.push(self.step(step, &idx)?);
        }
        Ok(losses)
    }

    /// One optimizer step on the images `idx`: its loss.
    fn step(&mut self, step: usize, idx: &Tensor) -> Result<f64> {
        let pixels = self.data.pixels.index_select(0, idx);
        let x = if self.augment {
            augment(&pixels)
        } else {
            fashion_mnist::normalise(&pixels, PIXEL_MEAN, PIXEL_STD)
        };
        let y = self.data.labels.index_select(0, idx);
        self.opt.set_lr(self.schedule.lr(step));
        let logits = self
            .shard
            .forward(&Boundary::new(vec![x], None))?
            .tensors
            .remove(0);
        let loss = logits.cross_entropy_loss::<Tensor>(&y, None, tch::Reduction::Mean, -100, 0.1);
        self.opt.backward_step_clip_norm(&loss, 1.0);
        let value = loss.double_value(&[]);
        if !value.is_finite() {
            bail!("training diverged at step {step} (loss {value}); lower --lr");
        }
        Ok(value)
    }
}

/// What the command line asks of the loop.
pub struct TrainingPlan {
    pub lr: f64,
    pub batch: i64,
    pub epochs: usize,
    pub steps: Option<usize>,
    pub augment: bool,
}

impl TrainingPlan {
    /// Steps of a run over `n` images: every batch of every epoch, or `steps` if fewer.
    pub fn total_steps(&self, n: i64) -> usize {
        let per_epoch = ((n + self.batch - 1) / self.batch) as usize;
        self.steps
            .unwrap_or(usize::MAX)
            .min(per_epoch * self.epochs)
    }
}

/// u8 pixels -> normalised floats, shifted by up to 2 pixels (one shift per batch, zero padding)
/// and with half the images flipped left-right.
fn augment(pixels: &Tensor) -> Tensor {
    let (b, _, h, w) = pixels.size4().expect("[B, 1, H, W] pixels");
    let x = pixels.to_kind(Kind::Float) / 255.0;
    let shift = Tensor::randint(5, [2], (Kind::Int64, tch::Device::Cpu));
    let (dy, dx) = (shift.int64_value(&[0]), shift.int64_value(&[1]));
    let x = x
        .constant_pad_nd([2, 2, 2, 2])
        .narrow(2, dy, h)
        .narrow(3, dx, w);
    let flip = Tensor::rand([b, 1, 1, 1], (Kind::Float, tch::Device::Cpu)).lt(0.5);
    let x = x.flip([3]).where_self(&flip, &x);
    (x - PIXEL_MEAN) / PIXEL_STD
}

/// Top-1 accuracy on `images`, in inference mode.
pub fn accuracy(shard: &Shard, images: &Images) -> Result<f64> {
    let _guard = tch::no_grad_guard();
    let mut correct = 0i64;
    for first in (0..images.len()).step_by(500) {
        let m = 500.min(images.len() - first);
        let x = fashion_mnist::normalise(&images.pixels.narrow(0, first, m), PIXEL_MEAN, PIXEL_STD);
        let logits = shard
            .forward(&Boundary::new(vec![x], None))?
            .tensors
            .remove(0);
        let hit = logits
            .argmax(-1, false)
            .eq_tensor(&images.labels.narrow(0, first, m));
        correct += hit.sum(Kind::Int64).int64_value(&[]);
    }
    Ok(correct as f64 / images.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(batch: i64, epochs: usize, steps: Option<usize>) -> TrainingPlan {
        TrainingPlan {
            lr: 1e-3,
            batch,
            epochs,
            steps,
            augment: false,
        }
    }

    #[test]
    fn a_partial_last_batch_is_a_step() {
        assert_eq!(plan(64, 2, None).total_steps(300), 10);
        assert_eq!(plan(100, 3, None).total_steps(300), 9);
    }

    #[test]
    fn a_step_budget_stops_the_run_early() {
        assert_eq!(plan(64, 2, Some(7)).total_steps(300), 7);
        assert_eq!(plan(64, 2, Some(70)).total_steps(300), 10);
    }
}
