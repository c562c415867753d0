//! Judging a run over any bandwidth trace, window by window.
//!
//! A step trace can be judged per plateau (how long until the target is regained), but a
//! recorded link drifts and dips every second and has no plateaus. So every window is judged
//! on its own, against what its own stretch of the trace allowed:
//!
//! - **held**: the window delivered at least [`HELD_SHARE`] of the target. Only *feasible*
//!   windows count (some allowed bitwidth could carry the target at the window's mean rate):
//!   in the others no policy could hold it, and the fair question there is only whether the
//!   policy sent at its lowest bitwidth.
//! - **bits against the oracle**: the oracle knows the trace and, in each window, sends the
//!   largest mean bitwidth that its mean rate carries at the target. A policy below it threw
//!   accuracy away; one above it cannot hold the target for long.
//!
//! [`judge`] takes plain per-window records, so the link simulation and a fleet's timeline are
//! judged by the same function.

use serde::Serialize;

/// A window holds the target when it delivers at least this share of it.
pub const HELD_SHARE: f64 = 0.95;

/// What one window of a run showed, and what its stretch of the trace allowed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct JudgedWindow {
    /// Items that crossed the link per second.
    pub items_per_s: f64,
    /// Mean bitwidth of the messages sent in the window (None: none was sent).
    pub mean_bits: Option<f64>,
    /// The oracle's mean bitwidth for the window's mean rate.
    pub oracle_bits: f64,
    /// Some allowed bitwidth carries the target at the window's mean rate.
    pub feasible: bool,
}

/// The figures of a whole run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judgement {
    pub windows: usize,
    pub feasible_windows: usize,
    /// Feasible windows that delivered at least [`HELD_SHARE`] of the target.
    pub held_windows: usize,
    /// `held_windows / feasible_windows` (None: no window was feasible).
    pub held_share: Option<f64>,
    /// Mean items/s over all windows, as a share of the target.
    pub mean_share_of_target: f64,
    /// Mean bitwidth over the windows that sent, and the oracle's over the same windows
    /// (None: nothing was sent).
    pub mean_bits: Option<f64>,
    pub oracle_mean_bits: Option<f64>,
    /// Mean of the policy's bitwidth minus the oracle's, over the windows that sent.
    pub bits_over_oracle: Option<f64>,
}

/// Judges `windows` of a run whose target was `target` items/s.
pub fn judge(windows: &[JudgedWindow], target: f64) -> Judgement {
    let feasible: Vec<&JudgedWindow> = windows.iter().filter(|w| w.feasible).collect();
    let held = feasible
        .iter()
        .filter(|w| w.items_per_s >= HELD_SHARE * target)
        .count();
    let sent: Vec<(f64, f64)> = windows
        .iter()
        .filter_map(|w| w.mean_bits.map(|b| (b, w.oracle_bits)))
        .collect();
    let mean =
        |v: &mut dyn Iterator<Item = f64>, n: usize| (n > 0).then(|| v.sum::<f64>() / n as f64);
    let mean_bits = mean(&mut sent.iter().map(|s| s.0), sent.len());
    let oracle_mean_bits = mean(&mut sent.iter().map(|s| s.1), sent.len());
    Judgement {
        windows: windows.len(),
        feasible_windows: feasible.len(),
        held_windows: held,
        held_share: (!feasible.is_empty()).then(|| held as f64 / feasible.len() as f64),
        mean_share_of_target: mean(
            &mut windows.iter().map(|w| w.items_per_s / target),
            windows.len(),
        )
        .unwrap_or(0.0),
        mean_bits,
        oracle_mean_bits,
        bits_over_oracle: mean_bits.zip(oracle_mean_bits).map(|(m, o)| m - o),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(items_per_s: f64, bits: Option<f64>, oracle: f64, feasible: bool) -> JudgedWindow {
        JudgedWindow {
            items_per_s,
            mean_bits: bits,
            oracle_bits: oracle,
            feasible,
        }
    }

    #[test]
    fn only_feasible_windows_count_towards_the_held_share() {
        let j = judge(
            &[
                w(20.0, Some(8.0), 8.0, true),
                w(19.0, Some(8.0), 8.0, true),
                w(18.9, Some(6.0), 6.0, true),
                // Infeasible: missing the target here is the link's fault.
                w(5.0, Some(2.0), 2.0, false),
            ],
            20.0,
        );
        assert_eq!((j.windows, j.feasible_windows, j.held_windows), (4, 3, 2));
        assert_eq!(j.held_share, Some(2.0 / 3.0));
        assert!((j.mean_share_of_target - 62.9 / 80.0).abs() < 1e-12);
    }

    #[test]
    fn bits_are_compared_with_the_oracle_over_the_windows_that_sent() {
        let j = judge(
            &[
                w(20.0, Some(10.0), 12.0, true),
                w(20.0, None, 32.0, true),
                w(20.0, Some(4.0), 5.0, true),
            ],
            20.0,
        );
        assert_eq!(j.mean_bits, Some(7.0));
        assert_eq!(j.oracle_mean_bits, Some(8.5));
        assert_eq!(j.bits_over_oracle, Some(-1.5));
    }

    #[test]
    fn a_run_with_no_feasible_window_or_no_send_has_no_such_figures() {
        let j = judge(&[w(0.0, None, 2.0, false)], 20.0);
        assert_eq!(j.held_share, None);
        assert_eq!(j.mean_bits, None);
        assert_eq!(j.bits_over_oracle, None);
        assert_eq!(judge(&[], 20.0).mean_share_of_target, 0.0);
    }
}
