//! The bitwidth of an encoded tensor.
//!
//! A bitwidth is either 1..=16 bits per quantized value or 32, which means "raw f32, no
//! quantization". Keeping it a validated newtype (instead of a bare `u8`) means every function
//! that receives a `Bits` can rely on it being one of those 17 values, and a decoded message with
//! bits = 0 or 17 is rejected at the serde boundary rather than deep inside the unpacker.

use serde::{Deserialize, Serialize};

use crate::error::InvalidBits;

/// Bits per value: 1..=16 (quantized) or 32 (raw f32 passthrough).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Bits(u8);

impl Bits {
    /// Raw f32 passthrough: the values travel bit-exactly, with no scale or offset.
    pub const RAW: Bits = Bits(32);
    /// The largest quantized bitwidth.
    pub const MAX_QUANTIZED: u8 = 16;

    /// Validates `bits`: 1..=16 or 32.
    pub const fn new(bits: u8) -> Result<Bits, InvalidBits> {
        if (bits >= 1 && bits <= Self::MAX_QUANTIZED) || bits == 32 {
            Ok(Bits(bits))
        } else {
            Err(InvalidBits(bits))
        }
    }

    /// Every valid bitwidth, smallest first (1..=16, then 32).
    pub fn all() -> impl Iterator<Item = Bits> {
        (1..=Self::MAX_QUANTIZED)
            .chain(std::iter::once(32))
            .map(Bits)
    }

    /// The number of bits per value.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// True for the raw f32 passthrough (32 bits).
    pub const fn is_raw(self) -> bool {
        self.0 == 32
    }

    /// The largest code, 2^b - 1 (only meaningful for quantized bitwidths).
    pub const fn max_code(self) -> u32 {
        (1u32 << self.0) - 1
    }

    /// Payload bytes for `n` values: exactly `ceil(n * b / 8)`, or `4 n` for raw f32.
    /// `None` if that does not fit in `usize`.
    pub fn payload_len(self, n: usize) -> Option<usize> {
        if self.is_raw() {
            n.checked_mul(4)
        } else {
            // ceil(n*b/8) without overflowing n*b: whole bytes of 8-value groups plus the tail.
            let b = usize::from(self.0);
            let groups = n / 8;
            let tail_bits = (n % 8) * b;
            groups.checked_mul(b)?.checked_add(tail_bits.div_ceil(8))
        }
    }

    /// Compression ratio against f32: 32 / b.
    pub fn compression_ratio(self) -> f64 {
        32.0 / f64::from(self.0)
    }
}

impl TryFrom<u8> for Bits {
    type Error = InvalidBits;
    fn try_from(bits: u8) -> Result<Bits, InvalidBits> {
        Bits::new(bits)
    }
}

impl From<Bits> for u8 {
    fn from(bits: Bits) -> u8 {
        bits.0
    }
}

impl std::fmt::Display for Bits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_exactly_1_to_16_and_32() {
        let valid: Vec<u8> = (0..=255u8).filter(|&b| Bits::new(b).is_ok()).collect();
        let mut expected: Vec<u8> = (1..=16).collect();
        expected.push(32);
        assert_eq!(valid, expected);
        assert_eq!(Bits::all().map(Bits::get).collect::<Vec<_>>(), expected);
    }

    #[test]
    fn payload_len_is_dense() {
        let six = Bits::new(6).unwrap();
        // 6 bits per value: 4 values in 3 bytes, i.e. 32/6 = 5.33x against f32.
        assert_eq!(six.payload_len(4), Some(3));
        assert_eq!(six.payload_len(5), Some(4));
        assert!((six.compression_ratio() - 5.333).abs() < 1e-3);
        assert_eq!(Bits::new(1).unwrap().payload_len(9), Some(2));
        assert_eq!(Bits::new(13).unwrap().payload_len(3), Some(5));
        assert_eq!(Bits::RAW.payload_len(3), Some(12));
        assert_eq!(Bits::RAW.payload_len(usize::MAX), None);
        for b in 1..=16u8 {
            let bits = Bits::new(b).unwrap();
            for n in 0..40usize {
                assert_eq!(bits.payload_len(n), Some((n * usize::from(b)).div_ceil(8)));
            }
        }
    }

    #[test]
    fn serde_rejects_invalid_bits() {
        let bytes = rmp_serde::to_vec(&17u8).unwrap();
        assert!(rmp_serde::from_slice::<Bits>(&bytes).is_err());
        let bytes = rmp_serde::to_vec(&Bits::new(6).unwrap()).unwrap();
        assert_eq!(rmp_serde::from_slice::<Bits>(&bytes).unwrap().get(), 6);
    }
}
