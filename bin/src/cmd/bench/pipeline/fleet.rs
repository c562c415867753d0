//! One run's fleet: a leader and one node process per pipeline stage on loopback, each on its
//! core, and the settings of the bench's own client.

use super::placement::Layout;
use super::Args;
use anyhow::{Context, Result};
use quantpipe_actors::runtime::config::{Role, Settings};
use quantpipe_launcher::{config_file, free_ports, loopback, Fleet, Place};
use std::path::Path;

/// The started fleet and the settings the bench's client streams with.
pub struct BenchFleet {
    pub fleet: Fleet,
    pub client: Settings,
}

/// Starts the leader and the nodes of `layout` in fleet `name`, configs and logs in `dir`;
/// every node loads `model` and announces `profile`.
pub fn start(
    args: &Args,
    name: &str,
    layout: &Layout,
    model: &Path,
    profile: &Path,
    dir: &Path,
) -> Result<BenchFleet> {
    let ports = free_ports(layout.names.len() + 1)?;
    let node = |node: &str, role: Role, listen: Vec<String>, connect: Vec<String>| {
        config_file::peer(name, node, role, model, listen, connect)
    };
    let to_leader = vec![loopback(ports[0])];
    let exe = std::env::current_exe().context("locating the quantpipe binary")?;
    let mut fleet = Fleet::new(&exe, dir);
    let mut leader = node("leader", Role::Leader, to_leader.clone(), vec![]);
    leader.leader.expected = layout.names.clone();
    leader.leader.wait_s = 600.0;
    leader.leader.ubatch = args.ubatch;
    leader.leader.bits = 32;
    fleet.start(&leader, Place::Here)?;
    for (k, name) in layout.names.iter().enumerate() {
        let (core, slowdown) = layout.place[k];
        let mut device = node(
            name,
            Role::Device,
            vec![loopback(ports[k + 1])],
            to_leader.clone(),
        );
        device.device.threads = 1;
        device.device.slowdown = slowdown;
        // Loopback moves ~1.5 GB/s (DESIGN.md): 10 Gbit/s is its nominal bandwidth.
        device.device.bw_mbps = 10000.0;
        device.device.mem_mb = 8192.0;
        device.device.profile_ubatch = args.ubatch;
        device.device.profile_file = Some(profile.to_path_buf());
        device.quantizer.clip = "naive".into();
        let at = if layout.pinned {
            Place::Core(core)
        } else {
            Place::Here
        };
        fleet.start(&device, at)?;
    }

    // The bench's client streams through the client library.
    let mut client = node("bench", Role::Device, vec![], to_leader);
    client.client.window = args.window;
    client.client.plan_wait_s = 600.0;
    client.client.result_timeout_s = 120.0;
    Ok(BenchFleet { fleet, client })
}
