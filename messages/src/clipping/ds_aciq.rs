//! DS-ACIQ: directed search for the clipping range, started at the ACIQ alpha and guided by the
//! measured quantization error of the real values (QuantPipe, arXiv 2211.04515).
//!
//! ACIQ is optimal only if the values really are Laplace. Real activations have outlier channels
//! and heavier or lighter tails, so the analytic alpha can be far from the best one. The search
//! measures instead of assuming:
//!
//! - **Objective**: the MSE of quantize-then-dequantize with exactly the codec's quantizer
//!   ([`quantization_mse`]), on a strided sample of the values.
//! - **Sample**: at most `max_sample_values` values per sample, in runs of 64 contiguous values
//!   at a prime run stride of at least 7 ([`super::stats::strided_sample`]), so it touches little
//!   memory and does not alias onto a few channels of a row-major [tokens, hidden] layout.
//! - **Start**: the better (lower sampled MSE) of two analytic candidates: the ACIQ alpha for the
//!   caller's [`ValueKind`], and the alpha that covers [min, max] (min-max, naive's range, beyond
//!   which every range is the same). Scoring naive too matters at high bitwidths and on tensors
//!   whose extremes carry information: there, clipping anything costs more than the finer step
//!   gains, and a search started at ACIQ's alpha can run out of steps before it gets back up.
//! - **Step**: multiplicative, in log2(alpha): first `initial_log2_step` (0.5, i.e. x1.41).
//! - **Direction rule**: probe alpha * 2^(+step) and alpha * 2^(-step); move to the lower-MSE
//!   probe if it beats the current alpha, then keep walking that way one step at a time while
//!   the MSE keeps falling. When neither direction improves (or a walk stops improving), halve
//!   the step and probe again.
//! - **Stop**: when the step falls below `min_log2_step` (1/8: about 9% in alpha; the MSE is flat
//!   that close to its minimum) with no improving direction, or after `max_evals` evaluations.
//! - **Cost**: at most `max_evals` passes over at most `max_sample_values` values, i.e.
//!   <= 16 x 8192 quantize-dequantize steps per sample by default (typically 6-10 evaluations),
//!   independent of the tensor size; 8 samples of a microbatch search on <= 64k values in all.
//!   The result never has a higher sampled MSE than ACIQ's or naive's.
//!
//! Outlier channels (a few hidden dimensions far larger than the rest) are the tensor-level part
//! of the search, in [`super::outlier_channels`]: it runs this search on each sample without them.

use serde::{Deserialize, Serialize};

use super::aciq::{aciq_alpha, full_alpha, range_for_alpha};
use super::stats::strided_sample;
use super::{ClipRange, SampleStats, ValueKind};
use crate::bits::Bits;
use crate::quant::QuantParams;

/// Tuning of the DS-ACIQ search; the defaults are what the codec uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DsAciqConfig {
    /// Most values per sample the error is measured on.
    pub max_sample_values: usize,
    /// First step, in log2 of alpha.
    pub initial_log2_step: f64,
    /// The search stops once no direction improves at a step below this.
    pub min_log2_step: f64,
    /// Hard cap on MSE evaluations per sample (bounds the cost).
    pub max_evals: usize,
}

impl Default for DsAciqConfig {
    fn default() -> Self {
        DsAciqConfig {
            max_sample_values: 8192,
            initial_log2_step: 0.5,
            min_log2_step: 1.0 / 8.0,
            max_evals: 16,
        }
    }
}

/// The outcome of one search, with what it cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DsAciqTrace {
    pub range: ClipRange,
    pub start_alpha: f64,
    pub alpha: f64,
    /// Sampled MSE at ACIQ's alpha and at the result.
    pub start_mse: f64,
    pub mse: f64,
    pub evals: usize,
    pub sampled_values: usize,
}

