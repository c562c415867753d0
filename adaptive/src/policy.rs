//! Bitwidth policies: which bitwidth each message of a link is encoded at.
//!
//! A policy is consulted once per window ([`Policy::on_window`], with what the window showed)
//! and once per message ([`Policy::next_bits`]). The per-message time budget is the target rate's:
//! a message of `n` items must cross the link in `n / target` seconds, so it may carry
//! `bandwidth x n / target` bytes.
//!
//! - `fixed`: always the configured bitwidth.
//! - `heuristic`: each window, the largest bitwidth whose exact payload size fits the measured
//!   bandwidth's byte budget.
//! - `controller` (QuantPipe's adaptive PTQ): the byte budget, scaled by a feedback gain, lies
//!   between the sizes of two adjacent bitwidths; the window time-shares them so that the mean
//!   size equals the budget. The gain falls when the window missed the target while the link
//!   was the bottleneck (the estimate was optimistic: protocol overhead, a drop mid-window, no
//!   arrival at all), and recovers towards 1 while the target is met. Each transfer within
//!   the same-link band moves the estimate (a drifting link is followed message by message),
//!   and while the link is behind the target the budget shrinks so that the stage's spare
//!   compute catches up ([`crate::arrears`]).
//! - `kalman-integral`: the controller released with the QuantPipe paper, the peer's method
//!   kept as a baseline ([`crate::kalman_integral`]): it reads only the items delivered per 10
//!   messages, not the link's bandwidth.
//!
//! Every choice is at or above the minimum bitwidth (the accuracy budget): when even that does
//! not fit, the policy sends at the minimum and the throughput falls short.

use crate::arrears::Arrears;
use crate::judge::HELD_SHARE;
use crate::kalman_integral::{KalmanIntegral, SENDS_PER_WINDOW};
use crate::sizes::SizeTable;
use quantpipe_messages::Bits;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    Fixed,
    Heuristic,
    Controller,
    KalmanIntegral,
}

impl FromStr for PolicyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fixed" => Ok(PolicyKind::Fixed),
            "heuristic" => Ok(PolicyKind::Heuristic),
            "controller" => Ok(PolicyKind::Controller),
            "kalman-integral" => Ok(PolicyKind::KalmanIntegral),
            _ => Err(format!(
                "unknown policy `{s}`: use `fixed`, `heuristic`, `controller` or `kalman-integral`"
            )),
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            PolicyKind::Fixed => "fixed",
            PolicyKind::Heuristic => "heuristic",
            PolicyKind::Controller => "controller",
            PolicyKind::KalmanIntegral => "kalman-integral",
        })
    }
}

/// What a policy is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    pub kind: PolicyKind,
    /// The bitwidth of `fixed`, and the highest the adaptive policies use.
    pub max_bits: Bits,
    /// The lowest bitwidth the accuracy budget allows.
    pub min_bits: Bits,
    /// Items per second the link must carry.
    pub target_items_per_s: f64,
    /// Items per message (the microbatch size).
    pub items_per_message: f64,
    /// The measurement window: transfers far above the estimate for this long, whether or
    /// not they waited for the link, are a new link (see [`Policy::on_transfer`]).
    pub window_s: f64,
}

impl PolicyConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.min_bits.get() > self.max_bits.get() {
            return Err(format!(
                "min_bits {} is above the plan's bitwidth {}",
                self.min_bits.get(),
                self.max_bits.get()
            ));
        }
        if !(self.target_items_per_s > 0.0 && self.target_items_per_s.is_finite()) {
            return Err(format!(
                "target rate must be > 0 items/s, got {}",
                self.target_items_per_s
            ));
        }
        if !(self.window_s > 0.0 && self.window_s.is_finite()) {
            return Err(format!("window must be > 0 seconds, got {}", self.window_s));
        }
        if !(self.items_per_message > 0.0 && self.items_per_message.is_finite()) {
            return Err(format!(
                "items per message must be > 0, got {}",
                self.items_per_message
            ));
        }
        Ok(())
    }

    /// Seconds one message may spend on the link at the target rate.
    pub fn time_budget_s(&self) -> f64 {
        self.items_per_message / self.target_items_per_s
    }
}

/// What one window showed.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WindowObservation {
    /// Bandwidth while transmitting (None: nothing arrived in the window).
    pub mbps: Option<f64>,
    /// Share of the window the link was transmitting.
    pub utilisation: f64,
    /// Items that crossed the link per second.
    pub items_per_s: f64,
    /// Only probe messages were acknowledged in the window (the link was idle). A probe is
    /// small enough to pass within a shaper's burst and read far above the link's rate, so it
    /// may lower the estimate, never raise it.
    pub probes_only: bool,
}

