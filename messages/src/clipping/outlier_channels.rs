//! Outlier channels: the tensor-level half of DS-ACIQ.
//!
//! Transformer activations have a few hidden dimensions (channels: indices of the last
//! dimension) whose values are 10-100x the others in every token (MiniLM and BERT are known for
//! it). A per-sample range must then either stretch to cover them, wasting most levels on values
//! only those channels take, or clip them, destroying what they carry; no range is right even at
//! 16 bits. Instead the k channels of largest magnitude can each get their own range for the
//! whole tensor (see [`crate::tensor`]: their codes stay in the same packed stream, only their
//! (scale, offset) differs), and the sample ranges are searched on the other values.
//!
//! - **Which channels**: ranked by their mean square distance from the median channel mean
//!   ([`ChannelStats::ranked`]): a channel stuck at -10 is as much an outlier as one that swings
//!   to +10, while a channel with one rare spike is not one (its own min-max range would be as
//!   coarse as the shared one).
//! - **How many**: k from [`OUTLIER_COUNTS`] (0 included), at most an eighth of the channels and
//!   at most what the wire budget allows ([`outlier_budget`]: 2% of the plain payload, at
//!   [`OUTLIER_WIRE_BYTES`] per channel). Each k is scored by the same objective as the range
//!   search, with the inliers' ranges limited to its two starting points (the better of ACIQ's
//!   and min-max; the full search for all seven counts cost 5-40x an encode), and the full
//!   search then runs for the chosen k. The objective: the codec's squared error over the tensor, estimated from the strided sample of
//!   every sample and (exactly) from every channel's extremes, which a sample mostly misses;
//!   inliers with the range DS-ACIQ finds for them ([`super::ds_aciq::search_with_tail`]),
//!   each outlier channel with the range the same search finds for it over the whole tensor. A count is kept only if it lowers the error by [`MIN_GAIN`] against the best
//!   smaller count, so channels are split off only where they pay.
//! - **Cost**: one pass over the tensor for per-sample, per-channel extremes (which also give
//!   every exact min and max and find non-finite values), one DS-ACIQ search per candidate
//!   channel on its drawn values, two evaluations per sample per count (at most 7) and one
//!   DS-ACIQ search per sample, all on the same bounded sample.

use super::ds_aciq::{search_remembering, search_with_tail, DsAciqConfig, Tail};
use super::stats::{first_non_finite, strided_runs, NonFiniteValue};
use super::{ClipRange, SampleStats, ValueKind};
use crate::bits::Bits;
use crate::quant::QuantParams;

/// Most wire bytes one outlier channel adds: a MessagePack array of a u32 and two f32.
pub const OUTLIER_WIRE_BYTES: usize = 16;

/// What the outlier channels of a tensor may add to its wire form, in percent of its plain
/// payload (the packed codes).
pub const OUTLIER_BUDGET_PERCENT: usize = 2;

/// The outlier-channel counts the search scores, in the order it tries them.
pub const OUTLIER_COUNTS: [usize; 7] = [0, 1, 2, 4, 8, 16, 32];

/// The relative drop in sampled squared error a larger outlier count must bring to be kept.
pub const MIN_GAIN: f64 = 0.01;

/// Most outlier channels whose metadata fits in [`OUTLIER_BUDGET_PERCENT`] of a plain payload
/// of `payload_bytes`.
pub fn outlier_budget(payload_bytes: usize) -> usize {
    payload_bytes * OUTLIER_BUDGET_PERCENT / 100 / OUTLIER_WIRE_BYTES
}

/// Per-sample, per-channel minimum and maximum of a tensor of `samples` x rows x `channels`,
/// and each channel's mean and mean square over the whole tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelStats {
    channels: usize,
    lo: Vec<f32>,
    hi: Vec<f32>,
    mean: Vec<f64>,
    mean_square: Vec<f64>,
}

impl ChannelStats {
    /// One pass over `values` (`samples` equal blocks, each of whole rows of `channels`), or
    /// the first non-finite value.
    pub fn compute(
        values: &[f32],
        samples: usize,
        channels: usize,
    ) -> Result<ChannelStats, NonFiniteValue> {
        let per = values.len().checked_div(samples).unwrap_or(0);
        let mut lo = vec![f32::INFINITY; samples * channels];
        let mut hi = vec![f32::NEG_INFINITY; samples * channels];
        // x * 0 is 0 for finite x and NaN otherwise; NaN survives the additions.
        let mut poison = vec![0f32; channels];
        let mut sum = vec![0f64; channels];
        let mut sum_sq = vec![0f64; channels];
        let mut rows = 0usize;
        let mut acc = vec![0f32; channels];
        let mut acc_sq = vec![0f32; channels];
        if channels > 0 {
            for (s, sample) in values.chunks_exact(per.max(1)).take(samples).enumerate() {
                let l = &mut lo[s * channels..(s + 1) * channels];
                let h = &mut hi[s * channels..(s + 1) * channels];
                // f32 sums per sample (a few thousand rows at most), flushed to f64.
                acc.fill(0.0);
                acc_sq.fill(0.0);
                rows += sample.len() / channels;
                fold_sample(
                    sample,
                    Columns {
                        lo: l,
                        hi: h,
                        poison: &mut poison,
                        acc: &mut acc,
                        acc_sq: &mut acc_sq,
                    },
                );
                for c in 0..channels {
                    sum[c] += f64::from(acc[c]);
                    sum_sq[c] += f64::from(acc_sq[c]);
                }
            }
        }
        if poison.iter().any(|p| *p != 0.0) {
            return Err(first_non_finite(values));
        }
        let rows = rows.max(1) as f64;
        Ok(ChannelStats {
            channels,
            lo,
            hi,
            mean: sum.iter().map(|s| s / rows).collect(),
            mean_square: sum_sq.iter().map(|s| s / rows).collect(),
        })
    }

