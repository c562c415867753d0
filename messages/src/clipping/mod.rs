//! Clipping methods: each is a pure function from a sample's statistics (or values) and the
//! bitwidth to the range `[lo, hi]` that the quantizer spreads its 2^b levels over.
//!
//! Clipping trades a larger error on the few values outside the range for a finer step on the
//! many inside it. At 2-4 bits that trade dominates accuracy: min-max (naive) wastes most levels
//! on rare outliers.
//!
//! - [`naive`]: min-max, nothing clipped.
//! - [`aciq`]: the analytic optimum for Laplace-distributed values (Banner et al. 2019),
//!   `alpha = W(3 * 4^M) * b`.
//! - [`ds_aciq`]: a directed search starting at the better of the ACIQ and min-max ranges,
//!   guided by the measured quantization error of the real values; over a whole tensor
//!   ([`ds_aciq_with_outliers`]) it also gives a few outlier channels their own range.
//!
//! Ranges are computed per sample (one index of the outer, microbatch dimension), matching the
//! per-sample scale and offset of the wire format. Which distribution model applies
//! ([`ValueKind`]) is the caller's decision, made from the position of the cut in the block; it
//! is never guessed from the values (the reference's value-based GELU test never fired).

mod aciq;
mod ds_aciq;
mod lambert_w;
mod naive;
mod outlier_channels;
pub(crate) mod stats;

pub use aciq::{aciq, aciq_alpha, laplace_alpha_factor};
pub use ds_aciq::{
    ds_aciq, quantization_mse, search, search_with_tail, DsAciqConfig, DsAciqTrace, Tail,
};
pub use lambert_w::lambert_w0;
pub use naive::naive;
pub use outlier_channels::{
    ds_aciq_with_outliers, outlier_budget, ChannelStats, OutlierPlan, MIN_GAIN,
    OUTLIER_BUDGET_PERCENT, OUTLIER_COUNTS, OUTLIER_WIRE_BYTES,
};
pub use stats::{strided_runs, strided_sample, NonFiniteValue, SampleStats};

pub use crate::clip_range::ClipRange;

use serde::{Deserialize, Serialize};

/// The distribution model of the tensor being clipped, chosen from the unit position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum ValueKind {
    /// Values spread on both sides of their mean (hidden states, attention context, residuals).
    #[default]
    TwoSided,
    /// The output of GELU (the `main` tensor of a cut after u2): bounded below near
    /// GELU's minimum (about -0.17) with a long right tail. Modelled as a half-Laplace starting at
    /// the sample minimum, which, by symmetry, is optimally clipped with the M+1-bit alpha.
    OneSidedPostGelu,
}

/// A clipping method, as named on the command line (`naive`, `aciq`, `ds-aciq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClipMethod {
    Naive,
    Aciq,
    DsAciq,
}

impl ClipMethod {
    pub const ALL: [ClipMethod; 3] = [ClipMethod::Naive, ClipMethod::Aciq, ClipMethod::DsAciq];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            ClipMethod::Naive => "naive",
            ClipMethod::Aciq => "aciq",
            ClipMethod::DsAciq => "ds-aciq",
        }
    }
}

impl std::fmt::Display for ClipMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ClipMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<ClipMethod, String> {
        ClipMethod::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                format!("unknown clipping method {s:?}: expected naive, aciq or ds-aciq")
            })
    }
}

/// The range `method` picks for one sample's `values` (whose statistics are `stats`).
/// `values` is only read by DS-ACIQ.
pub fn clip_range(
    method: ClipMethod,
    kind: ValueKind,
    values: &[f32],
    stats: &SampleStats,
    bits: crate::bits::Bits,
) -> ClipRange {
    match method {
        ClipMethod::Naive => naive(stats),
        ClipMethod::Aciq => aciq(stats, bits, kind),
        ClipMethod::DsAciq => ds_aciq(values, stats, bits, kind, &DsAciqConfig::default()).range,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_round_trip() {
        for m in ClipMethod::ALL {
            assert_eq!(m.name().parse::<ClipMethod>().unwrap(), m);
            assert_eq!(
                serde_json::to_string(&m).unwrap(),
                format!("\"{}\"", m.name())
            );
        }
        assert!("minmax".parse::<ClipMethod>().is_err());
    }
}