/// One message's transfer, as its acknowledgement tells it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransferRate {
    pub mbps: f64,
    /// When the message arrived (seconds of the clock both ends share).
    pub at_s: f64,
    /// Items the message carried (0: a probe, or a message this link did not send).
    pub items: u64,
    /// The message was sent before the previous one arrived: the link was busy right up to
    /// its start, with no idle spell in which a shaper's bucket could refill. Only such
    /// transfers can say the link got faster: after an idle spell, a message passes partly
    /// within the bucket's burst and reads far above the link's rate.
    pub queued: bool,
}

/// The window's choice: `hi` for a `hi_share` of the messages, `lo` for the rest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowChoice {
    pub lo: Bits,
    pub hi: Bits,
    pub hi_share: f64,
}

impl WindowChoice {
    fn single(b: Bits) -> Self {
        WindowChoice {
            lo: b,
            hi: b,
            hi_share: 0.0,
        }
    }

    /// Mean bitwidth of the window's messages.
    pub fn mean_bits(&self) -> f64 {
        f64::from(self.lo.get()) * (1.0 - self.hi_share) + f64::from(self.hi.get()) * self.hi_share
    }
}

/// Lowest and highest feedback gain of the controller.
const GAIN_MIN: f64 = 0.25;
const GAIN_MAX: f64 = 1.0;
/// The share of the target the controller steers to: a little above it, so that a window's
/// shortfall still leaves the target met on average.
const SETPOINT: f64 = 1.1;
/// Largest change of the gain in one window, down and up.
const STEP_DOWN: f64 = 0.8;
const STEP_UP: f64 = 1.1;
/// A link transmitting this share of a window or more is the bottleneck: a miss then says the
/// budget was too large. (A pipelined link that is the bottleneck is rarely seen at 100%: acks
/// come in late, TCP recovers from a shaper's drops.)
const SATURATED: f64 = 0.5;
/// A transfer slower than this share of the estimate is a drop, acted on at once. Looser
/// bounds mistake a token bucket's jitter (a message that waited for tokens) for a new link.
const DROP: f64 = 0.5;
/// Transfers after a drop whose lower rates are taken at once (see [`Policy::on_transfer`]).
const SETTLING_TRANSFERS: u32 = 2;
/// A window's estimate within this factor of the last one is the same link, smoothed into it;
/// beyond it, the link changed and the estimate jumps.
const SAME_LINK: f64 = 2.0;
/// Weight of the newest window in the smoothed estimate and the smoothed share of target.
const SMOOTHING: f64 = 0.5;
/// Weight of a faster transfer in the controller's estimate of a drifting link.
const TRACKING_UP: f64 = 0.5;
/// A transfer this much slower than the estimate is a drift the window's miss is blamed on.
const DRIFT_DROP: f64 = 0.9;
/// Fewest transfers of a sustained rise (see [`FastRun`]).
const SUSTAINED_TRANSFERS: u32 = 3;

/// Transfers in a row far above the estimate, whether or not they waited for the link: when the
/// first arrived, how many, and the slowest. A shaper's bucket refilled over an idle spell lets
/// a message or a few through fast, not a whole window of them: a run that lasts a window is a
/// faster link. Waiting for the next window's estimate instead would leave a stage that is not
/// its pipeline's bottleneck (its transfers never queue) at a slow link's bitwidth for up to two
/// windows after the link got fast.
#[derive(Debug, Clone, Copy, PartialEq)]
struct FastRun {
    since_s: f64,
    transfers: u32,
    slowest_mbps: f64,
}

impl FastRun {
    fn extended(run: Option<FastRun>, t: TransferRate) -> FastRun {
        match run {
            Some(r) => FastRun {
                since_s: r.since_s,
                transfers: r.transfers + 1,
                slowest_mbps: r.slowest_mbps.min(t.mbps),
            },
            None => FastRun {
                since_s: t.at_s,
                transfers: 1,
                slowest_mbps: t.mbps,
            },
        }
    }

    fn sustained(&self, now_s: f64, window_s: f64) -> bool {
        self.transfers >= SUSTAINED_TRANSFERS && now_s - self.since_s >= window_s
    }
}

