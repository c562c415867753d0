//! A fleet of real `quantpipe` processes, each in its own network namespace, for chaos tests:
//! kill a member, cut its link silently, restore it, and judge the run ([`judge`]).
//!
//! Members ([`Netns`] indices): 0 the leader (a configured `leader`, no stage), `1..=n` the
//! stages named in [`ChaosSpec::stages`], then [`ChaosSpec::clients`] client members, and last
//! an observer, the member whose namespace this process's own zenoh session lives in (for
//! [`NetnsFleet::stats`]). Every node listens on its member's address and connects to every
//! member before it ([`connect_to`]), so each pair of members has one side that connects: zenoh
//! reopens a link it connected when that link closes, but never one it only learned by gossip,
//! and after a lease expires on a flapping link the gossiped link would stay closed. Stages and
//! clients therefore hold links to each other, and keep them while the leader is cut off.
//!
//! Nodes start with a uniform profile and an emulated slowdown, so a run lasts long enough for
//! faults whatever the machine, with the fleet's lease ([`ChaosSpec::lease_ms`]). Processes are
//! killed, the observer's session closed and the namespaces deleted on drop, in that order;
//! every wait is bounded.

pub mod judge;

use crate::minilm::{long_texts, write_uniform_profile};
use crate::netns::{LinkFault, Netns};
use crate::{config_file, ClientRun, Fleet, Place};
use anyhow::{anyhow, bail, Context, Result};
use judge::{plans, LoggedPlan, RunFacts};
use quantpipe_actors::runtime::config::{Role, Settings};
use quantpipe_actors::runtime::metrics::unix_s;
use quantpipe_actors::runtime::timeline::query_stats;
use quantpipe_messages::{Keys, NodeStats};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The client's log level: its `microbatch N answered` lines are what [`judge::answers`] reads.
pub const CLIENT_LOG: &str = "info,zenoh=warn,quantpipe_actors::runtime::client=debug";

/// What fleet to start.
#[derive(Debug, Clone)]
pub struct ChaosSpec {
    /// Namespace prefix (letters and digits), also the start of the fleet's name.
    pub prefix: String,
    /// Names of the stage nodes, in member order (members 1..).
    pub stages: Vec<String>,
    /// Role of the stage nodes (`Device`, or `Candidate` for a fleet that elects).
    pub stage_role: Role,
    /// Client members.
    pub clients: usize,
    /// The fleet's zenoh lease, ms, and keep-alives per lease (every member carries them).
    pub lease_ms: u64,
    pub keep_alive: u32,
    pub ubatch: usize,
    /// Emulated slowdown of every stage (x the uniform profile's 10 ms per unit).
    pub slowdown: f64,
    /// The port every member listens on (each at its own address).
    pub port: u16,
}

impl Default for ChaosSpec {
    fn default() -> Self {
        ChaosSpec {
            prefix: "qpchaos".into(),
            stages: ["a", "b", "c"].map(String::from).to_vec(),
            stage_role: Role::Device,
            clients: 1,
            lease_ms: quantpipe_actors::runtime::config::DEFAULT_LEASE_MS,
            keep_alive: quantpipe_actors::runtime::config::DEFAULT_KEEP_ALIVE,
            ubatch: 4,
            slowdown: 3.0,
            port: 7447,
        }
    }
}

/// The files of one client run.
#[derive(Debug, Clone)]
pub struct RunFiles {
    /// One text a line.
    pub input: PathBuf,
    /// The saved outputs (`--save-outputs`).
    pub outputs: PathBuf,
    /// The client's log (its answered microbatches at debug level).
    pub log: PathBuf,
    pub items: usize,
}

/// Node processes in namespaces; see the module's documentation.
pub struct NetnsFleet {
    /// First, so the processes die before anything else goes.
    fleet: Fleet,
    /// This process's zenoh session in the observer's namespace, opened on first use.
    observer: Option<zenoh::Session>,
    /// Last: the namespaces go once nothing runs in them.
    net: Netns,
    spec: ChaosSpec,
    bin: PathBuf,
    model: PathBuf,
    fleet_name: String,
    /// Member of each started process's name.
    members: BTreeMap<String, usize>,
    profile: PathBuf,
}

