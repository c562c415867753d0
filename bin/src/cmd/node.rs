//! `quantpipe node`: run one device of a fleet (and its leader, when configured).

use anyhow::Result;
use quantpipe_actors::runtime::config::Settings;
use quantpipe_actors::runtime::node::run_node;
use quantpipe_actors::runtime::planner_actor::LeaderFailed;
use std::path::PathBuf;

/// The exit status of a node whose leader could not plan, apart from other errors (1).
const LEADER_FAILED_STATUS: i32 = 2;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Node settings (TOML; QUANTPIPE_* environment variables override them).
    #[arg(long)]
    config: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let result = run_node(Settings::load(&args.config)?);
    if let Err(e) = &result {
        if e.is::<LeaderFailed>() {
            eprintln!("error: {e:#}");
            std::process::exit(LEADER_FAILED_STATUS);
        }
    }
    result
}
