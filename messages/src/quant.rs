//! The scalar quantizer shared by the codec and by the clipping search, so that the error the
//! DS-ACIQ search measures is exactly the error the codec will make.
//!
//! Uniform, asymmetric, round-to-nearest (ties to even):
//! `code = round((clamp(x, lo, hi) - lo) * inv_scale)`, `x^ = lo + code * scale`,
//! with `scale = (hi - lo) / (2^b - 1)`. For an unclipped x the error is at most `scale / 2` plus
//! float rounding. A constant range (`hi == lo`) has `scale = 0` and `inv_scale = 0`: every code
//! is 0 and decodes to exactly `lo` (the reference produced NaN there by dividing by zero).

use crate::bits::Bits;
use crate::clip_range::ClipRange;

/// 2^23: see [`QuantParams::code`].
const ROUNDING_MAGIC: f32 = 8_388_608.0;

/// Derived constants for quantizing one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct QuantParams {
    pub lo: f32,
    pub scale: f32,
    pub inv_scale: f32,
    /// 2^b - 1 as f32: the largest code.
    pub qmax: f32,
}

impl QuantParams {
    /// `None` if the range is inverted, not finite, or so wide that the scale or the decoded top
    /// of the range overflows f32. `bits` must be quantized (1..=16).
    pub fn new(range: ClipRange, bits: Bits) -> Option<QuantParams> {
        let ClipRange { lo, hi } = range;
        if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
            return None;
        }
        let qmax = bits.max_code() as f32;
        // f64 so that hi - lo cannot overflow before the division.
        let scale = ((f64::from(hi) - f64::from(lo)) / f64::from(qmax)) as f32;
        if !scale.is_finite() || !(lo + scale * qmax).is_finite() {
            return None;
        }
        let inv_scale = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        // A subnormal scale gives an infinite reciprocal; the clamp below still yields valid
        // codes, but inf * 0 = NaN for x == lo would not, so cap it.
        let inv_scale = inv_scale.min(f32::MAX);
        Some(QuantParams {
            lo,
            scale,
            inv_scale,
            qmax,
        })
    }

    /// The code of `x`: round-to-nearest of `(x - lo) / scale`, clamped to [0, 2^b - 1].
    /// NaN maps to 0 (callers reject non-finite input separately).
    #[inline(always)]
    pub fn code(&self, x: f32) -> u16 {
        let t = (x - self.lo) * self.inv_scale;
        // Plain compare-selects (not f32::max/min, whose NaN rules cost extra instructions):
        // NaN fails `t > 0` and becomes 0; ±inf clamp to the ends.
        let t = if t > 0.0 { t } else { 0.0 };
        let t = if t < self.qmax { t } else { self.qmax };
        // Adding 2^23 leaves the rounded integer (ties to even) in the low mantissa bits, since
        // the ulp there is 1 and t <= 65535. Safe, exact, and one vector add instead of a
        // saturating float-to-int conversion.
        (t + ROUNDING_MAGIC).to_bits() as u16
    }

    /// The value `x` decodes to, `value(code(x))`, computed without leaving f32: the rounded
    /// code is recovered as `(t + 2^23) - 2^23`, which is exact, so this equals the codec's
    /// result bit for bit while vectorising better (no int conversions). Used to measure MSE.
    #[inline(always)]
    pub fn reconstruct(&self, x: f32) -> f32 {
        let t = (x - self.lo) * self.inv_scale;
        let t = if t > 0.0 { t } else { 0.0 };
        let t = if t < self.qmax { t } else { self.qmax };
        let code = (t + ROUNDING_MAGIC) - ROUNDING_MAGIC;
        self.lo + code * self.scale
    }

    /// The value a code decodes to (the decoder's formula; kept to test `reconstruct` against).
    #[cfg(test)]
    #[inline(always)]
    pub fn value(&self, code: u16) -> f32 {
        self.lo + f32::from(code) * self.scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconstruct_equals_decode_of_code() {
        for b in 1..=16u8 {
            let q = QuantParams::new(ClipRange::new(-1.3, 2.9), Bits::new(b).unwrap()).unwrap();
            for i in -200..=200 {
                let x = i as f32 * 0.0217;
                assert_eq!(
                    q.reconstruct(x).to_bits(),
                    q.value(q.code(x)).to_bits(),
                    "{b} {x}"
                );
            }
        }
    }
}
