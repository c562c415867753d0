//! A fleet's run over any trace judged window by window, as the link simulation is
//! ([`quantpipe_adaptive::judge`]): the share of feasible windows that held the target, and
//! the mean bitwidth against a per-window oracle.
//!
//! The client's timeline comes in 1 s windows, but a message carries 8 items, so a pipeline
//! steadily at 22 items/s shows 16 items/s in one 1 s window in four: judged per 1 s window it
//! would miss the target for the arithmetic of microbatches, not for its bitwidth. So the
//! client's windows are judged in runs that span one quantizer window (3 s with the defaults),
//! the windows the simulation judges and the policies steer over.
//!
//! What a window's link allowed is read from the trace as the fleet lived it: each plateau's
//! rate from the moment it was set ([`Plateau::from`]), not from the trace file's clock.

use super::{client_rates, Params, Plateau, TraceRun};
use quantpipe_actors::runtime::timeline::TimelineRow;
use quantpipe_adaptive::judge::{judge, JudgedWindow, Judgement};
use quantpipe_adaptive::trace::Trace;

/// Every window of `run` as [`judge`] reads it: the client's windows inside the trace, grouped
/// into quantizer windows.
pub fn judged_windows(run: &TraceRun, p: &Params) -> Vec<JudgedWindow> {
    let (Some(first), Some(last)) = (run.plateaus.first(), run.plateaus.last()) else {
        return Vec::new();
    };
    let inside: Vec<(f64, f64)> = client_rates(&run.rows)
        .into_iter()
        .filter(|(end, _)| end - p.report_window_s >= first.from && *end <= last.to)
        .collect();
    inside
        .chunks_exact(client_windows_per_judged(p))
        .filter_map(|group| {
            let from = group[0].0 - p.report_window_s;
            let to = group[group.len() - 1].0;
            let mbit = lived_mean_mbit(&run.plateaus, from, to)?;
            let items_per_s = group.iter().map(|g| g.1).sum::<f64>() / group.len() as f64;
            let ends: Vec<f64> = group.iter().map(|g| g.0).collect();
            Some(JudgedWindow {
                items_per_s,
                mean_bits: mean_link_bits(&run.rows, &ends),
                oracle_bits: p.oracle_bits(mbit),
                feasible: p.feasible(mbit),
            })
        })
        .collect()
}

/// `run` judged over its whole trace.
pub fn judgement(run: &TraceRun, p: &Params) -> Judgement {
    judge(&judged_windows(run, p), p.target_items_per_s)
}

/// How many of the client's windows make one judged window: the quantizer's window, at least
/// one.
pub fn client_windows_per_judged(p: &Params) -> usize {
    ((p.window_s / p.report_window_s).round() as usize).max(1)
}

/// The links' mean bitwidth over the client windows ending at `ends`: the mean of every link's
/// row there that sent something (None: no link sent).
pub fn mean_link_bits(rows: &[TimelineRow], ends: &[f64]) -> Option<f64> {
    let bits: Vec<f64> = rows
        .iter()
        .filter(|r| r.stage.is_some() && r.bits_mean > 0.0 && ends.contains(&r.unix_s))
        .map(|r| r.bits_mean)
        .collect();
    (!bits.is_empty()).then(|| bits.iter().sum::<f64>() / bits.len() as f64)
}

