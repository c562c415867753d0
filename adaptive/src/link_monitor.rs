//! What a sender knows about one outgoing link, from the receiver's acknowledgements: transfer
//! intervals ([`ArrivalIntervals`]), the sliding-window bandwidth ([`BandwidthEstimator`]) and
//! the items that crossed the link, closed into one [`WindowObservation`] per window.
//!
//! A sender remembers the items of each message it sends ([`LinkMonitor::on_send`]); an
//! acknowledgement carries the message's sender stamp and the receiver's arrival stamp, so the
//! sender learns when each message held the link without any extra message on the data path.
//! Pending messages are remembered up to [`MAX_PENDING`]: a receiver that never acknowledges
//! (gone, or a stage of an older plan) cannot grow the table without bound.

use crate::estimator::{ArrivalIntervals, BandwidthEstimator, Estimate, Transfer};
use crate::policy::{TransferRate, WindowObservation};
use std::collections::{BTreeMap, VecDeque};

/// Most messages awaiting an acknowledgement that a link remembers.
pub const MAX_PENDING: usize = 4096;

/// One acknowledged message: its size on the wire, and when it was sent and arrived (seconds of
/// one clock).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ack {
    pub run: u64,
    pub seq: u64,
    pub bytes: u64,
    pub sent_s: f64,
    pub arrived_s: f64,
}

/// The window just closed, with the estimate behind the observation (for metrics).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkWindow {
    pub observation: WindowObservation,
    pub estimate: Option<Estimate>,
    /// Messages sent in the window, acknowledged or not.
    pub sent: u64,
    /// Messages sent and not acknowledged yet, at the window's end.
    pub unacknowledged: usize,
}

impl LinkWindow {
    /// Nothing was sent in the window and nothing is on its way: the link is idle (a sender
    /// blocked on a slow link has sent nothing new either, but its last message is pending).
    pub fn idle(&self) -> bool {
        self.sent == 0 && self.unacknowledged == 0
    }
}

#[derive(Debug, Clone)]
pub struct LinkMonitor {
    intervals: ArrivalIntervals,
    estimator: BandwidthEstimator,
    /// Items of each message sent and not yet acknowledged, by (run, seq).
    pending: BTreeMap<(u64, u64), u64>,
    order: VecDeque<(u64, u64)>,
    /// (arrival, items) of acknowledged messages, oldest first.
    arrivals: VecDeque<(f64, u64)>,
    sent_in_window: u64,
    /// Messages of this link (not probes) acknowledged in the window.
    acked_in_window: u64,
}

impl LinkMonitor {
    pub fn new(window_s: f64) -> Result<Self, String> {
        Ok(LinkMonitor {
            intervals: ArrivalIntervals::default(),
            estimator: BandwidthEstimator::new(window_s)?,
            pending: BTreeMap::new(),
            order: VecDeque::new(),
            arrivals: VecDeque::new(),
            sent_in_window: 0,
            acked_in_window: 0,
        })
    }

    /// A message of `items` items is about to be sent.
    pub fn on_send(&mut self, run: u64, seq: u64, items: u64) {
        self.sent_in_window += 1;
        if self.pending.insert((run, seq), items).is_none() {
            self.order.push_back((run, seq));
        }
        while self.order.len() > MAX_PENDING {
            if let Some(old) = self.order.pop_front() {
                self.pending.remove(&old);
            }
        }
    }

    /// An acknowledgement; answers the message's own transfer rate when its stamps make a
    /// transfer interval (queued: sent before the previous message arrived). An acknowledgement of a message this link did not send (or
    /// already acknowledged) still counts for the bandwidth, not for the items.
    pub fn on_ack(&mut self, ack: Ack) -> Option<TransferRate> {
        let items = self.pending.remove(&(ack.run, ack.seq));
        if let Some(items) = items {
            self.acked_in_window += 1;
            self.order.retain(|k| *k != (ack.run, ack.seq));
            if ack.arrived_s.is_finite() {
                self.arrivals.push_back((ack.arrived_s, items));
            }
        }
        let queued = self
            .intervals
            .last_arrival_s()
            .is_some_and(|prev| ack.sent_s < prev);
        let t: Transfer = self
            .intervals
            .on_arrival(ack.bytes, ack.sent_s, ack.arrived_s)?;
        self.estimator.record(t);
        let secs = t.end_s - t.start_s;
        (secs > 0.0).then(|| TransferRate {
            mbps: t.bytes as f64 * 8.0 / secs / 1e6,
            at_s: t.end_s,
            queued,
            items: items.unwrap_or(0),
        })
    }

