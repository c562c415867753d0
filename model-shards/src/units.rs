//! Units (quarter blocks) and the ranges of them a shard runs.
//!
//! A transformer block is cut into four units, so a model of `L` blocks has units `1..=4L`.
//! What crosses a cut depends on where in the block it falls: after the attention (u0) and after the
//! first MLP layer (u2) two tensors cross (the partial result and the residual it must be added to);
//! after u1 and u3 only the hidden state crosses.

use crate::error::{Result, ShardError};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The four kinds of unit inside a block, in execution order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    /// (LayerNorm +) self-attention: hidden -> (context, residual).
    Attention,
    /// Attention output projection + residual (+ LayerNorm for post-LN): -> hidden.
    AttentionOutput,
    /// (LayerNorm +) first MLP layer + GELU: hidden -> (intermediate, residual).
    MlpIn,
    /// Second MLP layer + residual (+ LayerNorm for post-LN): -> hidden.
    MlpOut,
}

impl UnitKind {
    /// Kind of the 1-based unit `unit`.
    pub fn of(unit: usize) -> UnitKind {
        match (unit - 1) % 4 {
            0 => UnitKind::Attention,
            1 => UnitKind::AttentionOutput,
            2 => UnitKind::MlpIn,
            _ => UnitKind::MlpOut,
        }
    }

    /// How many activation tensors this unit emits.
    pub fn outputs(self) -> usize {
        match self {
            UnitKind::Attention | UnitKind::MlpIn => 2,
            UnitKind::AttentionOutput | UnitKind::MlpOut => 1,
        }
    }
}

/// 0-based block index of a 1-based unit.
pub fn block_of(unit: usize) -> usize {
    (unit - 1) / 4
}

/// Number of tensors that cross the cut after unit `k` (k in 1..units).
pub fn tensors_after(k: usize) -> usize {
    UnitKind::of(k).outputs()
}

/// Whether the first tensor crossing the cut after unit `k` is the post-GELU MLP activation.
/// Quantizers use this to pick one-sided clipping by position rather than by looking at values.
pub fn is_post_gelu_cut(k: usize) -> bool {
    UnitKind::of(k) == UnitKind::MlpIn
}

/// A contiguous, 1-based, inclusive range of units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitRange {
    pub start: usize,
    pub end: usize,
}

impl UnitRange {
    pub fn new(start: usize, end: usize) -> Self {
        UnitRange { start, end }
    }

    /// All units of a model with `units` units.
    pub fn full(units: usize) -> Self {
        UnitRange {
            start: 1,
            end: units,
        }
    }

    /// Checks the range against a model with `units` units.
    pub fn validate(self, units: usize) -> Result<Self> {
        if self.start == 0 || self.start > self.end || self.end > units {
            return Err(ShardError::UnitRange {
                start: self.start,
                end: self.end,
                units,
            });
        }
        Ok(self)
    }

    pub fn len(self) -> usize {
        self.end + 1 - self.start
    }

    pub fn is_empty(self) -> bool {
        self.end < self.start
    }

    pub fn contains(self, unit: usize) -> bool {
        (self.start..=self.end).contains(&unit)
    }

    pub fn units(self) -> std::ops::RangeInclusive<usize> {
        self.start..=self.end
    }
}

impl fmt::Display for UnitRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

impl FromStr for UnitRange {
    type Err = String;

    /// Parses `L..R` (inclusive) or a single unit `K`.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let parse = |v: &str| {
            v.trim().parse::<usize>().map_err(|_| {
                format!("bad unit range {s:?}: expected L..R with 1-based unit numbers")
            })
        };
        match s.split_once("..") {
            Some((l, r)) => Ok(UnitRange::new(parse(l)?, parse(r.trim_start_matches('='))?)),
            None => {
                let k = parse(s)?;
                Ok(UnitRange::new(k, k))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_tensors_cross_after_attention_and_mlp_in() {
        assert_eq!(
            (1..=8).map(tensors_after).collect::<Vec<_>>(),
            vec![2, 1, 2, 1, 2, 1, 2, 1]
        );
        assert!(is_post_gelu_cut(3) && is_post_gelu_cut(7) && !is_post_gelu_cut(1));
    }

    #[test]
    fn range_outside_model_is_rejected_with_bounds() {
        let err = UnitRange::new(3, 49).validate(48).unwrap_err().to_string();
        assert!(err.contains("3..49") && err.contains("1..48"), "{err}");
        assert!(UnitRange::new(0, 2).validate(48).is_err());
        assert!(UnitRange::new(5, 4).validate(48).is_err());
        assert!(UnitRange::new(1, 48).validate(48).is_ok());
    }

    #[test]
    fn range_parses_inclusive_and_single() {
        assert_eq!("5..12".parse::<UnitRange>().unwrap(), UnitRange::new(5, 12));
        assert_eq!("7".parse::<UnitRange>().unwrap(), UnitRange::new(7, 7));
        assert!("a..3".parse::<UnitRange>().is_err());
    }
}