    /// [min, max] of sample `s` over the channels `outlier` does not mark.
    pub fn inlier_range(&self, s: usize, outlier: &[bool]) -> ClipRange {
        let c = self.channels;
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for ((&l, &h), &out) in self.lo[s * c..(s + 1) * c]
            .iter()
            .zip(&self.hi[s * c..(s + 1) * c])
            .zip(outlier)
        {
            if !out {
                lo = lo.min(l);
                hi = hi.max(h);
            }
        }
        if lo > hi {
            ClipRange::new(0.0, 0.0)
        } else {
            ClipRange::new(lo, hi)
        }
    }

    /// [`ChannelStats::inlier_range`], given also the runs of channels `outlier` does not mark:
    /// the extremes by MINPS/MAXPS over each run. Any order of comparisons finds the same
    /// nonzero extreme; only a zero one (whose sign the order could change) is found again by
    /// `inlier_range` itself.
    fn inlier_range_in_runs(
        &self,
        s: usize,
        runs: &[std::ops::Range<usize>],
        outlier: &[bool],
    ) -> ClipRange {
        let c = self.channels;
        let (lo_all, hi_all) = (&self.lo[s * c..(s + 1) * c], &self.hi[s * c..(s + 1) * c]);
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for run in runs {
            let (l, h) = extremes_of(&lo_all[run.clone()], &hi_all[run.clone()]);
            lo = if l < lo { l } else { lo };
            hi = if h > hi { h } else { hi };
        }
        if lo == 0.0 || hi == 0.0 {
            return self.inlier_range(s, outlier);
        }
        if lo > hi {
            ClipRange::new(0.0, 0.0)
        } else {
            ClipRange::new(lo, hi)
        }
    }

    /// The minimum and maximum of every channel of sample `s` that `outlier` does not mark: the
    /// values a strided sample most often misses.
    pub fn inlier_extremes(&self, s: usize, outlier: &[bool], out: &mut Vec<f32>) {
        let c = self.channels;
        out.clear();
        for ((&l, &h), &o) in self.lo[s * c..(s + 1) * c]
            .iter()
            .zip(&self.hi[s * c..(s + 1) * c])
            .zip(outlier)
        {
            if !o {
                out.extend([l, h]);
            }
        }
    }

    /// [min, max] of channel `c` over every sample.
    pub fn channel_range(&self, c: usize) -> ClipRange {
        let samples = self.lo.len().checked_div(self.channels).unwrap_or(0);
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for s in 0..samples {
            lo = lo.min(self.lo[s * self.channels + c]);
            hi = hi.max(self.hi[s * self.channels + c]);
        }
        if lo > hi {
            ClipRange::new(0.0, 0.0)
        } else {
            ClipRange::new(lo, hi)
        }
    }

    /// Channels by decreasing mean square distance from the median channel mean (ties: lower
    /// index first). A typical magnitude, not an extreme: a channel that is far from the rest in
    /// every row is an outlier channel, one with a rare spike is not (its own min-max range
    /// would be as coarse as the shared one).
    pub fn ranked(&self) -> Vec<usize> {
        let mut means = self.mean.clone();
        means.sort_by(f64::total_cmp);
        let m = means.get(means.len() / 2).copied().unwrap_or(0.0);
        // E[(x - m)^2] = E[x^2] - 2 m E[x] + m^2
        let spread: Vec<f64> = (0..self.channels)
            .map(|c| self.mean_square[c] - 2.0 * m * self.mean[c] + m * m)
            .collect();
        let mut order: Vec<usize> = (0..self.channels).collect();
        order.sort_by(|&a, &b| spread[b].total_cmp(&spread[a]).then(a.cmp(&b)));
        order
    }
}

