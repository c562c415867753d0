//! The soak's fleet: a leader, two MiniLM device nodes that run throughout and one that leaves
//! (killed) and rejoins (started again) at each re-plan, all on loopback with one intra-op
//! thread each and a uniform profile (the planner spreads the 24 units over every device).

use super::judge::Counts;
use anyhow::{anyhow, bail, Context, Result};
use quantpipe_actors::runtime::client::PlanWatch;
use quantpipe_actors::runtime::config::{Role, Settings};
use quantpipe_actors::runtime::timeline::query_stats;
use quantpipe_launcher::minilm::write_uniform_profile;
use quantpipe_launcher::proc_sample::{self, ProcSample};
use quantpipe_launcher::{config_file, free_ports, Fleet, Place};
use quantpipe_messages::{Keys, NodeStats, PlanInfo};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use zenoh::{Session, Wait};

/// Devices that run throughout, and the one that leaves and rejoins.
pub const STAYING: [&str; 2] = ["soak-a", "soak-b"];
pub const CHURNING: &str = "soak-c";
pub const LEADER: &str = "leader";

pub struct SoakFleet {
    pub nodes: Fleet,
    pub session: Session,
    pub keys: Keys,
    pub plans: PlanWatch,
    fleet: String,
    model: PathBuf,
    profile: PathBuf,
    ubatch: usize,
    leader_port: u16,
    client_port: u16,
}

impl SoakFleet {
    pub fn start(model: &Path, dir: &Path, ubatch: usize, bits: u8) -> Result<SoakFleet> {
        let ports = free_ports(3).context("free loopback ports")?;
        let fleet = format!("soak{}", std::process::id());
        let exe = std::env::current_exe()?;
        let mut nodes = Fleet::new(&exe, dir);
        let mut leader =
            config_file::loopback_peer(&fleet, LEADER, Role::Leader, model, ports[0], None);
        leader.leader.expected = STAYING
            .iter()
            .chain([&CHURNING])
            .map(|d| d.to_string())
            .collect();
        leader.leader.wait_s = 120.0;
        leader.leader.ubatch = ubatch;
        leader.leader.bits = bits;
        nodes.start(&leader, Place::Here)?;
        let profile = dir.join("profile.json");
        write_uniform_profile(&profile, ubatch)?;
        let keys = Keys::new(&fleet);
        let watcher = config_file::loopback_peer(
            &fleet,
            "soak-watch",
            Role::Device,
            model,
            ports[1],
            Some(ports[0]),
        );
        let session = zenoh::open(watcher.zenoh_config()?)
            .wait()
            .map_err(|e| anyhow!("opening the soak's zenoh session: {e}"))?;
        let plans = PlanWatch::declare(&session, &keys)?;
        let mut f = SoakFleet {
            nodes,
            session,
            keys,
            plans,
            fleet,
            model: model.to_path_buf(),
            profile,
            ubatch,
            leader_port: ports[0],
            client_port: ports[2],
        };
        for name in STAYING.iter().chain([&CHURNING]) {
            f.start_device(name)?;
        }
        f.wait_for_plan(Duration::from_secs(180), |p| p.stages.len() == 3)?;
        Ok(f)
    }

    /// Starts device `name` on a fresh port.
    pub fn start_device(&mut self, name: &str) -> Result<()> {
        let port = free_ports(1)?[0];
        let mut s = config_file::loopback_peer(
            &self.fleet,
            name,
            Role::Device,
            &self.model,
            port,
            Some(self.leader_port),
        );
        s.device.threads = 1;
        s.device.profile_ubatch = self.ubatch;
        s.device.profile_file = Some(self.profile.clone());
        self.nodes.start(&s, Place::Here)?;
        Ok(())
    }

    /// The leader's plan once it satisfies `ok`; fails after `limit` or when a node exits.
    pub fn wait_for_plan(
        &mut self,
        limit: Duration,
        ok: impl Fn(&PlanInfo) -> bool,
    ) -> Result<PlanInfo> {
        let deadline = Instant::now() + limit;
        loop {
            self.nodes.check()?;
            let slice = (Instant::now() + Duration::from_millis(500)).min(deadline);
            if let Some(p) = self.plans.next(slice)? {
                if ok(&p) {
                    return Ok(p);
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "no plan as expected within {limit:?}; logs in {}:\n{}",
                    self.nodes.dir().display(),
                    self.nodes.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Settings of the soak's client (it runs on this process's session).
    pub fn client_settings(&self, window: usize) -> Settings {
        let mut s = config_file::loopback_peer(
            &self.fleet,
            "soak-client",
            Role::Device,
            &self.model,
            self.client_port,
            Some(self.leader_port),
        );
        s.client.window = window;
        s.client.plan_wait_s = 60.0;
        s.client.result_timeout_s = 120.0;
        s.client.stall_s = 3.0;
        s
    }

    /// Every stage node's stats, by name.
    pub fn stats(&self) -> BTreeMap<String, NodeStats> {
        query_stats(&self.session, &self.keys, Duration::from_secs(5))
            .into_iter()
            .map(|s| (s.node.clone(), s))
            .collect()
    }

    /// Every node's declarations, by name.
    pub fn counts(&self) -> BTreeMap<String, Counts> {
        self.stats()
            .into_iter()
            .map(|(n, s)| (n, counts_of(&s)))
            .collect()
    }

    /// Resident memory, threads and descriptors of the leader, every device running, and this
    /// process (the client), by name.
    pub fn processes(&mut self) -> BTreeMap<String, ProcSample> {
        let mut out = BTreeMap::new();
        for name in [LEADER].iter().chain(STAYING.iter()).chain([&CHURNING]) {
            let pid = self.nodes.procs().pid(name);
            let sample = pid.and_then(|pid| proc_sample::sample(pid).ok());
            if let Some(s) = sample {
                out.insert(name.to_string(), s);
            }
        }
        if let Ok(s) = proc_sample::sample_self() {
            out.insert("client".into(), s);
        }
        out
    }
}

pub fn counts_of(s: &NodeStats) -> Counts {
    Counts {
        subscribers: s.subscribers,
        queryables: s.queryables,
        liveliness_tokens: s.liveliness_tokens,
    }
}
