//! The demo fleet: a leader and the demo devices as node processes on loopback, configs and
//! logs in the output folder, and the settings of the demo's own client. Secured: a throwaway
//! CA in the output folder enrolls every member up front (the leader, each device, the demo's
//! client, gateway and stats observer), so every link is TLS with mutual authentication and each
//! node enforces the access control generated from the member list.

use super::devices::DEVICES;
use super::story::Story;
use super::{Args, METRICS_WINDOW_S};
use crate::logging::LogFormat;
use anyhow::{anyhow, Context, Result};
use quantpipe_actors::runtime::config::{Role, Settings};
use quantpipe_launcher::links::{node_member_role, MemberRole};
use quantpipe_launcher::{config_file, loopback, Fleet, Links, Place};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The demo's client, the gateway of `--serve`, and the session that reads the stages' stats
/// (stats are for nodes only, so it is enrolled as a node that hosts no stage).
pub const CLIENT: &str = "demo-client";
pub const GATEWAY: &str = "demo-gateway";
pub const OBSERVER: &str = "demo-observer";

/// Where the demo's processes run and listen, and the fleet's links.
pub struct DemoFleet<'a> {
    pub name: String,
    pub model_dir: &'a Path,
    pub out: &'a Path,
    pub leader_port: u16,
    pub links: Links,
}

/// How long a demo member's zenoh session waits at open for its connections, ms.
const OPEN_WAIT_MS: u64 = 5000;

/// Measurement window of the devices' adaptive bitwidth, seconds: a message at the low step
/// crosses well within it.
const QUANTIZER_WINDOW_S: f64 = 2.0;

/// The emulated link of the story: every device's outgoing data follows `trace` (the story's
/// steps), and its bitwidth adapts to the bandwidth it measures, to the story's target.
pub struct EmulatedLink<'s> {
    pub trace: PathBuf,
    pub story: &'s Story,
}

/// The running fleet and each device node's metrics file, by node name.
pub struct Started {
    pub nodes: Fleet,
    pub metrics_files: Vec<(String, PathBuf)>,
}

