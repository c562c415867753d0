//! An emulated link that follows a bandwidth trace: how long a sender holds each message so that
//! the bytes it puts leave at the trace's rate.
//!
//! The link is one serial channel. A message handed to it waits for the messages before it to
//! cross, then crosses at the trace's rate of the moment (a step during its transfer changes its
//! pace part-way, as [`Trace::finish_time`] computes). An idle link banks no credit: a message
//! after a silence still crosses at the rate, never faster, as a token bucket with a tiny burst
//! would let it. Times are seconds on the trace's clock (0 = the trace's first step).

use crate::trace::Trace;

/// The channel's state: the trace and when the last message handed to it has crossed.
#[derive(Debug, Clone)]
pub struct PacedLink {
    trace: Trace,
    free_at_s: f64,
}

impl PacedLink {
    pub fn new(trace: Trace) -> Self {
        PacedLink {
            trace,
            free_at_s: f64::NEG_INFINITY,
        }
    }

    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// A message of `bytes` handed to the link at `now_s`: the seconds until it has crossed
    /// (queued behind earlier messages, then carried at the trace's rate). The sender waits
    /// that long before the message is delivered.
    pub fn wait_s(&mut self, now_s: f64, bytes: u64) -> f64 {
        let start = now_s.max(self.free_at_s);
        let done = self.trace.finish_time(start, bytes);
        self.free_at_s = done;
        done - now_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(steps: Vec<(f64, f64)>) -> PacedLink {
        PacedLink::new(Trace::new(steps).unwrap())
    }

    #[test]
    fn a_message_waits_its_size_over_the_rate() {
        let mut l = link(vec![(0.0, 8.0)]);
        // 1 MB = 8 Mbit at 8 Mbit/s.
        assert!((l.wait_s(2.0, 1_000_000) - 1.0).abs() < 1e-12);
        assert!((l.wait_s(10.0, 250_000) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn messages_handed_together_queue_behind_each_other() {
        let mut l = link(vec![(0.0, 8.0)]);
        assert!((l.wait_s(0.0, 1_000_000) - 1.0).abs() < 1e-12);
        // Handed over at 0.5 s, it starts when the first has crossed (1 s), done at 2 s.
        assert!((l.wait_s(0.5, 1_000_000) - 1.5).abs() < 1e-12);
    }

    #[test]
    fn an_idle_link_banks_no_credit() {
        let mut l = link(vec![(0.0, 8.0)]);
        l.wait_s(0.0, 1_000_000);
        assert!((l.wait_s(100.0, 1_000_000) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_step_down_during_a_transfer_slows_its_rest() {
        let mut l = link(vec![(0.0, 8.0), (1.0, 1.0), (3.0, 8.0)]);
        // From 0.5 s: 4 Mbit before the drop, 2 Mbit from 1 s to 3 s, the last 2 Mbit in 0.25 s.
        assert!((l.wait_s(0.5, 1_000_000) - 2.75).abs() < 1e-9);
    }

    #[test]
    fn the_low_step_holds_messages_longer_and_the_rise_releases_them() {
        let mut l = link(vec![(0.0, 100.0), (10.0, 2.0), (20.0, 100.0)]);
        let high = l.wait_s(5.0, 500_000);
        let low = l.wait_s(12.0, 500_000);
        let back = l.wait_s(25.0, 500_000);
        assert!((high - 0.04).abs() < 1e-9, "{high}");
        assert!((low - 2.0).abs() < 1e-9, "{low}");
        assert!((back - 0.04).abs() < 1e-9, "{back}");
    }
}
