//! Bitwidths: what a cut may use and how many bytes it then puts on the wire.

use serde::{Deserialize, Serialize};

use super::error::PlanError;

/// Bits meaning "not quantized": values travel in the model dtype.
pub const RAW_BITS: u8 = 32;
/// Per-sample header of an encoded tensor (scale, shift, shape), assumed by the cost model.
pub const HEADER_BYTES_PER_SAMPLE: u64 = 64;

/// Which bitwidths the cuts of a plan may use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BitPolicy {
    /// Every cut at one bitwidth.
    Fixed { bits: u8 },
    /// Cut after unit k at `bits[k - 1]` (length n - 1).
    PerCut { bits: Vec<u8> },
    /// Any bitwidth of the menu that is at least the cut's minimum (the accuracy budget). The
    /// planner picks cuts and bitwidths together.
    Menu {
        menu: Vec<u8>,
        min_bits: u8,
        /// Optional per-cut minimum overriding `min_bits` (length n - 1).
        #[serde(default)]
        per_cut_min: Option<Vec<u8>>,
    },
}

fn check_bits(b: u8) -> Result<u8, PlanError> {
    if (1..=16).contains(&b) || b == RAW_BITS {
        Ok(b)
    } else {
        Err(PlanError::BadBitwidth { bits: b })
    }
}

impl BitPolicy {
    /// The allowed bitwidths of every cut 1..n-1 (index k - 1), each sorted ascending and
    /// non-empty.
    pub fn allowed(&self, units: usize) -> Result<Vec<Vec<u8>>, PlanError> {
        let cuts = units.saturating_sub(1);
        match self {
            BitPolicy::Fixed { bits } => Ok(vec![vec![check_bits(*bits)?]; cuts]),
            BitPolicy::PerCut { bits } => {
                if bits.len() != cuts {
                    return Err(PlanError::BitsShape {
                        expected: cuts,
                        found: bits.len(),
                    });
                }
                bits.iter().map(|b| Ok(vec![check_bits(*b)?])).collect()
            }
            BitPolicy::Menu {
                menu,
                min_bits,
                per_cut_min,
            } => {
                let mut m: Vec<u8> = menu
                    .iter()
                    .map(|b| check_bits(*b))
                    .collect::<Result<_, _>>()?;
                m.sort_unstable();
                m.dedup();
                if let Some(p) = per_cut_min {
                    if p.len() != cuts {
                        return Err(PlanError::BitsShape {
                            expected: cuts,
                            found: p.len(),
                        });
                    }
                }
                (0..cuts)
                    .map(|k| {
                        let min = per_cut_min.as_ref().map_or(*min_bits, |p| p[k]);
                        let a: Vec<u8> = m.iter().copied().filter(|b| *b >= min).collect();
                        if a.is_empty() {
                            Err(PlanError::NoAllowedBitwidth {
                                cut: k + 1,
                                min_bits: min,
                                menu: m.clone(),
                            })
                        } else {
                            Ok(a)
                        }
                    })
                    .collect()
            }
        }
    }
}

/// Bytes on the wire for `elements` values per sample of a microbatch of `ubatch` samples.
///
/// At `RAW_BITS` values travel in the model dtype; below it they are packed densely
/// (`ceil(elements * bits / 8)`), and each sample carries `header` bytes.
pub fn wire_bytes(elements: u64, bits: u8, dtype_bytes: u32, ubatch: usize, header: u64) -> u64 {
    let payload = if bits >= RAW_BITS {
        elements * u64::from(dtype_bytes)
    } else {
        (elements * u64::from(bits)).div_ceil(8)
    };
    (payload + header) * ubatch as u64
}

/// Seconds to push `bytes` through a link of `mbps` Mbit/s; infinite when there is no link.
pub fn transfer_seconds(bytes: u64, mbps: f64) -> f64 {
    if mbps > 0.0 {
        bytes as f64 * 8.0 / (mbps * 1e6)
    } else {
        f64::INFINITY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_bytes_packs_densely_and_adds_header() {
        // 6 bits x 10 values = 60 bits -> 8 bytes, not 10 as 32-bit word packing would give.
        assert_eq!(wire_bytes(10, 6, 4, 1, 0), 8);
        assert_eq!(wire_bytes(10, 32, 4, 2, 64), (40 + 64) * 2);
        assert_eq!(wire_bytes(3, 1, 4, 1, 64), 65);
    }

    #[test]
    fn menu_respects_per_cut_minimum() {
        let p = BitPolicy::Menu {
            menu: vec![32, 2, 8, 4],
            min_bits: 4,
            per_cut_min: Some(vec![2, 8]),
        };
        assert_eq!(p.allowed(3).unwrap(), vec![vec![2, 4, 8, 32], vec![8, 32]]);
        let bad = BitPolicy::Menu {
            menu: vec![2, 4],
            min_bits: 8,
            per_cut_min: None,
        };
        assert!(matches!(
            bad.allowed(2),
            Err(PlanError::NoAllowedBitwidth { cut: 1, .. })
        ));
        assert!(matches!(
            BitPolicy::Fixed { bits: 20 }.allowed(2),
            Err(PlanError::BadBitwidth { bits: 20 })
        ));
    }
}
