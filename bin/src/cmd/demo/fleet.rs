//! The demo fleet: a leader and the demo devices as node processes on loopback, configs and
//! logs in the output folder, and the settings of the demo's own client.

use super::devices::DEVICES;
use super::{Args, METRICS_WINDOW_S};
use crate::logging::LogFormat;
use anyhow::{Context, Result};
use quantpipe_actors::runtime::config::{Role, Settings};
use quantpipe_launcher::{config_file, loopback, Fleet, Place};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the demo's processes run and listen.
pub struct DemoFleet<'a> {
    pub name: String,
    pub model_dir: &'a Path,
    pub out: &'a Path,
    pub leader_port: u16,
}

/// The running fleet and each device node's metrics file, by node name.
pub struct Started {
    pub nodes: Fleet,
    pub metrics_files: Vec<(String, PathBuf)>,
}

impl DemoFleet<'_> {
    /// Settings of `name`, listening on `port` and connecting to `connect` when given.
    fn node(&self, name: &str, role: Role, port: u16, connect: Option<u16>) -> Settings {
        let connect = connect.map(loopback).into_iter().collect();
        config_file::peer(
            &self.name,
            name,
            role,
            self.model_dir,
            vec![loopback(port)],
            connect,
        )
    }

    /// Starts the leader, then one node per demo device with its thread count's profile.
    pub fn start(
        &self,
        args: &Args,
        profiles: &BTreeMap<i32, PathBuf>,
        log_format: LogFormat,
    ) -> Result<Started> {
        let exe = std::env::current_exe()?;
        let mut nodes = Fleet::new(&exe, self.out).log_format(log_format.as_arg());
        let mut leader = self.node("leader", Role::Leader, self.leader_port, None);
        leader.leader.expected = DEVICES.iter().map(|d| d.name.to_string()).collect();
        leader.leader.wait_s = 120.0;
        leader.leader.ubatch = args.ubatch;
        leader.leader.bits = args.bits;
        nodes.start(&leader, Place::Here)?;
        let mut metrics_files = Vec::new();
        for (i, d) in DEVICES.iter().enumerate() {
            let metrics = self.fresh_metrics_file(d.name)?;
            let port = self.leader_port + 1 + i as u16;
            let mut device = self.node(d.name, Role::Device, port, Some(self.leader_port));
            device.device.threads = d.threads;
            device.device.slowdown = d.slowdown;
            device.device.profile_ubatch = args.ubatch;
            device.device.profile_file = Some(profiles[&d.threads].clone());
            device.quantizer.clip = args.clip.clone();
            device.metrics.file = Some(metrics.clone());
            device.metrics.window_s = METRICS_WINDOW_S;
            nodes.start(&device, Place::Here)?;
            metrics_files.push((d.name.to_string(), metrics));
        }
        eprintln!(
            "started leader and {} nodes (fleet {}; logs in {})",
            DEVICES.len(),
            self.name,
            self.out.display()
        );
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

    /// The demo client's settings, written to the output folder and read back like any
    /// client's settings (`QUANTPIPE_*` overrides apply).
    pub fn client_settings(&self) -> Result<Settings> {
        let mut client = self.node(
            "demo-client",
            Role::Device,
            self.leader_port + 10,
            Some(self.leader_port),
        );
        client.client.window = 4;
        client.client.plan_wait_s = 5.0;
        client.client.result_timeout_s = 120.0;
        Settings::load(&config_file::write(self.out, &client)?)
    }
}
