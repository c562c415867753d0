//! The demo's PNG chart: the story on one time axis. Top, the emulated link's bandwidth (the
//! trace) and what each sending stage measured on it; middle, the bitwidth each stage sent;
//! bottom, the items/s answered against the target. The moment the device left and each
//! re-plan are vertical lines on all three. Every legend sits beside its panel, never over a
//! line.

use super::timeline::Timeline;
use super::NumberedPlan;
use crate::plot::{palette, side_legend, write_png, DrawResult, Points};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

const WIDTH: u32 = 1300;
const HEIGHT: u32 = 1050;
/// Width of the legend column right of each panel.
const LEGEND_W: u32 = 330;

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// What the chart draws.
pub struct ChartInputs<'a> {
    pub title: String,
    pub timeline: &'a Timeline,
    pub plans: &'a [NumberedPlan],
}

pub fn write(path: &Path, c: &ChartInputs) -> Result<()> {
    write_png(path, (WIDTH, HEIGHT), "demo chart", |root| draw(root, c))
}

/// One line of a panel: its label, points and style.
struct Line {
    label: String,
    points: Points,
    style: ShapeStyle,
    dashed: bool,
}

fn draw(root: Area<'_>, c: &ChartInputs) -> DrawResult {
    root.fill(&WHITE)?;
    let root = root.titled(&c.title, ("sans-serif", 22))?;
    let t = c.timeline;
    let x_max = t
        .items_per_s
        .iter()
        .map(|p| p.0)
        .chain(t.links.iter().flat_map(|l| l.points.iter().map(|p| p.t_s)))
        .fold(1.0, f64::max);
    let panels = root.split_evenly((3, 1));
    let markers = markers(c);
    let node_style = |i: usize| palette(i).stroke_width(2);

    let mut bandwidth = vec![Line {
        label: "emulated link (trace)".into(),
        points: trace_line(&t.trace, x_max),
        style: BLACK.stroke_width(3),
        dashed: false,
    }];
    let mut bits = Vec::new();
    for (i, l) in t.links.iter().enumerate() {
        bandwidth.push(Line {
            label: format!("{} measured", l.node),
            points: l
                .points
                .iter()
                .filter(|p| p.mbps > 0.0)
                .map(|p| (p.t_s, p.mbps))
                .collect(),
            style: node_style(i),
            dashed: false,
        });
        bits.push(Line {
            label: format!("{} -> next stage", l.node),
            points: l.points.iter().map(|p| (p.t_s, p.bits)).collect(),
            style: node_style(i),
            dashed: false,
        });
    }
    let items = vec![
        Line {
            label: "answered to the client".into(),
            points: t.items_per_s.clone(),
            style: palette(0).stroke_width(2),
            dashed: false,
        },
        Line {
            label: format!("target {} items/s", t.target_items_per_s),
            points: vec![(0.0, t.target_items_per_s), (x_max, t.target_items_per_s)],
            style: RGBColor(90, 90, 90).stroke_width(2),
            dashed: true,
        },
    ];
    panel(
        &panels[0],
        "Link bandwidth (EMULATED: messages paced to a trace)",
        "Mbit/s",
        x_max,
        &bandwidth,
        &markers,
    )?;
    panel(
        &panels[1],
        "Bitwidth each stage sent (adaptive, at most the plan's)",
        "bits",
        x_max,
        &bits,
        &markers,
    )?;
    panel(&panels[2], "Throughput", "items/s", x_max, &items, &markers)?;
    root.present()?;
    Ok(())
}

/// The step trace as a line: each rate held until the next step, the last one to `x_max`.
fn trace_line(steps: &[(f64, f64)], x_max: f64) -> Points {
    let mut pts = Vec::new();
    for (i, &(at, mbps)) in steps.iter().enumerate() {
        let until = steps.get(i + 1).map_or(x_max, |s| s.0);
        pts.push((at, mbps));
        pts.push((until.max(at), mbps));
    }
    pts
}