/// The smallest of `lo` and the largest of `hi` (finite values), +-inf if empty.
fn extremes_of(lo: &[f32], hi: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::INFINITY, f32::NEG_INFINITY);
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let n = lo.len().min(hi.len());
        if n >= 4 {
            let mut m = [0f32; 4];
            let mut x = [0f32; 4];
            // SAFETY: SSE is part of x86_64; done + 4 <= n keeps every load inside the slices.
            unsafe {
                let (mut vmin, mut vmax) = (_mm_set1_ps(min), _mm_set1_ps(max));
                while done + 4 <= n {
                    vmin = _mm_min_ps(_mm_loadu_ps(lo.as_ptr().add(done)), vmin);
                    vmax = _mm_max_ps(_mm_loadu_ps(hi.as_ptr().add(done)), vmax);
                    done += 4;
                }
                _mm_storeu_ps(m.as_mut_ptr(), vmin);
                _mm_storeu_ps(x.as_mut_ptr(), vmax);
            }
            for (&l, &h) in m.iter().zip(&x) {
                min = if l < min { l } else { min };
                max = if h > max { h } else { max };
            }
        }
    }
    for (&l, &h) in lo[done..].iter().zip(&hi[done..]) {
        min = if l < min { l } else { min };
        max = if h > max { h } else { max };
    }
    (min, max)
}

/// Per-channel accumulators of one sample, each `channels` long.
struct Columns<'a> {
    lo: &'a mut [f32],
    hi: &'a mut [f32],
    poison: &'a mut [f32],
    acc: &'a mut [f32],
    acc_sq: &'a mut [f32],
}

/// Folds every whole row of `sample` (rows of `cols.lo.len()` channels) into `cols`, row after
/// row for each channel: its extremes by [`fold_extremes`]' selects, `acc += x`,
/// `acc_sq += x * x`, `poison += x * 0`.
fn fold_sample(sample: &[f32], cols: Columns<'_>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { fold_sample_avx2(sample, cols) };
        return;
    }
    fold_rows(sample, cols, 0);
}

/// [`fold_sample`] for the channels from `from` on, row by row.
fn fold_rows(sample: &[f32], cols: Columns<'_>, from: usize) {
    let channels = cols.lo.len();
    for row in sample.chunks_exact(channels) {
        let row = &row[from..];
        fold_extremes(&mut cols.lo[from..], &mut cols.hi[from..], row);
        for (((a, q), p), &x) in cols.acc[from..]
            .iter_mut()
            .zip(&mut cols.acc_sq[from..])
            .zip(&mut cols.poison[from..])
            .zip(row)
        {
            *a += x;
            *q += x * x;
            *p += x * 0.0;
        }
    }
}

/// [`fold_sample`] 16 (then 8) channels at a time down all the rows, their accumulators in
/// registers: row by row, each of the five arrays was loaded and stored once per value, and
/// 8 channels alone wait on their additions' latency. The operations per channel are the same,
/// in the same order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fold_sample_avx2(sample: &[f32], mut cols: Columns<'_>) {
    let channels = cols.lo.len();
    let pairs = channels / 16;
    let blocks = channels / 8;
    for p in 0..pairs {
        // SAFETY: the caller's AVX2 check; p * 16 + 16 <= channels.
        unsafe { fold_blocks_avx2::<2>(sample, &mut cols, p * 16) };
    }
    for b in pairs * 2..blocks {
        // SAFETY: the caller's AVX2 check; b * 8 + 8 <= channels.
        unsafe { fold_blocks_avx2::<1>(sample, &mut cols, b * 8) };
    }
    if blocks * 8 < channels {
        fold_rows(sample, cols, blocks * 8);
    }
}

/// The channels from `first` to `first + 8 * N` of [`fold_sample_avx2`]; needs
/// `first + 8 * N <= channels`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fold_blocks_avx2<const N: usize>(sample: &[f32], cols: &mut Columns<'_>, first: usize) {
    use std::arch::x86_64::*;
    let channels = cols.lo.len();
    assert!(first + 8 * N <= channels);
    let rows = sample.len() / channels;
    let zero = _mm256_setzero_ps();
    let at = |k: usize| first + 8 * k;
    // SAFETY: at(k) + 8 <= channels, the length of every column array and of every row; the
    // rows are the first `rows * channels` values of `sample`.
    unsafe {
        let load =
            |a: &[f32]| std::array::from_fn::<_, N, _>(|k| _mm256_loadu_ps(a.as_ptr().add(at(k))));
        let (mut l, mut h, mut p) = (load(cols.lo), load(cols.hi), load(cols.poison));
        let (mut a, mut q) = (load(cols.acc), load(cols.acc_sq));
        for r in 0..rows {
            for k in 0..N {
                let x = _mm256_loadu_ps(sample.as_ptr().add(r * channels + at(k)));
                l[k] = _mm256_min_ps(x, l[k]);
                h[k] = _mm256_max_ps(x, h[k]);
                a[k] = _mm256_add_ps(a[k], x);
                q[k] = _mm256_add_ps(q[k], _mm256_mul_ps(x, x));
                p[k] = _mm256_add_ps(p[k], _mm256_mul_ps(x, zero));
            }
        }
        let store = |dst: *mut f32, v: [__m256; N]| {
            for (k, v) in v.into_iter().enumerate() {
                _mm256_storeu_ps(dst.add(at(k)), v);
            }
        };
        store(cols.lo.as_mut_ptr(), l);
        store(cols.hi.as_mut_ptr(), h);
        store(cols.poison.as_mut_ptr(), p);
        store(cols.acc.as_mut_ptr(), a);
        store(cols.acc_sq.as_mut_ptr(), q);
    }
}

