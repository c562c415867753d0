//! A fleet on loopback behind `quantpipe serve`, for the gateway's tests: a leader, device
//! nodes with a uniform profile (no profiling), and the gateway process, ready once
//! `/v2/health/ready` answers 200.

#![allow(dead_code)]

use quantpipe_actors::runtime::config::{Role, Settings};
use quantpipe_actors::runtime::timeline::query_stats;
use quantpipe_integration::{peer_session, quantpipe_bin, repo_root};
use quantpipe_launcher::config_file::{self, loopback_peer};
use quantpipe_launcher::{free_ports, write_uniform_profile, Fleet, Launch, Place};
use quantpipe_messages::Keys;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How the test fleet is made.
pub struct Shape<'a> {
    pub tag: &'a str,
    pub model: PathBuf,
    /// Units of the model (4 per block).
    pub units: usize,
    pub devices: usize,
    pub ubatch: usize,
    /// Emulated slowdown of each device (requests stay in flight longer).
    pub slowdown: f64,
    /// Lines of the gateway's `[gateway]` section, beside `listen`.
    pub gateway: &'a str,
}

/// The fleet and its gateway; every process killed on drop.
pub struct GatewayFleet {
    pub bin: PathBuf,
    pub model: PathBuf,
    pub url: String,
    pub fleet: String,
    leader_port: u16,
    devices: usize,
    pub nodes: Fleet,
    /// Last, so the processes are gone before their folder is.
    pub dir: tempfile::TempDir,
}

impl GatewayFleet {
    /// Starts the fleet of `shape` and its gateway, and waits until the gateway is ready.
    pub fn start(shape: Shape) -> GatewayFleet {
        let bin = quantpipe_bin();
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports(shape.devices + 3).unwrap();
        let fleet = format!("{}{}", shape.tag, std::process::id());
        let profile = dir.path().join("profile.json");
        write_uniform_profile(&profile, "m", shape.units, shape.ubatch, 1).unwrap();
        let names: Vec<String> = (0..shape.devices).map(|i| format!("d{i}")).collect();
        let mut nodes = Fleet::new(&bin, dir.path());
        let mut leader =
            loopback_peer(&fleet, "leader", Role::Leader, &shape.model, ports[0], None);
        leader.leader.expected = names.clone();
        leader.leader.wait_s = 60.0;
        leader.leader.ubatch = shape.ubatch;
        leader.leader.bits = 32;
        nodes.start(&leader, Place::Here).unwrap();
        for (i, name) in names.iter().enumerate() {
            let mut device: Settings = loopback_peer(
                &fleet,
                name,
                Role::Device,
                &shape.model,
                ports[i + 1],
                Some(ports[0]),
            );
            device.device.threads = 1;
            device.device.slowdown = shape.slowdown;
            device.device.profile_ubatch = shape.ubatch;
            device.device.profile_file = Some(profile.clone());
            nodes.start(&device, Place::Here).unwrap();
        }
        let http = ports[shape.devices + 2];
        let mut gateway = loopback_peer(
            &fleet,
            "gateway",
            Role::Device,
            &shape.model,
            ports[shape.devices + 1],
            Some(ports[0]),
        );
        gateway.client.window = 2;
        gateway.client.plan_wait_s = 90.0;
        let config = config_file::write(dir.path(), &gateway).unwrap();
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(&format!(
            "\n[gateway]\nlisten = \"127.0.0.1:{http}\"\n{}\n",
            shape.gateway
        ));
        std::fs::write(&config, text).unwrap();
        let config_arg = config.to_string_lossy().to_string();
        nodes
            .procs()
            .start(
                "gateway",
                &Launch::new(&bin, &["serve", "--config", &config_arg]),
            )
            .unwrap();
        let mut f = GatewayFleet {
            bin,
            model: shape.model,
            url: format!("http://127.0.0.1:{http}"),
            fleet,
            leader_port: ports[0],
            devices: shape.devices,
            nodes,
            dir,
        };
        f.wait_until_ready(Duration::from_secs(150));
        f
    }

    fn wait_until_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            self.nodes.check().unwrap_or_else(|e| panic!("{e:#}"));
            if let Ok(r) = ureq::get(&format!("{}/v2/health/ready", self.url)).call() {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the gateway was not ready within {limit:?}:\n{}",
                self.nodes.logs()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Microbatches every stage has forwarded so far, by node (from the nodes' own stats;
    /// asked again until every device answers, as a fresh session takes a moment to route).
    pub fn stage_microbatches(&self) -> Vec<(String, u64)> {
        let session = peer_session(self.leader_port);
        let keys = Keys::new(&self.fleet);
        for _ in 0..20 {
            let stages: Vec<(String, u64)> = query_stats(&session, &keys, Duration::from_secs(2))
                .into_iter()
                .filter(|s| s.stage.is_some())
                .map(|s| (s.node, s.microbatches))
                .collect();
            if stages.len() == self.devices {
                return stages;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("not every stage answered its stats:\n{}", self.nodes.logs());
    }

    /// POSTs `body` (JSON) to `path`: the status, the Retry-After header and the JSON answer.
    pub fn post(&self, path: &str, body: &str) -> Answer {
        let request = ureq::post(&format!("{}{path}", self.url))
            .timeout(Duration::from_secs(120))
            .set("Content-Type", "application/json");
        Answer::of(request.send_string(body))
    }

    pub fn get(&self, path: &str) -> Answer {
        Answer::of(ureq::get(&format!("{}{path}", self.url)).call())
    }

    /// Runs `.venv/bin/python scripts/tests/<script>` with `args`; panics with its output and
    /// the fleet's logs when it fails.
    pub fn python(&self, script: &str, args: &[&str]) -> String {
        let root = repo_root();
        let python = root.join(".venv/bin/python");
        assert!(
            python.exists(),
            "no {}: run scripts/setup --tests",
            python.display()
        );
        let out = std::process::Command::new(&python)
            .arg(root.join("scripts/tests").join(script))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {script}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{script} failed ({}):\n{stdout}\n{}\nfleet logs:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.nodes.logs()
        );
        stdout
    }
}

/// An HTTP answer.
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: serde_json::Value,
}

impl Answer {
    fn of(result: Result<ureq::Response, ureq::Error>) -> Answer {
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("HTTP request failed: {e}"),
        };
        let status = response.status();
        let retry_after = response.header("Retry-After").map(str::to_owned);
        let text = response.into_string().unwrap();
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Answer {
            status,
            retry_after,
            body,
        }
    }
}
