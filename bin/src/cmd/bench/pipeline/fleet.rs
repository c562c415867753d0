//! One run's fleet: a leader and one node process per pipeline stage on loopback, each on its
//! core, and the settings of the bench's own client and stats observer; over plain TCP or over
//! TLS with mutual authentication under a throwaway CA.

use super::placement::Layout;
use super::Args;
use anyhow::{Context, Result};
use quantpipe_actors::runtime::config::{Role, Settings};
use quantpipe_launcher::links::{node_member_role, MemberRole};
use quantpipe_launcher::{config_file, free_ports, loopback, Fleet, Links, Place};
use std::path::Path;

/// The bench's client, and the session that reads the stages' stats (only nodes may).
const CLIENT: &str = "bench";
const OBSERVER: &str = "bench-observer";

/// The started fleet and the settings the bench's client streams with and its observer reads
/// the stages' stats with.
pub struct BenchFleet {
    pub fleet: Fleet,
    pub client: Settings,
    pub observer: Settings,
}

/// The links of fleet `name` of `layout`: a throwaway CA in `dir/fleet-ca` with every member
/// enrolled when `tls`, else plain TCP.
pub fn links(tls: bool, name: &str, layout: &Layout, dir: &Path) -> Result<Links> {
    if !tls {
        return Ok(Links::Plain);
    }
    let mut members = vec![
        ("leader", node_member_role(Role::Leader)),
        (CLIENT, MemberRole::Client),
        (OBSERVER, MemberRole::Node),
    ];
    members.extend(
        layout
            .names
            .iter()
            .map(|n| (n.as_str(), node_member_role(Role::Device))),
    );
    Links::throwaway(&dir.join("fleet-ca"), name, &members)
}

/// Starts the leader and the nodes of `layout` in fleet `name` over `links`, configs and logs
/// in `dir`; every node loads `model` and announces `profile`.
pub fn start(
    args: &Args,
    name: &str,
    layout: &Layout,
    (model, profile): (&Path, &Path),
    links: &Links,
    dir: &Path,
) -> Result<BenchFleet> {
    let ports = free_ports(layout.names.len() + 1)?;
    let node = |node: &str, role: Role, listen: Vec<String>, connect: Vec<String>| {
        let mut s = config_file::peer(name, node, role, model, listen, connect);
        links.apply(&mut s).map(|()| s)
    };
    let to_leader = vec![loopback(ports[0])];
    let exe = std::env::current_exe().context("locating the quantpipe binary")?;
    let mut fleet = Fleet::new(&exe, dir);
    let mut leader = node("leader", Role::Leader, to_leader.clone(), vec![])?;
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
        )?;
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
    let mut client = node(CLIENT, Role::Device, vec![], to_leader.clone())?;
    client.client.window = args.window;
    client.client.plan_wait_s = 600.0;
    client.client.result_timeout_s = 120.0;
    let observer = node(OBSERVER, Role::Device, vec![], to_leader)?;
    Ok(BenchFleet {
        fleet,
        client,
        observer,
    })
}
