//! A link simulation for the bitwidth policies: a bandwidth trace in, per-window bitwidth and
//! throughput out, and the figures judged on them.
//!
//! The model: a stage produces a message of `items_per_message` items every
//! `items_per_message / compute_items_per_s` seconds (its compute rate, at or above the target:
//! a stage that falls behind can catch up), with at most `in_flight` messages
//! sent and not yet arrived (the pipeline's back-pressure: the stage waits beyond that). Each
//! message is encoded at the policy's bitwidth when produced and crosses a FIFO link whose rate
//! follows the trace. The receiver's arrival stamps feed the [`BandwidthEstimator`] through
//! [`ArrivalIntervals`], exactly as on a node: a transfer is known when it has arrived.
//!
//! The oracle knows the trace: in each window it sends the largest mean bitwidth (time-sharing
//! adjacent bitwidths) whose size fits the window's true bandwidth at the target rate.

use crate::estimator::{ArrivalIntervals, BandwidthEstimator, Transfer};
use crate::judge::JudgedWindow;
use crate::policy::{Policy, TransferRate, WindowObservation};
use crate::sizes::SizeTable;
use crate::trace::Trace;

#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub window_s: f64,
    pub duration_s: f64,
    pub target_items_per_s: f64,
    /// The stage's own rate: how fast it produces messages when the link keeps up.
    pub compute_items_per_s: f64,
    pub items_per_message: f64,
    pub in_flight: usize,
}

/// One window of a simulated run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WindowRecord {
    pub start_s: f64,
    pub end_s: f64,
    /// The trace's mean rate over the window, and what the estimator measured.
    pub link_mbps: f64,
    pub measured_mbps: Option<f64>,
    /// Mean bitwidth of the messages produced in the window (None: none produced).
    pub mean_bits: Option<f64>,
    /// Items that crossed the link per second, each message counted by the share of its bytes
    /// that crossed within the window: a message straddling two windows is half in each, so
    /// a link carrying exactly the target reads as the target in every window, not as
    /// alternating windows of one message more and one less.
    pub items_per_s: f64,
    /// The oracle's mean bitwidth for this window.
    pub oracle_bits: f64,
    /// The lowest allowed bitwidth carries the target at the window's mean rate.
    pub feasible: bool,
}

impl WindowRecord {
    /// The window as [`judge`](crate::judge::judge) reads it.
    pub fn judged(&self) -> JudgedWindow {
        JudgedWindow {
            items_per_s: self.items_per_s,
            mean_bits: self.mean_bits,
            oracle_bits: self.oracle_bits,
            feasible: self.feasible,
        }
    }
}

/// The receiving end of the simulated link: transfers it has yet to learn of (and whether each
/// waited for the link), its bandwidth estimator, and arrival times for item counts.
struct Receiver {
    est: BandwidthEstimator,
    /// Transfers not yet arrived: the transfer, whether it waited for the link, its items.
    pending: Vec<(Transfer, bool, u64)>,
    arrived: Vec<f64>,
}

impl Receiver {
    /// Every transfer that ended by `at_s` reaches the estimator and, as a rate, the policy.
    fn deliver_until(&mut self, at_s: f64, policy: &mut Policy) {
        let (est, arrived) = (&mut self.est, &mut self.arrived);
        self.pending.retain(|(t, queued, items)| {
            if t.end_s > at_s {
                return true;
            }
            est.record(*t);
            arrived.push(t.end_s);
            policy.on_transfer(TransferRate {
                mbps: t.bytes as f64 * 8.0 / (t.end_s - t.start_s).max(1e-9) / 1e6,
                at_s: t.end_s,
                queued: *queued,
                items: *items,
            });
            false
        });
    }
}

