//! The demo's human output: the first plan, then the story in a dozen lines.

use super::story::Story;
use super::timeline::{mean_in, settled_spans};
use super::{DemoReport, NumberedPlan};
use quantpipe_messages::PlanInfo;
use std::path::Path;

/// Plan `number` (plans are numbered in order of appearance; their epochs are timestamps).
pub fn print_plan(number: usize, plan: &PlanInfo) {
    println!(
        "plan {number} ({}, {} stages, predicted {:.1} items/s):",
        plan.source,
        plan.stages.len(),
        plan.predicted_items_per_s
    );
    print_stages(plan);
}

fn print_stages(plan: &PlanInfo) {
    for (i, s) in plan.stages.iter().enumerate() {
        println!(
            "  stage {i}: {:<9} units {:>2}..{:<2}  {:.0} ms/microbatch{}",
            s.node,
            s.l,
            s.r,
            s.compute_s * 1e3,
            if i + 1 < plan.stages.len() {
                format!(", sends at most {} bits", s.out_bits)
            } else {
                String::new()
            }
        );
    }
}

pub fn print_story_start(story: &Story, items: usize) {
    println!(
        "running {items} items; each device's uplink is an EMULATED link (its messages paced \
         to a trace): {} Mbit/s, {} Mbit/s from {:.0} s to {:.0} s, then {} again; the bitwidth \
         adapts to hold {} items/s",
        story.high_mbps,
        story.low_mbps,
        story.low_from_s,
        story.low_until_s,
        story.high_mbps,
        story.target_items_per_s
    );
}

/// One phase of the link: its rate, the mean bitwidth sent and the items/s answered over the
/// phase's settled part `span`.
fn phase_line(
    d: &DemoReport,
    (from, to): (f64, f64),
    span: (f64, f64),
    mbps: f64,
    bits: Option<f64>,
) {
    let rate = mean_in(d.timeline.items_per_s.iter().copied(), span.0, span.1);
    println!(
        "  {from:>4.0}-{to:<3.0} s  link {mbps:>6.2} Mbit/s: {} bits sent, {} items/s (target {})",
        bits.map_or("-".into(), |b| format!("{b:4.1}")),
        rate.map_or("-".into(), |r| format!("{r:4.1}")),
        d.timeline.target_items_per_s
    );
}

pub fn print_summary(d: &DemoReport, path: &Path) {
    let s = &d.story;
    let end = d.pipeline.elapsed_s;
    let leave = d.timeline.left.as_ref().map_or(end, |l| l.1);
    let [before, low, after] = settled_spans(s);
    let b = &d.bits_by_phase;
    phase_line(d, (0.0, s.low_from_s), before, s.high_mbps, b.before);
    phase_line(d, (s.low_from_s, s.low_until_s), low, s.low_mbps, b.low);
    phase_line(
        d,
        (s.low_until_s, leave),
        (after.0, leave),
        s.high_mbps,
        b.after,
    );
    if let Some((node, at)) = &d.timeline.left {
        let replan: Vec<&NumberedPlan> = d.plans.iter().skip(1).collect();
        match replan.first() {
            Some(p) => {
                println!(
                    "  {at:>4.1} s     {node} left (its process killed); plan {} at {:.1} s, predicted {:.1} items/s:",
                    p.number, p.at_s, p.plan.predicted_items_per_s
                );
                print_stages(&p.plan);
            }
            None => {
                println!("  {at:>4.1} s     {node} left (its process killed); no re-plan heard")
            }
        }
    }
    let p = &d.pipeline;
    println!(
        "  {end:>4.1} s     {} of {} items answered{} ({} microbatches resent, {} late answers dropped)",
        p.outputs.len(),
        d.items,
        if d.answered_once { ", each exactly once" } else { ": NOT each exactly once" },
        p.resent + p.resent_after_failure,
        p.dropped_duplicates + p.dropped_stale_epoch
    );
    println!(
        "accuracy (1-NN over {} training articles, {} test articles cycled): pipeline {:.2}%, one device at fp32 {:.2}%, same label {:.1}%",
        d.reference_items,
        d.test_items,
        d.pipeline_accuracy * 100.0,
        d.single_device_accuracy * 100.0,
        d.agreement * 100.0
    );
    println!(
        "throughput: pipeline {:.2} items/s over the whole run, one device at fp32 {:.2} items/s ({})",
        p.items_per_s, d.single_device_items_per_s, d.single_device
    );
    println!("report: {}  chart: {}", path.display(), d.chart.display());
}
