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

impl SampleStats {
    /// [`SampleStats::compute`] of two slices, each result exactly its own; in one pass each
    /// over both when they are of one length (their latency-bound sums interleave).
    pub(crate) fn compute_two(a: &[f32], b: &[f32]) -> [Result<SampleStats, NonFiniteValue>; 2] {
        #[cfg(target_arch = "x86_64")]
        if a.len() == b.len() && !a.is_empty() && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above; the slices are non-empty and
            // of one length.
            let folds = unsafe { lane_min_max_sums_avx2([a, b]) };
            if let [Some(fa), Some(fb)] = folds.map(finish_min_max_sum) {
                let n = a.len() as f64;
                let [ma, mb] =
                    [fa, fb].map(|(min, max, sum)| (sum / n).clamp(f64::from(min), f64::from(max)));
                // SAFETY: as above.
                let [da, db] = unsafe { abs_dev_sums_avx2([a, b], [ma as f32, mb as f32]) };
                let stats = |(min, max, _), mean, dev: f64| SampleStats {
                    count: a.len(),
                    min,
                    max,
                    mean,
                    mean_abs_dev: dev / n,
                };
                return [Ok(stats(fa, ma, da)), Ok(stats(fb, mb, db))];
            }
        }
        [SampleStats::compute(a), SampleStats::compute(b)]
    }
}

impl SampleStats {
    /// Like [`SampleStats::compute`], but with the mean and b taken from a strided sample of at
    /// most `max_sample` values (see [`strided_sample`]); min, max and the non-finite check still
    /// cover every value, so a clipping range never cuts off an extreme the sample missed by
    /// accident, and NaN anywhere is still found. This is what the codec uses on the hot path:
    /// one fast pass over the data instead of two f64 passes, while b estimated from thousands
    /// of values is within about 1% of the exact one.
    pub fn estimate(values: &[f32], max_sample: usize) -> Result<SampleStats, NonFiniteValue> {
        if values.len() <= max_sample {
            return SampleStats::compute(values);
        }
        let (min, max) = min_max(values)?;
        let sample = strided_sample(values, max_sample);
        let (_, _, sum) = min_max_sum(&sample)?;
        let n = sample.len() as f64;
        let mean = (sum / n).clamp(f64::from(min), f64::from(max));
        let mean_abs_dev = abs_dev_sum(&sample, mean as f32) / n;
        Ok(SampleStats {
            count: values.len(),
            min,
            max,
            mean,
            mean_abs_dev,
        })
    }
}

/// Values per contiguous run of a [`strided_sample`]: 4 cache lines.
pub const SAMPLE_RUN: usize = 64;

/// At most about `max` values spread evenly over `values`: every value if there are at most
/// `max`, else runs of [`SAMPLE_RUN`] contiguous values taken every p-th run, for the smallest
/// prime p >= max(ceil(runs / (max / SAMPLE_RUN)), 7).
///
/// Why runs: a value-by-value stride touches a new cache line per sampled value, so sampling 5%
/// of a tensor would cost a full pass over its memory; runs of 64 cost 1/p of it. Why a prime
/// stride of at least 7: hidden sizes are multiples of 2, 3 and 5 (and usually of 64), so a prime
/// run stride cycles through every channel block instead of aliasing onto a few channels, which
/// would hide (or over-weight) outlier channels.
pub fn strided_sample(values: &[f32], max: usize) -> Vec<f32> {
    let mut sample = Vec::new();
    for run in strided_runs(values.len(), max) {
        sample.extend_from_slice(&values[run]);
    }
    sample
}

/// The index ranges [`strided_sample`] takes from `len` values, in order: for callers that also
/// need to know where each sampled value came from (its channel).
pub fn strided_runs(len: usize, max: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let (runs, stride) = if len <= max.max(SAMPLE_RUN) {
        (0, 1)
    } else {
        let runs = len / SAMPLE_RUN;
        let wanted = (max / SAMPLE_RUN).max(1);
        let mut stride = runs.div_ceil(wanted).max(7);
        while !is_prime(stride) {
            stride += 1;
        }
        (runs, stride)
    };
    let whole = (runs == 0 && len > 0).then_some(0..len);
    whole.into_iter().chain(
        (0..runs)
            .step_by(stride)
            .map(|r| r * SAMPLE_RUN..(r + 1) * SAMPLE_RUN),
    )
}

fn is_prime(n: usize) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

/// (min, max, sum) of a non-empty slice, or the first non-finite value.
///
/// Two loops, each over 8 lanes: fused, the f32 compare-selects and the f64 sums compiled to a
/// shuffle-bound loop 3-4x slower than both apart (the slice is small enough to stay in cache).
pub(crate) fn min_max_sum(values: &[f32]) -> Result<(f32, f32, f64), NonFiniteValue> {
    finish_min_max_sum(lane_min_max_sums(values)).ok_or_else(|| first_non_finite(values))
}