/// Runs `policy` over `trace` with payload sizes `sizes`.
pub fn simulate(
    trace: &Trace,
    sizes: &SizeTable,
    mut policy: Policy,
    cfg: &SimConfig,
) -> Result<Vec<WindowRecord>, String> {
    let rate_ok = |r: f64| r > 0.0 && r.is_finite();
    if !(cfg.window_s > 0.0
        && cfg.duration_s >= cfg.window_s
        && cfg.in_flight >= 1
        && rate_ok(cfg.compute_items_per_s)
        && rate_ok(cfg.items_per_message))
    {
        return Err(format!("bad simulation settings {cfg:?}"));
    }
    let period = cfg.items_per_message / cfg.compute_items_per_s;
    let mut rx = Receiver {
        est: BandwidthEstimator::new(cfg.window_s)?,
        pending: Vec::new(),
        arrived: Vec::new(),
    };
    let mut arrivals = ArrivalIntervals::default();
    let mut out = Vec::new();
    // Arrival times of messages in flight (FIFO).
    let mut in_flight: std::collections::VecDeque<f64> = Default::default();
    // (start, end, items) of transfers that may still overlap a window.
    let mut carried: Vec<(f64, f64, f64)> = Vec::new();
    let (mut link_free, mut next_ready, mut win_start) = (0.0f64, 0.0f64, 0.0f64);
    let (mut bits_sum, mut bits_n) = (0.0, 0usize);
    let windows = (cfg.duration_s / cfg.window_s).floor() as usize;
    for w in 0..windows {
        let win_end = (w + 1) as f64 * cfg.window_s;
        // Produce and send every message that is ready before the window ends.
        loop {
            // Back-pressure: wait for the oldest in-flight message beyond the bound.
            let mut ready = next_ready;
            while in_flight.len() >= cfg.in_flight {
                let oldest = in_flight.pop_front().expect("non-empty");
                ready = ready.max(oldest);
            }
            if ready >= win_end {
                next_ready = ready;
                break;
            }
            // Arrivals before this message is encoded reach the policy first.
            rx.deliver_until(ready, &mut policy);
            let bits = policy.next_bits();
            let bytes = sizes
                .bytes(bits)
                .ok_or_else(|| format!("no size for {} bits", bits.get()))?;
            bits_sum += f64::from(bits.get());
            bits_n += 1;
            let queued = ready < link_free;
            let start = ready.max(link_free);
            let end = trace.finish_time(start, bytes);
            link_free = end;
            in_flight.push_back(end);
            carried.push((start, end, cfg.items_per_message));
            rx.pending.push((
                arrivals
                    .on_arrival(bytes, ready, end)
                    .expect("ordered stamps"),
                queued,
                cfg.items_per_message.round() as u64,
            ));
            next_ready = ready + period;
        }
        // The receiver knows the transfers that arrived by the window's end.
        rx.deliver_until(win_end, &mut policy);
        // The sender sees whole messages arrive.
        let arrived_items = rx
            .arrived
            .iter()
            .filter(|&&a| a > win_start && a <= win_end)
            .count() as f64
            * cfg.items_per_message;
        rx.arrived.retain(|&a| a > win_end);
        let e = rx.est.estimate(win_end);
        let items_per_s = carried_items(trace, &carried, win_start, win_end) / cfg.window_s;
        carried.retain(|c| c.1 > win_end);
        let link_mbps = trace.mean_mbps(win_start, win_end);
        out.push(WindowRecord {
            start_s: win_start,
            end_s: win_end,
            link_mbps,
            measured_mbps: e.map(|e| e.mbps),
            mean_bits: (bits_n > 0).then(|| bits_sum / bits_n as f64),
            items_per_s,
            oracle_bits: oracle_mean_bits(sizes, &policy, link_mbps),
            feasible: lowest_fits(sizes, &policy, link_mbps),
        });
        (bits_sum, bits_n) = (0.0, 0);
        policy.on_window(WindowObservation {
            mbps: e.map(|e| e.mbps),
            utilisation: e.map_or(1.0, |e| e.utilisation),
            items_per_s: arrived_items / cfg.window_s,
            probes_only: false,
        });
        win_start = win_end;
    }
    Ok(out)
}

/// Items of `transfers` (start, end, items) that crossed the link within `[from, to]`, each
/// counted by the share of its bits carried in that span.
fn carried_items(trace: &Trace, transfers: &[(f64, f64, f64)], from: f64, to: f64) -> f64 {
    let megabits = |a: f64, b: f64| trace.mean_mbps(a, b) * (b - a);
    transfers
        .iter()
        .filter(|t| t.1 > from && t.0 < to && t.1 > t.0)
        .map(|&(start, end, items)| {
            let (a, b) = (start.max(from), end.min(to));
            items * megabits(a, b) / megabits(start, end)
        })
        .sum()
}