/// A link's bitwidth policy and its state.
#[derive(Debug, Clone)]
pub struct Policy {
    cfg: PolicyConfig,
    sizes: SizeTable,
    choice: WindowChoice,
    last_mbps: Option<f64>,
    /// The controller's correction of the budget: the share of the measured bandwidth the
    /// pipeline actually turns into items (learnt on saturated windows, kept across link
    /// changes: it is a property of the transport, not of the rate).
    gain: f64,
    credit: f64,
    /// Smoothed share of the target reached over the last windows on this link state (one
    /// window holds few messages, so one window's share is coarse).
    share_of_target: Option<f64>,
    /// The link changed in this window: its miss says nothing about the gain.
    changed_in_window: bool,
    /// Queued transfers in a row far above the estimate.
    rises: u32,
    /// Transfers in a row far above the estimate, queued or not.
    fast_run: Option<FastRun>,
    /// Windows in a row whose estimate was far above the last one.
    window_rises: u32,
    /// Transfers after a drop that may still lower the estimate by any amount.
    settling: u32,
    /// The state of `kalman-integral`.
    released: Option<KalmanIntegral>,
    /// What the link owes the target (the controller's catch-up).
    arrears: Arrears,
}

impl Policy {
    /// `sizes` holds the payload size at each bitwidth the policy may use (`min_bits..=max_bits`).
    pub fn new(cfg: PolicyConfig, sizes: SizeTable) -> Result<Self, String> {
        cfg.validate()?;
        let sizes = SizeTable::new(
            sizes
                .entries()
                .iter()
                .copied()
                .filter(|e| e.0.get() >= cfg.min_bits.get() && e.0.get() <= cfg.max_bits.get())
                .collect(),
        )
        .map_err(|e| format!("no bitwidth between min_bits and the plan's: {e}"))?;
        // Until something is measured, the highest bitwidth: nothing says the link is slow.
        let start = WindowChoice::single(match cfg.kind {
            PolicyKind::Fixed => cfg.max_bits,
            _ => sizes.highest().0,
        });
        let released = (cfg.kind == PolicyKind::KalmanIntegral).then(|| {
            let bits: Vec<Bits> = sizes.entries().iter().map(|e| e.0).collect();
            KalmanIntegral::new(&bits, cfg.target_items_per_s, cfg.items_per_message)
        });
        Ok(Policy {
            arrears: Arrears::default(),
            released,
            cfg,
            sizes,
            choice: start,
            last_mbps: None,
            gain: 1.0,
            credit: 0.0,
            share_of_target: None,
            changed_in_window: false,
            rises: 0,
            fast_run: None,
            window_rises: 0,
            settling: 0,
        })
    }

    /// New payload sizes (the shapes sent changed: another microbatch size or sequence length)
    /// and the items each message now carries. The link state learnt so far (estimate, gain) is
    /// kept; the choice is made again against the new sizes.
    pub fn set_sizes(&mut self, sizes: SizeTable, items_per_message: f64) -> Result<(), String> {
        let mut cfg = self.cfg.clone();
        cfg.items_per_message = items_per_message;
        let fresh = Policy::new(cfg, sizes)?;
        self.cfg = fresh.cfg;
        self.sizes = fresh.sizes;
        if let Some(k) = &mut self.released {
            k.set_items_per_message(items_per_message);
        }
        if let (PolicyKind::Heuristic | PolicyKind::Controller, Some(mbps)) =
            (self.cfg.kind, self.last_mbps)
        {
            self.choice = self.choose(mbps);
        }
        Ok(())
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.cfg
    }

    pub fn choice(&self) -> WindowChoice {
        self.choice
    }

    /// Closes a window: the choice for the next one.
    pub fn on_window(&mut self, obs: WindowObservation) -> WindowChoice {
        let dropped_in_window = self.changed_in_window;
        let rises = |m: f64, last: Option<f64>| last.is_some_and(|l| m > l);
        if let Some(m) = obs
            .mbps
            .filter(|m| *m > 0.0 && m.is_finite())
            .filter(|m| !(obs.probes_only && rises(*m, self.last_mbps)))
        {
            let far_above = self.last_mbps.is_some_and(|l| m >= l * SAME_LINK);
            self.window_rises = if far_above { self.window_rises + 1 } else { 0 };
            self.last_mbps = match self.last_mbps {
                // A drop was acted on in this window, on one transfer that may have straddled
                // the step (and read faster than the new link); the window's estimate may
                // lower it further, while its transfers from before the step must not raise it.
                Some(last) if dropped_in_window => Some(m.min(last)),
                Some(last) if m < last * SAME_LINK && m * SAME_LINK > last => {
                    Some(last + SMOOTHING * (m - last))
                }
                // Far above: a new link only when the next window agrees (after an idle
                // spell, a shaper's full bucket lets one window's messages through fast).
                Some(last) if far_above && self.window_rises < 2 => Some(last),
                _ => {
                    self.window_rises = 0;
                    self.changed_in_window = true;
                    Some(m)
                }
            };
        }
        let changed = std::mem::take(&mut self.changed_in_window);
        // Arrears are for a window that would miss the target: once one met it, or the link
        // was mostly idle (the shortfall was elsewhere), they are written off. Otherwise a stage
        // with no spare compute, which can never pay them back, would send small messages for
        // good.
        let met = obs.items_per_s >= HELD_SHARE * self.cfg.target_items_per_s;
        if met || (obs.mbps.is_some() && obs.utilisation < SATURATED) {
            self.arrears.forgive();
        }
        self.choice = match (self.cfg.kind, self.last_mbps) {
            (PolicyKind::Fixed, _) => WindowChoice::single(self.cfg.max_bits),
            // Its windows are of messages, closed in `on_transfer`.
            (PolicyKind::KalmanIntegral, _) | (_, None) => self.choice,
            (PolicyKind::Heuristic, Some(mbps)) => self.choose(mbps),
            (PolicyKind::Controller, Some(mbps)) => {
                if changed {
                    // A window with a step mixes two links: its share of target is the step's.
                    self.share_of_target = None;
                } else {
                    self.update_gain(obs);
                }
                self.choose(mbps)
            }
        };
        self.choice
    }