/// `lo[i] = if x < lo[i] { x } else { lo[i] }` and its mirror for `hi`, for every `x = row[i]`.
fn fold_extremes(lo: &mut [f32], hi: &mut [f32], row: &[f32]) {
    let n = row.len().min(lo.len()).min(hi.len());
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    {
        // The selects compile to a shuffle-bound blend chain; MINPS and MAXPS are exactly them
        // (the first operand if less, resp. greater, else the second).
        use std::arch::x86_64::{_mm_loadu_ps, _mm_max_ps, _mm_min_ps, _mm_storeu_ps};
        while done + 4 <= n {
            // SAFETY: SSE is part of x86_64; done + 4 <= n keeps every access inside the slices.
            unsafe {
                let x = _mm_loadu_ps(row.as_ptr().add(done));
                let l = lo.as_mut_ptr().add(done);
                let h = hi.as_mut_ptr().add(done);
                _mm_storeu_ps(l, _mm_min_ps(x, _mm_loadu_ps(l)));
                _mm_storeu_ps(h, _mm_max_ps(x, _mm_loadu_ps(h)));
            }
            done += 4;
        }
    }
    for ((l, h), &x) in lo[done..n]
        .iter_mut()
        .zip(&mut hi[done..n])
        .zip(&row[done..n])
    {
        *l = if x < *l { x } else { *l };
        *h = if x > *h { x } else { *h };
    }
}

/// What every search of one tensor shares.
#[derive(Debug, Clone, Copy)]
struct Setting<'a> {
    bits: Bits,
    kind: ValueKind,
    cfg: &'a DsAciqConfig,
}

/// What the search chose for one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierPlan {
    /// The clipping range of each sample's inlier values.
    pub sample_ranges: Vec<ClipRange>,
    /// Outlier channels by increasing index, each with its range.
    pub outliers: Vec<(u32, ClipRange)>,
    /// Squared error over the whole tensor under this plan, estimated from the strided sample
    /// and every channel's extremes (the search's objective).
    pub estimated_sse: f64,
    /// How many outlier counts were scored (those within the budget).
    pub counts_scored: usize,
}

/// DS-ACIQ over a whole tensor of `samples` equal blocks of rows of `channels` values: per-sample
/// ranges and up to `max_outliers` outlier channels (see the module docs). If `channels` does
/// not divide a sample, each sample is one row and no channel is split off.
pub fn ds_aciq_with_outliers(
    values: &[f32],
    samples: usize,
    channels: usize,
    bits: Bits,
    kind: ValueKind,
    cfg: &DsAciqConfig,
    max_outliers: usize,
) -> Result<OutlierPlan, NonFiniteValue> {
    let per = values.len().checked_div(samples).unwrap_or(0);
    let mut plan = OutlierPlan {
        sample_ranges: vec![ClipRange::new(0.0, 0.0); samples],
        outliers: Vec::new(),
        estimated_sse: 0.0,
        counts_scored: 0,
    };
    if per == 0 {
        return Ok(plan);
    }
    let (channels, max_outliers) = if channels > 0 && per.is_multiple_of(channels) {
        (channels, max_outliers)
    } else {
        (per, 0)
    };
    let extrema = ChannelStats::compute(values, samples, channels)?;
    let draws = Draws::gather(values, samples, channels, cfg.max_sample_values);
    let most = max_outliers.min(channels / 8);
    let rows = per / channels;
    let most_counted = OUTLIER_COUNTS
        .into_iter()
        .filter(|&k| k <= most)
        .max()
        .unwrap_or(0);
    // Each candidate channel's own range is the same whichever count it is part of. A channel
    // whose range cannot be quantized (a width beyond f32) ends the list.
    let ranked = &extrema.ranked()[..most_counted];
    // The drawn values of each candidate channel, sample after sample: every sample draws
    // from the same positions, so each channel's positions are found once.
    let mut slot = vec![usize::MAX; channels];
    for (i, &c) in ranked.iter().enumerate() {
        slot[c] = i;
    }
    let mut positions = vec![Vec::new(); ranked.len()];
    for (j, &c) in draws.channel.iter().enumerate() {
        if let Some(p) = positions.get_mut(slot[c as usize]) {
            p.push(j);
        }
    }
    let drawn: Vec<Vec<f32>> = positions
        .iter()
        .map(|p| {
            let draws = &draws;
            (0..samples)
                .flat_map(|s| p.iter().map(move |&j| draws.sample(s)[j]))
                .collect()
        })
        .collect();
    let full = Setting { bits, kind, cfg };
    let candidates: Vec<(usize, ClipRange, f64)> = ranked
        .iter()
        .zip(&drawn)
        .map_while(|(&c, values)| {
            let (range, sse) = channel_plan(&extrema, values, samples, rows, c, full)?;
            Some((c, range, sse))
        })
        .collect();
    // Counts are compared with the inliers' ranges limited to the search's two starting points.
    let two_evals = DsAciqConfig {
        max_evals: 2,
        ..*cfg
    };
    let quick = Setting {
        cfg: &two_evals,
        ..full
    };
    // The samples as prepared for the best count so far (with the evaluations its scoring
    // made), and those of the count being scored: the chosen count's full search starts from
    // what its scoring left instead of gathering and evaluating it all again.
    let mut best_prepared = Prepared::new(samples);
    let mut scratch = Prepared::new(samples);
    let mut best: Option<(usize, f64)> = None;
    for k in OUTLIER_COUNTS
        .into_iter()
        .filter(|&k| k <= candidates.len())
    {
        if !scratch.prepare(&extrema, &draws, rows, &candidates[..k]) {
            break;
        }
        let scored = scratch.score(&candidates[..k], quick);
        plan.counts_scored += 1;
        // Every count is scored: with many outlier channels, splitting off a few of them
        // changes nothing (the rest still stretch or are clipped) and only more pays.
        match best {
            Some((_, sse)) if scored.estimated_sse >= sse * (1.0 - MIN_GAIN) => {}
            _ => {
                best = Some((k, scored.estimated_sse));
                std::mem::swap(&mut best_prepared, &mut scratch);
            }
        }
    }
    let Some((k, _)) = best else {
        return Ok(plan);
    };
    let chosen = best_prepared.score(&candidates[..k], full);
    Ok(OutlierPlan {
        counts_scored: plan.counts_scored,
        ..chosen
    })
}