    /// Closes the window ending at `now_s`.
    pub fn close_window(&mut self, now_s: f64) -> LinkWindow {
        let window_s = self.estimator.window_s();
        let from = now_s - window_s;
        while self.arrivals.front().is_some_and(|a| a.0 <= from) {
            self.arrivals.pop_front();
        }
        let items: u64 = self
            .arrivals
            .iter()
            .filter(|a| a.0 <= now_s)
            .map(|a| a.1)
            .sum();
        let estimate = self.estimator.estimate(now_s);
        let sent = std::mem::take(&mut self.sent_in_window);
        let acked = std::mem::take(&mut self.acked_in_window);
        LinkWindow {
            observation: WindowObservation {
                mbps: estimate.map(|e| e.mbps),
                utilisation: estimate.map_or(0.0, |e| e.utilisation),
                items_per_s: items as f64 / window_s,
                probes_only: estimate.is_some() && acked == 0,
            },
            estimate,
            sent,
            unacknowledged: self.pending.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(seq: u64, bytes: u64, sent_s: f64, arrived_s: f64) -> Ack {
        Ack {
            run: 1,
            seq,
            bytes,
            sent_s,
            arrived_s,
        }
    }

    #[test]
    fn acknowledged_messages_give_rate_and_items_per_window() {
        let mut m = LinkMonitor::new(1.0).unwrap();
        // Two messages of 8 items, 125 kB each, 0.1 s on the wire: 10 Mbit/s.
        m.on_send(1, 0, 8);
        m.on_send(1, 1, 8);
        let r = m.on_ack(ack(0, 125_000, 10.0, 10.1)).unwrap();
        assert!((r.mbps - 10.0).abs() < 1e-6, "{r:?}");
        m.on_ack(ack(1, 125_000, 10.2, 10.3)).unwrap();
        let w = m.close_window(10.5);
        assert_eq!(w.sent, 2);
        assert!(!w.idle(), "it sent");
        assert!((w.observation.mbps.unwrap() - 10.0).abs() < 1e-6);
        assert!((w.observation.utilisation - 0.2).abs() < 1e-6);
        assert!((w.observation.items_per_s - 16.0).abs() < 1e-9);
        // The next window saw nothing: no estimate, no items, nothing sent.
        let w = m.close_window(11.6);
        assert_eq!(w.sent, 0);
        assert!(w.idle());
        // A message on its way keeps the link busy though nothing new was sent.
        m.on_send(1, 2, 8);
        m.close_window(11.7);
        let w = m.close_window(12.8);
        assert_eq!((w.sent, w.unacknowledged), (0, 1));
        assert!(!w.idle());
        assert_eq!(w.observation.mbps, None);
        assert_eq!(w.observation.items_per_s, 0.0);
    }

    #[test]
    fn a_message_sent_before_the_previous_one_arrived_is_queued() {
        let mut m = LinkMonitor::new(1.0).unwrap();
        let first = m.on_ack(ack(0, 125_000, 10.0, 10.1)).unwrap();
        assert!(!first.queued, "the first message had the link to itself");
        // Sent after the previous arrival: the link idled in between.
        assert!(!m.on_ack(ack(1, 125_000, 10.2, 10.3)).unwrap().queued);
        // Sent before the previous arrival: it waited for the link.
        let t = m.on_ack(ack(2, 125_000, 10.25, 10.4)).unwrap();
        assert!(t.queued);
        assert!((t.mbps - 10.0).abs() < 1e-6, "{t:?}");
    }

    #[test]
    fn a_busy_receiver_is_not_a_slow_link() {
        // The sender stamps messages 0.5 s apart (the receiver pulled slowly); each held the
        // link 0.1 s. The rate is that of the transfers, not bytes over the whole window.
        let mut m = LinkMonitor::new(2.0).unwrap();
        for i in 0..4 {
            m.on_send(1, i, 8);
            let s = 100.0 + 0.5 * i as f64;
            m.on_ack(ack(i, 125_000, s, s + 0.1));
        }
        let w = m.close_window(102.0);
        assert!((w.observation.mbps.unwrap() - 10.0).abs() < 1e-6);
        assert!((w.observation.utilisation - 0.2).abs() < 1e-6);
    }

    #[test]
    fn unknown_and_repeated_acks_count_bandwidth_but_not_items() {
        let mut m = LinkMonitor::new(1.0).unwrap();
        m.on_send(1, 0, 8);
        assert!(m.on_ack(ack(0, 1000, 0.0, 0.1)).is_some());
        assert!(m.on_ack(ack(7, 1000, 0.1, 0.2)).is_some());
        let w = m.close_window(0.5);
        assert_eq!(w.observation.items_per_s, 8.0);
        assert!(!w.observation.probes_only);
        // A window with acknowledgements of probes (messages it never sent) only.
        m.on_ack(ack(8, 1000, 0.6, 0.7));
        assert!(m.close_window(1.0).observation.probes_only);
        // Stamps running backwards (clocks that disagree) are no transfer at all.
        assert_eq!(m.on_ack(ack(9, 1000, 5.0, 4.0)), None);
    }

    #[test]
    fn unacknowledged_messages_are_forgotten_past_the_bound() {
        let mut m = LinkMonitor::new(1.0).unwrap();
        for i in 0..(MAX_PENDING as u64 + 10) {
            m.on_send(1, i, 1);
        }
        assert_eq!(m.pending.len(), MAX_PENDING);
        assert!(!m.pending.contains_key(&(1, 0)), "the oldest go first");
    }
}
