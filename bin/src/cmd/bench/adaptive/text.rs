//! The report's lines a person reads.

use super::recovery::StepRecovery;
use quantpipe_adaptive::judge::Judgement;

/// A run's judgement in one line: windows held among the feasible ones, throughput against
/// the target, bits against the oracle.
pub fn judgement_line(j: &Judgement) -> String {
    let held = j
        .held_share
        .map_or("-".to_owned(), |s| format!("{:.1}%", 100.0 * s));
    let bits = match (j.mean_bits, j.oracle_mean_bits, j.bits_over_oracle) {
        (Some(m), Some(o), Some(d)) => format!("mean bits {m:.2} vs oracle {o:.2} ({d:+.2})"),
        _ => "nothing sent".to_owned(),
    };
    format!(
        "held {}/{} feasible windows ({held}; {} windows in all); {:.0}% of target on average; \
         {bits}",
        j.held_windows,
        j.feasible_windows,
        j.windows,
        100.0 * j.mean_share_of_target
    )
}

/// The recovery of each step in one line: `200 Mbit/s: 1 window, 20: 2, 5: infeasible`.
pub fn recovery_line(steps: &[StepRecovery]) -> String {
    let each: Vec<String> = steps
        .iter()
        .map(|s| {
            let after = match (s.feasible, s.windows) {
                (false, _) => "infeasible".to_owned(),
                (true, None) => "never".to_owned(),
                (true, Some(w)) => format!("{w:.1}"),
            };
            format!("{} Mbit/s at {} s: {after}", s.mbit, s.at_s)
        })
        .collect();
    format!("windows to regain the target: {}", each.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantpipe_adaptive::judge::{judge, JudgedWindow};

    #[test]
    fn the_judgement_line_shows_held_feasible_windows_and_bits_against_the_oracle() {
        let w = |items, bits, feasible| JudgedWindow {
            items_per_s: items,
            mean_bits: Some(bits),
            oracle_bits: 18.0,
            feasible,
        };
        let j = judge(
            &[w(20.0, 17.0, true), w(10.0, 16.0, true), w(4.0, 2.0, false)],
            20.0,
        );
        assert_eq!(
            judgement_line(&j),
            "held 1/2 feasible windows (50.0%; 3 windows in all); 57% of target on average; \
             mean bits 11.67 vs oracle 18.00 (-6.33)"
        );
        let none = judge(&[], 20.0);
        assert_eq!(
            judgement_line(&none),
            "held 0/0 feasible windows (-; 0 windows in all); 0% of target on average; nothing sent"
        );
    }

    #[test]
    fn the_recovery_line_tells_never_from_infeasible() {
        let s = |mbit, feasible, windows| StepRecovery {
            at_s: 0.0,
            mbit,
            feasible,
            windows,
        };
        assert_eq!(
            recovery_line(&[
                s(20.0, true, Some(1.5)),
                s(5.0, true, None),
                s(1.0, false, None)
            ]),
            "windows to regain the target: 20 Mbit/s at 0 s: 1.5, 5 Mbit/s at 0 s: never, \
             1 Mbit/s at 0 s: infeasible"
        );
    }
}