    /// One message's transfer rate, as soon as it is known. A transfer far below the estimate
    /// re-chooses at once instead of at the window's end: after a drop, a window's worth of
    /// messages encoded at a size the link can no longer carry would still be draining in the
    /// next window (on one transfer). After a rise, a window at the old low bitwidth is
    /// accuracy thrown away (on two queued transfers in a row far above the estimate: a message
    /// sent after an idle spell can pass within a shaper's burst and read above the link's rate;
    /// or on a window's worth of transfers far above it, queued or not: see [`FastRun`]).
    pub fn on_transfer(&mut self, t: TransferRate) -> WindowChoice {
        if let Some(k) = &mut self.released {
            if let Some(s) = (t.items > 0).then(|| k.on_arrival(t.at_s)).flatten() {
                self.choice = WindowChoice {
                    lo: s.fast,
                    hi: s.slow,
                    hi_share: f64::from(s.slow_sends) / f64::from(SENDS_PER_WINDOW),
                };
            }
            return self.choice;
        }
        if self.cfg.kind == PolicyKind::Controller && t.items > 0 {
            self.arrears.on_arrival(
                t.at_s,
                t.items,
                self.cfg.target_items_per_s,
                self.cfg.items_per_message,
            );
        }
        let mbps = t.mbps;
        if self.cfg.kind == PolicyKind::Fixed || !(mbps > 0.0 && mbps.is_finite()) {
            return self.choice;
        }
        let Some(last) = self.last_mbps else {
            return self.choice;
        };
        let far_above = mbps > SAME_LINK * last;
        let rise = t.queued && far_above;
        self.rises = if rise { self.rises + 1 } else { 0 };
        self.fast_run = far_above.then(|| FastRun::extended(self.fast_run, t));
        let sustained = self
            .fast_run
            .filter(|r| r.sustained(t.at_s, self.cfg.window_s));
        // Just after a drop, the transfer that revealed it may have begun before the step (and
        // read faster than the new link): the next ones lower the estimate by any amount.
        let settling_lower = self.settling > 0 && mbps < last;
        self.settling = self.settling.saturating_sub(1);
        if mbps < DROP * last || settling_lower || self.rises >= 2 || sustained.is_some() {
            if !far_above {
                self.settling = SETTLING_TRANSFERS;
            }
            self.rises = 0;
            self.fast_run = None;
            // A sustained run is taken at its slowest transfer: its first ones may still have
            // had a refilled bucket's help.
            let new = sustained.map_or(mbps, |r| r.slowest_mbps);
            self.last_mbps = Some(new);
            self.changed_in_window = true;
            self.choice = self.choose(new);
        } else if self.cfg.kind == PolicyKind::Controller && !far_above {
            // The same link, drifting: followed message by message, since a recorded link
            // changes every second or two and a window's estimate comes a window late. A
            // slower transfer is taken as it is (a message encoded for the old rate would miss
            // the target); a faster one half-way (it may have had a shaper's burst), and only
            // within twice the estimate (beyond is a new link: see above).
            let weight = if mbps < last { 1.0 } else { TRACKING_UP };
            let tracked = last + weight * (mbps - last);
            // The window's miss is then the drift's, not the budget's: the gain stays.
            if mbps < DRIFT_DROP * last {
                self.changed_in_window = true;
            }
            self.last_mbps = Some(tracked);
            self.choice = self.choose(tracked);
        } else if self.cfg.kind == PolicyKind::Controller {
            // The same estimate, other arrears.
            self.choice = self.choose(last);
        }
        self.choice
    }

