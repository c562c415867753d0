//! Recovery after the drops of a step trace: the figure of interest on a plateau entered from a
//! faster one.

use quantpipe_adaptive::simulate::Figures;
use serde::Serialize;

/// One step of a step trace as a run lived it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRecovery {
    pub at_s: f64,
    pub mbit: f64,
    /// Some allowed bitwidth carries the target at this rate.
    pub feasible: bool,
    /// Windows from the step until the target was regained (None: never on this plateau).
    pub windows: Option<f64>,
}

/// The steps of a simulated run, and its worst recovery after a drop.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepFigures {
    pub steps: Vec<StepRecovery>,
    pub worst_recovery_windows_after_drops: Option<f64>,
}

/// The step figures of a simulated run over a step trace (`compare` gives plateau figures for
/// step traces only).
pub fn simulated_steps(figures: &Figures) -> StepFigures {
    let steps: Vec<StepRecovery> = figures
        .recovery
        .iter()
        .map(|&(at_s, mbit, feasible, windows)| StepRecovery {
            at_s,
            mbit,
            feasible,
            windows: windows.map(|w| w as f64),
        })
        .collect();
    let worst = worst_recovery_after_drops(steps.iter().map(|s| (s.mbit, s.feasible, s.windows)));
    StepFigures {
        steps,
        worst_recovery_windows_after_drops: worst,
    }
}

/// The longest recovery, in windows, over the feasible plateaus entered by a drop (given in
/// order as (Mbit/s, feasible, windows to regain the target)); None when one of them never
/// regained the target.
pub fn worst_recovery_after_drops(
    plateaus: impl IntoIterator<Item = (f64, bool, Option<f64>)>,
) -> Option<f64> {
    let mut before = f64::INFINITY;
    let mut worst = Some(0.0f64);
    for (mbit, feasible, regained) in plateaus {
        if feasible && mbit < before {
            worst = worst.zip(regained).map(|(w, r)| w.max(r));
        }
        before = mbit;
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_counts_only_feasible_plateaus_entered_by_a_drop() {
        let plateaus = [
            (200.0, true, Some(9.0)),
            (20.0, true, Some(2.0)),
            (5.0, false, None),
            (200.0, true, Some(7.0)),
        ];
        assert_eq!(worst_recovery_after_drops(plateaus), Some(9.0));
        assert_eq!(
            worst_recovery_after_drops(plateaus[1..].to_vec()),
            Some(2.0)
        );
    }

    #[test]
    fn a_drop_never_recovered_from_has_no_worst_recovery() {
        let plateaus = [(200.0, true, Some(1.0)), (20.0, true, None)];
        assert_eq!(worst_recovery_after_drops(plateaus), None);
    }

    #[test]
    fn simulated_steps_keep_every_step_and_judge_the_drops() {
        let f = Figures {
            recovery: vec![
                (0.0, 200.0, true, Some(1)),
                (18.0, 20.0, true, Some(2)),
                (36.0, 5.0, true, None),
                (54.0, 200.0, true, Some(1)),
            ],
            mean_bits: 20.0,
            oracle_mean_bits: 21.0,
            held_share: vec![1.0; 4],
        };
        let s = simulated_steps(&f);
        assert_eq!(s.steps.len(), 4);
        assert_eq!(s.steps[1].windows, Some(2.0));
        assert_eq!(s.worst_recovery_windows_after_drops, None);
        let mut f = f;
        f.recovery[2].3 = Some(3);
        assert_eq!(
            simulated_steps(&f).worst_recovery_windows_after_drops,
            Some(3.0)
        );
    }
}