/// The links' mean rate over `[from, to]` (Unix seconds) as the fleet lived the trace: each
/// plateau from when it was set to when the next one was (the last to its end). None when
/// the span is not wholly inside the trace.
pub fn lived_mean_mbit(plateaus: &[Plateau], from: f64, to: f64) -> Option<f64> {
    let (first, last) = (plateaus.first()?, plateaus.last()?);
    if !(to > from && from >= first.from && to <= last.to) {
        return None;
    }
    // The plateaus as lived, on a clock from the first: a trace, whose mean rate is the one the
    // link simulation uses.
    let lived = Trace::new(
        plateaus
            .iter()
            .map(|p| (p.from - first.from, p.mbit))
            .collect(),
    )
    .ok()?;
    Some(lived.mean_mbps(from - first.from, to - first.from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(unix_s: f64, stage: Option<u32>, items_per_s: f64, bits: f64) -> TimelineRow {
        TimelineRow {
            t_s: unix_s - 100.0,
            unix_s,
            items_per_s,
            target_items_per_s: 20.0,
            node: stage.map_or(String::new(), |s| format!("n{s}")),
            stage,
            mbps: 10.0,
            utilisation: 1.0,
            bits_mean: bits,
            accuracy_cost_pct: None,
        }
    }

    fn plateau(mbit: f64, from: f64, to: f64) -> Plateau {
        Plateau { mbit, from, to }
    }

    #[test]
    fn the_lived_rate_weighs_each_plateau_by_its_time_in_the_span() {
        // Set at 100.0 and 102.1 (the second a little late: `tc` took its time).
        let lived = [plateau(30.0, 100.0, 102.0), plateau(10.0, 102.1, 104.0)];
        assert_eq!(lived_mean_mbit(&lived, 100.0, 101.0), Some(30.0));
        let mixed = lived_mean_mbit(&lived, 101.0, 104.0).unwrap();
        assert!(
            (mixed - (30.0 * 1.1 + 10.0 * 1.9) / 3.0).abs() < 1e-9,
            "{mixed}"
        );
        assert_eq!(lived_mean_mbit(&lived, 99.0, 101.0), None);
        assert_eq!(lived_mean_mbit(&lived, 103.0, 105.0), None);
        assert_eq!(lived_mean_mbit(&[], 0.0, 1.0), None);
    }

    #[test]
    fn link_bits_average_the_rows_that_sent_in_the_windows() {
        let rows = [
            row(101.0, Some(0), 20.0, 16.0),
            row(101.0, Some(1), 20.0, 18.0),
            row(102.0, Some(0), 20.0, 0.0),
            row(102.0, Some(1), 20.0, 20.0),
            row(103.0, Some(0), 20.0, 4.0),
            row(104.0, None, 0.0, 0.0),
        ];
        assert_eq!(mean_link_bits(&rows, &[101.0, 102.0]), Some(18.0));
        assert_eq!(mean_link_bits(&rows, &[104.0]), None);
    }

    #[test]
    fn client_windows_are_judged_in_quantizer_windows_inside_the_trace() {
        let p = Params::default();
        assert_eq!(client_windows_per_judged(&p), 3);
        // Client windows end at 100.5, 101.5, ...; the trace runs from 100.2 to 106.5 at
        // 20 Mbit/s, then at 1 Mbit/s (infeasible even at 2 bits) to 112.2.
        let rows: Vec<TimelineRow> = (0..13)
            .flat_map(|i| {
                let end = 100.5 + f64::from(i);
                let items = if i % 3 == 0 { 16.0 } else { 24.0 };
                [
                    row(end, Some(0), items, 17.0),
                    row(end, Some(1), items, 19.0),
                ]
            })
            .collect();
        let run = TraceRun {
            policy: "controller".into(),
            rows,
            plateaus: vec![plateau(20.0, 100.2, 106.5), plateau(1.0, 106.5, 112.2)],
            startup_s: 0.0,
            lost_nodes: vec![],
        };
        let w = judged_windows(&run, &p);
        // Inside: windows ending at 101.5 ..= 111.5 (the one ending at 100.5 began before
        // the trace, the one at 112.5 ends after it): 11 windows, 3 whole groups.
        assert_eq!(w.len(), 3, "{w:?}");
        // 24, 24, 16 items/s: 21.3 on average, the target held over the group.
        assert!((w[0].items_per_s - 64.0 / 3.0).abs() < 1e-9, "{w:?}");
        assert_eq!(w[0].mean_bits, Some(18.0));
        assert!(w[0].feasible && w[1].feasible && !w[2].feasible, "{w:?}");
        assert_eq!(w[0].oracle_bits, p.oracle_bits(20.0));
        assert_eq!(w[2].oracle_bits, p.oracle_bits(1.0));
        let j = judgement(&run, &p);
        assert_eq!((j.windows, j.feasible_windows, j.held_windows), (3, 2, 2));
    }
}