impl NetnsFleet {
    /// Creates the namespaces and starts the leader and the stages of `spec` (`bin`: the
    /// `quantpipe` binary; `model`: MiniLM); configs and logs go to `dir`. The leader waits
    /// up to 60 s for every stage, then plans at 32 bits.
    pub fn start(spec: ChaosSpec, bin: &Path, model: &Path, dir: &Path) -> Result<NetnsFleet> {
        let members = 1 + spec.stages.len() + spec.clients + 1;
        let net = Netns::new(&spec.prefix, members).map_err(|e| anyhow!("{e}"))?;
        let profile = dir.join("profile.json");
        write_uniform_profile(&profile, spec.ubatch)?;
        let mut f = NetnsFleet {
            fleet: Fleet::new(bin, dir),
            observer: None,
            net,
            fleet_name: format!("{}{}", spec.prefix, std::process::id()),
            spec,
            bin: bin.to_path_buf(),
            model: model.to_path_buf(),
            members: BTreeMap::new(),
            profile,
        };
        let mut leader = f.settings("leader", Role::Leader, 0);
        leader.leader.expected = f.spec.stages.clone();
        leader.leader.wait_s = 60.0;
        leader.leader.ubatch = f.spec.ubatch;
        leader.leader.bits = 32;
        f.start_node(&leader, 0)?;
        for (k, name) in f.spec.stages.clone().iter().enumerate() {
            let s = f.stage_settings(name);
            f.start_node(&s, k + 1)?;
        }
        Ok(f)
    }

    /// Settings of `name` at `member`: listening on the member's address, connecting to every
    /// member before it ([`connect_to`]; member 0 connects to no one), the fleet's lease, plain
    /// TCP (nothing else is on these private namespaces' network).
    pub fn settings(&self, name: &str, role: Role, member: usize) -> Settings {
        let endpoint = |i: usize| format!("tcp/{}:{}", self.net.addr(i), self.spec.port);
        let connect = connect_to(member).map(endpoint).collect();
        let mut s = config_file::peer(
            &self.fleet_name,
            name,
            role,
            &self.model,
            vec![endpoint(member)],
            connect,
        );
        s.zenoh.lease_ms = self.spec.lease_ms;
        s.zenoh.keep_alive = self.spec.keep_alive;
        s.security.insecure = true;
        s
    }

    /// Settings of stage node `name` (one thread, the uniform profile, the spec's slowdown);
    /// its member is fixed by its place in [`ChaosSpec::stages`].
    pub fn stage_settings(&self, name: &str) -> Settings {
        let member = self.stage_member(name).expect("a stage of the spec");
        let mut s = self.settings(name, self.spec.stage_role, member);
        s.device.threads = 1;
        s.device.slowdown = self.spec.slowdown;
        s.device.profile_ubatch = self.spec.ubatch;
        s.device.profile_file = Some(self.profile.clone());
        // An elected leader plans as the configured one would.
        s.leader.ubatch = self.spec.ubatch;
        s.leader.bits = 32;
        s
    }

    fn stage_member(&self, name: &str) -> Option<usize> {
        self.spec
            .stages
            .iter()
            .position(|s| s == name)
            .map(|k| k + 1)
    }

    /// Member index of client member `k` (0-based).
    pub fn client_member(&self, k: usize) -> usize {
        assert!(
            k < self.spec.clients,
            "client member {k} of {}",
            self.spec.clients
        );
        1 + self.spec.stages.len() + k
    }

    fn observer_member(&self) -> usize {
        self.net.len() - 1
    }

    /// Starts `quantpipe node` with `settings` in `member`'s namespace (a node started again
    /// after [`NetnsFleet::kill`] included).
    pub fn start_node(&mut self, settings: &Settings, member: usize) -> Result<()> {
        self.fleet
            .start(settings, Place::Member(&self.net, member))?;
        self.members.insert(settings.name.clone(), member);
        Ok(())
    }