/// The strided sample of every sample of a tensor, and the channel of each drawn value. Samples
/// are whole rows, so every sample draws from the same positions and channels.
struct Draws {
    /// The drawn values, sample after sample (`channel.len()` each).
    values: Vec<f32>,
    /// The channel of each drawn position of a sample.
    channel: Vec<u32>,
}

impl Draws {
    fn gather(values: &[f32], samples: usize, channels: usize, max: usize) -> Draws {
        let per = values.len() / samples;
        let mut channel = Vec::new();
        for run in strided_runs(per, max) {
            let mut c = run.start % channels;
            for _ in run {
                channel.push(c as u32);
                c += 1;
                if c == channels {
                    c = 0;
                }
            }
        }
        let mut drawn = Vec::with_capacity(channel.len() * samples);
        for sample in values.chunks_exact(per).take(samples) {
            for run in strided_runs(per, max) {
                drawn.extend_from_slice(&sample[run]);
            }
        }
        Draws {
            values: drawn,
            channel,
        }
    }

    /// Sample `s`'s drawn values.
    fn sample(&self, s: usize) -> &[f32] {
        let m = self.channel.len();
        &self.values[s * m..(s + 1) * m]
    }
}

/// Every sample's inliers under one outlier count, ready for the range search: the drawn
/// inlier values, their statistics (min and max exact), every inlier channel's extremes as the
/// tail, and the objective values searches on them have computed.
struct Prepared {
    samples: Vec<PreparedSample>,
    is_outlier: Vec<bool>,
    /// Runs of drawn positions whose channels are inliers.
    keep: Vec<std::ops::Range<usize>>,
    /// Runs of inlier channels.
    inlier_channels: Vec<std::ops::Range<usize>>,
    inliers_per_sample: f64,
}

#[derive(Default)]
struct PreparedSample {
    inliers: Vec<f32>,
    extremes: Vec<f32>,
    stats: Option<SampleStats>,
    known: Vec<(f64, f64)>,
}

impl Prepared {
    fn new(samples: usize) -> Prepared {
        Prepared {
            samples: (0..samples).map(|_| PreparedSample::default()).collect(),
            is_outlier: Vec::new(),
            keep: Vec::new(),
            inlier_channels: Vec::new(),
            inliers_per_sample: 0.0,
        }
    }

