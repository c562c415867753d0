//! Per-link bandwidth: bytes over transfer time, over a sliding window.
//!
//! # What counts as transfer time
//! The estimator is fed [`Transfer`]s, each the interval during which the link was carrying one
//! message. Bandwidth is the bytes of the window over the *measure of the union* of those
//! intervals inside the window, so:
//! - idle gaps (no message in flight) are in no interval and never lower the estimate;
//! - messages in flight together (pipelined sends) share the link: their overlap is counted once.
//!
//! # Where the intervals come from, and why a busy receiver is not a slow link
//! Under zenoh's `CongestionControl::Block`, a sender's `put` returns once the message is in
//! zenoh's transmit queue, and blocks when that queue is full, whether because the link is slow
//! or because the receiver stopped reading. Put durations therefore say little: they are near
//! zero on an unsaturated link and include back-pressure on a saturated one.
//!
//! The intervals are taken at the receiver instead ([`ArrivalIntervals`]): message `i`, stamped
//! `sent` by its sender just before the put and `arrived` by the receiver's zenoh callback, held
//! the link from `max(sent, arrived of message i-1)` (it was sent, and the link had finished the
//! message before it: the two cannot both use a FIFO link) to `arrived`. The arrival stamp is
//! taken in the subscriber callback, which only hands the bytes to the stage's mailbox and
//! returns, so the time a receiving stage spends busy on earlier microbatches is not on the wire
//! and is never read as transfer time. The sender and receiver clocks must agree (same host, as
//! in loopback and network-namespace fleets, or NTP/PTP-synchronised hosts); a stamp pair that
//! runs backwards is discarded rather than trusted.

use std::collections::VecDeque;

/// One message's time on a link, in seconds of one clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transfer {
    pub bytes: u64,
    pub start_s: f64,
    pub end_s: f64,
}

/// An estimate over one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Megabits per second while transmitting.
    pub mbps: f64,
    /// Bytes (pro rata for transfers straddling the window's start) and seconds of transfer.
    pub bytes: f64,
    pub busy_s: f64,
    /// Share of the window the link was transmitting (1 = saturated).
    pub utilisation: f64,
}

/// Sliding-window bandwidth of one link.
#[derive(Debug, Clone)]
pub struct BandwidthEstimator {
    window_s: f64,
    transfers: VecDeque<Transfer>,
}

/// Busy time below this is too little to divide by (a window with nearly nothing sent).
const MIN_BUSY_S: f64 = 1e-6;

impl BandwidthEstimator {
    /// An estimator over the last `window_s` seconds (`> 0`).
    pub fn new(window_s: f64) -> Result<Self, String> {
        if !(window_s > 0.0 && window_s.is_finite()) {
            return Err(format!("window must be > 0 seconds, got {window_s}"));
        }
        Ok(BandwidthEstimator {
            window_s,
            transfers: VecDeque::new(),
        })
    }

    pub fn window_s(&self) -> f64 {
        self.window_s
    }

    /// Records a transfer; one with `end < start` or non-finite times is ignored.
    pub fn record(&mut self, t: Transfer) {
        if t.start_s.is_finite() && t.end_s.is_finite() && t.end_s >= t.start_s {
            self.transfers.push_back(t);
        }
    }

    /// The estimate over `[now - window, now]`, or `None` when the link carried nothing there.
    /// Forgets transfers that ended before the window.
    pub fn estimate(&mut self, now_s: f64) -> Option<Estimate> {
        let from = now_s - self.window_s;
        self.transfers.retain(|t| t.end_s > from);
        let mut spans: Vec<(f64, f64, f64)> = self
            .transfers
            .iter()
            .filter(|t| t.start_s < now_s)
            .map(|t| {
                let (s, e) = (t.start_s.max(from), t.end_s.min(now_s));
                let len = t.end_s - t.start_s;
                // Bytes pro rata to the share of the transfer inside the window.
                let share = if len > 0.0 { (e - s) / len } else { 1.0 };
                (s, e, t.bytes as f64 * share)
            })
            .collect();
        if spans.is_empty() {
            return None;
        }
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        let bytes: f64 = spans.iter().map(|s| s.2).sum();
        let busy_s = union_length(spans.iter().map(|s| (s.0, s.1)));
        if busy_s < MIN_BUSY_S {
            return None;
        }
        Some(Estimate {
            mbps: bytes * 8.0 / busy_s / 1e6,
            bytes,
            busy_s,
            utilisation: (busy_s / self.window_s).min(1.0),
        })
    }
}

