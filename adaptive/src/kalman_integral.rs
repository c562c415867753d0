//! The `kalman-integral` policy: the adaptive bitwidth controller released with the QuantPipe
//! paper, kept as the peer's method to compare against (it is not this project's controller).
//!
//! It is Hoffmann et al.'s adaptive integral "speedup" controller (EMSOFT 2013, "A generalized
//! software framework for accurate and efficient management of performance goals") applied to
//! bitwidths:
//!
//! - The control signal is a *speedup* over the highest bitwidth, modelled as `max_bits / bits`
//!   (a message's size taken as proportional to its bitwidth: no header, perfect packing).
//! - Every window of [`SENDS_PER_WINDOW`] messages, the measured performance `y` (here: items
//!   per second delivered over those messages, the quantity the target is stated in) updates a
//!   scalar Kalman filter's estimate of the *base* performance, `y / u` at speedup 1, and the
//!   integral law moves the speedup by the error over that estimate:
//!   `u += (1 - pole) x (target - y) / base`, clamped to `[1, max_bits / min_bits]`.
//! - The window's messages time-share the two bitwidths whose speedups bracket `u`, so that
//!   their mean time per message is that of speedup `u`; the share is rounded to whole
//!   messages of the window.
//!
//! The filter's noise covariances (Q = 1e-5, R = 0.01) and pole (0) are the released ones.

use quantpipe_messages::Bits;

/// Messages per control window of the released controller.
pub const SENDS_PER_WINDOW: u32 = 10;
/// Process and measurement noise covariances of the released filter.
const Q: f64 = 1e-5;
const R: f64 = 0.01;
/// The released pole: the integral law's full step.
const POLE: f64 = 0.0;

/// A scalar Kalman filter estimating `x` from measurements `z = h x` (Welch and Bishop).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScalarKalman {
    x_hat: f64,
    p: f64,
}

impl Default for ScalarKalman {
    fn default() -> Self {
        ScalarKalman { x_hat: 0.0, p: 1.0 }
    }
}

impl ScalarKalman {
    /// One step with measurement `z` and measurement model `h`; the new estimate.
    pub fn update(&mut self, z: f64, h: f64) -> f64 {
        let p_minus = self.p + Q;
        let k = p_minus * h / (h * p_minus * h + R);
        self.x_hat += k * (z - h * self.x_hat);
        self.p = (1.0 - k * h) * p_minus;
        self.x_hat
    }
}

/// The adaptive integral speedup controller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeedupController {
    target: f64,
    u: f64,
    u_max: f64,
    base: ScalarKalman,
}

impl SpeedupController {
    pub fn new(target: f64, u_0: f64, u_max: f64) -> Self {
        SpeedupController {
            target,
            u: u_0.clamp(1.0, u_max),
            u_max,
            base: ScalarKalman::default(),
        }
    }

    pub fn speedup(&self) -> f64 {
        self.u
    }

    /// The next speedup after measuring `y`.
    pub fn step(&mut self, y: f64) -> f64 {
        let base = self.base.update(y, self.u);
        // A zero estimate (nothing measured yet, or nothing delivered) gives no direction.
        if base.abs() > f64::EPSILON {
            let u = self.u + (1.0 - POLE) * (self.target - y) / base;
            self.u = u.clamp(1.0, self.u_max);
        }
        self.u
    }
}

/// A window's schedule: `slow` (the higher bitwidth) for `slow_sends` of the window's messages,
/// `fast` for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub slow: Bits,
    pub fast: Bits,
    pub slow_sends: u32,
}

/// The released controller's state on one link: the controller, the bitwidths in decreasing
/// order, and the arrivals of the current window.
#[derive(Debug, Clone, PartialEq)]
pub struct KalmanIntegral {
    ctl: SpeedupController,
    bits: Vec<Bits>,
    items_per_message: f64,
    window_start_s: Option<f64>,
    arrivals: u32,
}

impl KalmanIntegral {
    /// Over `bits` (any order, at least one), starting at the highest.
    pub fn new(bits: &[Bits], target_items_per_s: f64, items_per_message: f64) -> Self {
        let mut bits = bits.to_vec();
        bits.sort_by_key(|b| std::cmp::Reverse(b.get()));
        bits.dedup();
        let highest = f64::from(bits[0].get());
        let lowest = f64::from(bits[bits.len() - 1].get());
        KalmanIntegral {
            ctl: SpeedupController::new(target_items_per_s, 1.0, highest / lowest),
            bits,
            items_per_message,
            window_start_s: None,
            arrivals: 0,
        }
    }

