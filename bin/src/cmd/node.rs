//! `quantpipe node`: run one device of a fleet (and its leader, when configured).

use anyhow::Result;
use quantpipe_actors::runtime::config::Settings;
use quantpipe_actors::runtime::node::run_node;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Node settings (TOML; QUANTPIPE_* environment variables override them).
    #[arg(long)]
    config: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    run_node(Settings::load(&args.config)?)
}
