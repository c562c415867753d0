//! A fleet of `quantpipe node` processes started from [`Settings`] values.

use crate::netns::Netns;
use crate::{config_file, Launch, Procs};
use anyhow::{bail, Result};
use quantpipe_actors::runtime::client::PlanWatch;
use quantpipe_actors::runtime::config::Settings;
use quantpipe_messages::{Keys, PlanInfo};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use zenoh::Session;

/// Where a node process runs.
#[derive(Clone, Copy)]
pub enum Place<'a> {
    /// On this host, on any core.
    Here,
    /// On this host, pinned to one core (`taskset`).
    Core(usize),
    /// Inside member `i` of a network-namespace testbed.
    Member(&'a Netns, usize),
}

impl Place<'_> {
    /// `launch` as run at this place.
    pub fn apply(self, launch: Launch) -> Launch {
        match self {
            Place::Here => launch,
            Place::Core(core) => launch.pinned(core),
            Place::Member(net, i) => launch.in_netns(net.ns(i)),
        }
    }
}

/// Node processes of one fleet: configs and logs in one folder, every process killed on drop.
pub struct Fleet {
    bin: PathBuf,
    /// Arguments before the `node` subcommand (e.g. `--log-format json`).
    global_args: Vec<String>,
    procs: Procs,
}

impl Fleet {
    /// A fleet of `bin` (the `quantpipe` binary) processes writing configs and logs in `dir`.
    pub fn new(bin: &Path, dir: &Path) -> Fleet {
        Fleet {
            bin: bin.to_path_buf(),
            global_args: Vec::new(),
            procs: Procs::new(dir),
        }
    }

    /// Nodes log in `format` (`text` or `json`: `quantpipe --log-format`).
    pub fn log_format(mut self, format: &str) -> Fleet {
        self.global_args = vec!["--log-format".into(), format.into()];
        self
    }

    /// The folder of the configs and logs.
    pub fn dir(&self) -> &Path {
        self.procs.dir()
    }

    /// Writes `settings` to `<name>.toml` and starts `quantpipe node` with it at `place`, its
    /// output to `<name>.log`; answers the config's path.
    pub fn start(&mut self, settings: &Settings, place: Place) -> Result<PathBuf> {
        let config = config_file::write(self.procs.dir(), settings)?;
        let config_arg = config.to_string_lossy();
        let mut args: Vec<&str> = self.global_args.iter().map(String::as_str).collect();
        args.extend(["node", "--config", &config_arg]);
        let launch = place.apply(Launch::new(&self.bin, &args));
        self.procs.start(&settings.name, &launch)?;
        Ok(config)
    }

    /// The processes, to start others beside the nodes (clients) or kill one.
    pub fn procs(&mut self) -> &mut Procs {
        &mut self.procs
    }

    /// The last lines of every log, for failure messages.
    pub fn logs(&self) -> String {
        self.procs.logs()
    }

    /// Fails naming a node that exited, with the logs.
    pub fn check(&mut self) -> Result<()> {
        self.procs.check()
    }

    /// The leader's plan, heard on `session` as soon as the leader serves or announces it;
    /// fails when a node exits first or `limit` passes.
    pub fn wait_for_plan(
        &mut self,
        session: &Session,
        keys: &Keys,
        limit: Duration,
    ) -> Result<PlanInfo> {
        let watch = PlanWatch::declare(session, keys)?;
        let deadline = Instant::now() + limit;
        // Each slice ends early on a plan; between slices a node that died fails the wait.
        let slice = Duration::from_secs(1);
        loop {
            self.check()?;
            let now = Instant::now();
            if now >= deadline {
                bail!(
                    "no plan from the leader of fleet {} within {limit:?}; logs in {}:\n{}",
                    keys.fleet,
                    self.dir().display(),
                    self.procs.logs()
                );
            }
            if let Some(plan) = watch.next((now + slice).min(deadline))? {
                return Ok(plan);
            }
        }
    }
}