/// Mean squared error of quantizing `values` to `bits` over `range` and back, with the codec's
/// quantizer. Raw (32) bits and invalid ranges measure as 0 and +inf respectively.
pub fn quantization_mse(values: &[f32], range: ClipRange, bits: Bits) -> f64 {
    if bits.is_raw() || values.is_empty() {
        return 0.0;
    }
    let Some(q) = QuantParams::new(range, bits) else {
        return f64::INFINITY;
    };
    squared_error_sums(values, &[q])[0] / values.len() as f64
}

/// [`quantization_mse`] over two ranges at once: one pass over `values` (half the memory
/// traffic, and two independent accumulator chains), each result bit for bit what
/// [`quantization_mse`] gives.
fn quantization_mse_pair(values: &[f32], ranges: [ClipRange; 2], bits: Bits) -> [f64; 2] {
    if bits.is_raw() || values.is_empty() {
        return [0.0; 2];
    }
    match ranges.map(|r| QuantParams::new(r, bits)) {
        [Some(a), Some(b)] => squared_error_sums(values, &[a, b]).map(|e| e / values.len() as f64),
        _ => ranges.map(|r| quantization_mse(values, r, bits)),
    }
}

/// The sum of squared quantization errors of `values` under each of `qs`.
fn squared_error_sums<const N: usize>(values: &[f32], qs: &[QuantParams; N]) -> [f64; N] {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { squared_error_sums_avx2(values, qs) };
    }
    squared_error_sums_impl(values, qs)
}

const LANES: usize = 8;

/// Values per f32 partial sum: flushed to f64 every this many to keep precision without f64
/// lanes.
const FLUSH: usize = 4096;

/// Each range's sum is accumulated in the same order whatever N is: lane i of a block of
/// [`FLUSH`] values sums the values at i % 8, and the lanes are added to the total in order.
#[inline(always)]
fn squared_error_sums_impl<const N: usize>(values: &[f32], qs: &[QuantParams; N]) -> [f64; N] {
    let mut acc = [[0f32; LANES]; N];
    let mut total = [0f64; N];
    for block in values.chunks(FLUSH) {
        let chunks = block.chunks_exact(LANES);
        let tail = chunks.remainder();
        for c in chunks {
            for (acc, q) in acc.iter_mut().zip(qs) {
                for i in 0..LANES {
                    let e = c[i] - q.reconstruct(c[i]);
                    acc[i] += e * e;
                }
            }
        }
        for ((acc, total), q) in acc.iter_mut().zip(&mut total).zip(qs) {
            add_tail_and_flush(acc, total, tail, q);
        }
    }
    total
}

#[inline(always)]
fn add_tail_and_flush(acc: &mut [f32; LANES], total: &mut f64, tail: &[f32], q: &QuantParams) {
    for (i, &x) in tail.iter().enumerate() {
        let e = x - q.reconstruct(x);
        acc[i] += e * e;
    }
    *total += acc.iter().map(|&a| f64::from(a)).sum::<f64>();
    *acc = [0.0; LANES];
}