    /// Prepares every sample with the channels of `outliers` split off; false if a sample's
    /// statistics cannot be computed.
    fn prepare(
        &mut self,
        stats: &ChannelStats,
        draws: &Draws,
        rows: usize,
        outliers: &[(usize, ClipRange, f64)],
    ) -> bool {
        self.is_outlier.clear();
        self.is_outlier.resize(stats.channels, false);
        for &(c, _, _) in outliers {
            self.is_outlier[c] = true;
        }
        self.keep.clear();
        let mut run_start = None;
        for (j, &c) in draws.channel.iter().enumerate() {
            match (self.is_outlier[c as usize], run_start) {
                (false, None) => run_start = Some(j),
                (true, Some(start)) => {
                    self.keep.push(start..j);
                    run_start = None;
                }
                _ => {}
            }
        }
        if let Some(start) = run_start {
            self.keep.push(start..draws.channel.len());
        }
        self.inlier_channels.clear();
        let mut from = 0;
        for (c, _) in self.is_outlier.iter().enumerate().filter(|(_, &o)| o) {
            if c > from {
                self.inlier_channels.push(from..c);
            }
            from = c + 1;
        }
        if from < stats.channels {
            self.inlier_channels.push(from..stats.channels);
        }
        self.inliers_per_sample = (rows * (stats.channels - outliers.len())) as f64;
        for (s, prepared) in self.samples.iter_mut().enumerate() {
            let draw = draws.sample(s);
            prepared.inliers.clear();
            for run in &self.keep {
                prepared.inliers.extend_from_slice(&draw[run.clone()]);
            }
            prepared.known.clear();
            stats.inlier_extremes(s, &self.is_outlier, &mut prepared.extremes);
        }
        // Two samples at a time: their statistics' sums interleave.
        for (pair, first) in self.samples.chunks_mut(2).zip((0..).step_by(2)) {
            let computed = match pair {
                [a, b] => SampleStats::compute_two(&a.inliers, &b.inliers).to_vec(),
                _ => pair
                    .iter()
                    .map(|p| SampleStats::compute(&p.inliers))
                    .collect(),
            };
            for ((prepared, s), computed) in pair.iter_mut().zip(first..).zip(computed) {
                // The extremes pass found every value finite, so this cannot fail.
                let Ok(mut sample_stats) = computed else {
                    prepared.stats = None;
                    return false;
                };
                let exact = stats.inlier_range_in_runs(s, &self.inlier_channels, &self.is_outlier);
                sample_stats.min = exact.lo;
                sample_stats.max = exact.hi;
                sample_stats.mean = sample_stats
                    .mean
                    .clamp(f64::from(exact.lo), f64::from(exact.hi));
                prepared.stats = Some(sample_stats);
            }
        }
        true
    }

    /// The plan with the channels `outliers` (each with its [`channel_plan`], the ones
    /// [`Prepared::prepare`] split off) and each sample's inliers searched under `setting`.
    fn score(&mut self, outliers: &[(usize, ClipRange, f64)], setting: Setting<'_>) -> OutlierPlan {
        let Setting { bits, kind, cfg } = setting;
        let mut chosen = Vec::with_capacity(outliers.len());
        let mut sse = 0.0;
        for &(c, range, channel_sse) in outliers {
            chosen.push((c as u32, range));
            sse += channel_sse;
        }
        chosen.sort_by_key(|&(c, _)| c);
        let inliers_per_sample = self.inliers_per_sample;
        let mut ranges = Vec::with_capacity(self.samples.len());
        for prepared in &mut self.samples {
            let stats = prepared
                .stats
                .as_ref()
                .expect("scored only after a successful prepare");
            let tail = Tail {
                values: &prepared.extremes,
                share: prepared.extremes.len() as f64 / inliers_per_sample.max(1.0),
            };
            let trace = search_remembering(
                &prepared.inliers,
                &tail,
                stats,
                bits,
                kind,
                cfg,
                &mut prepared.known,
            );
            sse += trace.mse * inliers_per_sample;
            ranges.push(trace.range);
        }
        OutlierPlan {
            sample_ranges: ranges,
            outliers: chosen,
            estimated_sse: sse,
            counts_scored: 0,
        }
    }
}