    fn choose(&self, mbps: f64) -> WindowChoice {
        match self.cfg.kind {
            PolicyKind::Fixed => WindowChoice::single(self.cfg.max_bits),
            PolicyKind::Heuristic => {
                WindowChoice::single(self.sizes.largest_fitting(self.budget_bytes(mbps)).0)
            }
            PolicyKind::Controller => self.share(
                self.budget_bytes(mbps)
                    * self.gain
                    * self.arrears.budget_factor(self.cfg.items_per_message),
            ),
            PolicyKind::KalmanIntegral => self.choice,
        }
    }

    /// The bitwidth of the next message: `hi` for a `hi_share` of messages, spread evenly.
    pub fn next_bits(&mut self) -> Bits {
        self.credit += self.choice.hi_share;
        if self.credit >= 0.5 {
            self.credit -= 1.0;
            self.choice.hi
        } else {
            self.choice.lo
        }
    }

    /// Bytes one message may carry at `mbps` within the target's time budget.
    fn budget_bytes(&self, mbps: f64) -> f64 {
        mbps * 1e6 / 8.0 * self.cfg.time_budget_s()
    }

    /// Integral control of the budget towards [`SETPOINT`] x the target: the gain moves by the
    /// square root of the smoothed share's error, so windows that happened to hold one message
    /// more or less than the mean (a window holds few) cancel out instead of ratcheting it down.
    fn update_gain(&mut self, obs: WindowObservation) {
        let ratio = obs.items_per_s / self.cfg.target_items_per_s;
        let share = match self.share_of_target {
            Some(s) => s + SMOOTHING * (ratio - s),
            None => ratio,
        };
        self.share_of_target = Some(share);
        let error = (share / SETPOINT).max(0.01);
        if error < 1.0 {
            // A miss at the lowest bitwidth is the link's, not the budget's; with the link
            // mostly idle, the target is missed elsewhere (compute, another link).
            let at_floor = self.choice.hi == self.sizes.lowest().0;
            let saturated = obs.mbps.is_none() || obs.utilisation >= SATURATED;
            if at_floor || !saturated {
                return;
            }
        }
        self.gain = (self.gain * error.sqrt().clamp(STEP_DOWN, STEP_UP)).clamp(GAIN_MIN, GAIN_MAX);
    }