/// [`squared_error_sums_impl`] written out in AVX intrinsics: the compiler vectorised it to
/// 4-wide halves stitched with scalar inserts. Every operation is the one
/// [`QuantParams::reconstruct`] makes, in the same order (MAXPS and MINPS are exactly its
/// selects), so each sum is bit for bit the portable one.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn squared_error_sums_avx2<const N: usize>(
    values: &[f32],
    qs: &[QuantParams; N],
) -> [f64; N] {
    use std::arch::x86_64::*;
    // The quantizer's round-to-nearest constant, 2^23 (see `QuantParams::code`).
    const ROUNDING_MAGIC: f32 = 8_388_608.0;
    let magic = _mm256_set1_ps(ROUNDING_MAGIC);
    let zero = _mm256_setzero_ps();
    let lo = qs.map(|q| _mm256_set1_ps(q.lo));
    let inv = qs.map(|q| _mm256_set1_ps(q.inv_scale));
    let qmax = qs.map(|q| _mm256_set1_ps(q.qmax));
    let scale = qs.map(|q| _mm256_set1_ps(q.scale));
    let mut total = [0f64; N];
    for block in values.chunks(FLUSH) {
        let chunks = block.chunks_exact(LANES);
        let tail = chunks.remainder();
        let mut acc = [zero; N];
        for c in chunks {
            // SAFETY: a chunk is 8 f32.
            let x = unsafe { _mm256_loadu_ps(c.as_ptr()) };
            for k in 0..N {
                let t = _mm256_mul_ps(_mm256_sub_ps(x, lo[k]), inv[k]);
                let t = _mm256_max_ps(t, zero);
                let t = _mm256_min_ps(t, qmax[k]);
                let code = _mm256_sub_ps(_mm256_add_ps(t, magic), magic);
                let e = _mm256_sub_ps(x, _mm256_add_ps(lo[k], _mm256_mul_ps(code, scale[k])));
                acc[k] = _mm256_add_ps(acc[k], _mm256_mul_ps(e, e));
            }
        }
        for k in 0..N {
            let mut lanes = [0f32; LANES];
            // SAFETY: the lane array holds 8 f32.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc[k]) };
            add_tail_and_flush(&mut lanes, &mut total[k], tail, &qs[k]);
        }
    }
    total
}

/// The DS-ACIQ range for one sample (see the module docs for the search).
pub fn ds_aciq(
    values: &[f32],
    stats: &SampleStats,
    bits: Bits,
    kind: ValueKind,
    cfg: &DsAciqConfig,
) -> DsAciqTrace {
    search(
        &strided_sample(values, cfg.max_sample_values),
        stats,
        bits,
        kind,
        cfg,
    )
}

/// The search of [`ds_aciq`] on an already drawn `sample` of the values whose statistics are
/// `stats` (min and max exact: they bound every candidate range).
pub fn search(
    sample: &[f32],
    stats: &SampleStats,
    bits: Bits,
    kind: ValueKind,
    cfg: &DsAciqConfig,
) -> DsAciqTrace {
    search_with_tail(sample, &Tail::NONE, stats, bits, kind, cfg)
}

/// Values a strided sample would rarely hold (e.g. every channel's minimum and maximum), scored
/// beside it: a sample of a sixth of the values sees a sixth of the rare extremes, so at high
/// bitwidths, where clipping one extreme costs more than the finer step gains, a search on the
/// sample alone clips what it never saw.
#[derive(Debug, Clone, Copy)]
pub struct Tail<'a> {
    pub values: &'a [f32],
    /// The share of all values (those the sample stands for) that `values` are.
    pub share: f64,
}

impl Tail<'_> {
    pub const NONE: Tail<'static> = Tail {
        values: &[],
        share: 0.0,
    };
}

/// [`search`] with the objective `mse(sample) + tail.share * mse(tail.values)`: an estimate of the
/// error over every value that counts the tail's squared errors exactly.
pub fn search_with_tail(
    sample: &[f32],
    tail: &Tail<'_>,
    stats: &SampleStats,
    bits: Bits,
    kind: ValueKind,
    cfg: &DsAciqConfig,
) -> DsAciqTrace {
    search_remembering(sample, tail, stats, bits, kind, cfg, &mut Vec::new())
}

