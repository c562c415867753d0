//! Per-sample statistics the clipping methods need: min, max, mean, and the Laplace scale
//! estimate b = mean |x - mean|.
//!
//! The loops keep 8 independent accumulators (one per lane) so LLVM can vectorise them without
//! being allowed to reassociate float additions. Sums are in f64: a sum of finite f32 values can
//! then never overflow, so a non-finite sum proves a NaN or infinity in the input, detected with
//! no per-value branch.

use serde::{Deserialize, Serialize};

const LANES: usize = 8;

/// A NaN or infinity found while computing statistics.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("value at index {index} is not finite ({value})")]
pub struct NonFiniteValue {
    pub index: usize,
    pub value: f32,
}

/// Statistics of one sample's values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SampleStats {
    pub count: usize,
    pub min: f32,
    pub max: f32,
    pub mean: f64,
    /// mean |x - mean|: the maximum-likelihood-style estimate of the Laplace scale b used by
    /// two-sided ACIQ.
    pub mean_abs_dev: f64,
}

impl SampleStats {
    /// Statistics of `values` (two passes). An empty slice gives count 0 and min = max = mean =
    /// b = 0, which every method maps to the constant range [0, 0].
    pub fn compute(values: &[f32]) -> Result<SampleStats, NonFiniteValue> {
        if values.is_empty() {
            return Ok(SampleStats {
                count: 0,
                min: 0.0,
                max: 0.0,
                mean: 0.0,
                mean_abs_dev: 0.0,
            });
        }
        let (min, max, sum) = min_max_sum(values)?;
        let n = values.len() as f64;
        // Rounding can put the mean a hair outside [min, max]; ranges built on it must not.
        let mean = (sum / n).clamp(f64::from(min), f64::from(max));
        let mean_abs_dev = abs_dev_sum(values, mean as f32) / n;
        Ok(SampleStats {
            count: values.len(),
            min,
            max,
            mean,
            mean_abs_dev,
        })
    }
}

/// (min, max, sum) of a non-empty slice, or the first non-finite value.
pub(crate) fn min_max_sum(values: &[f32]) -> Result<(f32, f32, f64), NonFiniteValue> {
    let mut lo = [values[0]; LANES];
    let mut hi = [values[0]; LANES];
    let mut sum = [0f64; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            let x = c[i];
            lo[i] = if x < lo[i] { x } else { lo[i] };
            hi[i] = if x > hi[i] { x } else { hi[i] };
            sum[i] += f64::from(x);
        }
    }
    for (i, &x) in tail.iter().enumerate() {
        lo[i] = if x < lo[i] { x } else { lo[i] };
        hi[i] = if x > hi[i] { x } else { hi[i] };
        sum[i] += f64::from(x);
    }
    let total: f64 = sum.iter().sum();
    if !total.is_finite() {
        return Err(first_non_finite(values));
    }
    let min = lo.iter().copied().fold(f32::INFINITY, f32::min);
    let max = hi.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    Ok((min, max, total))
}

/// (min, max) of a non-empty slice, or the first non-finite value. Cheaper than
/// [`min_max_sum`]: f32 only, for the naive method on the hot path.
pub(crate) fn min_max(values: &[f32]) -> Result<(f32, f32), NonFiniteValue> {
    let mut lo = [values[0]; LANES];
    let mut hi = [values[0]; LANES];
    // x - x is 0 for finite x and NaN for NaN/±inf; NaN survives the additions.
    let mut poison = [0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            let x = c[i];
            lo[i] = if x < lo[i] { x } else { lo[i] };
            hi[i] = if x > hi[i] { x } else { hi[i] };
            poison[i] += x - x;
        }
    }
    for (i, &x) in tail.iter().enumerate() {
        lo[i] = if x < lo[i] { x } else { lo[i] };
        hi[i] = if x > hi[i] { x } else { hi[i] };
        poison[i] += x - x;
    }
    if poison.iter().any(|p| *p != 0.0) {
        return Err(first_non_finite(values));
    }
    let min = lo.iter().copied().fold(f32::INFINITY, f32::min);
    let max = hi.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    Ok((min, max))
}

fn abs_dev_sum(values: &[f32], mean: f32) -> f64 {
    let mut acc = [0f64; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += f64::from((c[i] - mean).abs());
        }
    }
    for (i, &x) in tail.iter().enumerate() {
        acc[i] += f64::from((x - mean).abs());
    }
    acc.iter().sum()
}

#[cold]
pub(crate) fn first_non_finite(values: &[f32]) -> NonFiniteValue {
    let index = values
        .iter()
        .position(|x| !x.is_finite())
        .expect("called only after a non-finite value was detected");
    NonFiniteValue {
        index,
        value: values[index],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_computation() {
        let v: Vec<f32> = (0..1003).map(|i| ((i * 37) % 101) as f32 - 40.0).collect();
        let s = SampleStats::compute(&v).unwrap();
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        let mad = v.iter().map(|&x| (f64::from(x) - mean).abs()).sum::<f64>() / v.len() as f64;
        assert_eq!(s.min, -40.0);
        assert_eq!(s.max, 60.0);
        assert!((s.mean - mean).abs() < 1e-9);
        assert!((s.mean_abs_dev - mad).abs() < 1e-5);
        assert_eq!(min_max(&v).unwrap(), (-40.0, 60.0));
    }

    #[test]
    fn finds_non_finite_values_anywhere() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for pos in [0, 5, 8, 15, 16] {
                let mut v = vec![1.0f32; 17];
                v[pos] = bad;
                let e = SampleStats::compute(&v).unwrap_err();
                assert_eq!(e.index, pos);
                assert_eq!(min_max(&v).unwrap_err().index, pos);
            }
        }
    }

    #[test]
    fn extreme_finite_values_are_not_mistaken_for_infinity() {
        let v = vec![f32::MAX; 64];
        let s = SampleStats::compute(&v).unwrap();
        assert_eq!(s.max, f32::MAX);
        assert_eq!(min_max(&v).unwrap(), (f32::MAX, f32::MAX));
    }
}
