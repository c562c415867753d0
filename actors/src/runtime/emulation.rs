//! Emulated device speed: how long a forward pass of a node with `device.slowdown > 1` takes.
//!
//! The emulated device runs `slowdown` times slower than the profile measured on this host:
//! each pass is padded (by sleeping) to `slowdown x` the profiled time of its units, scaled by
//! the items it carries. Padding to a target, rather than sleeping `(slowdown - 1) x` the pass's
//! measured time, keeps the emulated speed independent of how co-located nodes share the real
//! cores: when two emulated boards overlap their passes on one core, each pass runs slower than
//! its profile, but as long as it stays within the target the device still takes exactly its
//! emulated time. A pass slower than its target is not padded (the host is then the bottleneck,
//! and the node's metrics show it).

/// The profile an emulated node paces itself by.
#[derive(Debug, Clone)]
pub struct Pacing {
    /// Per-unit seconds for a microbatch of `ubatch` items, already multiplied by the slowdown.
    pub unit_times_s: Vec<f64>,
    pub ubatch: usize,
}

impl Pacing {
    /// Target seconds of a pass over units `l..=r` (1-based) carrying `items` items; `None` when
    /// the range lies outside the profile.
    pub fn target_s(&self, l: usize, r: usize, items: usize) -> Option<f64> {
        if l == 0 || r < l || r > self.unit_times_s.len() || self.ubatch == 0 {
            return None;
        }
        let per_ubatch: f64 = self.unit_times_s[l - 1..r].iter().sum();
        Some(per_ubatch * items as f64 / self.ubatch as f64)
    }

    /// How long to sleep after a pass that took `took_s`.
    pub fn pad_s(&self, l: usize, r: usize, items: usize, took_s: f64) -> Option<f64> {
        self.target_s(l, r, items)
            .map(|target| (target - took_s).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacing() -> Pacing {
        Pacing {
            unit_times_s: vec![0.1, 0.2, 0.3, 0.4],
            ubatch: 8,
        }
    }

    #[test]
    fn target_sums_the_shard_units_and_scales_by_items() {
        let p = pacing();
        assert!((p.target_s(2, 3, 8).unwrap() - 0.5).abs() < 1e-12);
        assert!((p.target_s(2, 3, 4).unwrap() - 0.25).abs() < 1e-12);
        assert!((p.target_s(1, 4, 8).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_pass_slowed_by_a_shared_core_is_padded_less_and_never_negatively() {
        let p = pacing();
        assert!((p.pad_s(2, 3, 8, 0.1).unwrap() - 0.4).abs() < 1e-12);
        assert!((p.pad_s(2, 3, 8, 0.3).unwrap() - 0.2).abs() < 1e-12);
        assert_eq!(p.pad_s(2, 3, 8, 0.9).unwrap(), 0.0);
    }

    #[test]
    fn ranges_outside_the_profile_have_no_target() {
        let p = pacing();
        assert_eq!(p.target_s(0, 2, 8), None);
        assert_eq!(p.target_s(3, 5, 8), None);
        assert_eq!(p.target_s(3, 2, 8), None);
    }
}
