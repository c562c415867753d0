//! The demo's PNG chart (plotters, bitmap backend): per-stage utilisation, throughput of the
//! pipeline beside one device at fp32, and the per-window items/s timeline of every stage.
//!
//! Plain data in ([`ChartData`]), a PNG file out.

use crate::plot::{draw_lines, legend, palette, write_png, DrawResult};
use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// One stage's busy share of the run.
#[derive(Debug, Clone)]
pub struct StageBar {
    pub label: String,
    /// Fractions of the run's wall time (0..=1) spent in forward passes and in the codec.
    pub forward: f64,
    pub codec: f64,
}

/// One stage's items/s per metrics window, seconds from the run's start.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone)]
pub struct ChartData {
    pub title: String,
    pub stages: Vec<StageBar>,
    /// Items/s by name (e.g. pipeline, predicted, single device fp32).
    pub throughput: Vec<(String, f64)>,
    pub timelines: Vec<Timeline>,
}

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 900;

/// Draws the chart and writes it to `path` as a PNG.
pub fn write_chart(path: &Path, data: &ChartData) -> Result<()> {
    if data.stages.is_empty() {
        bail!("chart: no stage to draw");
    }
    write_png(path, (WIDTH, HEIGHT), "chart", |root| draw(root, data))
}

fn draw(root: DrawingArea<BitMapBackend<'_>, Shift>, data: &ChartData) -> DrawResult {
    root.fill(&WHITE)?;
    let root = root.titled(&data.title, ("sans-serif", 22))?;
    let (top, bottom) = root.split_vertically(HEIGHT / 2 - 20);
    let (left, right) = top.split_horizontally(WIDTH / 2);
    draw_utilisation(&left, &data.stages)?;
    draw_throughput(&right, &data.throughput)?;
    draw_timeline(&bottom, &data.timelines)?;
    root.present()?;
    Ok(())
}

/// A panel of the chart: its caption and the room its axes' labels take.
fn panel<'a, 'b, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: &str,
) -> ChartBuilder<'a, 'b, DB> {
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50);
    builder
}

fn draw_utilisation<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    stages: &[StageBar],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let n = stages.len();
    let mut chart = panel(area, "Stage utilisation (busy / wall time)")
        .build_cartesian_2d(0f64..n as f64, 0f64..100f64)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("% of wall time")
        .draw()?;
    let forward = palette(0);
    let codec = palette(1);
    chart
        .draw_series(stages.iter().enumerate().map(|(i, s)| {
            let x = i as f64;
            Rectangle::new(
                [(x + 0.2, 0.0), (x + 0.8, s.forward.clamp(0.0, 1.0) * 100.0)],
                forward.filled(),
            )
        }))?
        .label("forward")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], forward.filled()));
    chart
        .draw_series(stages.iter().enumerate().map(|(i, s)| {
            let x = i as f64;
            let f = s.forward.clamp(0.0, 1.0) * 100.0;
            let top = ((s.forward + s.codec).clamp(0.0, 1.0)) * 100.0;
            Rectangle::new([(x + 0.2, f), (x + 0.8, top)], codec.filled())
        }))?
        .label("codec")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], codec.filled()));
    chart.draw_series(stages.iter().enumerate().map(|(i, s)| {
        Text::new(
            s.label.clone(),
            (i as f64 + 0.2, -4.0),
            ("sans-serif", 13).into_font(),
        )
    }))?;
    legend(&mut chart, SeriesLabelPosition::MiddleRight)
}

fn draw_throughput<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    bars: &[(String, f64)],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let n = bars.len().max(1);
    let top = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9) * 1.2;
    let mut chart = panel(area, "Throughput").build_cartesian_2d(0f64..n as f64, 0f64..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("items/s")
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
        let x = i as f64;
        Rectangle::new([(x + 0.2, 0.0), (x + 0.8, *v)], palette(i + 2).filled())
    }))?;
    chart.draw_series(bars.iter().enumerate().flat_map(|(i, (name, v))| {
        let x = i as f64 + 0.2;
        [
            Text::new(
                format!("{v:.1}"),
                (x, *v + top * 0.05),
                ("sans-serif", 13).into_font(),
            ),
            Text::new(
                name.clone(),
                (x, -top * 0.04),
                ("sans-serif", 13).into_font(),
            ),
        ]
    }))?;
    Ok(())
}

fn draw_timeline<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lines: &[Timeline],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let points = lines.iter().flat_map(|l| l.points.iter());
    let (x_max, y_max) = points.fold((1.0f64, 1.0f64), |(x, y), p| (x.max(p.0), y.max(p.1)));
    let mut chart = panel(area, "Items/s per metrics window, by stage")
        .build_cartesian_2d(0f64..x_max, 0f64..y_max * 1.15)?;
    draw_lines(
        &mut chart,
        ("seconds since the first window", "items/s"),
        lines
            .iter()
            .map(|l| (l.label.as_str(), l.points.as_slice())),
        f64::NEG_INFINITY,
        SeriesLabelPosition::MiddleRight,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ChartData {
        ChartData {
            title: "MiniLM on 3 stages".into(),
            stages: vec![
                StageBar {
                    label: "board-a".into(),
                    forward: 0.8,
                    codec: 0.05,
                },
                StageBar {
                    label: "board-b".into(),
                    forward: 0.95,
                    codec: 0.1,
                },
            ],
            throughput: vec![("pipeline".into(), 12.5), ("single fp32".into(), 7.0)],
            timelines: vec![Timeline {
                label: "board-a".into(),
                points: vec![(0.0, 0.0), (1.0, 10.0), (2.0, 12.0)],
            }],
        }
    }

    #[test]
    fn writes_a_png_of_the_chart_size_from_plain_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chart.png");
        write_chart(&path, &sample()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let img = image::open(&path).unwrap();
        assert_eq!((img.width(), img.height()), (WIDTH, HEIGHT));
        // Something was drawn: not every pixel is the white background.
        let rgb = img.to_rgb8();
        let drawn = rgb.pixels().filter(|p| p.0 != [255, 255, 255]).count();
        assert!(drawn > 10_000, "{drawn} non-white pixels");
    }

    #[test]
    fn a_chart_without_stages_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = sample();
        d.stages.clear();
        let err = write_chart(&dir.path().join("c.png"), &d).unwrap_err();
        assert!(err.to_string().contains("no stage"), "{err}");
    }
}
