//! Naive clipping: the sample's min-max range, so nothing is clipped.
//!
//! The baseline every other method must beat: no clipping error, but the step is set by the
//! most extreme value, so at low bitwidths most levels sit where almost no values are.

use super::{ClipRange, SampleStats};

/// [min, max] of the sample.
pub fn naive(stats: &SampleStats) -> ClipRange {
    ClipRange::new(stats.min, stats.max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_min_max() {
        let s = SampleStats::compute(&[3.0, -2.0, 7.5, 0.0]).unwrap();
        assert_eq!(naive(&s), ClipRange::new(-2.0, 7.5));
    }
}