/// (min, max, sum) from the lane folds, or None if the sum shows a non-finite value.
fn finish_min_max_sum((lo, hi, sum): LaneExtremesAndSums) -> Option<(f32, f32, f64)> {
    let total: f64 = sum.iter().sum();
    if !total.is_finite() {
        return None;
    }
    let min = lo.iter().copied().fold(f32::INFINITY, f32::min);
    let max = hi.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    Some((min, max, total))
}

/// Per-lane minimum and maximum of a non-empty slice: lane i holds the values at i % 8, folded
/// in order by `if x < lo { x } else { lo }` (and its mirror), so a NaN is never selected.
fn lane_min_max(values: &[f32]) -> ([f32; LANES], [f32; LANES]) {
    let mut lo = [values[0]; LANES];
    let mut hi = [values[0]; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    #[cfg(target_arch = "x86_64")]
    {
        // Written as the loop below, this compiles to a shuffle-bound blend chain; MINPS and
        // MAXPS are exactly its selects (the first operand if less, resp. greater, else the
        // second, NaN included).
        use std::arch::x86_64::{_mm_loadu_ps, _mm_max_ps, _mm_min_ps, _mm_storeu_ps};
        // SAFETY: SSE is part of x86_64; every load and store is of 4 f32 inside an 8-value
        // chunk or lane array.
        unsafe {
            let (mut lo0, mut lo1) = (_mm_loadu_ps(lo.as_ptr()), _mm_loadu_ps(lo[4..].as_ptr()));
            let (mut hi0, mut hi1) = (_mm_loadu_ps(hi.as_ptr()), _mm_loadu_ps(hi[4..].as_ptr()));
            for c in chunks {
                let x0 = _mm_loadu_ps(c.as_ptr());
                let x1 = _mm_loadu_ps(c[4..].as_ptr());
                lo0 = _mm_min_ps(x0, lo0);
                lo1 = _mm_min_ps(x1, lo1);
                hi0 = _mm_max_ps(x0, hi0);
                hi1 = _mm_max_ps(x1, hi1);
            }
            _mm_storeu_ps(lo.as_mut_ptr(), lo0);
            _mm_storeu_ps(lo[4..].as_mut_ptr(), lo1);
            _mm_storeu_ps(hi.as_mut_ptr(), hi0);
            _mm_storeu_ps(hi[4..].as_mut_ptr(), hi1);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    for c in chunks {
        for i in 0..LANES {
            let x = c[i];
            lo[i] = if x < lo[i] { x } else { lo[i] };
            hi[i] = if x > hi[i] { x } else { hi[i] };
        }
    }
    for (i, &x) in tail.iter().enumerate() {
        lo[i] = if x < lo[i] { x } else { lo[i] };
        hi[i] = if x > hi[i] { x } else { hi[i] };
    }
    (lo, hi)
}

type LaneExtremesAndSums = ([f32; LANES], [f32; LANES], [f64; LANES]);

/// [`lane_min_max`] and [`lane_sums`] of a non-empty slice.
fn lane_min_max_sums(values: &[f32]) -> LaneExtremesAndSums {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        let [folds] = unsafe { lane_min_max_sums_avx2([values]) };
        return folds;
    }
    let (lo, hi) = lane_min_max(values);
    (lo, hi, lane_sums(values))
}

/// Both folds in one pass over each of `N` slices of one length (together: the f64 additions
/// are latency-bound, and N slices make N times the independent chains), written out in AVX
/// intrinsics: the same selects (MINPS, MAXPS) and the same f64 additions per lane, in the same
/// order (lanes 0-3 and 4-7 in two registers), as the portable folds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lane_min_max_sums_avx2<const N: usize>(values: [&[f32]; N]) -> [LaneExtremesAndSums; N] {
    use std::arch::x86_64::*;
    let len = values[0].len();
    assert!(len > 0 && values.iter().all(|v| v.len() == len));
    let mut out = values.map(|v| ([v[0]; LANES], [v[0]; LANES], [0f64; LANES]));
    let whole = len / LANES * LANES;
    // SAFETY: every load and store is of 8 f32 (or 4 f64) inside a slice's first `whole`
    // values or a lane array.
    unsafe {
        let mut l = out.map(|o| _mm256_loadu_ps(o.0.as_ptr()));
        let mut h = out.map(|o| _mm256_loadu_ps(o.1.as_ptr()));
        let mut s0 = [_mm256_setzero_pd(); N];
        let mut s1 = [_mm256_setzero_pd(); N];
        for i in (0..whole).step_by(LANES) {
            for k in 0..N {
                let x = _mm256_loadu_ps(values[k].as_ptr().add(i));
                l[k] = _mm256_min_ps(x, l[k]);
                h[k] = _mm256_max_ps(x, h[k]);
                s0[k] = _mm256_add_pd(s0[k], _mm256_cvtps_pd(_mm256_castps256_ps128(x)));
                s1[k] = _mm256_add_pd(s1[k], _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(x)));
            }
        }
        for k in 0..N {
            _mm256_storeu_ps(out[k].0.as_mut_ptr(), l[k]);
            _mm256_storeu_ps(out[k].1.as_mut_ptr(), h[k]);
            _mm256_storeu_pd(out[k].2.as_mut_ptr(), s0[k]);
            _mm256_storeu_pd(out[k].2[4..].as_mut_ptr(), s1[k]);
        }
    }
    for (k, (lo, hi, sum)) in out.iter_mut().enumerate() {
        for (i, &x) in values[k][whole..].iter().enumerate() {
            lo[i] = if x < lo[i] { x } else { lo[i] };
            hi[i] = if x > hi[i] { x } else { hi[i] };
            sum[i] += f64::from(x);
        }
    }
    out
}

