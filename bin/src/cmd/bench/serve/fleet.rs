//! The fleet `bench serve` measures: a leader and two MiniLM device nodes on loopback, each
//! with one intra-op thread, planned from a uniform profile (two stages of 12 units each), and
//! the settings of the clients that drive it.

use anyhow::{Context, Result};
use quantpipe_actors::runtime::config::{Role, Settings};
use quantpipe_launcher::minilm::write_uniform_profile;
use quantpipe_launcher::{config_file, free_ports, Fleet, Place};
use quantpipe_messages::{Keys, PlanInfo};
use std::path::Path;
use std::time::Duration;
use zenoh::{Session, Wait};

/// Device nodes of the bench fleet.
pub const DEVICES: [&str; 2] = ["serve-a", "serve-b"];

/// The running fleet, a zenoh session joined to it, and what the clients need to join it.
pub struct BenchFleet {
    pub nodes: Fleet,
    pub session: Session,
    pub keys: Keys,
    pub plan: PlanInfo,
    fleet: String,
    model: std::path::PathBuf,
    leader_port: u16,
    gateway_port: u16,
}

impl BenchFleet {
    /// Starts the leader and the devices (configs and logs in `dir`) and waits for the plan.
    pub fn start(model: &Path, dir: &Path, ubatch: usize, bits: u8) -> Result<BenchFleet> {
        let ports = free_ports(DEVICES.len() + 3).context("free loopback ports")?;
        let fleet = format!("serve{}", std::process::id());
        let exe = std::env::current_exe()?;
        let mut nodes = Fleet::new(&exe, dir);
        let mut leader =
            config_file::loopback_peer(&fleet, "leader", Role::Leader, model, ports[0], None);
        leader.leader.expected = DEVICES.iter().map(|d| d.to_string()).collect();
        leader.leader.wait_s = 120.0;
        leader.leader.ubatch = ubatch;
        leader.leader.bits = bits;
        nodes.start(&leader, Place::Here)?;
        let profile = dir.join("profile.json");
        write_uniform_profile(&profile, ubatch)?;
        for (i, name) in DEVICES.iter().enumerate() {
            let mut s = config_file::loopback_peer(
                &fleet,
                name,
                Role::Device,
                model,
                ports[1 + i],
                Some(ports[0]),
            );
            s.device.threads = 1;
            s.device.profile_ubatch = ubatch;
            s.device.profile_file = Some(profile.clone());
            nodes.start(&s, Place::Here)?;
        }
        let keys = Keys::new(&fleet);
        let mut watcher = config_file::loopback_peer(
            &fleet,
            "serve-watch",
            Role::Device,
            model,
            ports[1 + DEVICES.len()],
            Some(ports[0]),
        );
        watcher.client.plan_wait_s = 120.0;
        let session = zenoh::open(watcher.zenoh_config()?)
            .wait()
            .map_err(|e| anyhow::anyhow!("opening the bench's zenoh session: {e}"))?;
        let plan = nodes.wait_for_plan(&session, &keys, Duration::from_secs(180))?;
        Ok(BenchFleet {
            nodes,
            session,
            keys,
            plan,
            fleet,
            model: model.to_path_buf(),
            leader_port: ports[0],
            gateway_port: ports[2 + DEVICES.len()],
        })
    }

    /// Settings of a client named `name` keeping `window` microbatches in flight: the batch
    /// client runs them on the bench's session, the gateway's fleet client opens its own.
    pub fn client_settings(&self, name: &str, window: usize) -> Settings {
        let mut s = config_file::loopback_peer(
            &self.fleet,
            name,
            Role::Device,
            &self.model,
            self.gateway_port,
            Some(self.leader_port),
        );
        s.client.window = window;
        s.client.plan_wait_s = 60.0;
        s.client.result_timeout_s = 120.0;
        s
    }
}
