//! `quantpipe bench planner`: planning time for ViT-Huge on large fleets, and the per-link
//! heuristic's gap to the exact optimum.

use super::print;
use anyhow::Result;
use quantpipe_planner::bench::bench_planner;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Repetitions per case (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Random 8-12 device instances for the per-link heuristic gap.
    #[arg(long, default_value_t = 30)]
    gap_instances: usize,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let report = bench_planner(args.reps, args.gap_instances)?;
    print(&report, args.json, |r| {
        let mut s = String::new();
        for c in &r.cases {
            s += &format!(
                "{}: {} units, {} devices of {} types: median {} (goal < {} ms)\n",
                c.name,
                c.units,
                c.devices,
                c.device_types,
                c.median_ms
                    .map(|m| format!("{m:.1} ms"))
                    .unwrap_or_else(|| "deadline".into()),
                c.goal_ms
            );
        }
        s += &format!("per-link heuristic gap: {:?}", r.link_heuristic_gap);
        s
    })
}