    /// Time-shares the two bitwidths around `budget` so the mean payload equals it.
    fn share(&self, budget: f64) -> WindowChoice {
        let (lo, hi) = (self.sizes.lowest(), self.sizes.highest());
        if budget >= hi.1 as f64 {
            return WindowChoice::single(hi.0);
        }
        if budget < lo.1 as f64 {
            return WindowChoice::single(lo.0);
        }
        let ((lb, ls), (hb, hs)) = self.sizes.bracket(budget).expect("budget within the table");
        WindowChoice {
            lo: lb,
            hi: hb,
            hi_share: ((budget - ls as f64) / (hs - ls) as f64).clamp(0.0, 1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(n: u8) -> Bits {
        Bits::new(n).unwrap()
    }

    /// 1000 bytes per bit of width (raw: 32,000), at 10 items/s, 1 item per message: the budget
    /// is bandwidth / 80 bytes per message, so 8 bits need 0.64 Mbit/s.
    fn sizes() -> SizeTable {
        SizeTable::new(
            crate::sizes::allowed_bits(b(1), Bits::RAW)
                .into_iter()
                .map(|b| (b, u64::from(b.get()) * 1000))
                .collect(),
        )
        .unwrap()
    }

    fn cfg(kind: PolicyKind) -> PolicyConfig {
        PolicyConfig {
            kind,
            max_bits: Bits::RAW,
            min_bits: b(2),
            target_items_per_s: 10.0,
            items_per_message: 1.0,
            window_s: 1.0,
        }
    }

    /// A transfer queued behind the one before it.
    fn q(mbps: f64) -> TransferRate {
        TransferRate {
            mbps,
            at_s: 0.0,
            queued: true,
            items: 1,
        }
    }

    /// A transfer sent after an idle spell, arriving at `at_s`.
    fn spaced(mbps: f64, at_s: f64) -> TransferRate {
        TransferRate {
            mbps,
            at_s,
            queued: false,
            items: 1,
        }
    }

    fn obs(mbps: f64, items_per_s: f64, utilisation: f64) -> WindowObservation {
        WindowObservation {
            mbps: Some(mbps),
            utilisation,
            items_per_s,
            probes_only: false,
        }
    }

    #[test]
    fn policy_names_parse_and_unknown_ones_are_named() {
        assert_eq!("controller".parse(), Ok(PolicyKind::Controller));
        let err = "adaptive".parse::<PolicyKind>().unwrap_err();
        assert!(err.contains("`adaptive`"), "{err}");
    }

    #[test]
    fn fixed_ignores_the_link() {
        let mut p = Policy::new(cfg(PolicyKind::Fixed), sizes()).unwrap();
        assert_eq!(
            p.on_window(obs(0.01, 0.1, 1.0)),
            WindowChoice::single(Bits::RAW)
        );
        assert_eq!(p.next_bits(), Bits::RAW);
    }

    #[test]
    fn heuristic_takes_the_largest_bitwidth_that_fits_the_budget() {
        let mut p = Policy::new(cfg(PolicyKind::Heuristic), sizes()).unwrap();
        assert_eq!(p.next_bits(), Bits::RAW, "before any measurement");
        // 0.7 Mbit/s x 0.1 s = 8750 bytes: 8 bits (8000) fits, 9 (9000) does not.
        assert_eq!(p.on_window(obs(0.7, 10.0, 0.5)).lo, b(8));
        p.on_window(obs(100.0, 10.0, 0.1));
        assert_eq!(p.on_window(obs(100.0, 10.0, 0.1)).lo, Bits::RAW);
        // Nothing fits: the minimum bitwidth, never below.
        assert_eq!(p.on_window(obs(0.01, 1.0, 1.0)).lo, b(2));
        // No arrival in a window: the last estimate stands.
        let same = p.on_window(WindowObservation::default());
        assert_eq!(same.lo, b(2));
    }

    #[test]
    fn controller_time_shares_adjacent_bitwidths_to_the_budget() {
        let mut p = Policy::new(cfg(PolicyKind::Controller), sizes()).unwrap();
        // 8750 bytes = 8000 + 0.75 x 1000: 9 bits for 75% of the messages, 8 bits for the rest.
        let c = p.on_window(obs(0.7, 10.0, 0.5));
        assert_eq!((c.lo, c.hi), (b(8), b(9)));
        assert!((c.hi_share - 0.75).abs() < 1e-9, "{c:?}");
        let sent: Vec<u8> = (0..8).map(|_| p.next_bits().get()).collect();
        assert_eq!(sent.iter().filter(|&&x| x == 9).count(), 6, "{sent:?}");
    }

    #[test]
    fn controller_lowers_its_gain_when_a_saturated_link_misses_the_target() {
        let mut p = Policy::new(cfg(PolicyKind::Controller), sizes()).unwrap();
        let first = p.on_window(obs(0.7, 10.0, 0.5)).mean_bits();
        let missed = p.on_window(obs(0.7, 6.0, 1.0)).mean_bits();
        assert!(missed < first - 1.0, "{first} -> {missed}");
        // A compute-bound window (link mostly idle) is no reason to cut bits.
        let idle = p.on_window(obs(0.7, 6.0, 0.2)).mean_bits();
        assert!((idle - missed).abs() < 1e-9);
        // Beating the target lets the gain recover.
        let mut last = idle;
        for _ in 0..20 {
            last = p.on_window(obs(0.7, 12.0, 0.9)).mean_bits();
        }
        assert!((last - first).abs() < 1e-9, "{first} vs {last}");
    }

    #[test]
    fn the_learnt_gain_outlives_a_step_of_the_link() {
        let mut p = Policy::new(cfg(PolicyKind::Controller), sizes()).unwrap();
        p.on_window(obs(0.7, 10.0, 0.9));
        for _ in 0..3 {
            p.on_window(obs(0.7, 8.0, 0.9));
        }
        let learnt = p.gain;
        assert!(learnt < 0.9, "{learnt}");
        // A drop to a third: a new estimate, the same correction of it.
        p.on_transfer(q(0.2));
        p.on_window(obs(0.2, 3.0, 1.0));
        assert_eq!(p.gain, learnt);
        assert_eq!(p.last_mbps, Some(0.2));
    }

    #[test]
    fn windows_of_the_same_link_are_smoothed_and_a_step_is_followed_at_once() {
        let mut p = Policy::new(cfg(PolicyKind::Heuristic), sizes()).unwrap();
        p.on_window(obs(0.8, 10.0, 0.5));
        // Token-bucket jitter: 0.6 is the same link, half-way there.
        p.on_window(obs(0.6, 10.0, 0.5));
        assert!((p.last_mbps.unwrap() - 0.7).abs() < 1e-9);
        // Ten times faster: a new link, taken as measured once a second window agrees (one
        // window can be a shaper's burst after an idle spell).
        p.on_window(obs(7.0, 10.0, 0.1));
        assert!((p.last_mbps.unwrap() - 0.7).abs() < 1e-9);
        p.on_window(obs(7.0, 10.0, 0.1));
        assert_eq!(p.last_mbps, Some(7.0));
        // Ten times slower: at once.
        p.on_window(obs(0.7, 10.0, 0.1));
        assert_eq!(p.last_mbps, Some(0.7));
    }

    #[test]
    fn a_window_of_probes_only_lowers_the_estimate_but_never_raises_it() {
        let mut p = Policy::new(cfg(PolicyKind::Heuristic), sizes()).unwrap();
        p.on_window(obs(0.7, 10.0, 0.5));
        let probes = |mbps| WindowObservation {
            probes_only: true,
            ..obs(mbps, 0.0, 0.01)
        };
        assert_eq!(
            p.on_window(probes(100.0)).lo,
            b(8),
            "a probe within the burst"
        );
        assert_eq!(p.last_mbps, Some(0.7));
        p.on_window(probes(0.1));
        assert_eq!(p.last_mbps, Some(0.1));
        // Data messages raise it again (a rise this large: once two windows agree).
        p.on_window(obs(0.7, 10.0, 0.5));
        p.on_window(obs(0.7, 10.0, 0.5));
        assert_eq!(p.last_mbps, Some(0.7));
    }

    #[test]
    fn a_transfer_far_below_the_estimate_lowers_bits_at_once_and_two_far_above_raise_them() {
        let mut p = Policy::new(cfg(PolicyKind::Heuristic), sizes()).unwrap();
        assert_eq!(p.on_window(obs(100.0, 10.0, 0.5)).lo, Bits::RAW);
        assert_eq!(p.on_transfer(q(60.0)).lo, Bits::RAW, "jitter, not a drop");
        assert_eq!(p.on_transfer(q(0.7)).lo, b(8));
        assert_eq!(p.on_transfer(q(100.0)).lo, b(8), "one fast transfer");
        assert_eq!(p.on_transfer(q(0.7)).lo, b(8));
        assert_eq!(p.on_transfer(q(1.2)).lo, b(8), "faster, the same link");
        assert_eq!(p.on_transfer(q(100.0)).lo, b(8));
        assert_eq!(
            p.on_transfer(q(100.0)).lo,
            Bits::RAW,
            "two far faster in a row"
        );
        assert_eq!(p.on_transfer(q(0.7)).lo, b(8));
        // Right after a drop, a slower transfer lowers the estimate further, by any amount
        // (the one that revealed the drop may have begun before it).
        assert_eq!(p.on_transfer(q(0.5)).lo, b(6));
        assert_eq!(p.on_transfer(q(0.7)).lo, b(6), "not raised");
        // The window that saw the drop also saw fast transfers from before it.
        assert_eq!(p.on_window(obs(100.0, 10.0, 0.1)).lo, b(6));
        let mut f = Policy::new(cfg(PolicyKind::Fixed), sizes()).unwrap();
        assert_eq!(f.on_transfer(q(0.01)).lo, Bits::RAW);
    }

    #[test]
    fn controller_follows_a_drifting_link_message_by_message() {
        let mut p = Policy::new(cfg(PolicyKind::Controller), sizes()).unwrap();
        p.on_window(obs(0.8, 10.0, 0.5));
        // 30% slower: within the same-link band, taken at once (no window's wait).
        p.on_transfer(spaced(0.56, 0.1));
        assert_eq!(p.last_mbps, Some(0.56));
        // Faster again: half-way, whether or not the transfer queued.
        p.on_transfer(spaced(0.76, 0.2));
        assert!((p.last_mbps.unwrap() - 0.66).abs() < 1e-9);
        // 0.66 Mbit/s x 0.1 s = 8250 bytes: 8 bits and a quarter of 9.
        let c = p.choice();
        assert_eq!((c.lo, c.hi), (b(8), b(9)), "{c:?}");
        // A single transfer far above is not a drift: the estimate stays.
        p.on_transfer(spaced(5.0, 0.3));
        assert!((p.last_mbps.unwrap() - 0.66).abs() < 1e-9);
        // The heuristic keeps to its windows.
        let mut h = Policy::new(cfg(PolicyKind::Heuristic), sizes()).unwrap();
        h.on_window(obs(0.8, 10.0, 0.5));
        h.on_transfer(spaced(0.56, 0.1));
        assert_eq!(h.last_mbps, Some(0.8));
    }

    #[test]
    fn controller_shrinks_messages_while_behind_the_target_until_a_window_meets_it() {
        let mut p = Policy::new(cfg(PolicyKind::Controller), sizes()).unwrap();
        p.on_window(obs(0.7, 10.0, 0.9));
        p.on_transfer(q(0.7));
        // On schedule (1 item per 0.1 s): 8750 bytes, 8 bits and three quarters of 9.
        p.on_transfer(TransferRate {
            at_s: 0.1,
            ..q(0.7)
        });
        let on_time = p.choice().mean_bits();
        assert!((on_time - 8.75).abs() < 1e-9, "{on_time}");
        // The next message arrives 0.15 s late: 1.5 items owed, the budget shrinks to its
        // floor, 60% (5250 bytes: 5 bits and a quarter of 6).
        p.on_transfer(TransferRate {
            at_s: 0.35,
            ..q(0.7)
        });
        let behind = p.choice().mean_bits();
        assert!((behind - 5.25).abs() < 1e-9, "{behind}");
        // A window that met the target (at the gain's setpoint: the gain stays) writes the
        // arrears off.
        p.on_window(obs(0.7, 11.0, 0.9));
        assert!((p.choice().mean_bits() - on_time).abs() < 1e-9);
        // The heuristic has no arrears.
        let mut h = Policy::new(cfg(PolicyKind::Heuristic), sizes()).unwrap();
        h.on_window(obs(0.7, 10.0, 0.9));
        h.on_transfer(TransferRate {
            at_s: 0.0,
            ..q(0.7)
        });
        h.on_transfer(TransferRate {
            at_s: 0.35,
            ..q(0.7)
        });
        assert_eq!(h.choice().lo, b(8));
    }

    #[test]
    fn fast_transfers_after_idle_spells_do_not_raise_bits() {
        let mut p = Policy::new(cfg(PolicyKind::Heuristic), sizes()).unwrap();
        assert_eq!(p.on_window(obs(0.7, 10.0, 0.5)).lo, b(8));
        // Four fast transfers within less than a window (1 s).
        for i in 0..4 {
            assert_eq!(
                p.on_transfer(spaced(2.0, 0.3 * f64::from(i))).lo,
                b(8),
                "a bucket's burst, not the link"
            );
        }
        // A spaced transfer can still reveal a drop.
        assert_eq!(p.on_transfer(spaced(0.3, 1.0)).lo, b(3));
    }

    #[test]
    fn a_window_of_fast_spaced_transfers_raises_bits_at_the_slowest_of_them() {
        let mut p = Policy::new(cfg(PolicyKind::Heuristic), sizes()).unwrap();
        assert_eq!(p.on_window(obs(0.7, 10.0, 0.5)).lo, b(8));
        // Fast for 0.9 s: not yet a window.
        for (mbps, at) in [(3.0, 0.0), (1.6, 0.45), (3.0, 0.9)] {
            assert_eq!(p.on_transfer(spaced(mbps, at)).lo, b(8));
        }
        // A transfer within twice the estimate breaks the run: it starts again.
        assert_eq!(p.on_transfer(spaced(1.2, 1.0)).lo, b(8));
        for (mbps, at) in [(3.0, 1.1), (1.6, 1.6), (3.0, 2.0)] {
            assert_eq!(p.on_transfer(spaced(mbps, at)).lo, b(8), "run of 0.9 s");
        }
        // A window (1 s) of fast transfers: taken at their slowest, 1.6 Mbit/s, whose
        // 20,000-byte budget fits 16-bit codes (16,000) and not raw f32 (32,000).
        assert_eq!(p.on_transfer(spaced(3.0, 2.1)).lo, b(16));
    }

    #[test]
    fn new_sizes_keep_the_estimate_and_choose_again() {
        let mut p = Policy::new(cfg(PolicyKind::Heuristic), sizes()).unwrap();
        assert_eq!(p.on_window(obs(0.7, 10.0, 0.5)).lo, b(8));
        // Messages half the size (shorter sequences): the same 8750-byte budget now fits
        // 16 bits (8000 bytes), not raw f32 (16,000).
        let half = SizeTable::new(
            sizes()
                .entries()
                .iter()
                .map(|&(bits, bytes)| (bits, bytes / 2))
                .collect(),
        )
        .unwrap();
        p.set_sizes(half.clone(), 1.0).unwrap();
        assert_eq!(p.choice().lo, b(16), "{:?}", p.choice());
        // Twice the items per message doubles the budget: raw f32 fits.
        p.set_sizes(half.clone(), 2.0).unwrap();
        assert_eq!(p.choice().lo, Bits::RAW);
        assert_eq!(p.config().items_per_message, 2.0);
        assert!(p
            .set_sizes(half, 0.0)
            .unwrap_err()
            .contains("items per message"));
    }

    #[test]
    fn min_bits_above_the_plan_or_bad_targets_are_refused() {
        let mut c = cfg(PolicyKind::Heuristic);
        c.max_bits = b(4);
        c.min_bits = b(6);
        assert!(Policy::new(c, sizes()).unwrap_err().contains("min_bits 6"));
        let mut c = cfg(PolicyKind::Controller);
        c.target_items_per_s = 0.0;
        assert!(Policy::new(c, sizes()).unwrap_err().contains("target"));
    }
}
