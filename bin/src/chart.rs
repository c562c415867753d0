//! The demo's PNG chart (plotters, bitmap backend): per-stage utilisation, throughput of the
//! pipeline beside one device at fp32, and the per-window items/s timeline of every stage.
//!
//! Plain data in ([`ChartData`]), a PNG file out. Text is drawn with ab_glyph from a TrueType file
//! read at run time (DejaVu Sans, Debian's `fonts-dejavu-core`, which `scripts/setup` installs), so
//! the binary links no fontconfig or freetype.

use anyhow::{anyhow, bail, Context, Result};
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

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

/// Where Debian (and most distributions) keep DejaVu Sans.
const FONT_FILES: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers DejaVu Sans as plotters' `sans-serif` once per process.
pub(crate) fn register_font() -> Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let path = FONT_FILES
            .iter()
            .find(|p| Path::new(p).exists())
            .ok_or_else(|| {
                format!(
                    "no DejaVu Sans font for the chart (looked in {}): install Debian's \
                     fonts-dejavu-core (scripts/setup does)",
                    FONT_FILES.join(", ")
                )
            })?;
        let bytes = std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))?;
        // plotters keeps fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{path} is not a usable TrueType font"))
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// Draws the chart and writes it to `path` as a PNG.
pub fn write_chart(path: &Path, data: &ChartData) -> Result<()> {
    if data.stages.is_empty() {
        bail!("chart: no stage to draw");
    }
    register_font()?;
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    draw(&mut rgb, data).map_err(|e| anyhow!("drawing the chart: {e}"))?;
    let img = image::RgbImage::from_raw(WIDTH, HEIGHT, rgb).expect("buffer matches the size");
    img.save_with_format(path, image::ImageFormat::Png)
        .with_context(|| format!("writing {}", path.display()))
}

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn draw(rgb: &mut [u8], data: &ChartData) -> DrawResult {
    let root = BitMapBackend::with_buffer(rgb, (WIDTH, HEIGHT)).into_drawing_area();
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

pub(crate) fn palette(i: usize) -> RGBColor {
    const C: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    C[i % C.len()]
}

fn draw_utilisation<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    stages: &[StageBar],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let n = stages.len();
    let mut chart = ChartBuilder::on(area)
        .caption("Stage utilisation (busy / wall time)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
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
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    Ok(())
}

fn draw_throughput<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    bars: &[(String, f64)],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let n = bars.len().max(1);
    let top = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9) * 1.2;
    let mut chart = ChartBuilder::on(area)
        .caption("Throughput", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..n as f64, 0f64..top)?;
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
    area: &DrawingArea<DB, plotters::coord::Shift>,
    lines: &[Timeline],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let points = lines.iter().flat_map(|l| l.points.iter());
    let (x_max, y_max) = points.fold((1.0f64, 1.0f64), |(x, y), p| (x.max(p.0), y.max(p.1)));
    let mut chart = ChartBuilder::on(area)
        .caption("Items/s per metrics window, by stage", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max * 1.15)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the first window")
        .y_desc("items/s")
        .draw()?;
    for (i, l) in lines.iter().enumerate() {
        let color = palette(i);
        chart
            .draw_series(LineSeries::new(
                l.points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(l.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    if !lines.is_empty() {
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()?;
    }
    Ok(())
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