    pub fn set_items_per_message(&mut self, items: f64) {
        self.items_per_message = items;
    }

    fn speedup_of(&self, b: Bits) -> f64 {
        f64::from(self.bits[0].get()) / f64::from(b.get())
    }

    /// A message arrived at `at_s`; every [`SENDS_PER_WINDOW`] arrivals, the next window's
    /// schedule.
    pub fn on_arrival(&mut self, at_s: f64) -> Option<Schedule> {
        let Some(start) = self.window_start_s else {
            self.window_start_s = Some(at_s);
            return None;
        };
        self.arrivals += 1;
        if self.arrivals < SENDS_PER_WINDOW || at_s <= start {
            return None;
        }
        let y = f64::from(self.arrivals) * self.items_per_message / (at_s - start);
        self.arrivals = 0;
        self.window_start_s = Some(at_s);
        let u = self.ctl.step(y);
        Some(self.schedule(u))
    }

    /// The two bitwidths whose speedups bracket `target` and the share of the window for the
    /// slower one, such that the window's time per message is that of `target`.
    pub fn schedule(&self, target: f64) -> Schedule {
        let slow_idx = self
            .bits
            .iter()
            .filter(|&&b| self.speedup_of(b) <= target)
            .count()
            .saturating_sub(1);
        let fast_idx = (slow_idx + 1).min(self.bits.len() - 1);
        let (slow, fast) = (self.bits[slow_idx], self.bits[fast_idx]);
        let (s_slow, s_fast) = (self.speedup_of(slow), self.speedup_of(fast));
        // 1 / target = x / s_slow + (1 - x) / s_fast.
        let x = if (s_fast - s_slow).abs() < 1e-12 {
            0.0
        } else {
            s_slow * (s_fast - target) / (target * (s_fast - s_slow))
        };
        Schedule {
            slow,
            fast,
            slow_sends: (f64::from(SENDS_PER_WINDOW) * x.clamp(0.0, 1.0)).round() as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(n: u8) -> Bits {
        Bits::new(n).unwrap()
    }

    #[test]
    fn the_filter_converges_on_the_base_performance() {
        let mut k = ScalarKalman::default();
        // y = 20 at speedup 2: a base of 10.
        let first = k.update(20.0, 2.0);
        assert!((first - 10.0).abs() < 0.1, "{first}");
        for _ in 0..10 {
            k.update(20.0, 2.0);
        }
        assert!((k.x_hat - 10.0).abs() < 1e-2, "{}", k.x_hat);
    }

    #[test]
    fn a_shortfall_raises_the_speedup_and_a_surplus_lowers_it_within_bounds() {
        let mut c = SpeedupController::new(20.0, 1.0, 16.0);
        let up = c.step(10.0);
        assert!(up > 1.5, "{up}");
        // Far above the target: back to the highest bitwidth, never below speedup 1.
        for _ in 0..20 {
            c.step(40.0);
        }
        assert_eq!(c.speedup(), 1.0);
        for _ in 0..50 {
            c.step(0.5);
        }
        assert_eq!(c.speedup(), 16.0);
    }

    #[test]
    fn a_speedup_between_two_bitwidths_time_shares_them() {
        let k = KalmanIntegral::new(&[b(8), b(32), b(16)], 20.0, 8.0);
        // Speedup 1.5 between 32 bits (1) and 16 bits (2): 1/1.5 = x/1 + (1-x)/2, x = 1/3.
        let s = k.schedule(1.5);
        assert_eq!((s.slow, s.fast, s.slow_sends), (Bits::RAW, b(16), 3));
        // Exactly a bitwidth's speedup: all of the window at it.
        let s = k.schedule(2.0);
        assert_eq!((s.slow, s.slow_sends), (b(16), 10));
        // Beyond the lowest: all at the lowest.
        let s = k.schedule(9.0);
        assert_eq!((s.slow, s.fast), (b(8), b(8)));
    }

    #[test]
    fn every_tenth_arrival_closes_a_window_measured_in_items_per_second() {
        let mut k = KalmanIntegral::new(&[b(4), b(8), b(16), Bits::RAW], 20.0, 8.0);
        assert_eq!(
            k.on_arrival(0.0),
            None,
            "the first arrival starts the window"
        );
        for i in 1..10 {
            assert_eq!(k.on_arrival(f64::from(i)), None);
        }
        // 10 messages of 8 items in 10 s: 8 items/s, well under 20: a lower bitwidth.
        let s = k.on_arrival(10.0).expect("a window closed");
        assert!(s.slow.get() < 32, "{s:?}");
        assert!(k.ctl.speedup() > 1.0);
    }
}
