//! The story's timeline, from what was measured: each sending node's outgoing link (measured
//! bandwidth and mean bitwidth per metrics window), the client's items/s, the emulated trace,
//! the moment a device left and each re-plan; and what the story checks on it.

use super::story::Story;
use quantpipe_actors::runtime::metrics::MetricsRow;
use serde::Serialize;

/// One metrics window of a node's outgoing link, at the window's end.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LinkPoint {
    pub t_s: f64,
    /// Measured while transmitting (0: nothing acknowledged in the window).
    pub mbps: f64,
    pub bits: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkSeries {
    /// The sending node.
    pub node: String,
    pub points: Vec<LinkPoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    /// The emulated link's steps, `(at_s, mbit)`.
    pub trace: Vec<(f64, f64)>,
    pub target_items_per_s: f64,
    /// Items/s answered to the client, `(t_s, items/s)` over the seconds before `t_s`.
    pub items_per_s: Vec<(f64, f64)>,
    pub links: Vec<LinkSeries>,
    /// The device that left, and when.
    pub left: Option<(String, f64)>,
    /// Each plan the run heard after its first, numbered from 2, and when.
    pub replans: Vec<(usize, f64)>,
}

/// Each node's outgoing-link windows (rows with a measured link), on the run's clock: seconds
/// since `t0_unix_s`; windows before the run are left out.
pub fn links(rows: &[(String, Vec<MetricsRow>)], t0_unix_s: f64) -> Vec<LinkSeries> {
    rows.iter()
        .map(|(node, rows)| LinkSeries {
            node: node.clone(),
            points: rows
                .iter()
                .filter_map(|r| {
                    let t_s = r.start_unix_s + r.window_s - t0_unix_s;
                    let o = r.out_link.filter(|_| r.stage.is_some() && t_s > 0.0)?;
                    Some(LinkPoint {
                        t_s,
                        mbps: o.mbps,
                        bits: o.bits_mean,
                    })
                })
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

/// Items/s every second over the `span_s` seconds before it, from each result's arrival
/// (seconds since the run's start) and its items.
pub fn items_per_s(arrivals: &[(f64, usize)], span_s: f64) -> Vec<(f64, f64)> {
    let end = arrivals.iter().map(|a| a.0).fold(0.0, f64::max).ceil() as usize;
    (1..=end)
        .map(|t| {
            let t = t as f64;
            let items: usize = arrivals
                .iter()
                .filter(|a| a.0 > t - span_s && a.0 <= t)
                .map(|a| a.1)
                .sum();
            (t, items as f64 / span_s.min(t))
        })
        .collect()
}

/// Mean of the values of `points` whose time lies in `(from, to]`.
pub fn mean_in(points: impl IntoIterator<Item = (f64, f64)>, from: f64, to: f64) -> Option<f64> {
    let v: Vec<f64> = points
        .into_iter()
        .filter(|p| p.0 > from && p.0 <= to)
        .map(|p| p.1)
        .collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Mean bitwidth sent over every link in each phase of the story (`None`: no window).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BitsByPhase {
    /// The first high step.
    pub before: Option<f64>,
    /// The low step, once the policy had time to follow it.
    pub low: Option<f64>,
    /// The high step after it, until the device left.
    pub after: Option<f64>,
}

/// Seconds a policy is given to follow a step before its windows are judged: the nodes' trace
/// clocks start up to a pipeline's fill after the run, and a rise needs two windows of
/// evidence.
const SETTLE_S: f64 = 6.0;

/// The judged part of each phase (before, low, after): from `SETTLE_S` after its step to its
/// end, the device's leaving ending the last.
pub fn settled_spans(story: &Story) -> [(f64, f64); 3] {
    [
        (SETTLE_S, story.low_from_s),
        (story.low_from_s + SETTLE_S, story.low_until_s),
        (story.low_until_s + SETTLE_S, story.leave_at_s),
    ]
}

impl BitsByPhase {
    pub fn of(links: &[LinkSeries], story: &Story) -> BitsByPhase {
        let mean = |(from, to): (f64, f64)| {
            let bits = links
                .iter()
                .flat_map(|l| &l.points)
                .map(|p| (p.t_s, p.bits));
            mean_in(bits, from, to)
        };
        let [before, low, after] = settled_spans(story);
        BitsByPhase {
            before: mean(before),
            low: mean(low),
            after: mean(after),
        }
    }

    /// The bitwidth dropped by at least a bit during the low step and came back up after it.
    pub fn followed_the_link(&self) -> bool {
        match (self.before, self.low, self.after) {
            (Some(b), Some(l), Some(a)) => l <= b - 1.0 && a >= l + 1.0,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantpipe_actors::runtime::metrics::OutLinkWindow;

    fn row(start: f64, stage: Option<u32>, link: Option<(f64, f64)>) -> MetricsRow {
        MetricsRow {
            node: "n".into(),
            stage,
            epoch: 1,
            start_unix_s: start,
            window_s: 1.0,
            microbatches: 0,
            items: 0,
            items_per_s: 0.0,
            busy_forward_s: 0.0,
            busy_codec_s: 0.0,
            busy_fraction: 0.0,
            in_flight_end: 0,
            in_flight_max: 0,
            dropped: 0,
            links: vec![],
            out_link: link.map(|(mbps, bits)| OutLinkWindow {
                mbps,
                bits_mean: bits,
                ..OutLinkWindow::default()
            }),
        }
    }

    fn story() -> Story {
        super::super::story::plan(20.0, 0.4)
    }

    #[test]
    fn only_windows_of_a_stage_with_an_outgoing_link_during_the_run_count() {
        let rows = vec![
            (
                "a".to_string(),
                vec![
                    row(98.0, Some(0), Some((50.0, 8.0))),
                    row(100.0, Some(0), Some((40.0, 8.0))),
                    row(101.0, None, Some((40.0, 8.0))),
                ],
            ),
            ("last".to_string(), vec![row(100.0, Some(2), None)]),
        ];
        let l = links(&rows, 100.0);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].node, "a");
        assert_eq!(
            l[0].points,
            vec![LinkPoint {
                t_s: 1.0,
                mbps: 40.0,
                bits: 8.0
            }]
        );
    }

    #[test]
    fn items_per_s_counts_the_results_of_the_span_before_each_second() {
        let arrivals = [(0.5, 8), (1.5, 8), (2.5, 8), (2.9, 4)];
        let r = items_per_s(&arrivals, 2.0);
        assert_eq!(r, vec![(1.0, 8.0), (2.0, 8.0), (3.0, 10.0)]);
    }

    #[test]
    fn the_mean_takes_the_points_inside_the_span() {
        let pts = [(1.0, 2.0), (2.0, 4.0), (3.0, 9.0)];
        assert_eq!(mean_in(pts, 1.0, 3.0), Some(6.5));
        assert_eq!(mean_in(pts, 5.0, 6.0), None);
    }

    fn series(bits_at: impl Fn(f64) -> f64) -> Vec<LinkSeries> {
        vec![LinkSeries {
            node: "a".into(),
            points: (1..30)
                .map(|t| LinkPoint {
                    t_s: t as f64,
                    mbps: 1.0,
                    bits: bits_at(t as f64),
                })
                .collect(),
        }]
    }

    #[test]
    fn bits_that_drop_in_the_low_step_and_come_back_followed_the_link() {
        let s = story();
        let low = |t: f64| {
            if t > s.low_from_s + 2.0 && t <= s.low_until_s + 2.0 {
                4.0
            } else {
                8.0
            }
        };
        let phases = BitsByPhase::of(&series(low), &s);
        assert_eq!(
            (phases.before, phases.low, phases.after),
            (Some(8.0), Some(4.0), Some(8.0))
        );
        assert!(phases.followed_the_link());
    }

    #[test]
    fn bits_that_stay_put_or_never_come_back_did_not_follow() {
        let s = story();
        assert!(!BitsByPhase::of(&series(|_| 8.0), &s).followed_the_link());
        let stuck = |t: f64| if t > s.low_from_s { 4.0 } else { 8.0 };
        assert!(!BitsByPhase::of(&series(stuck), &s).followed_the_link());
        assert!(!BitsByPhase::of(&[], &s).followed_the_link());
    }
}
