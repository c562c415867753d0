//! The PNG of the policies over one trace in the link simulation: the link's rate, each
//! policy's mean bitwidth per window against the oracle's, and each policy's items/s against
//! the target, on one time axis. Legends sit beside the panels, never over a line.

use crate::plot::{palette, side_legend, write_png, DrawResult, Points};
use anyhow::{bail, Result};
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use quantpipe_adaptive::compare::PolicyRun;
use quantpipe_adaptive::simulate::WindowRecord;
use quantpipe_adaptive::trace::Trace;
use std::path::Path;

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 1100;
/// The legends' column to the right of every panel.
const LEGEND_WIDTH: u32 = 230;

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// One line of a panel: its label, its points, its colour and whether it is dashed (the
/// oracle's and the target, which every policy is measured against).
struct Line {
    label: String,
    points: Points,
    color: RGBColor,
    dashed: bool,
}

/// Draws `runs` over `trace` (its last rate held `hold_s`) to `path` as a PNG titled `title`.
pub fn write_comparison_chart(
    path: &Path,
    title: &str,
    trace: &Trace,
    hold_s: f64,
    runs: &[PolicyRun],
    target_items_per_s: f64,
) -> Result<()> {
    let Some(first) = runs.first() else {
        bail!("comparison chart: no policy to draw");
    };
    let x_max = trace.steps().last().map_or(0.0, |s| s.0) + hold_s;
    let oracle = Line {
        label: "oracle (dashed)".into(),
        points: window_steps(&first.windows, |w| Some(w.oracle_bits)),
        color: BLACK,
        dashed: true,
    };
    let per_policy = |value: fn(&WindowRecord) -> Option<f64>| -> Vec<Line> {
        runs.iter()
            .enumerate()
            .map(|(i, r)| Line {
                label: r.policy.clone(),
                points: window_steps(&r.windows, value),
                color: palette(i),
                dashed: false,
            })
            .collect()
    };
    let mut bits = vec![oracle];
    bits.extend(per_policy(|w| w.mean_bits));
    let mut items = vec![Line {
        label: "target (dashed)".into(),
        points: vec![(0.0, target_items_per_s), (x_max, target_items_per_s)],
        color: BLACK,
        dashed: true,
    }];
    items.extend(per_policy(|w| Some(w.items_per_s)));
    let link = vec![Line {
        label: "trace".into(),
        points: trace_steps(trace, x_max),
        color: palette(5),
        dashed: false,
    }];
    write_png(path, (WIDTH, HEIGHT), "comparison chart", |root| {
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 22))?;
        let panels = root.split_evenly((3, 1));
        panel(&panels[0], "Link rate", "Mbit/s", x_max, &link)?;
        panel(
            &panels[1],
            "Mean bitwidth sent per window",
            "bits",
            x_max,
            &bits,
        )?;
        panel(
            &panels[2],
            "Items per second delivered per window",
            "items/s",
            x_max,
            &items,
        )?;
        root.present()?;
        Ok(())
    })
}

/// A window's value held across the window: a step line over the windows that have one.
fn window_steps(windows: &[WindowRecord], value: impl Fn(&WindowRecord) -> Option<f64>) -> Points {
    windows
        .iter()
        .filter_map(|w| value(w).map(|v| [(w.start_s, v), (w.end_s, v)]))
        .flatten()
        .collect()
}

/// The trace as a step line from 0 to `end_s`.
fn trace_steps(trace: &Trace, end_s: f64) -> Points {
    let steps = trace.steps();
    steps
        .iter()
        .enumerate()
        .flat_map(|(i, &(at, mbit))| {
            let until = steps.get(i + 1).map_or(end_s, |s| s.0);
            [(at, mbit), (until, mbit)]
        })
        .collect()
}

/// A panel: the lines on the left, their legend in a column on the right. The y axis is
/// logarithmic where the values span more than 20x (a step trace's 200 and 5 Mbit/s).
fn panel(area: &Area<'_>, caption: &str, unit: &str, x_max: f64, lines: &[Line]) -> DrawResult {
    let (plot, legend) = area.split_horizontally(WIDTH - LEGEND_WIDTH);
    let values = || lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let y_max = values().fold(1e-3, f64::max) * 1.1;
    let y_min = values().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
    let mut builder = ChartBuilder::on(&plot);
    builder
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60);
    if y_max / y_min > 20.0 {
        let floor = y_min * 0.8;
        let mut chart = builder.build_cartesian_2d(0f64..x_max, (floor..y_max).log_scale())?;
        draw(&mut chart, unit, lines)?;
    } else {
        let mut chart = builder.build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
        draw(&mut chart, unit, lines)?;
    }
    let entries: Vec<(String, ShapeStyle)> = lines
        .iter()
        .map(|l| (l.label.clone(), l.color.stroke_width(2)))
        .collect();
    side_legend(&legend, &entries)
}

fn draw<'a, X, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>,
    unit: &str,
    lines: &[Line],
) -> DrawResult
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(unit)
        .label_style(("sans-serif", 14))
        .draw()?;
    for l in lines {
        let style = l.color.stroke_width(2);
        if l.dashed {
            chart.draw_series(DashedLineSeries::new(l.points.iter().copied(), 8, 5, style))?;
        } else {
            chart.draw_series(LineSeries::new(l.points.iter().copied(), style))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantpipe_adaptive::compare::{compare, LinkSetup};
    use quantpipe_adaptive::policy::PolicyKind;

    fn record(start_s: f64, bits: Option<f64>) -> WindowRecord {
        WindowRecord {
            start_s,
            end_s: start_s + 3.0,
            link_mbps: 20.0,
            measured_mbps: None,
            mean_bits: bits,
            items_per_s: 20.0,
            oracle_bits: 19.0,
            feasible: true,
        }
    }

    #[test]
    fn a_window_s_value_spans_the_window_and_windows_without_one_are_skipped() {
        let w = [
            record(0.0, Some(8.0)),
            record(3.0, None),
            record(6.0, Some(4.0)),
        ];
        assert_eq!(
            window_steps(&w, |w| w.mean_bits),
            [(0.0, 8.0), (3.0, 8.0), (6.0, 4.0), (9.0, 4.0)]
        );
    }

    #[test]
    fn the_trace_is_drawn_as_steps_to_its_end() {
        let t = Trace::new(vec![(0.0, 200.0), (18.0, 20.0)]).unwrap();
        assert_eq!(
            trace_steps(&t, 36.0),
            [(0.0, 200.0), (18.0, 200.0), (18.0, 20.0), (36.0, 20.0)]
        );
    }

    #[test]
    fn writes_a_png_with_the_legends_beside_the_panels() {
        let trace = Trace::new(vec![(0.0, 200.0), (18.0, 20.0), (36.0, 5.0)]).unwrap();
        let runs = compare(
            &trace,
            18.0,
            &LinkSetup::minilm_cut(),
            &[PolicyKind::Heuristic, PolicyKind::Fixed],
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chart.png");
        write_comparison_chart(&path, "test", &trace, 18.0, &runs, 20.0).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (WIDTH, HEIGHT));
        // The legend column has its samples drawn and nothing of the plots.
        let inked = |x0: u32, x1: u32| {
            (x0..x1)
                .flat_map(|x| (0..HEIGHT).map(move |y| (x, y)))
                .filter(|&(x, y)| img.get_pixel(x, y).0 != [255, 255, 255])
                .count()
        };
        assert!(inked(WIDTH - LEGEND_WIDTH, WIDTH) > 200);
        assert!(write_comparison_chart(&path, "test", &trace, 18.0, &[], 20.0).is_err());
    }
}
