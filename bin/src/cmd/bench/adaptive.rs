//! `quantpipe bench adaptive`: the bitwidth policies over bandwidth traces, each judged window
//! by window (the share of feasible windows that held the target, and the mean bitwidth against
//! an oracle that knew the trace) and, over a step trace, step by step (recovery).
//!
//! - With `--simulate`, the link simulation of `quantpipe_adaptive::compare` ([`simulated`]): no
//!   root, no model, seconds; a chart per trace.
//! - Otherwise a 3-stage MiniLM fleet in network namespaces (`quantpipe_launcher::trace_fleet`)
//!   whose inter-stage links follow the trace by `tc tbf`, once per trace and policy
//!   ([`fleet`]). Needs root and MiniLM in `data/minilm` (`scripts/setup`).

mod chart;
mod fleet;
mod inputs;
mod recovery;
mod simulated;
mod text;

use anyhow::Result;
use quantpipe_adaptive::policy::PolicyKind;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run the link simulation instead of a fleet of nodes: no root, no model, seconds.
    #[arg(long)]
    simulate: bool,
    /// Bandwidth traces (`at_s, mbit` lines), one run each; repeat the flag or separate with
    /// commas. Default: every .csv in config/traces/ with --simulate, the step trace
    /// config/traces/step-200-20-5-200.csv for a fleet (about 5 minutes per trace and policy).
    #[arg(long, value_delimiter = ',')]
    trace: Vec<PathBuf>,
    /// How long the last rate of a trace is held, seconds (default: its first step's length).
    #[arg(long)]
    hold_s: Option<f64>,
    /// Policies to run, each over every trace (default: every policy there is).
    #[arg(long, value_delimiter = ',')]
    policies: Vec<PolicyKind>,
    /// The fleet's model.
    #[arg(long, default_value = "data/minilm")]
    model_dir: PathBuf,
    /// Items/s the policies work to (default: 20, MiniLM's cut as the fleet runs it).
    #[arg(long)]
    target_items_per_s: Option<f64>,
    /// The quantizer's window, seconds (default 3).
    #[arg(long)]
    window_s: Option<f64>,
    /// The lowest bitwidth allowed (default 2).
    #[arg(long)]
    min_bits: Option<u8>,
    /// The highest bitwidth, and fixed's (default 32). Simulation only.
    #[arg(long)]
    max_bits: Option<u8>,
    /// What crosses the link per message, e.g. 8,128,384 (MiniLM's hidden state for 8 articles
    /// of 128 tokens, the default). Simulation only.
    #[arg(long, value_delimiter = ',')]
    shape: Vec<usize>,
    /// Items per message (default 8). Simulation only.
    #[arg(long)]
    items_per_message: Option<f64>,
    /// The sending stage's own rate, items/s (default 25). Simulation only.
    #[arg(long)]
    compute_items_per_s: Option<f64>,
    /// Messages sent and not yet arrived before the stage waits (default 2). Simulation only.
    #[arg(long)]
    in_flight: Option<usize>,
    /// Where charts (and a fleet's logs, configs and timelines) go.
    #[arg(long, default_value = "target/bench-adaptive")]
    out: PathBuf,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let traces = inputs::trace_paths(&args.trace, args.simulate, inputs::TRACES_DIR.as_ref())?;
    let policies = if args.policies.is_empty() {
        inputs::every_policy()
    } else {
        args.policies.clone()
    };
    if args.simulate {
        simulated::run(&args, &traces, &policies)
    } else {
        fleet::run(&args, &traces, &policies)
    }
}
