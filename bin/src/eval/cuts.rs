//! Where the model is cut: one cut after unit K, or every cut of an even 4-stage plan.

use anyhow::{bail, Result};
use std::fmt;
use std::str::FromStr;

/// Stages of the plan `all` stands for.
pub const ALL_STAGES: usize = 4;

/// A cut as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutSpec {
    /// `mid`: the MLP-input (u2) cut closest to the middle of the model, at or before it: two
    /// tensors cross there (post-GELU activation, one-sided, and the residual), the hardest
    /// payload of a block.
    Mid,
    /// `K`: after unit K (1 <= K < units).
    After(usize),
    /// `all`: the three cuts of an even 4-stage plan.
    All,
}

impl CutSpec {
    /// The unit numbers after which activations are quantized, ascending.
    pub fn cuts(self, units: usize) -> Result<Vec<usize>> {
        match self {
            CutSpec::Mid => Ok(vec![mid_cut(units)?]),
            CutSpec::After(k) if (1..units).contains(&k) => Ok(vec![k]),
            CutSpec::After(k) => bail!(
                "--cut {k} is outside 1..{} for a model of {units} units",
                units - 1
            ),
            CutSpec::All => even_plan_cuts(units, ALL_STAGES),
        }
    }
}

impl fmt::Display for CutSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CutSpec::Mid => f.write_str("mid"),
            CutSpec::After(k) => write!(f, "{k}"),
            CutSpec::All => f.write_str("all"),
        }
    }
}

impl FromStr for CutSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mid" => Ok(CutSpec::Mid),
            "all" => Ok(CutSpec::All),
            _ => s
                .parse::<usize>()
                .map(CutSpec::After)
                .map_err(|_| format!("bad cut {s:?}: expected a unit number K, `mid` or `all`")),
        }
    }
}

/// The largest u2 cut (unit k with k % 4 == 3) at or before the middle unit.
pub fn mid_cut(units: usize) -> Result<usize> {
    (1..=units / 2)
        .rev()
        .find(|k| k % 4 == 3)
        .ok_or_else(|| anyhow::anyhow!("a model of {units} units has no MLP cut before its middle"))
}

/// Cuts of a plan of `stages` contiguous shards of (as nearly as possible) equal unit counts:
/// after units round(i * units / stages), i = 1..stages-1.
pub fn even_plan_cuts(units: usize, stages: usize) -> Result<Vec<usize>> {
    if units < stages {
        bail!("a model of {units} units cannot be cut into {stages} stages");
    }
    Ok((1..stages)
        .map(|i| (i * units + stages / 2) / stages)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_three_even_cuts_and_mid_is_an_mlp_cut() {
        assert_eq!(CutSpec::All.cuts(24).unwrap(), [6, 12, 18]);
        assert_eq!(CutSpec::All.cuts(16).unwrap(), [4, 8, 12]);
        assert_eq!(CutSpec::All.cuts(48).unwrap(), [12, 24, 36]);
        assert_eq!(CutSpec::Mid.cuts(24).unwrap(), [11]);
        assert_eq!(CutSpec::Mid.cuts(16).unwrap(), [7]);
        assert!(quantpipe_model_shards::units::is_post_gelu_cut(
            mid_cut(48).unwrap()
        ));
        assert_eq!("7".parse::<CutSpec>().unwrap().cuts(24).unwrap(), [7]);
    }

    #[test]
    fn cut_outside_the_model_is_named() {
        let err = CutSpec::After(24).cuts(24).unwrap_err().to_string();
        assert!(err.contains("24") && err.contains("1..23"), "{err}");
        assert!("x".parse::<CutSpec>().unwrap_err().contains("\"x\""));
        assert!(CutSpec::All.cuts(3).is_err());
    }
}