/// [`search_with_tail`], taking the objective at an alpha from `known` (alpha, objective) if
/// there and adding every objective it computes to it: a later search of the same values, tail
/// and statistics (with a larger `max_evals`) then repeats none of this one's evaluations, and
/// finds exactly what it would have found alone.
pub(crate) fn search_remembering(
    sample: &[f32],
    tail: &Tail<'_>,
    stats: &SampleStats,
    bits: Bits,
    kind: ValueKind,
    cfg: &DsAciqConfig,
    known: &mut Vec<(f64, f64)>,
) -> DsAciqTrace {
    let full = full_alpha(stats, kind);
    let start = aciq_alpha(stats, bits, kind);
    let mut trace = DsAciqTrace {
        range: range_for_alpha(stats, start, kind),
        start_alpha: start,
        alpha: start,
        start_mse: 0.0,
        mse: 0.0,
        evals: 0,
        sampled_values: sample.len(),
    };
    if bits.is_raw() || full <= 0.0 || sample.is_empty() {
        return trace;
    }
    let mut objective = Objective {
        sample,
        tail,
        stats,
        bits,
        kind,
        known,
        evals: 0,
    };
    // A zero b with a non-constant sample (all but a few values equal) would pin alpha at 0.
    let mut alpha = start.max(full * 1e-6);
    let mut best;
    if alpha < full {
        let [at_start, naive] = objective.pair(alpha, full);
        best = at_start;
        trace.start_mse = best;
        if naive < best {
            (alpha, best) = (full, naive);
        }
    } else {
        best = objective.one(alpha);
        trace.start_mse = best;
    }
    let mut step = cfg.initial_log2_step;
    let mut dir = 0.0f64;
    while step >= cfg.min_log2_step && objective.evals < cfg.max_evals {
        if dir == 0.0 {
            let up = (alpha * step.exp2()).min(full);
            let down = alpha * (-step).exp2();
            let (e_up, e_down) = if up > alpha {
                let [e_up, e_down] = objective.pair(up, down);
                (e_up, e_down)
            } else {
                (f64::INFINITY, objective.one(down))
            };
            if e_up.min(e_down) < best {
                (alpha, best, dir) = if e_up < e_down {
                    (up, e_up, 1.0)
                } else {
                    (down, e_down, -1.0)
                };
            } else {
                step /= 2.0;
            }
        } else {
            let next = (alpha * (dir * step).exp2()).min(full);
            let e = if next != alpha {
                objective.one(next)
            } else {
                f64::INFINITY
            };
            if e < best {
                (alpha, best) = (next, e);
            } else {
                dir = 0.0;
                step /= 2.0;
            }
        }
    }
    trace.alpha = alpha;
    trace.mse = best;
    trace.evals = objective.evals;
    trace.range = range_for_alpha(stats, alpha, kind);
    trace
}

/// The search's objective at an alpha, counting evaluations and remembering them.
struct Objective<'a, 'k> {
    sample: &'a [f32],
    tail: &'a Tail<'a>,
    stats: &'a SampleStats,
    bits: Bits,
    kind: ValueKind,
    known: &'k mut Vec<(f64, f64)>,
    evals: usize,
}

impl Objective<'_, '_> {
    fn recall(&self, alpha: f64) -> Option<f64> {
        self.known
            .iter()
            .find(|&&(a, _)| a.to_bits() == alpha.to_bits())
            .map(|&(_, e)| e)
    }

    fn one(&mut self, alpha: f64) -> f64 {
        self.evals += 1;
        if let Some(e) = self.recall(alpha) {
            return e;
        }
        let range = range_for_alpha(self.stats, alpha, self.kind);
        let tail_mse = if self.tail.values.is_empty() {
            0.0
        } else {
            self.tail.share * quantization_mse(self.tail.values, range, self.bits)
        };
        let e = quantization_mse(self.sample, range, self.bits) + tail_mse;
        self.known.push((alpha, e));
        e
    }

