//! The demo's story, planned before the fleet starts: the emulated link's step trace, the
//! target the adaptive bitwidth works to, when a device leaves, and how many items keep the
//! pipeline busy until the end. Times are seconds from the run's first message.

use std::fmt::Write;

/// The link runs high, steps down at `LOW_FROM_S`, and back up at `LOW_UNTIL_S` (on each
/// node's clock, which starts at its first message: up to a pipeline's fill after the run's).
pub const LOW_FROM_S: f64 = 12.0;
pub const LOW_UNTIL_S: f64 = 22.0;
/// A device leaves once the link has been back up for a while.
pub const LEAVE_AT_S: f64 = 32.0;
/// The run lasts about this long at the estimated rate (the re-plan costs a few seconds more).
pub const RUN_S: f64 = 42.0;
/// The device leaves at the latest when this share of the items is answered, so that a run
/// faster than estimated still re-plans with items left.
pub const LEAVE_BY_SHARE: f64 = 0.8;

/// The pipeline is expected to reach this share of the balanced rate (the planner's bound is
/// a little below it, and a run reaches about 0.85 of the bound).
const EXPECTED_SHARE: f64 = 0.75;
/// The adaptive bitwidth works to this share of the balanced rate: below what the pipeline
/// reaches, so that the target is met while the link allows it.
const TARGET_SHARE: f64 = 0.55;
/// The high step carries 8 bits at the target this many times over (a cut that carries two
/// tensors still fits); the low one only this share of it, so that 8 bits no longer fits and
/// 4 do, with some room.
const HIGH_OVER_8_BITS: f64 = 4.0;
const LOW_OVER_8_BITS: f64 = 0.6;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Story {
    /// Items/s the adaptive bitwidth works to.
    pub target_items_per_s: f64,
    /// The emulated link's rates, Mbit/s.
    pub high_mbps: f64,
    pub low_mbps: f64,
    pub low_from_s: f64,
    pub low_until_s: f64,
    pub leave_at_s: f64,
    /// Items the run sends.
    pub items: usize,
}

/// The story for a fleet whose balanced rate is `balanced_items_per_s` and whose cuts carry
/// `mbit_per_item_8_bits` per item at 8 bits (one hidden-state tensor).
pub fn plan(balanced_items_per_s: f64, mbit_per_item_8_bits: f64) -> Story {
    let target = TARGET_SHARE * balanced_items_per_s;
    let needs_8_bits = target * mbit_per_item_8_bits;
    Story {
        target_items_per_s: round2(target),
        high_mbps: round2(HIGH_OVER_8_BITS * needs_8_bits),
        low_mbps: round2(LOW_OVER_8_BITS * needs_8_bits),
        low_from_s: LOW_FROM_S,
        low_until_s: LOW_UNTIL_S,
        leave_at_s: LEAVE_AT_S,
        items: (EXPECTED_SHARE * balanced_items_per_s * RUN_S)
            .ceil()
            .max(1.0) as usize,
    }
}

impl Story {
    /// The trace file (`at_s, mbit`) the devices' links follow.
    pub fn trace_csv(&self) -> String {
        let mut s = String::from("# the demo's emulated link: high, a step down, high again\n");
        for (at, mbps) in self.steps() {
            let _ = writeln!(s, "{at}, {mbps}");
        }
        s
    }

    /// The trace's steps, `(at_s, mbit)`.
    pub fn steps(&self) -> [(f64, f64); 3] {
        [
            (0.0, self.high_mbps),
            (self.low_from_s, self.low_mbps),
            (self.low_until_s, self.high_mbps),
        ]
    }

    /// Whether a device leaves now, `elapsed_s` into the run with `answered` items answered.
    pub fn leaves_now(&self, elapsed_s: f64, answered: usize) -> bool {
        elapsed_s >= self.leave_at_s || answered as f64 >= LEAVE_BY_SHARE * self.items as f64
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `texts` repeated in order up to `n` items.
pub fn cycled<T: Clone>(texts: &[T], n: usize) -> Vec<T> {
    texts.iter().cycle().take(n).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantpipe_adaptive::trace::Trace;

    #[test]
    fn eight_bits_fit_the_high_step_and_not_the_low_one() {
        let s = plan(20.0, 0.4);
        let needs = |bits: f64| s.target_items_per_s * 0.4 * bits / 8.0;
        assert!(needs(8.0) * 2.0 < s.high_mbps, "{s:?}");
        assert!(needs(8.0) > s.low_mbps && needs(4.0) <= s.low_mbps, "{s:?}");
        assert!(s.target_items_per_s < 0.75 * 20.0);
    }

    #[test]
    fn the_trace_steps_down_and_back_up_and_parses() {
        let s = plan(20.0, 0.4);
        let t = Trace::parse(&s.trace_csv()).unwrap();
        assert_eq!(t.mbps_at(1.0), s.high_mbps);
        assert_eq!(t.mbps_at(LOW_FROM_S + 1.0), s.low_mbps);
        assert_eq!(t.mbps_at(LOW_UNTIL_S + 1.0), s.high_mbps);
        assert!(s.low_from_s < s.low_until_s && s.low_until_s < s.leave_at_s);
    }

    #[test]
    fn enough_items_for_the_whole_story_at_the_expected_rate() {
        let s = plan(20.0, 0.4);
        assert_eq!(s.items, (0.75f64 * 20.0 * RUN_S).ceil() as usize);
    }

    #[test]
    fn the_device_leaves_on_time_or_before_the_items_run_out() {
        let s = plan(20.0, 0.4);
        assert!(!s.leaves_now(LEAVE_AT_S - 1.0, 0));
        assert!(s.leaves_now(LEAVE_AT_S, 0));
        assert!(s.leaves_now(1.0, (0.8 * s.items as f64).ceil() as usize));
    }

    #[test]
    fn items_cycle_through_the_texts() {
        assert_eq!(cycled(&[1, 2, 3], 7), vec![1, 2, 3, 1, 2, 3, 1]);
        assert_eq!(cycled(&[1, 2, 3], 2), vec![1, 2]);
    }
}
