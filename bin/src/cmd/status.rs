//! `quantpipe status`: the fleet as its leader sees it (nodes, plan, links).

use anyhow::{anyhow, Result};
use quantpipe_actors::runtime::config::Settings;
use quantpipe_actors::runtime::status::{ask_leader, render};
use quantpipe_messages::Keys;
use std::path::PathBuf;
use std::time::Duration;
use zenoh::Wait;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Settings to join the fleet with: a client's (e.g. config/fleet/client.toml), or any
    /// enrolled member's on a secured fleet (QUANTPIPE_* environment variables override them).
    #[arg(long)]
    config: PathBuf,
    /// How long to wait for the leader's answer, seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout_s: f64,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let settings = Settings::load(&args.config)?;
    let limit = Duration::try_from_secs_f64(args.timeout_s)
        .map_err(|_| anyhow!("--timeout-s must be a number of seconds >= 0"))?;
    let keys = Keys::new(&settings.fleet);
    let session = zenoh::open(settings.zenoh_config()?)
        .wait()
        .map_err(|e| anyhow!("opening the zenoh session: {e}"))?;
    let status = ask_leader(&session, &keys, limit);
    if let Err(e) = session.close().wait() {
        tracing::warn!("closing the zenoh session: {e}");
    }
    super::print(&status?, args.json, render)
}
