//! ACIQ: analytic clipping for Laplace-distributed values (Banner, Nahshan, Soudry 2019).
//!
//! For values ~ Laplace(mu, b) quantized with M bits over [mu - alpha, mu + alpha], the expected
//! MSE is the clipping noise `2 b^2 e^(-alpha/b)` plus the rounding noise
//! `alpha^2 / (3 * 4^M)`. Setting its derivative to zero gives `alpha/b * e^(alpha/b) = 3*4^M`, so
//! `alpha* = W(3 * 4^M) * b`: 2.83b, 3.89b, 5.03b, 6.20b, 7.41b, 8.64b, 9.89b for M = 2..8.
//!
//! Two-sided: b = mean |x - mean|, range = [mean - alpha, mean + alpha] intersected with the
//! sample's [min, max] (levels beyond the data would be wasted).
//!
//! One-sided (post-GELU, chosen by the caller): the values are modelled as a half-Laplace starting
//! at the sample minimum (GELU's floor), x - min ~ Exponential(b), whose scale estimate is
//! b = mean - min. M levels over [0, alpha] of a half-Laplace are the positive half of M+1 bits
//! over [-alpha, alpha] of the full Laplace, so the optimum is the M+1-bit alpha:
//! range = [min, min + W(3 * 4^(M+1)) * b], again capped at max.

use super::{lambert_w0, ClipRange, SampleStats, ValueKind};
use crate::bits::Bits;

/// alpha / b for Laplace data at `bits` bits: W(3 * 4^bits).
pub fn laplace_alpha_factor(bits: u32) -> f64 {
    // Every search starts here (dozens per DS-ACIQ encode): the factors of the codec's
    // bitwidths (one-sided ACIQ asks for one bit more) are computed once.
    static FACTORS: std::sync::OnceLock<[f64; 18]> = std::sync::OnceLock::new();
    let factor = |bits: u32| lambert_w0(3.0 * 4f64.powi(bits as i32));
    let table = FACTORS.get_or_init(|| std::array::from_fn(|b| factor(b as u32)));
    match table.get(bits as usize) {
        Some(&f) => f,
        None => factor(bits),
    }
}

/// The ACIQ clipping half-width alpha for `stats` at `bits`, under `kind` (see module docs).
/// For raw 32-bit tensors nothing is clipped: alpha covers the whole sample.
pub fn aciq_alpha(stats: &SampleStats, bits: Bits, kind: ValueKind) -> f64 {
    let full = full_alpha(stats, kind);
    if bits.is_raw() {
        return full;
    }
    let m = u32::from(bits.get());
    let alpha = match kind {
        ValueKind::TwoSided => laplace_alpha_factor(m) * stats.mean_abs_dev,
        ValueKind::OneSidedPostGelu => {
            laplace_alpha_factor(m + 1) * (stats.mean - f64::from(stats.min))
        }
    };
    alpha.min(full)
}

/// The half-width at which the range covers [min, max] entirely (clipping stops mattering).
pub(crate) fn full_alpha(stats: &SampleStats, kind: ValueKind) -> f64 {
    let (min, max) = (f64::from(stats.min), f64::from(stats.max));
    match kind {
        ValueKind::TwoSided => (stats.mean - min).max(max - stats.mean),
        ValueKind::OneSidedPostGelu => max - min,
    }
}

/// The clipping range for half-width `alpha` under `kind`, always inside [min, max].
pub(crate) fn range_for_alpha(stats: &SampleStats, alpha: f64, kind: ValueKind) -> ClipRange {
    let (min, max) = (f64::from(stats.min), f64::from(stats.max));
    let (lo, hi) = match kind {
        ValueKind::TwoSided => (stats.mean - alpha, stats.mean + alpha),
        ValueKind::OneSidedPostGelu => (min, min + alpha),
    };
    let lo = lo.clamp(min, max) as f32;
    let hi = hi.clamp(min, max) as f32;
    ClipRange::new(lo, hi.max(lo))
}