/// [`abs_dev_sum`] of `N` slices of one length, in one pass (see [`lane_min_max_sums_avx2`]):
/// `|x - mean|` (the sign bit cleared, as `f32::abs` does) added per lane in f64, in order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn abs_dev_sums_avx2<const N: usize>(values: [&[f32]; N], means: [f32; N]) -> [f64; N] {
    use std::arch::x86_64::*;
    let len = values[0].len();
    assert!(values.iter().all(|v| v.len() == len));
    let whole = len / LANES * LANES;
    let mut acc = [[0f64; LANES]; N];
    // SAFETY: every load and store is of 8 f32 (or 4 f64) inside a slice's first `whole`
    // values or a lane array.
    unsafe {
        let sign = _mm256_set1_ps(-0.0);
        let m = means.map(|m| _mm256_set1_ps(m));
        let mut s0 = [_mm256_setzero_pd(); N];
        let mut s1 = [_mm256_setzero_pd(); N];
        for i in (0..whole).step_by(LANES) {
            for k in 0..N {
                let x = _mm256_loadu_ps(values[k].as_ptr().add(i));
                let d = _mm256_andnot_ps(sign, _mm256_sub_ps(x, m[k]));
                s0[k] = _mm256_add_pd(s0[k], _mm256_cvtps_pd(_mm256_castps256_ps128(d)));
                s1[k] = _mm256_add_pd(s1[k], _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(d)));
            }
        }
        for k in 0..N {
            _mm256_storeu_pd(acc[k].as_mut_ptr(), s0[k]);
            _mm256_storeu_pd(acc[k][4..].as_mut_ptr(), s1[k]);
        }
    }
    let mut out = [0f64; N];
    for k in 0..N {
        for (i, &x) in values[k][whole..].iter().enumerate() {
            acc[k][i] += f64::from((x - means[k]).abs());
        }
        out[k] = acc[k].iter().sum();
    }
    out
}

/// Per-lane f64 sums: value i goes to lane i % 8.
fn lane_sums(values: &[f32]) -> [f64; LANES] {
    let mut sum = [0f64; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            sum[i] += f64::from(c[i]);
        }
    }
    for (i, &x) in tail.iter().enumerate() {
        sum[i] += f64::from(x);
    }
    sum
}

/// (min, max) of a non-empty slice, or the first non-finite value. Cheaper than
/// [`min_max_sum`]: f32 only, for the naive method on the hot path.
pub(crate) fn min_max(values: &[f32]) -> Result<(f32, f32), NonFiniteValue> {
    min_max_impl(values)
}

// Not multiversioned for AVX2 like the codec kernels: measured slower that way (the compare-select
// reduction compiles to a longer blend chain), while the SSE2 version runs near memory speed.
#[inline(always)]
fn min_max_impl(values: &[f32]) -> Result<(f32, f32), NonFiniteValue> {
    let mut lo = [values[0]; LANES];
    let mut hi = [values[0]; LANES];
    // x * 0 is ±0 for finite x and NaN for NaN/±inf; NaN survives the additions.
    let mut poison = [0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            let x = c[i];
            lo[i] = if x < lo[i] { x } else { lo[i] };
            hi[i] = if x > hi[i] { x } else { hi[i] };
            poison[i] += x * 0.0;
        }
    }
    for (i, &x) in tail.iter().enumerate() {
        lo[i] = if x < lo[i] { x } else { lo[i] };
        hi[i] = if x > hi[i] { x } else { hi[i] };
        poison[i] += x * 0.0;
    }
    if poison.iter().any(|p| *p != 0.0) {
        return Err(first_non_finite(values));
    }
    let min = lo.iter().copied().fold(f32::INFINITY, f32::min);
    let max = hi.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    Ok((min, max))
}