    /// The objective at `a` and at `b`, in one pass over the values when neither is known.
    fn pair(&mut self, a: f64, b: f64) -> [f64; 2] {
        if self.recall(a).is_some() || self.recall(b).is_some() {
            return [self.one(a), self.one(b)];
        }
        self.evals += 2;
        let ranges = [a, b].map(|alpha| range_for_alpha(self.stats, alpha, self.kind));
        let tail_mse = if self.tail.values.is_empty() {
            [0.0; 2]
        } else {
            quantization_mse_pair(self.tail.values, ranges, self.bits).map(|e| self.tail.share * e)
        };
        let sample_mse = quantization_mse_pair(self.sample, ranges, self.bits);
        let e = [sample_mse[0] + tail_mse[0], sample_mse[1] + tail_mse[1]];
        self.known.extend([(a, e[0]), (b, e[1])]);
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clipping::stats::strided_sample;
    use crate::clipping::{aciq, naive};
    use crate::synth::{heavy_tailed, laplace, Rng};

    #[test]
    fn never_worse_than_aciq_and_better_on_heavy_tails() {
        let mut rng = Rng::new(11);
        let values: Vec<f32> = (0..150_000).map(|_| heavy_tailed(&mut rng)).collect();
        let stats = SampleStats::compute(&values).unwrap();
        let mut strictly_better = 0;
        for b in 2..=8 {
            let bits = Bits::new(b).unwrap();
            let t = ds_aciq(
                &values,
                &stats,
                bits,
                ValueKind::TwoSided,
                &DsAciqConfig::default(),
            );
            let ds = quantization_mse(&values, t.range, bits);
            let ac = quantization_mse(&values, aciq(&stats, bits, ValueKind::TwoSided), bits);
            assert!(ds <= ac * 1.01, "{b} bits: ds-aciq {ds} > aciq {ac}");
            assert!(t.mse <= t.start_mse);
            if ds < 0.95 * ac {
                strictly_better += 1;
            }
        }
        // The search must actually move on data that is not Laplace.
        assert!(
            strictly_better >= 3,
            "only {strictly_better} bitwidths improved"
        );
    }

    #[test]
    fn never_worse_than_naive_where_clipping_hurts() {
        // Values at +-1 and a rare extreme at 1000: every clipped range pays ~1000^2 per extreme,
        // far more than min-max's coarse step costs the rest, yet near ACIQ's alpha a step up
        // coarsens the grid faster than it cuts the clipping error, so a search that only walks
        // from ACIQ's alpha stays there.
        let values: Vec<f32> = (0..20_000)
            .map(|i| match i % 5_000 {
                0 => 1000.0,
                j if j % 2 == 0 => 1.0,
                _ => -1.0,
            })
            .collect();
        let stats = SampleStats::compute(&values).unwrap();
        for b in [2, 3, 4, 8, 16] {
            let bits = Bits::new(b).unwrap();
            let t = ds_aciq(
                &values,
                &stats,
                bits,
                ValueKind::TwoSided,
                &DsAciqConfig::default(),
            );
            let ds = quantization_mse(&values, t.range, bits);
            let nv = quantization_mse(&values, naive(&stats), bits);
            assert!(ds <= nv * 1.0001, "{b} bits: ds-aciq {ds} > naive {nv}");
        }
        let t = ds_aciq(
            &values,
            &stats,
            Bits::new(16).unwrap(),
            ValueKind::TwoSided,
            &DsAciqConfig::default(),
        );
        assert_eq!(t.range, naive(&stats));
    }

    #[test]
    fn stays_near_aciq_on_laplace_data() {
        let mut rng = Rng::new(5);
        let values: Vec<f32> = (0..100_000).map(|_| laplace(&mut rng, 0.0, 1.0)).collect();
        let stats = SampleStats::compute(&values).unwrap();
        let bits = Bits::new(3).unwrap();
        let t = ds_aciq(
            &values,
            &stats,
            bits,
            ValueKind::TwoSided,
            &DsAciqConfig::default(),
        );
        // ACIQ is the optimum for Laplace data: the search should stay within one step of it.
        assert!((t.alpha / t.start_alpha).log2().abs() <= 0.5, "{t:?}");
    }

    #[test]
    fn cost_is_bounded_by_the_config() {
        let mut rng = Rng::new(9);
        let values: Vec<f32> = (0..1_000_000).map(|_| heavy_tailed(&mut rng)).collect();
        let stats = SampleStats::compute(&values).unwrap();
        let cfg = DsAciqConfig::default();
        let t = ds_aciq(
            &values,
            &stats,
            Bits::new(2).unwrap(),
            ValueKind::TwoSided,
            &cfg,
        );
        assert!(t.evals <= cfg.max_evals);
        assert!(t.sampled_values <= cfg.max_sample_values);
        assert!(t.sampled_values > cfg.max_sample_values / 2);
    }

    #[test]
    fn constant_sample_gives_constant_range() {
        let values = [2.5f32; 100];
        let stats = SampleStats::compute(&values).unwrap();
        let t = ds_aciq(
            &values,
            &stats,
            Bits::new(2).unwrap(),
            ValueKind::TwoSided,
            &DsAciqConfig::default(),
        );
        assert_eq!(t.range, ClipRange::new(2.5, 2.5));
        assert_eq!(naive(&stats), t.range);
    }

    #[test]
    fn paired_evaluations_equal_single_ones() {
        let mut rng = Rng::new(3);
        let values: Vec<f32> = (0..10_001).map(|_| heavy_tailed(&mut rng)).collect();
        let ranges = [ClipRange::new(-1.5, 2.0), ClipRange::new(-0.2, 0.3)];
        for b in [2, 5, 8, 16] {
            let bits = Bits::new(b).unwrap();
            let pair = quantization_mse_pair(&values, ranges, bits);
            let single = ranges.map(|r| quantization_mse(&values, r, bits));
            assert_eq!(pair.map(f64::to_bits), single.map(f64::to_bits), "{b} bits");
            // The vectorised sums are the portable loop's, bit for bit, at every length.
            let qs = ranges.map(|r| QuantParams::new(r, bits).unwrap());
            for len in [1, 7, 8, 15, 16, 23, 4096, 4104, 10_001] {
                let v = &values[..len];
                let portable = squared_error_sums_impl(v, &qs).map(f64::to_bits);
                assert_eq!(
                    squared_error_sums(v, &qs).map(f64::to_bits),
                    portable,
                    "{b}, {len}"
                );
                let one = squared_error_sums(v, &[qs[1]]).map(f64::to_bits);
                assert_eq!(one, squared_error_sums_impl(v, &[qs[1]]).map(f64::to_bits));
            }
        }
    }

    #[test]
    fn a_search_continued_from_remembered_evaluations_finds_the_same() {
        let mut rng = Rng::new(4);
        let values: Vec<f32> = (0..20_000).map(|_| heavy_tailed(&mut rng)).collect();
        let stats = SampleStats::compute(&values).unwrap();
        let tail_values = [stats.min, stats.max];
        let tail = Tail {
            values: &tail_values,
            share: 1e-4,
        };
        let cfg = DsAciqConfig::default();
        let quick = DsAciqConfig {
            max_evals: 2,
            ..cfg
        };
        for b in [2, 3, 4, 8, 16] {
            let bits = Bits::new(b).unwrap();
            let alone = search_with_tail(&values, &tail, &stats, bits, ValueKind::TwoSided, &cfg);
            let mut known = Vec::new();
            search_remembering(
                &values,
                &tail,
                &stats,
                bits,
                ValueKind::TwoSided,
                &quick,
                &mut known,
            );
            let remembered = known.len();
            assert!(remembered >= 1);
            let continued = search_remembering(
                &values,
                &tail,
                &stats,
                bits,
                ValueKind::TwoSided,
                &cfg,
                &mut known,
            );
            assert_eq!(continued, alone, "{b} bits");
            // The quick search's evaluations were taken from memory, not repeated.
            assert!(
                known.len() <= alone.evals,
                "{} > {}",
                known.len(),
                alone.evals
            );
        }
    }

    #[test]
    fn strided_sample_avoids_channel_aliasing() {
        // [tokens, 768] with one outlier channel: the sample must see it in proportion.
        let hidden = 768;
        let values: Vec<f32> = (0..197 * hidden)
            .map(|i| if i % hidden == 5 { 100.0 } else { 0.0 })
            .collect();
        let s = strided_sample(&values, 8192);
        let hits = s.iter().filter(|&&x| x == 100.0).count();
        let expected = s.len() as f64 / hidden as f64;
        assert!(
            (hits as f64 - expected).abs() <= expected * 0.5 + 2.0,
            "{hits} vs {expected}"
        );
    }
}