/// The (bitwidth, bytes) pairs within the policy's range, and the bytes a message may carry at
/// `mbps` and the target rate.
fn usable_and_budget(sizes: &SizeTable, policy: &Policy, mbps: f64) -> (Vec<(f64, f64)>, f64) {
    let c = policy.config();
    let usable = sizes
        .entries()
        .iter()
        .filter(|e| e.0.get() >= c.min_bits.get() && e.0.get() <= c.max_bits.get())
        .map(|e| (f64::from(e.0.get()), e.1 as f64))
        .collect();
    (usable, mbps * 1e6 / 8.0 * c.time_budget_s())
}

/// Whether the policy's lowest bitwidth carries the target at `mbps`.
pub fn lowest_fits(sizes: &SizeTable, policy: &Policy, mbps: f64) -> bool {
    let (usable, budget) = usable_and_budget(sizes, policy, mbps);
    usable.first().is_some_and(|lowest| lowest.1 <= budget)
}

/// The largest mean bitwidth (time-sharing adjacent bitwidths within the policy's range) whose
/// mean size fits `mbps` at the target rate.
pub fn oracle_mean_bits(sizes: &SizeTable, policy: &Policy, mbps: f64) -> f64 {
    let (usable, budget) = usable_and_budget(sizes, policy, mbps);
    let (first, last) = (usable[0], usable[usable.len() - 1]);
    if budget >= last.1 {
        return last.0;
    }
    if budget < first.1 {
        return first.0;
    }
    usable
        .windows(2)
        .find(|w| w[0].1 <= budget && budget < w[1].1)
        .map(|w| w[0].0 + (w[1].0 - w[0].0) * (budget - w[0].1) / (w[1].1 - w[0].1))
        .unwrap_or(first.0)
}

/// The figures of a run: per step of the trace, how many whole windows after it the target was
/// regained (None: never, or the plateau is infeasible even at the lowest bitwidth), and the mean
/// bitwidth of the run and of the oracle.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Figures {
    /// (step time, Mbit/s, feasible, windows to regain >= 95% of the target).
    pub recovery: Vec<(f64, f64, bool, Option<usize>)>,
    pub mean_bits: f64,
    pub oracle_mean_bits: f64,
    /// Mean items/s over the windows of each plateau after its recovery, against the target.
    pub held_share: Vec<f64>,
}

