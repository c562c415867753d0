//! `quantpipe serve`: a gateway node that joins a fleet and serves it over HTTP.

use anyhow::Result;
use quantpipe_actors::runtime::config::Settings;
use quantpipe_gateway::{server, GatewayConfig};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Client settings (TOML, QUANTPIPE_* environment overrides) with a [gateway] section.
    #[arg(long)]
    config: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let settings = Settings::load(&args.config)?;
    let gateway = GatewayConfig::load(&args.config)?;
    server::serve(&settings, gateway)
}
