//! What the two PNG charts share: the font, the colours, the PNG file, and lines with a legend.
//!
//! Text is drawn with ab_glyph from a TrueType file read at run time (DejaVu Sans, Debian's
//! `fonts-dejavu-core`, which `scripts/setup` installs), so the binary links no fontconfig or
//! freetype.

use anyhow::{anyhow, Context, Result};
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

pub type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// (x, y) points of one line.
pub type Points = Vec<(f64, f64)>;

/// Draws a `width` x `height` picture with `draw` and writes it to `path` as a PNG; `what` names
/// the picture in errors.
pub fn write_png(
    path: &Path,
    (width, height): (u32, u32),
    what: &str,
    draw: impl FnOnce(DrawingArea<BitMapBackend<'_>, Shift>) -> DrawResult,
) -> Result<()> {
    register_font()?;
    let mut rgb = vec![0u8; (width * height * 3) as usize];
    let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
    draw(root).map_err(|e| anyhow!("drawing the {what}: {e}"))?;
    let img = image::RgbImage::from_raw(width, height, rgb).expect("buffer matches the size");
    img.save_with_format(path, image::ImageFormat::Png)
        .with_context(|| format!("writing {}", path.display()))
}

/// Where Debian (and most distributions) keep DejaVu Sans.
const FONT_FILES: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers DejaVu Sans as plotters' `sans-serif` once per process.
fn register_font() -> Result<()> {
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

pub fn palette(i: usize) -> RGBColor {
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

/// The mesh (`x_desc`, `y_desc`), one line per series in the palette's colours (values below
/// `floor` drawn at it) and, when there is a line, their legend at `legend_at`.
pub fn draw_lines<'a, 's, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    (x_desc, y_desc): (&str, &str),
    series: impl IntoIterator<Item = (&'s str, &'s [(f64, f64)])>,
    floor: f64,
    legend_at: SeriesLabelPosition,
) -> DrawResult
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()?;
    let mut any = false;
    for (i, (label, pts)) in series.into_iter().enumerate() {
        let color = palette(i);
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, p.1.max(floor))),
                color.stroke_width(2),
            ))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        any = true;
    }
    if any {
        legend(chart, legend_at)?;
    }
    Ok(())
}

/// The legend of the labelled series, at `at`.
pub fn legend<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    at: SeriesLabelPosition,
) -> DrawResult
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .position(at)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    Ok(())
}

/// A legend drawn in its own `area` (beside a chart, so it never covers a line): per entry, top
/// down, a sample of its line and its label.
pub fn side_legend<DB>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, ShapeStyle)],
) -> DrawResult
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    const ROW: i32 = 24;
    let font = ("sans-serif", 16).into_font().color(&BLACK);
    for (i, (label, style)) in entries.iter().enumerate() {
        // Rows start below the chart's caption, level with its plotting area.
        let y = 40 + ROW * i as i32;
        area.draw(&PathElement::new(vec![(6, y), (30, y)], *style))?;
        area.draw(&Text::new(
            label.as_str(),
            (38, y),
            font.pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Left,
                plotters::style::text_anchor::VPos::Center,
            )),
        ))?;
    }
    Ok(())
}