/// Length of the union of intervals sorted by start.
fn union_length(sorted: impl Iterator<Item = (f64, f64)>) -> f64 {
    let mut total = 0.0;
    let mut cur: Option<(f64, f64)> = None;
    for (s, e) in sorted {
        cur = match cur {
            Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce - cs;
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    if let Some((cs, ce)) = cur {
        total += ce - cs;
    }
    total
}

/// Turns a receiver's (sent, arrived) stamps of one link into [`Transfer`]s (see the module
/// docs for why `start = max(sent, previous arrival)`).
#[derive(Debug, Clone, Default)]
pub struct ArrivalIntervals {
    last_arrival_s: Option<f64>,
}

impl ArrivalIntervals {
    /// When the last message arrived.
    pub fn last_arrival_s(&self) -> Option<f64> {
        self.last_arrival_s
    }

    /// The transfer of a message of `bytes` stamped `sent_s` by its sender and `arrived_s` here;
    /// `None` when the stamps run backwards (clocks that disagree) or repeat an earlier arrival.
    pub fn on_arrival(&mut self, bytes: u64, sent_s: f64, arrived_s: f64) -> Option<Transfer> {
        if !(sent_s.is_finite() && arrived_s.is_finite()) || arrived_s < sent_s {
            return None;
        }
        let start = match self.last_arrival_s {
            Some(prev) if arrived_s < prev => return None,
            Some(prev) => sent_s.max(prev),
            None => sent_s,
        };
        self.last_arrival_s = Some(arrived_s);
        Some(Transfer {
            bytes,
            start_s: start,
            end_s: arrived_s,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(bytes: u64, start_s: f64, end_s: f64) -> Transfer {
        Transfer {
            bytes,
            start_s,
            end_s,
        }
    }

    #[test]
    fn rate_is_bytes_over_transfer_time() {
        let mut e = BandwidthEstimator::new(10.0).unwrap();
        e.record(t(1_000_000, 0.0, 0.8));
        let est = e.estimate(1.0).unwrap();
        assert!((est.mbps - 10.0).abs() < 1e-9, "{est:?}");
        assert!((est.utilisation - 0.08).abs() < 1e-9);
    }

    #[test]
    fn idle_gaps_do_not_lower_the_estimate() {
        let mut e = BandwidthEstimator::new(10.0).unwrap();
        // 1 MB per 0.8 s on a 10 Mbit/s link, with long idle gaps between messages.
        for i in 0..4 {
            let s = i as f64 * 2.0;
            e.record(t(1_000_000, s, s + 0.8));
        }
        let est = e.estimate(8.0).unwrap();
        assert!((est.mbps - 10.0).abs() < 1e-9, "{est:?}");
    }

    #[test]
    fn overlapping_transfers_share_the_link_once() {
        let mut e = BandwidthEstimator::new(10.0).unwrap();
        // Two messages in flight together over [0, 1.6]: 2 MB in 1.6 s = 10 Mbit/s.
        e.record(t(1_000_000, 0.0, 0.8));
        e.record(t(1_000_000, 0.0, 1.6));
        let est = e.estimate(2.0).unwrap();
        assert!((est.mbps - 10.0).abs() < 1e-9, "{est:?}");
    }

    #[test]
    fn old_transfers_leave_the_window_and_straddlers_count_pro_rata() {
        let mut e = BandwidthEstimator::new(1.0).unwrap();
        e.record(t(10_000_000, 0.0, 0.5)); // 160 Mbit/s, then the link drops
        e.record(t(1_000_000, 0.5, 1.5)); // 8 Mbit/s, half of it in [1, 2]
        let est = e.estimate(2.0).unwrap();
        assert!((est.mbps - 8.0).abs() < 1e-9, "{est:?}");
        assert!((est.bytes - 500_000.0).abs() < 1e-6);
        assert!(e.estimate(10.0).is_none());
    }

    #[test]
    fn bad_windows_and_reversed_transfers_are_refused() {
        assert!(BandwidthEstimator::new(0.0).unwrap_err().contains("window"));
        assert!(BandwidthEstimator::new(f64::NAN).is_err());
        let mut e = BandwidthEstimator::new(1.0).unwrap();
        e.record(t(100, 0.5, 0.4));
        assert!(e.estimate(1.0).is_none());
    }

    #[test]
    fn a_busy_receiver_between_messages_is_not_transfer_time() {
        // The receiver's stage is busy for 2 s between messages, so the sender sends late: the
        // link is idle in between, and each message takes 0.8 s on a 10 Mbit/s link.
        let mut a = ArrivalIntervals::default();
        let mut e = BandwidthEstimator::new(10.0).unwrap();
        for (sent, arrived) in [(0.0, 0.8), (2.8, 3.6), (5.6, 6.4)] {
            e.record(a.on_arrival(1_000_000, sent, arrived).unwrap());
        }
        assert!((e.estimate(7.0).unwrap().mbps - 10.0).abs() < 1e-9);
    }

    #[test]
    fn messages_queued_behind_each_other_start_at_the_previous_arrival() {
        // Three messages sent at once on a 10 Mbit/s link: they arrive 0.8 s apart.
        let mut a = ArrivalIntervals::default();
        let got: Vec<Transfer> = [0.8, 1.6, 2.4]
            .iter()
            .map(|&arr| a.on_arrival(1_000_000, 0.0, arr).unwrap())
            .collect();
        assert_eq!(got[1], t(1_000_000, 0.8, 1.6));
        let mut e = BandwidthEstimator::new(10.0).unwrap();
        got.into_iter().for_each(|x| e.record(x));
        assert!((e.estimate(3.0).unwrap().mbps - 10.0).abs() < 1e-9);
    }

    #[test]
    fn stamps_that_run_backwards_are_discarded() {
        let mut a = ArrivalIntervals::default();
        assert!(a.on_arrival(10, 5.0, 4.0).is_none());
        assert!(a.on_arrival(10, 0.0, 4.0).is_some());
        assert!(a.on_arrival(10, 0.0, 3.0).is_none());
    }

    proptest! {
        /// Any schedule of messages on a FIFO link of rate r, with arbitrary idle gaps between
        /// sends, is estimated at r.
        #[test]
        fn fifo_link_with_random_gaps_is_estimated_at_its_rate(
            mbps in 0.5f64..2000.0,
            msgs in proptest::collection::vec((1_000u64..5_000_000, 0.0f64..3.0), 1..40),
        ) {
            let mut a = ArrivalIntervals::default();
            let mut e = BandwidthEstimator::new(1e9).unwrap();
            let (mut now, mut link_free) = (0.0f64, 0.0f64);
            for (bytes, gap) in msgs {
                now += gap;
                let start = now.max(link_free);
                let end = start + bytes as f64 * 8.0 / (mbps * 1e6);
                link_free = end;
                e.record(a.on_arrival(bytes, now, end).unwrap());
            }
            let est = e.estimate(link_free + 1.0).unwrap();
            prop_assert!((est.mbps - mbps).abs() <= 1e-6 * mbps, "{} vs {}", est.mbps, mbps);
        }
    }
}
