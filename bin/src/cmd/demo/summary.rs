//! The demo's human output: the plan, then the summary of the report.

use super::DemoReport;
use quantpipe_messages::PlanInfo;
use std::path::Path;

pub fn print_plan(plan: &PlanInfo) {
    println!(
        "plan (epoch {}, {}; predicted {:.2} items/s):",
        plan.epoch, plan.source, plan.predicted_items_per_s
    );
    for (i, s) in plan.stages.iter().enumerate() {
        println!(
            "  stage {i}: {:<9} units {:>2}..{:<2}  output {:>2} bits  predicted {:.1} ms/microbatch",
            s.node, s.l, s.r, s.out_bits, s.compute_s * 1e3
        );
    }
}

pub fn print_summary(d: &DemoReport, path: &Path) {
    let p = &d.pipeline;
    println!(
        "{} on {} BBC test articles (1-NN over {} training articles), microbatch {}, cuts at {} bits ({}):",
        d.model, d.test_items, d.reference_items, d.ubatch, d.bits, d.clip
    );
    for s in &d.stages {
        println!(
            "  {:<9} {} thread(s), emulated x{:<4} units {:>2}..{:<2} busy {:>5.1}%  ({} microbatches, {} dropped)",
            s.node, s.threads, s.emulated_slowdown, s.units[0], s.units[1], s.utilisation * 100.0, s.microbatches, s.dropped
        );
    }
    println!(
        "  pipeline     : {:.2} items/s, accuracy {:.2}%, microbatch latency p50 {:.0} ms p99 {:.0} ms",
        p.items_per_s, d.pipeline_accuracy * 100.0, p.latency_p50_s * 1e3, p.latency_p99_s * 1e3
    );
    println!(
        "  single device: {:.2} items/s, accuracy {:.2}% (fp32, {})",
        d.single_device_items_per_s,
        d.single_device_accuracy * 100.0,
        d.single_device
    );
    println!(
        "  pipeline labels equal to single-device fp32 labels: {:.2}%",
        d.agreement * 100.0
    );
    println!("report: {}", path.display());
    println!("chart: {}", d.chart.display());
    for (name, f) in &d.metrics_files {
        println!("metrics of {name}: {}", f.display());
    }
}