/// The vertical lines: the device leaving, then each re-plan.
fn markers(c: &ChartInputs) -> Vec<(String, f64, ShapeStyle)> {
    let mut m = Vec::new();
    if let Some((node, at)) = &c.timeline.left {
        m.push((
            format!("{node} leaves ({at:.1} s)"),
            *at,
            RED.stroke_width(2),
        ));
    }
    for p in c.plans.iter().skip(1) {
        m.push((
            format!("plan {} in force ({:.1} s)", p.number, p.at_s),
            p.at_s,
            RGBColor(148, 103, 189).stroke_width(3),
        ));
    }
    m
}

fn panel(
    area: &Area<'_>,
    caption: &str,
    unit: &str,
    x_max: f64,
    lines: &[Line],
    markers: &[(String, f64, ShapeStyle)],
) -> DrawResult {
    let (plot, legend_area) = area.split_horizontally(area.dim_in_pixel().0 - LEGEND_W);
    let y_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(&plot)
        .caption(caption, ("sans-serif", 17))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the run started")
        .y_desc(unit)
        .label_style(("sans-serif", 14))
        .draw()?;
    for (_, at, style) in markers {
        chart.draw_series(LineSeries::new(vec![(*at, 0.0), (*at, y_max)], *style))?;
    }
    for l in lines {
        if l.dashed {
            chart.draw_series(DashedLineSeries::new(
                l.points.iter().copied(),
                10,
                6,
                l.style,
            ))?;
        } else {
            chart.draw_series(LineSeries::new(l.points.iter().copied(), l.style))?;
        }
    }
    let entries: Vec<(String, ShapeStyle)> = lines
        .iter()
        .map(|l| (l.label.clone(), l.style))
        .chain(
            markers
                .iter()
                .map(|(label, _, style)| (label.clone(), *style)),
        )
        .collect();
    side_legend(&legend_area, &entries)
}

#[cfg(test)]
mod tests {
    use super::super::timeline::{LinkPoint, LinkSeries};
    use super::*;
    use quantpipe_messages::PlanInfo;

    #[test]
    fn the_trace_is_drawn_as_steps_held_until_the_next() {
        let pts = trace_line(&[(0.0, 40.0), (10.0, 5.0), (22.0, 40.0)], 30.0);
        assert_eq!(
            pts,
            vec![
                (0.0, 40.0),
                (10.0, 40.0),
                (10.0, 5.0),
                (22.0, 5.0),
                (22.0, 40.0),
                (30.0, 40.0)
            ]
        );
    }

    #[test]
    fn writes_the_story_chart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.png");
        let timeline = Timeline {
            trace: vec![(0.0, 40.0), (10.0, 5.0), (22.0, 40.0)],
            target_items_per_s: 10.0,
            items_per_s: (1..40).map(|t| (t as f64, 12.0)).collect(),
            links: vec![LinkSeries {
                node: "board-a".into(),
                points: (1..30)
                    .map(|t| LinkPoint {
                        t_s: t as f64,
                        mbps: 38.0,
                        bits: 8.0,
                    })
                    .collect(),
            }],
            left: Some(("board-b".into(), 28.0)),
            replans: vec![(2, 29.5)],
        };
        let plan = PlanInfo {
            epoch: 7,
            model: "m".into(),
            ubatch: 8,
            source: "planner".into(),
            stages: vec![],
            predicted_items_per_s: 1.0,
        };
        let plans = [
            NumberedPlan {
                number: 1,
                at_s: 0.0,
                plan: plan.clone(),
            },
            NumberedPlan {
                number: 2,
                at_s: 29.5,
                plan,
            },
        ];
        let inputs = ChartInputs {
            title: "test".into(),
            timeline: &timeline,
            plans: &plans,
        };
        write(&path, &inputs).unwrap();
        let img = image::open(&path).unwrap();
        assert_eq!((img.width(), img.height()), (WIDTH, HEIGHT));
    }
}