/// Summarises `windows` of a run over `trace`; `lowest_fits(mbps)` says whether the lowest
/// allowed bitwidth meets the target at that rate.
pub fn figures(
    trace: &Trace,
    windows: &[WindowRecord],
    target: f64,
    lowest_fits: impl Fn(f64) -> bool,
) -> Figures {
    let mut recovery = Vec::new();
    let mut held_share = Vec::new();
    let steps = trace.steps();
    for (i, &(at, mbps)) in steps.iter().enumerate() {
        let until = steps.get(i + 1).map_or(f64::INFINITY, |s| s.0);
        let plateau: Vec<&WindowRecord> = windows
            .iter()
            .filter(|w| w.start_s >= at && w.end_s <= until)
            .collect();
        let feasible = lowest_fits(mbps);
        let first_ok = plateau.iter().position(|w| w.items_per_s >= 0.95 * target);
        recovery.push((at, mbps, feasible, first_ok.map(|p| p + 1)));
        if let Some(p) = first_ok {
            let after = &plateau[p..];
            held_share.push(
                after.iter().map(|w| w.items_per_s).sum::<f64>() / after.len() as f64 / target,
            );
        } else {
            held_share.push(0.0);
        }
    }
    let with_bits: Vec<&WindowRecord> = windows.iter().filter(|w| w.mean_bits.is_some()).collect();
    let n = with_bits.len().max(1) as f64;
    Figures {
        recovery,
        mean_bits: with_bits.iter().filter_map(|w| w.mean_bits).sum::<f64>() / n,
        oracle_mean_bits: with_bits.iter().map(|w| w.oracle_bits).sum::<f64>() / n,
        held_share,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicyConfig, PolicyKind};
    use crate::sizes::allowed_bits;
    use quantpipe_messages::Bits;

    /// MiniLM's hidden state for a microbatch of 8 articles of 128 tokens, cut after a u3.
    fn minilm_sizes() -> SizeTable {
        SizeTable::from_shapes(
            &[vec![8, 128, 384]],
            &allowed_bits(Bits::new(1).unwrap(), Bits::RAW),
        )
        .unwrap()
    }

    fn run(kind: PolicyKind, trace: &Trace, target: f64) -> (Vec<WindowRecord>, Figures) {
        let sizes = minilm_sizes();
        let min_bits = Bits::new(2).unwrap();
        let cfg = PolicyConfig {
            kind,
            max_bits: Bits::RAW,
            min_bits,
            target_items_per_s: target,
            items_per_message: 8.0,
            window_s: WINDOW_S,
        };
        let policy = Policy::new(cfg.clone(), sizes.clone()).unwrap();
        let sim = SimConfig {
            window_s: WINDOW_S,
            duration_s: trace.steps().last().unwrap().0 + 4.0 * WINDOW_S,
            target_items_per_s: target,
            compute_items_per_s: target,
            items_per_message: 8.0,
            in_flight: 2,
        };
        let w = simulate(trace, &sizes, policy, &sim).unwrap();
        let lowest = sizes.bytes(min_bits).unwrap() as f64;
        let f = figures(trace, &w, target, |mbps| {
            mbps * 1e6 / 8.0 * cfg.time_budget_s() >= lowest
        });
        (w, f)
    }

    /// Two seconds: several messages' time even for a raw f32 message on the 20 Mbit/s plateau
    /// (0.63 s), so what was already encoded when the link dropped drains within a window.
    const WINDOW_S: f64 = 2.0;

    /// The issue's trace, a step every 4 windows.
    fn issue_trace() -> Trace {
        Trace::new(vec![(0.0, 200.0), (8.0, 20.0), (16.0, 5.0), (24.0, 200.0)]).unwrap()
    }

    #[test]
    fn controller_regains_the_target_within_two_windows_of_every_feasible_step() {
        // 80 items/s = 10 microbatches/s: at 200 Mbit/s raw f32 (1.57 MB) fits, at 20 Mbit/s
        // about 6 bits, at 5 Mbit/s about 1.5 bits: below min_bits 2, so that plateau is
        // infeasible and is not judged.
        let (w, f) = run(PolicyKind::Controller, &issue_trace(), 80.0);
        // The figures, for `--nocapture`.
        println!("{}", serde_json::to_string(&f).unwrap());
        for &(at, mbps, feasible, windows) in &f.recovery {
            if feasible {
                assert!(
                    windows.is_some_and(|n| n <= 2),
                    "step at {at} s to {mbps} Mbit/s: recovered after {windows:?} windows\n{w:#?}"
                );
            }
        }
        assert!(f.recovery.iter().filter(|r| r.2).count() >= 3, "{f:?}");
        assert!(
            (f.mean_bits - f.oracle_mean_bits).abs() <= 1.0,
            "mean bits {} vs oracle {}\n{w:#?}",
            f.mean_bits,
            f.oracle_mean_bits
        );
    }

    #[test]
    fn heuristic_regains_the_target_within_two_windows_of_every_feasible_step() {
        let (_, f) = run(PolicyKind::Heuristic, &issue_trace(), 80.0);
        for &(at, _, feasible, windows) in &f.recovery {
            if feasible {
                assert!(windows.is_some_and(|n| n <= 2), "step at {at}: {f:?}");
            }
        }
    }

    #[test]
    fn fixed_raw_collapses_where_the_link_cannot_carry_f32() {
        let (_, f) = run(PolicyKind::Fixed, &issue_trace(), 80.0);
        // The 20 Mbit/s plateau: feasible for the adaptive policies, not for raw f32.
        let twenty = f.recovery.iter().find(|r| r.1 == 20.0).unwrap();
        assert!(twenty.2 && twenty.3.is_none(), "{f:?}");
        assert!((f.mean_bits - 32.0).abs() < 1e-9);
    }
}