    /// The fleet's name (key expressions start with it).
    pub fn fleet_name(&self) -> &str {
        &self.fleet_name
    }

    pub fn net(&self) -> &Netns {
        &self.net
    }

    /// The processes (a reference run of `quantpipe infer`, a gateway beside the nodes).
    pub fn procs(&mut self) -> &mut crate::Procs {
        self.fleet.procs()
    }

    pub fn dir(&self) -> &Path {
        self.fleet.dir()
    }

    /// The member process `name` runs in.
    pub fn member(&self, name: &str) -> Result<usize> {
        self.members
            .get(name)
            .copied()
            .ok_or_else(|| anyhow!("no member runs {name}"))
    }

    /// The text of process `name`'s log (empty when it has none yet).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.fleet.dir().join(format!("{name}.log"))).unwrap_or_default()
    }

    pub fn leader_log(&self) -> String {
        self.log("leader")
    }

    /// The last lines of every log, for failure messages.
    pub fn logs(&self) -> String {
        self.fleet.logs()
    }

    /// Waits for the leader's first plan of `stages` stages (from its log) and answers it.
    pub fn wait_for_plan(&mut self, stages: usize, limit: Duration) -> Result<LoggedPlan> {
        self.wait_for_plan_after(0, stages, limit)
    }

    /// Waits for a plan of `stages` stages at an epoch above `epoch` in the leader's log.
    pub fn wait_for_plan_after(
        &mut self,
        epoch: u64,
        stages: usize,
        limit: Duration,
    ) -> Result<LoggedPlan> {
        let found = |log: &str| {
            plans(log)
                .into_iter()
                .find(|p| p.epoch > epoch && p.stages.len() == stages)
        };
        let path = self.fleet.dir().join("leader.log");
        let what = format!("a plan of {stages} stage(s) above epoch {epoch}");
        let text = self
            .fleet
            .procs()
            .wait_for_file(&path, &what, limit, |t| found(t).is_some())?;
        Ok(found(&text).expect("the wait saw it"))
    }

    /// The leader's latest plan, from its log.
    pub fn current_plan(&self) -> Option<LoggedPlan> {
        plans(&self.leader_log()).pop()
    }

    /// Writes `items` texts (long enough that every item is 128 tokens) and client settings
    /// of `client` at client member `k` (window 3, 90 s for the plan and each result), and
    /// starts `quantpipe run --json --save-outputs` over them as process `run`.
    pub fn start_run(
        &mut self,
        run: &str,
        client: &str,
        k: usize,
        items: usize,
    ) -> Result<RunFiles> {
        let member = self.client_member(k);
        let mut s = self.settings(client, Role::Device, member);
        s.client.window = 3;
        s.client.plan_wait_s = 90.0;
        s.client.result_timeout_s = 90.0;
        s.client.stall_s = 3.0;
        self.start_run_with(run, &s, member, items)
    }

    /// Starts a run as [`NetnsFleet::start_run`] does, with client settings of one's own.
    pub fn start_run_with(
        &mut self,
        run: &str,
        client: &Settings,
        member: usize,
        items: usize,
    ) -> Result<RunFiles> {
        let dir = self.fleet.dir().to_path_buf();
        let files = RunFiles {
            input: dir.join(format!("{run}.txt")),
            outputs: dir.join(format!("{run}.outputs.json")),
            log: dir.join(format!("{run}.log")),
            items,
        };
        std::fs::write(&files.input, long_texts(items, 160).join("\n"))
            .with_context(|| format!("writing {}", files.input.display()))?;
        let config = config_file::write(&dir, client)?;
        let launch = ClientRun::new(&config, &files.input)
            .save_outputs(&files.outputs)
            .json()
            .launch(&self.bin)
            .env("RUST_LOG", CLIENT_LOG)
            .in_netns(self.net.ns(member));
        self.fleet.procs().start_with_output(run, &launch)?;
        self.members.insert(run.to_owned(), member);
        Ok(files)
    }

    /// Waits until run `run` has `n` microbatches answered (from its log).
    pub fn wait_for_answers(&mut self, run: &str, n: usize, limit: Duration) -> Result<()> {
        let path = self.fleet.dir().join(format!("{run}.log"));
        let what = format!("{n} microbatch(es) of {run} answered");
        self.fleet
            .procs()
            .wait_for_file(&path, &what, limit, |t| judge::answers(t).len() >= n)
            .map(|_| ())
    }

    /// Waits up to `limit` for run `run` to end and answers its report.
    pub fn finish_run(&mut self, run: &str, limit: Duration) -> Result<RunFacts> {
        let out = self.fleet.procs().finish(run, limit)?;
        RunFacts::from_report(&out).map_err(|e| anyhow!(e))
    }

    /// Kills process `name` (SIGKILL: its links close at once).
    pub fn kill(&mut self, name: &str) -> Result<()> {
        self.fleet.procs().kill(name)
    }

    /// Cuts the link of the member running `name` with `fault` (silent: nothing is closed) and
    /// answers when, in Unix seconds.
    pub fn cut(&self, name: &str, fault: LinkFault) -> Result<f64> {
        let member = self.member(name)?;
        let at = unix_s();
        self.net.fault(member, fault).map_err(|e| anyhow!("{e}"))?;
        Ok(at)
    }

    /// Mends what [`NetnsFleet::cut`] did; answers when, in Unix seconds.
    pub fn restore(&self, name: &str, fault: LinkFault) -> Result<f64> {
        let member = self.member(name)?;
        self.net.heal(member, fault).map_err(|e| anyhow!("{e}"))?;
        Ok(unix_s())
    }

    /// Every node's stats as answered within `limit`, asked from the observer's namespace.
    ///
    /// zenoh's runtime threads are started by this process's first session and stay in that
    /// session's namespace: a test that calls this must open no zenoh session of its own
    /// elsewhere.
    pub fn stats(&mut self, limit: Duration) -> Result<Vec<NodeStats>> {
        if self.observer.is_none() {
            let member = self.observer_member();
            let s = self.settings("observer", Role::Device, member);
            let config = s.zenoh.config()?;
            let session = self.net.run_in(member, || {
                use zenoh::Wait;
                zenoh::open(config).wait()
            });
            self.observer = Some(session.map_err(|e| anyhow!("opening the observer: {e}"))?);
        }
        let session = self.observer.as_ref().expect("opened above");
        let keys = Keys::new(&self.fleet_name);
        // The observer's links form after it opens: ask again until some node answers.
        let deadline = Instant::now() + limit;
        loop {
            let stats = query_stats(session, &keys, Duration::from_secs(2));
            if !stats.is_empty() {
                return Ok(stats);
            }
            if Instant::now() >= deadline {
                bail!("no node answered a stats query within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Fails naming a process that exited, with the logs.
    pub fn check(&mut self) -> Result<()> {
        self.fleet.check()
    }
}

/// The members `member` connects to: every one before it. Members start in that order, and a
/// member started again connects to those before it while those after it reconnect to it.
pub fn connect_to(member: usize) -> std::ops::Range<usize> {
    0..member
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_of_members_has_exactly_one_side_that_connects() {
        let n = 6;
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    let sides = [connect_to(i).contains(&j), connect_to(j).contains(&i)];
                    assert_eq!(sides.iter().filter(|c| **c).count(), 1, "{i} and {j}");
                }
            }
        }
        assert!(connect_to(0).is_empty());
    }

    #[test]
    fn the_default_fleet_is_three_stages_and_a_client_at_zenohs_lease() {
        let s = ChaosSpec::default();
        assert_eq!(s.stages, ["a", "b", "c"]);
        assert_eq!((s.clients, s.lease_ms, s.keep_alive), (1, 10_000, 4));
    }
}
