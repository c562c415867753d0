//! The PNG of a run's adaptive-quantization timeline (`quantpipe run --report DIR`): throughput
//! against target, each inter-stage link's measured bandwidth, its mean bitwidth, and the
//! accuracy cost of that bitwidth, on one time axis.

use crate::plot::{draw_lines, write_png, DrawResult, Points};
use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use quantpipe_actors::runtime::timeline::TimelineRow;
use std::collections::BTreeMap;
use std::path::Path;

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 1100;

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Draws `rows` (a timeline) to `path` as a PNG titled `title`.
pub fn write_timeline_chart(path: &Path, title: &str, rows: &[TimelineRow]) -> Result<()> {
    if rows.is_empty() {
        bail!("timeline chart: no window to draw (the run ended within its first window)");
    }
    write_png(path, (WIDTH, HEIGHT), "timeline", |root| {
        draw(root, title, rows)
    })
}

/// One series per link, labelled by its sending node and stage.
fn per_link(rows: &[TimelineRow], value: impl Fn(&TimelineRow) -> f64) -> Vec<(String, Points)> {
    let mut by: BTreeMap<(Option<u32>, String), Points> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.stage.is_some()) {
        by.entry((r.stage, r.node.clone()))
            .or_default()
            .push((r.t_s, value(r)));
    }
    by.into_iter()
        .map(|((stage, node), pts)| {
            let s = stage.unwrap_or(0);
            (format!("{node}: stage {s} -> {}", s + 1), pts)
        })
        .collect()
}

fn draw(root: Area<'_>, title: &str, rows: &[TimelineRow]) -> DrawResult {
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let with_cost = rows.iter().any(|r| r.accuracy_cost_pct.is_some());
    let panels = root.split_evenly((if with_cost { 4 } else { 3 }, 1));
    let x_max = rows.iter().map(|r| r.t_s).fold(1.0, f64::max);

    // The client's rate, once per window, and the target.
    let mut client: Vec<(f64, f64)> = Vec::new();
    let mut target: Vec<(f64, f64)> = Vec::new();
    for r in rows {
        if client.last().map(|p| p.0) != Some(r.t_s) {
            client.push((r.t_s, r.items_per_s));
            target.push((r.t_s, r.target_items_per_s));
        }
    }
    let mut series = vec![("pipeline (client)".to_string(), client)];
    if target.iter().any(|p| p.1 > 0.0) {
        series.push(("target".to_string(), target));
    }
    line_panel(&panels[0], "Throughput", "items/s", x_max, &series, false)?;
    line_panel(
        &panels[1],
        "Measured link bandwidth while transmitting",
        "Mbit/s",
        x_max,
        &per_link(rows, |r| r.mbps),
        true,
    )?;
    line_panel(
        &panels[2],
        "Mean bitwidth sent",
        "bits",
        x_max,
        &per_link(rows, |r| r.bits_mean),
        false,
    )?;
    if with_cost {
        line_panel(
            &panels[3],
            "Accuracy cost of the bitwidth (eval-quant table)",
            "points lost",
            x_max,
            &per_link(rows, |r| r.accuracy_cost_pct.unwrap_or(0.0)),
            false,
        )?;
    }
    root.present()?;
    Ok(())
}

fn line_panel(
    area: &Area<'_>,
    caption: &str,
    unit: &str,
    x_max: f64,
    series: &[(String, Points)],
    log_y: bool,
) -> DrawResult {
    let y_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(1e-3, f64::max)
        * 1.15;
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, ("sans-serif", 17))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60);
    let lines = series.iter().map(|(l, p)| (l.as_str(), p.as_slice()));
    let axes = ("seconds", unit);
    let legend_at = SeriesLabelPosition::UpperRight;
    if log_y {
        let mut chart =
            builder.build_cartesian_2d(0f64..x_max, (0.5f64..y_max.max(1.0)).log_scale())?;
        // A log axis cannot show 0: idle windows sit on its floor.
        draw_lines(&mut chart, axes, lines, 0.5, legend_at)
    } else {
        let mut chart = builder.build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
        draw_lines(&mut chart, axes, lines, f64::NEG_INFINITY, legend_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t_s: f64, stage: u32, mbps: f64, bits: f64) -> TimelineRow {
        TimelineRow {
            t_s,
            unix_s: 1e9 + t_s,
            items_per_s: 20.0,
            target_items_per_s: 20.0,
            node: format!("n{stage}"),
            stage: Some(stage),
            mbps,
            utilisation: 0.9,
            bits_mean: bits,
            accuracy_cost_pct: Some(0.5),
        }
    }

    #[test]
    fn writes_a_png_of_the_timeline_and_refuses_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timeline.png");
        let rows: Vec<TimelineRow> = (1..10)
            .flat_map(|t| [row(t as f64, 0, 200.0, 32.0), row(t as f64, 1, 5.0, 3.5)])
            .collect();
        write_timeline_chart(&path, "test", &rows).unwrap();
        let img = image::open(&path).unwrap();
        assert_eq!((img.width(), img.height()), (WIDTH, HEIGHT));
        assert!(write_timeline_chart(&path, "test", &[]).is_err());
    }
}
