//! Deterministic synthetic activations for tests and the codec benchmark: a seeded generator and
//! the distributions the clipping methods are judged on, so the benchmark's inputs are identical
//! on every machine and in every build.

use rand::distr::Open01;
use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The seeded source of synthetic values. ChaCha8 because rand_chacha keeps its stream for a seed
/// the same on every platform and in every release (rand's `StdRng` may change), so a seed names
/// one data set for good.
#[derive(Debug, Clone)]
pub struct Rng(ChaCha8Rng);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(ChaCha8Rng::seed_from_u64(seed))
    }

    /// Uniform in (0, 1): never exactly 0, so logarithms stay finite.
    pub fn uniform(&mut self) -> f64 {
        self.0.sample(Open01)
    }

    /// Exponential with mean `scale`.
    pub fn exponential(&mut self, scale: f64) -> f32 {
        (-scale * self.uniform().ln()) as f32
    }
}

/// Laplace(mu, b) by inverse CDF.
pub fn laplace(rng: &mut Rng, mu: f64, b: f64) -> f32 {
    let u = rng.uniform() - 0.5;
    (mu - b * u.signum() * (1.0 - 2.0 * u.abs()).ln()) as f32
}

/// A heavy-tailed activation model: 97% Laplace(0, 0.3), 3% outliers from Laplace(0, 6)
/// (like the outlier channels of real transformer activations).
pub fn heavy_tailed(rng: &mut Rng) -> f32 {
    if rng.uniform() < 0.03 {
        laplace(rng, 0.0, 6.0)
    } else {
        laplace(rng, 0.0, 0.3)
    }
}

/// `n` values of a ViT-like boundary tensor: heavy-tailed, with a few outlier channels of
/// width `hidden` (every value of channel c with c % 97 == 3 is scaled up 8x).
pub fn activations(n: usize, hidden: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let x = heavy_tailed(&mut rng);
            if (i % hidden.max(1)) % 97 == 3 {
                x * 8.0
            } else {
                x
            }
        })
        .collect()
}