/// The ACIQ clipping range of one sample.
pub fn aciq(stats: &SampleStats, bits: Bits, kind: ValueKind) -> ClipRange {
    range_for_alpha(stats, aciq_alpha(stats, bits, kind), kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clipping::{naive, quantization_mse};
    use crate::synth::{laplace, Rng};

    #[test]
    fn remembered_alpha_factors_are_the_computed_ones() {
        for bits in 0..40 {
            let computed = lambert_w0(3.0 * 4f64.powi(bits as i32));
            assert_eq!(
                laplace_alpha_factor(bits).to_bits(),
                computed.to_bits(),
                "{bits}"
            );
        }
    }

    #[test]
    fn alpha_factors_match_the_design_table() {
        // DESIGN.md: 2.83b, 3.89b, 5.03b, 6.20b, 7.41b, 8.64b, 9.89b for M = 2..8.
        let table = [2.83, 3.89, 5.03, 6.20, 7.41, 8.64, 9.89];
        for (m, want) in (2..=8).zip(table) {
            let got = laplace_alpha_factor(m);
            // The table has 2 decimals, some rounded and some truncated (W(192) = 3.897: 3.89).
            assert!((got - want).abs() < 0.01, "M={m}: {got} vs {want}");
        }
    }

    #[test]
    fn aciq_beats_naive_mse_on_laplace_data_at_2_to_4_bits() {
        let mut rng = Rng::new(7);
        let values: Vec<f32> = (0..100_000).map(|_| laplace(&mut rng, 0.5, 1.0)).collect();
        let stats = SampleStats::compute(&values).unwrap();
        for b in 2..=4 {
            let bits = Bits::new(b).unwrap();
            let a = quantization_mse(&values, aciq(&stats, bits, ValueKind::TwoSided), bits);
            let n = quantization_mse(&values, naive(&stats), bits);
            assert!(a < 0.7 * n, "{b} bits: aciq {a} naive {n}");
        }
    }

    #[test]
    fn two_sided_range_is_centred_with_the_table_alpha() {
        let mut rng = Rng::new(1);
        let values: Vec<f32> = (0..50_000).map(|_| laplace(&mut rng, 2.0, 1.0)).collect();
        let stats = SampleStats::compute(&values).unwrap();
        let r = aciq(&stats, Bits::new(2).unwrap(), ValueKind::TwoSided);
        let alpha = 2.83 * stats.mean_abs_dev;
        assert!((f64::from(r.hi) - (stats.mean + alpha)).abs() < 0.02);
        assert!((f64::from(r.lo) - (stats.mean - alpha)).abs() < 0.02);
    }

    #[test]
    fn one_sided_uses_the_m_plus_1_alpha_from_the_minimum() {
        // Post-GELU-like data: exponential tail above a floor of -0.17.
        let mut rng = Rng::new(3);
        let values: Vec<f32> = (0..50_000).map(|_| -0.17 + rng.exponential(0.4)).collect();
        let stats = SampleStats::compute(&values).unwrap();
        for m in 2..=6u8 {
            let bits = Bits::new(m).unwrap();
            let r = aciq(&stats, bits, ValueKind::OneSidedPostGelu);
            assert_eq!(r.lo, stats.min);
            let b = stats.mean - f64::from(stats.min);
            let want = f64::from(stats.min) + laplace_alpha_factor(u32::from(m) + 1) * b;
            assert!(
                (f64::from(r.hi) - want.min(f64::from(stats.max))).abs() < 1e-4,
                "M={m}"
            );
        }
        // At 3 bits the one-sided range must be clearly better than the two-sided one on
        // one-sided data (the two-sided range wastes half its levels below the floor).
        let bits = Bits::new(3).unwrap();
        let one = quantization_mse(
            &values,
            aciq(&stats, bits, ValueKind::OneSidedPostGelu),
            bits,
        );
        let two = quantization_mse(&values, aciq(&stats, bits, ValueKind::TwoSided), bits);
        assert!(one < two, "one-sided {one} two-sided {two}");
    }

    #[test]
    fn constant_and_raw_samples_are_not_clipped() {
        let stats = SampleStats::compute(&[4.0; 10]).unwrap();
        for kind in [ValueKind::TwoSided, ValueKind::OneSidedPostGelu] {
            assert_eq!(
                aciq(&stats, Bits::new(2).unwrap(), kind),
                ClipRange::new(4.0, 4.0)
            );
        }
        let stats = SampleStats::compute(&[-1.0, 0.0, 0.1, 9.0]).unwrap();
        assert_eq!(aciq(&stats, Bits::RAW, ValueKind::TwoSided), naive(&stats));
    }
}