/// An outlier channel's own range, searched like a sample's (DS-ACIQ from the better of ACIQ
/// and min-max) on its drawn values with its per-sample extremes as the tail; and the estimated
/// squared error over all its values.
fn channel_plan(
    stats: &ChannelStats,
    drawn: &[f32],
    samples: usize,
    rows: usize,
    c: usize,
    setting: Setting<'_>,
) -> Option<(ClipRange, f64)> {
    let Setting { bits, kind, cfg } = setting;
    let extremes: Vec<f32> = (0..samples)
        .flat_map(|s| {
            let i = s * stats.channels + c;
            [stats.lo[i], stats.hi[i]]
        })
        .collect();
    let exact = stats.channel_range(c);
    let mut channel_stats = SampleStats::compute(drawn).ok()?;
    channel_stats.min = exact.lo;
    channel_stats.max = exact.hi;
    channel_stats.mean = channel_stats
        .mean
        .clamp(f64::from(exact.lo), f64::from(exact.hi));
    let count = (rows * samples) as f64;
    let tail = Tail {
        values: &extremes,
        share: extremes.len() as f64 / count.max(1.0),
    };
    let trace = search_with_tail(drawn, &tail, &channel_stats, bits, kind, cfg);
    QuantParams::new(trace.range, bits)?;
    Some((trace.range, trace.mse * count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clipping::quantization_mse;
    use crate::synth::{laplace, Rng};

    /// `samples` x `rows` x `channels` Laplace(0, 1) values, with channel `c` of `big` shifted
    /// to `value` in every row.
    fn with_outliers(
        samples: usize,
        rows: usize,
        channels: usize,
        big: &[(usize, f32)],
    ) -> Vec<f32> {
        let mut rng = Rng::new(21);
        (0..samples * rows * channels)
            .map(|i| {
                let c = i % channels;
                let x = laplace(&mut rng, 0.0, 0.3);
                match big.iter().find(|(b, _)| *b == c) {
                    Some(&(_, v)) => v + x,
                    None => x,
                }
            })
            .collect()
    }

    /// Squared error of the whole tensor under `plan` (what the codec would make).
    fn tensor_sse(
        values: &[f32],
        samples: usize,
        channels: usize,
        plan: &OutlierPlan,
        bits: Bits,
    ) -> f64 {
        let per = values.len() / samples;
        let mut sse = 0.0;
        for (s, sample) in values.chunks(per).enumerate() {
            let q = QuantParams::new(plan.sample_ranges[s], bits).unwrap();
            for (i, &x) in sample.iter().enumerate() {
                let c = (i % channels) as u32;
                let y = match plan.outliers.iter().find(|(o, _)| *o == c) {
                    Some(&(_, r)) => QuantParams::new(r, bits).unwrap().reconstruct(x),
                    None => q.reconstruct(x),
                };
                sse += f64::from(x - y).powi(2);
            }
        }
        sse
    }

    #[test]
    fn outlier_channels_are_found_and_cut_the_error() {
        let channels = 96;
        let values = with_outliers(4, 64, channels, &[(7, -12.0), (50, 9.0)]);
        let cfg = DsAciqConfig::default();
        for b in [2, 4, 8, 16] {
            let bits = Bits::new(b).unwrap();
            let plan =
                ds_aciq_with_outliers(&values, 4, channels, bits, ValueKind::TwoSided, &cfg, 32)
                    .unwrap();
            let picked: Vec<u32> = plan.outliers.iter().map(|o| o.0).collect();
            assert!(
                picked.contains(&7) && picked.contains(&50),
                "{b} bits: {picked:?}"
            );
            let none =
                ds_aciq_with_outliers(&values, 4, channels, bits, ValueKind::TwoSided, &cfg, 0)
                    .unwrap();
            assert!(none.outliers.is_empty());
            let with = tensor_sse(&values, 4, channels, &plan, bits);
            let without = tensor_sse(&values, 4, channels, &none, bits);
            assert!(with < 0.5 * without, "{b} bits: {with} vs {without}");
        }
    }

    #[test]
    fn channels_alike_are_not_split() {
        // Every channel of a row holds the row's value: a channel's own range is the shared
        // one, so splitting it off gains nothing.
        let channels = 64;
        let mut rng = Rng::new(8);
        let values: Vec<f32> = (0..2 * 100)
            .flat_map(|_| vec![laplace(&mut rng, 0.0, 1.0); channels])
            .collect();
        let plan = ds_aciq_with_outliers(
            &values,
            2,
            channels,
            Bits::new(3).unwrap(),
            ValueKind::TwoSided,
            &DsAciqConfig::default(),
            32,
        )
        .unwrap();
        assert!(plan.outliers.is_empty(), "{:?}", plan.outliers);
    }

    #[test]
    fn count_is_bounded_by_the_budget_and_the_channels() {
        let channels = 16;
        let big: Vec<(usize, f32)> = (0..8).map(|c| (c, 20.0 + c as f32)).collect();
        let values = with_outliers(2, 50, channels, &big);
        let bits = Bits::new(2).unwrap();
        let cfg = DsAciqConfig::default();
        let plan = ds_aciq_with_outliers(&values, 2, channels, bits, ValueKind::TwoSided, &cfg, 1)
            .unwrap();
        assert!(plan.outliers.len() <= 1);
        let plan =
            ds_aciq_with_outliers(&values, 2, channels, bits, ValueKind::TwoSided, &cfg, 100)
                .unwrap();
        assert!(plan.outliers.len() <= channels / 8);
        assert_eq!(outlier_budget(100_000), 125);
        assert_eq!(outlier_budget(799), 0);
    }

    #[test]
    fn without_outliers_each_sample_beats_naive_and_aciq() {
        let channels = 32;
        let mut rng = Rng::new(12);
        // Heavy tails: rare values far out, which a strided sample mostly misses.
        let values: Vec<f32> = (0..3 * 400 * channels)
            .map(|_| crate::synth::heavy_tailed(&mut rng))
            .collect();
        let cfg = DsAciqConfig::default();
        for b in [2, 3, 4, 6, 8, 16] {
            let bits = Bits::new(b).unwrap();
            let plan =
                ds_aciq_with_outliers(&values, 3, channels, bits, ValueKind::TwoSided, &cfg, 0)
                    .unwrap();
            for (s, sample) in values.chunks(values.len() / 3).enumerate() {
                let stats = SampleStats::compute(sample).unwrap();
                let ds = quantization_mse(sample, plan.sample_ranges[s], bits);
                let naive = quantization_mse(sample, crate::clipping::naive(&stats), bits);
                let aciq = quantization_mse(
                    sample,
                    crate::clipping::aciq(&stats, bits, ValueKind::TwoSided),
                    bits,
                );
                // An estimate from a sample: within 5% of the better alternative.
                assert!(
                    ds <= 1.05 * naive.min(aciq),
                    "{b} bits, sample {s}: ds-aciq {ds}, naive {naive}, aciq {aciq}"
                );
            }
        }
    }

    #[test]
    fn extremes_fold_like_the_scalar_selects() {
        let row: Vec<f32> = (0..11)
            .map(|i| [0.0, -0.0, f32::NAN, 2.5, -3.0][i % 5])
            .collect();
        let start: Vec<f32> = (0..11).map(|i| [-0.0, 0.0, 1.0][i % 3]).collect();
        let (mut lo, mut hi) = (start.clone(), start.clone());
        fold_extremes(&mut lo, &mut hi, &row);
        for i in 0..row.len() {
            let (x, s) = (row[i], start[i]);
            assert_eq!(
                lo[i].to_bits(),
                (if x < s { x } else { s }).to_bits(),
                "{i}"
            );
            assert_eq!(
                hi[i].to_bits(),
                (if x > s { x } else { s }).to_bits(),
                "{i}"
            );
        }
    }

    #[test]
    fn blocked_channel_fold_equals_the_row_by_row_one() {
        let channels = 29; // a pair of blocks of 8, a single block and a remainder
        let mut rng = Rng::new(30);
        let mut sample: Vec<f32> = (0..channels * 37)
            .map(|_| laplace(&mut rng, 0.0, 3.0))
            .collect();
        sample[5] = -0.0;
        sample[channels + 5] = 0.0;
        sample[2 * channels + 9] = 1e30;
        let fold = |blocked: bool| {
            let mut arrays = [
                vec![f32::INFINITY; channels],
                vec![f32::NEG_INFINITY; channels],
                vec![0f32; channels],
                vec![0f32; channels],
                vec![0f32; channels],
            ];
            let [lo, hi, poison, acc, acc_sq] = &mut arrays;
            let cols = Columns {
                lo,
                hi,
                poison,
                acc,
                acc_sq,
            };
            if blocked {
                fold_sample(&sample, cols);
            } else {
                fold_rows(&sample, cols, 0);
            }
            arrays.map(|a| a.iter().map(|x| x.to_bits()).collect::<Vec<u32>>())
        };
        assert_eq!(fold(true), fold(false));
    }

    #[test]
    fn inlier_range_by_runs_equals_the_channel_fold() {
        let channels = 19;
        let mut values = with_outliers(3, 5, channels, &[(2, 9.0), (11, -7.0)]);
        // Sample 2: every inlier extreme at a signed zero.
        for x in &mut values[2 * 5 * channels..] {
            *x = if x.is_sign_negative() { -0.0 } else { 0.0 };
        }
        let stats = ChannelStats::compute(&values, 3, channels).unwrap();
        for outliers in [
            vec![],
            vec![2],
            vec![2, 11],
            vec![0, 18],
            (0..channels).collect(),
        ] {
            let mut prepared = Prepared::new(3);
            let draws = Draws::gather(&values, 3, channels, 8192);
            let split: Vec<(usize, ClipRange, f64)> = outliers
                .iter()
                .map(|&c| (c, ClipRange::new(0.0, 1.0), 0.0))
                .collect();
            assert!(prepared.prepare(&stats, &draws, 5, &split));
            for s in 0..3 {
                let runs =
                    stats.inlier_range_in_runs(s, &prepared.inlier_channels, &prepared.is_outlier);
                let fold = stats.inlier_range(s, &prepared.is_outlier);
                assert_eq!(
                    (runs.lo.to_bits(), runs.hi.to_bits()),
                    (fold.lo.to_bits(), fold.hi.to_bits()),
                    "{outliers:?}, sample {s}"
                );
            }
        }
    }

    #[test]
    fn ranking_sees_channels_stuck_far_below() {
        let values = with_outliers(1, 30, 8, &[(3, -15.0), (6, 4.0)]);
        let ext = ChannelStats::compute(&values, 1, 8).unwrap();
        assert_eq!(&ext.ranked()[..2], &[3, 6]);
    }

    #[test]
    fn a_rare_spike_does_not_make_an_outlier_channel() {
        // Channel 2 spikes once to 50; channel 5 sits at 6 in every row.
        let mut values = with_outliers(2, 40, 8, &[(5, 6.0)]);
        values[8 * 17 + 2] = 50.0;
        let ext = ChannelStats::compute(&values, 2, 8).unwrap();
        assert_eq!(ext.ranked()[0], 5);
    }

    #[test]
    fn non_finite_values_are_named() {
        let mut values = vec![0.5f32; 2 * 4 * 8];
        values[37] = f32::INFINITY;
        let e = ChannelStats::compute(&values, 2, 8).unwrap_err();
        assert_eq!(e.index, 37);
        values[37] = f32::NAN;
        let e = ds_aciq_with_outliers(
            &values,
            2,
            8,
            Bits::new(4).unwrap(),
            ValueKind::TwoSided,
            &DsAciqConfig::default(),
            4,
        )
        .unwrap_err();
        assert_eq!(e.index, 37);
    }

    #[test]
    fn empty_or_ragged_tensors_get_constant_ranges() {
        let plan = ds_aciq_with_outliers(
            &[],
            3,
            4,
            Bits::new(4).unwrap(),
            ValueKind::TwoSided,
            &DsAciqConfig::default(),
            4,
        )
        .unwrap();
        assert_eq!(plan.sample_ranges, vec![ClipRange::new(0.0, 0.0); 3]);
    }
}