impl<'a> DemoFleet<'a> {
    /// The demo fleet `name`, its throwaway CA in `out/fleet-ca` (one an earlier demo left is
    /// replaced) with every member enrolled.
    pub fn new(
        name: String,
        model_dir: &'a Path,
        out: &'a Path,
        leader_port: u16,
    ) -> Result<DemoFleet<'a>> {
        let ca_dir = out.join("fleet-ca");
        if ca_dir.exists() {
            std::fs::remove_dir_all(&ca_dir)
                .with_context(|| format!("removing the old {}", ca_dir.display()))?;
        }
        let links = Links::throwaway(&ca_dir, &name, &members())?;
        Ok(DemoFleet {
            name,
            model_dir,
            out,
            leader_port,
            links,
        })
    }

    /// Settings of `name`, listening on `port` when given and connecting to `connect` when
    /// given, over the fleet's links.
    fn member(
        &self,
        name: &str,
        role: Role,
        port: Option<u16>,
        connect: Option<u16>,
    ) -> Result<Settings> {
        let mut s = config_file::peer(
            &self.name,
            name,
            role,
            self.model_dir,
            port.map(loopback).into_iter().collect(),
            connect.map(loopback).into_iter().collect(),
        );
        // zenoh's open waits this long for the connections it was told to make (0.5 s by
        // default, then it warns and goes on): a TLS handshake with a node still starting can
        // take longer on a busy machine.
        s.zenoh
            .extra
            .insert("scouting/delay".into(), OPEN_WAIT_MS.to_string());
        self.links.apply(&mut s)?;
        Ok(s)
    }

    fn node(&self, name: &str, role: Role, port: u16, connect: Option<u16>) -> Result<Settings> {
        self.member(name, role, Some(port), connect)
    }

    /// Starts the leader, then one node per demo device with its thread count's profile and,
    /// when given, the emulated link.
    pub fn start(
        &self,
        args: &Args,
        profiles: &BTreeMap<i32, PathBuf>,
        link: Option<&EmulatedLink>,
        log_format: LogFormat,
    ) -> Result<Started> {
        let exe = std::env::current_exe()?;
        let mut nodes = Fleet::new(&exe, self.out).log_format(log_format.as_arg());
        let mut leader = self.node("leader", Role::Leader, self.leader_port, None)?;
        leader.leader.expected = DEVICES.iter().map(|d| d.name.to_string()).collect();
        leader.leader.wait_s = 120.0;
        leader.leader.ubatch = args.ubatch;
        leader.leader.bits = args.bits;
        nodes.start(&leader, Place::Here)?;
        let mut metrics_files = Vec::new();
        for (i, d) in DEVICES.iter().enumerate() {
            let metrics = self.fresh_metrics_file(d.name)?;
            let port = self.leader_port + 1 + i as u16;
            let mut device = self.node(d.name, Role::Device, port, Some(self.leader_port))?;
            device.device.threads = d.threads;
            device.device.slowdown = d.slowdown;
            device.device.profile_ubatch = args.ubatch;
            device.device.profile_file = Some(profiles[&d.threads].clone());
            device.quantizer.clip = args.clip.clone();
            device.metrics.file = Some(metrics.clone());
            device.metrics.window_s = METRICS_WINDOW_S;
            if let Some(link) = link {
                device.emulation.link_trace = Some(link.trace.clone());
                // The nominal uplink the planner plans with is the trace's high step.
                device.device.bw_mbps = link.story.high_mbps;
                device.quantizer.policy = "controller".into();
                device.quantizer.target_items_per_s = link.story.target_items_per_s;
                device.quantizer.window_s = QUANTIZER_WINDOW_S;
            }
            nodes.start(&device, Place::Here)?;
            metrics_files.push((d.name.to_string(), metrics));
        }
        eprintln!(
            "started a leader and {} device nodes on loopback (fleet {}; logs in {})",
            DEVICES.len(),
            self.name,
            self.out.display()
        );
        eprintln!("fleet {}", self.links.describe());
        Ok(Started {
            nodes,
            metrics_files,
        })
    }

    /// The metrics file of `node`, removed if an earlier demo left one: the writer appends.
    fn fresh_metrics_file(&self, node: &str) -> Result<PathBuf> {
        let metrics = self.out.join(format!("metrics-{node}.jsonl"));
        if metrics.exists() {
            std::fs::remove_file(&metrics)
                .with_context(|| format!("removing the old {}", metrics.display()))?;
        }
        Ok(metrics)
    }

    /// The settings of the demo's client or gateway `name` (enrolled as such), written to the
    /// output folder and read back like any client's settings (`QUANTPIPE_*` overrides apply).
    pub fn client_settings(&self, name: &str) -> Result<Settings> {
        let mut client = self.node(
            name,
            Role::Device,
            self.leader_port + 10,
            Some(self.leader_port),
        )?;
        // Enough microbatches in flight to keep three stages and their two links busy.
        client.client.window = 8;
        client.client.plan_wait_s = 5.0;
        client.client.result_timeout_s = 120.0;
        Settings::load(&config_file::write(self.out, &client)?)
    }

    /// A zenoh session of the demo's stats observer (a node of the fleet, as only nodes may
    /// read the stages' stats).
    pub fn observer_session(&self) -> Result<zenoh::Session> {
        use zenoh::Wait;
        let observer = self.member(OBSERVER, Role::Device, None, Some(self.leader_port))?;
        zenoh::open(observer.zenoh_config()?)
            .wait()
            .map_err(|e| anyhow!("opening the stats observer's zenoh session: {e}"))
    }
}

/// Every member of the demo fleet and its role.
fn members() -> Vec<(&'static str, MemberRole)> {
    let mut members = vec![
        ("leader", node_member_role(Role::Leader)),
        (CLIENT, MemberRole::Client),
        (GATEWAY, MemberRole::Gateway),
        (OBSERVER, MemberRole::Node),
    ];
    members.extend(
        DEVICES
            .iter()
            .map(|d| (d.name, node_member_role(Role::Device))),
    );
    members
}
