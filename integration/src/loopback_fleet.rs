//! The fleet most loopback tests start: a leader and MiniLM device nodes, each a `quantpipe`
//! process on loopback, the devices on one intra-op thread with a uniform profile file (which
//! spares them a measurement), the leader waiting for all of them.

use quantpipe_actors::runtime::config::Role;
use quantpipe_launcher::minilm::write_uniform_profile;
use quantpipe_launcher::{config_file, free_ports, Fleet, Place};
use quantpipe_messages::{Keys, PlanInfo};
use std::path::Path;
use std::time::Duration;

/// How long a test waits for the first plan: a debug build on two shared cores profiles and
/// plans slowly.
const FIRST_PLAN_WAIT: Duration = Duration::from_secs(150);

/// What differs between the tests that start a [`LoopbackFleet`].
pub struct LoopbackFleetSpec<'a> {
    /// The fleet's name is the tag and this process's id (tests of one binary run in parallel).
    pub tag: &'a str,
    pub devices: &'a [&'a str],
    pub ubatch: usize,
    pub bits: u8,
    /// A forced plan (`leader.stages`), or none to let the leader plan.
    pub forced: &'a [(&'a str, [usize; 2])],
}

/// A started fleet: its processes (killed on drop), its name and its ports.
pub struct LoopbackFleet {
    pub nodes: Fleet,
    pub fleet: String,
    /// The leader's port, then each device's in order, then one spare (for a client).
    pub ports: Vec<u16>,
}

impl LoopbackFleet {
    /// Starts the leader, then every device joined to it; writes the profile and the nodes'
    /// settings into `dir`.
    pub fn start(bin: &Path, model: &Path, dir: &Path, spec: &LoopbackFleetSpec) -> LoopbackFleet {
        let profile = dir.join("profile.json");
        write_uniform_profile(&profile, spec.ubatch).unwrap();
        let ports = free_ports(spec.devices.len() + 2).unwrap();
        let fleet = format!("{}{}", spec.tag, std::process::id());
        let node = |name: &str, role: Role, listen: u16, connect: Option<u16>| {
            config_file::loopback_peer(&fleet, name, role, model, listen, connect)
        };
        let mut leader = node("leader", Role::Leader, ports[0], None);
        leader.leader.expected = spec.devices.iter().map(|d| d.to_string()).collect();
        leader.leader.wait_s = 60.0;
        leader.leader.ubatch = spec.ubatch;
        leader.leader.bits = spec.bits;
        leader.leader.stages = config_file::forced(spec.forced);
        let mut nodes = Fleet::new(bin, dir);
        nodes.start(&leader, Place::Here).unwrap();
        for (i, name) in spec.devices.iter().enumerate() {
            let mut device = node(name, Role::Device, ports[i + 1], Some(ports[0]));
            device.device.threads = 1;
            device.device.profile_ubatch = spec.ubatch;
            device.device.profile_file = Some(profile.clone());
            nodes.start(&device, Place::Here).unwrap();
        }
        LoopbackFleet {
            nodes,
            fleet,
            ports,
        }
    }

    /// A zenoh peer of the test joined to the leader, the fleet's keys, and the fleet's first
    /// plan once the leader has it.
    pub fn watch_first_plan(&mut self) -> (zenoh::Session, Keys, PlanInfo) {
        let session = crate::peer_session(self.ports[0]);
        let keys = Keys::new(&self.fleet);
        let plan = self
            .nodes
            .wait_for_plan(&session, &keys, FIRST_PLAN_WAIT)
            .unwrap_or_else(|e| panic!("{e:#}"));
        (session, keys, plan)
    }
}
