//! The learning-rate schedule of `train-vit`: linear warm-up over the first 5% of the steps, then
//! cosine decay to zero.

/// Learning rate of each optimizer step of a run of `total` steps peaking at `peak`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    peak: f64,
    warmup: usize,
    total: usize,
}

impl Schedule {
    /// Warm-up lasts a twentieth of the run, and at least one step.
    pub fn new(peak: f64, total: usize) -> Schedule {
        Schedule {
            peak,
            warmup: (total / 20).max(1),
            total,
        }
    }

    /// The rate of step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup {
            self.peak * (step + 1) as f64 / self.warmup as f64
        } else {
            let t = (step - self.warmup) as f64 / (self.total - self.warmup).max(1) as f64;
            self.peak * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_climbs_linearly_to_the_peak() {
        let s = Schedule::new(1.0, 100);
        // 5 warm-up steps: 0.2, 0.4, ... 1.0.
        for step in 0..5 {
            assert!((s.lr(step) - (step + 1) as f64 / 5.0).abs() < 1e-12);
        }
    }

    #[test]
    fn cosine_decay_starts_at_the_peak_and_falls_to_zero() {
        let s = Schedule::new(2e-3, 100);
        assert_eq!(s.lr(5), 2e-3);
        // Half way through the decay, half the peak.
        assert!((s.lr(5 + 95 / 2) - 1e-3).abs() < 5e-5);
        let rates: Vec<f64> = (5..100).map(|step| s.lr(step)).collect();
        assert!(rates.windows(2).all(|w| w[1] < w[0]), "{rates:?}");
        assert!(s.lr(99) < 1e-5 && s.lr(99) > 0.0);
    }

    #[test]
    fn a_short_run_warms_up_for_one_step() {
        let s = Schedule::new(1.0, 3);
        assert_eq!(s.lr(0), 1.0);
        assert_eq!(s.lr(1), 1.0);
        assert!((s.lr(2) - 0.5).abs() < 1e-12);
    }
}