fn abs_dev_sum(values: &[f32], mean: f32) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { abs_dev_sums_avx2([values], [mean]) }[0];
    }
    abs_dev_sum_impl(values, mean)
}

fn abs_dev_sum_impl(values: &[f32], mean: f32) -> f64 {
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
    fn lane_extremes_select_like_the_scalar_fold() {
        // Signed zeros and NaN are where a min/max instruction could differ from the selects.
        let v: Vec<f32> = (0..37)
            .map(|i| match i % 6 {
                0 => 0.0,
                1 => -0.0,
                2 => f32::NAN,
                3 => i as f32 * 0.5 - 9.0,
                4 => -0.0,
                _ => 0.0,
            })
            .collect();
        for start in 0..4 {
            let v = &v[start..];
            let (lo, hi) = lane_min_max(v);
            let (mut want_lo, mut want_hi) = ([v[0]; LANES], [v[0]; LANES]);
            for (j, &x) in v.iter().enumerate() {
                let i = j % LANES;
                want_lo[i] = if x < want_lo[i] { x } else { want_lo[i] };
                want_hi[i] = if x > want_hi[i] { x } else { want_hi[i] };
            }
            assert_eq!(
                lo.map(f32::to_bits),
                want_lo.map(f32::to_bits),
                "from {start}"
            );
            assert_eq!(
                hi.map(f32::to_bits),
                want_hi.map(f32::to_bits),
                "from {start}"
            );
        }
    }

    #[test]
    fn fused_lane_folds_equal_the_separate_ones() {
        let mut rng = crate::synth::Rng::new(6);
        let v: Vec<f32> = (0..1003)
            .map(|i| match i % 97 {
                0 => -0.0,
                1 => 0.0,
                _ => crate::synth::laplace(&mut rng, 0.5, 4.0),
            })
            .collect();
        for len in [1, 7, 8, 9, 64, 1003] {
            let v = &v[..len];
            let (lo, hi, sum) = lane_min_max_sums(v);
            let (want_lo, want_hi) = lane_min_max(v);
            assert_eq!(lo.map(f32::to_bits), want_lo.map(f32::to_bits), "{len}");
            assert_eq!(hi.map(f32::to_bits), want_hi.map(f32::to_bits), "{len}");
            assert_eq!(
                sum.map(f64::to_bits),
                lane_sums(v).map(f64::to_bits),
                "{len}"
            );
        }
    }

    #[test]
    fn two_samples_at_once_give_each_its_own_statistics() {
        let mut rng = crate::synth::Rng::new(7);
        let a: Vec<f32> = (0..1001)
            .map(|_| crate::synth::heavy_tailed(&mut rng))
            .collect();
        let b: Vec<f32> = (0..1001)
            .map(|_| crate::synth::laplace(&mut rng, 3.0, 0.1))
            .collect();
        let mut bad = b.clone();
        bad[555] = f32::NAN;
        for (x, y) in [
            (&a[..], &b[..]),
            (&a[..7], &b[..7]),
            (&a[..], &b[..500]),
            (&a[..], &bad[..]),
            (&[][..], &[][..]),
        ] {
            // Debug text: NaN in an error is not equal to itself; shortest round-trip digits
            // tell every other f32 and f64 apart.
            let [sx, sy] = SampleStats::compute_two(x, y).map(|r| format!("{r:?}"));
            assert_eq!(sx, format!("{:?}", SampleStats::compute(x)));
            assert_eq!(sy, format!("{:?}", SampleStats::compute(y)));
        }
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
    fn estimate_keeps_exact_extremes_and_close_moments() {
        let mut rng = crate::synth::Rng::new(4);
        let mut v: Vec<f32> = (0..200_000)
            .map(|_| crate::synth::laplace(&mut rng, 1.0, 2.0))
            .collect();
        v[12_345] = 1e4; // an extreme the strided sample misses
        let exact = SampleStats::compute(&v).unwrap();
        let est = SampleStats::estimate(&v, 8192).unwrap();
        assert_eq!((est.min, est.max), (exact.min, exact.max));
        assert_eq!(est.max, 1e4);
        assert!(
            (est.mean_abs_dev / exact.mean_abs_dev - 1.0).abs() < 0.05,
            "{est:?} {exact:?}"
        );
        assert!((est.mean - exact.mean).abs() < 0.1);
        v[100_001] = f32::NAN;
        assert_eq!(SampleStats::estimate(&v, 8192).unwrap_err().index, 100_001);
    }

    #[test]
    fn extreme_finite_values_are_not_mistaken_for_infinity() {
        let v = vec![f32::MAX; 64];
        let s = SampleStats::compute(&v).unwrap();
        assert_eq!(s.max, f32::MAX);
        assert_eq!(min_max(&v).unwrap(), (f32::MAX, f32::MAX));
    }
}
