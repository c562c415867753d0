//! `quantpipe simulate`: discrete-event simulation of a plan written by `quantpipe plan --out`.

use anyhow::Result;
use quantpipe_planner::cli::simulate_plan_file;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Plan JSON written by `quantpipe plan --out`.
    #[arg(long)]
    plan: PathBuf,
    #[arg(long, default_value_t = 200)]
    microbatches: usize,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let report = simulate_plan_file(&args.plan, args.microbatches)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} microbatches of {}: {:.2} items/s steady ({:.2} predicted), latency p50 {:.1} ms p99 {:.1} ms",
            report.microbatches,
            report.ubatch,
            report.steady_throughput_items_per_s,
            report.predicted_throughput_items_per_s,
            report.latency_p50_s * 1e3,
            report.latency_p99_s * 1e3
        );
        let util: Vec<String> = report
            .stage_utilisation
            .iter()
            .map(|u| format!("{:.0}%", u * 100.0))
            .collect();
        println!("stage utilisation: {}", util.join(" "));
    }
    Ok(())
}
