//! Node and client settings: a TOML file read with the `config` crate, then `QUANTPIPE_*`
//! environment overrides (`QUANTPIPE_NAME=b`, nested keys with `__`: `QUANTPIPE_DEVICE__THREADS=2`).
//! Examples live in the repository's `config/` folder.

use anyhow::{bail, Context, Result};
pub use quantpipe_security::SecuritySettings;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Hosts a stage.
    #[default]
    Device,
    /// Hosts the planner only.
    Leader,
    /// Hosts the planner and a stage.
    Both,
    /// Hosts a stage and may be elected leader: when no leader (configured, or an elected
    /// candidate) is alive, the alive candidate with the smallest name starts the planner (see
    /// [`crate::runtime::membership::elected`]). An elected leader plans with its own `[leader]`
    /// section, so every candidate of a fleet should carry the same `[leader]` section.
    Candidate,
}

impl Role {
    /// Configured leaders host the planner from the start, for the node's whole life.
    pub fn is_configured_leader(self) -> bool {
        matches!(self, Role::Leader | Role::Both)
    }
    /// Every role but `leader` hosts a stage.
    pub fn hosts_stage(self) -> bool {
        self != Role::Leader
    }
}

/// Settings of a node (`quantpipe node`) or a client (`quantpipe run`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Fleet name: the first level of every key expression; messages of other fleets are dropped.
    pub fleet: String,
    /// Name of this node or client, unique in the fleet.
    pub name: String,
    #[serde(default)]
    pub role: Role,
    /// Local model folder (config.json + model.safetensors, and tokenizer.json for text). A
    /// node whose folder lacks model.safetensors fetches its shard's tensors and the small
    /// files it needs from peers when assigned, checked against the leader's digests, into
    /// the folder's `.quantpipe-cache/` (see [`crate::runtime::weights`]); it then needs
    /// `device.profile_file`, since it cannot measure a model it does not hold.
    pub model_dir: PathBuf,
    #[serde(default)]
    pub zenoh: ZenohSettings,
    #[serde(default)]
    pub device: DeviceSettings,
    #[serde(default)]
    pub quantizer: QuantizerSettings,
    #[serde(default)]
    pub leader: LeaderSettings,
    #[serde(default)]
    pub client: ClientSettings,
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// Forced faults for tests (`[faults]`), off by default.
    #[serde(default)]
    pub faults: crate::runtime::faults::FaultSettings,
    /// `[security]`: the fleet's CA, this member's certificate and key, the member list the
    /// access control is generated from, or `insecure = true` (see [`Settings::zenoh_config`]).
    #[serde(default)]
    pub security: SecuritySettings,
    /// `[emulation]`: an emulated outgoing link (off by default).
    #[serde(default)]
    pub emulation: EmulationSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ZenohSettings {
    /// `peer` (default) or `client` (through a router).
    pub mode: String,
    /// Endpoints to listen on, e.g. `tcp/127.0.0.1:7501`.
    pub listen: Vec<String>,
    /// Endpoints to connect to (other peers or a router).
    pub connect: Vec<String>,
    /// UDP multicast scouting (off by default: explicit endpoints keep tests on loopback).
    pub multicast_scouting: bool,
    /// Further zenoh settings, key path to JSON5 value (e.g.
    /// `"transport/link/rx/buffer_size" = "1048576"`).
    pub extra: BTreeMap<String, String>,
    /// How long a link may stay silent before its peer is declared gone, ms (zenoh's
    /// `transport/link/tx/lease`, 10 s by default). It bounds how long a node that vanished
    /// without closing its links (power lost, out of radio range, cable pulled) stays in the
    /// plan: its liveliness token goes when the lease expires, and the leader re-plans then.
    /// The trade-off: a link that stays silent longer than the lease while its peer is alive (a
    /// TCP retransmission timeout after a burst of loss, a starved process, a congested radio)
    /// drops that node too, and the fleet re-plans around a healthy node. Every member of a
    /// fleet should carry the same lease: each side expires the other by the lease the other
    /// announced. The lease also bounds how long a put may wait for its link to take it
    /// ([`block_wait_before_close_us`]), so links must carry a message (two in flight per link)
    /// within a lease.
    pub lease_ms: u64,
    /// Keep-alive messages sent per lease on a link that carries nothing else (zenoh's
    /// `transport/link/tx/keep_alive`, 4 by default): 4 with a 2 s lease sends one every
    /// 500 ms. More keep-alives tolerate more lost ones before the lease expires.
    pub keep_alive: u32,
}

/// zenoh's default lease, ms.
pub const DEFAULT_LEASE_MS: u64 = 10_000;
/// zenoh's default number of keep-alives per lease.
pub const DEFAULT_KEEP_ALIVE: u32 = 4;

/// How long a blocked put may wait for its link to take it before zenoh gives the message up and
/// closes the transport, µs: one lease (zenoh's `wait_before_close`, 5 s by default; a
/// `zenoh.extra` entry overrides it). A link that has not taken a message a lease after it
/// began to wait is as good as gone, as a link silent for a lease is. A longer wait stalls the
/// whole node when the peer does go:
/// when the lease closes that transport, zenoh 1.10 drains its queue under the lock the blocked
/// put holds, on the session's one transmit thread, so every other link of the node (its
/// keep-alives, its answers, its data to the next stage) waits until the put gives up.
pub fn block_wait_before_close_us(lease_ms: u64) -> u64 {
    lease_ms.saturating_mul(1000)
}

/// Batches of data-priority messages zenoh queues per link (its maximum; the default is 2). A
/// 24 MB activation is ~370 batches of 64 KB: with 2 in the queue the putting thread parks and
/// the link's tx task wakes for nearly every batch, and the short stage of the 3-stage
/// `bench pipeline` spent a third more CPU outside its forward passes. 16 batches are 1 MiB.
pub const DATA_QUEUE_BATCHES: usize = 16;

impl ZenohSettings {
    /// A peer that listens on `listen` and connects to `connect`, multicast scouting off.
    pub fn peer(listen: Vec<String>, connect: Vec<String>) -> Self {
        ZenohSettings {
            listen,
            connect,
            ..ZenohSettings::default()
        }
    }

    /// The zenoh configuration these settings describe: the one place where quantpipe builds a
    /// `zenoh::Config`, for nodes, clients, launchers and tests alike.
    pub fn config(&self) -> Result<zenoh::Config> {
        let mut c = zenoh::Config::default();
        let set = |c: &mut zenoh::Config, k: &str, v: String| {
            c.insert_json5(k, &v)
                .map_err(|e| anyhow::anyhow!("zenoh setting {k} = {v}: {e}"))
        };
        set(&mut c, "mode", serde_json::to_string(&self.mode)?)?;
        set(
            &mut c,
            "listen/endpoints",
            serde_json::to_string(&self.listen)?,
        )?;
        set(
            &mut c,
            "connect/endpoints",
            serde_json::to_string(&self.connect)?,
        )?;
        set(
            &mut c,
            "scouting/multicast/enabled",
            self.multicast_scouting.to_string(),
        )?;
        set(
            &mut c,
            "transport/link/tx/queue/size/data",
            DATA_QUEUE_BATCHES.to_string(),
        )?;
        self.check_lease()?;
        set(&mut c, "transport/link/tx/lease", self.lease_ms.to_string())?;
        // Back-pressure is the design: a stage behind a slow link blocks for as long as the link
        // needs, up to a lease (see `block_wait_before_close_us`).
        set(
            &mut c,
            "transport/link/tx/queue/congestion_control/block/wait_before_close",
            block_wait_before_close_us(self.lease_ms).to_string(),
        )?;
        set(
            &mut c,
            "transport/link/tx/keep_alive",
            self.keep_alive.to_string(),
        )?;
        for (k, v) in &self.extra {
            set(&mut c, k, v.clone())?;
        }
        Ok(c)
    }

    /// A lease of zero expires every link at once; zero keep-alives let every lease expire.
    fn check_lease(&self) -> Result<()> {
        if self.lease_ms == 0 {
            bail!("zenoh.lease_ms = 0: the lease must be at least 1 ms (zenoh's default is {DEFAULT_LEASE_MS})");
        }
        if self.keep_alive == 0 {
            bail!("zenoh.keep_alive = 0: at least one keep-alive per lease is needed (zenoh's default is {DEFAULT_KEEP_ALIVE})");
        }
        Ok(())
    }
}

impl Default for ZenohSettings {
    fn default() -> Self {
        ZenohSettings {
            mode: "peer".into(),
            listen: Vec::new(),
            connect: Vec::new(),
            multicast_scouting: false,
            extra: BTreeMap::new(),
            lease_ms: DEFAULT_LEASE_MS,
            keep_alive: DEFAULT_KEEP_ALIVE,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceSettings {
    /// Profile key in the planner (default: the node's name).
    pub device_type: Option<String>,
    /// libtorch intra-op threads.
    pub threads: i32,
    /// Emulated slowdown factor (>= 1): every forward pass is padded to `slowdown x` the node's
    /// profiled time for its units (see `runtime::emulation`). Emulation, for fleets of identical
    /// hosts.
    pub slowdown: f64,
    /// Memory offered to the model, MiB.
    pub mem_mb: f64,
    /// Nominal link bandwidth, Mbit/s.
    pub bw_mbps: f64,
    /// A profile written by `quantpipe profile --json`; measured at start when absent.
    pub profile_file: Option<PathBuf>,
    /// Microbatch size of the measured profile.
    pub profile_ubatch: usize,
    pub profile_repeats: usize,
}

impl Default for DeviceSettings {
    fn default() -> Self {
        DeviceSettings {
            device_type: None,
            threads: 1,
            slowdown: 1.0,
            mem_mb: 4096.0,
            bw_mbps: 1000.0,
            profile_file: None,
            profile_ubatch: 8,
            profile_repeats: 3,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct QuantizerSettings {
    /// Clipping of quantized outputs: `naive`, `aciq` or `ds-aciq`.
    pub clip: String,
    /// Bitwidth policy of this node's outgoing link: `fixed` (the plan's bitwidth), `heuristic`
    /// or `controller` (adapt to the measured bandwidth, at most the plan's bitwidth).
    pub policy: String,
    /// Lowest bitwidth an adaptive policy may send at (the accuracy budget).
    pub min_bits: u8,
    /// Items/s the link must carry; 0 takes the plan's predicted throughput.
    pub target_items_per_s: f64,
    /// Measurement window of the link's bandwidth, seconds.
    pub window_s: f64,
    /// Bytes of the filler message sent on an idle outgoing link each window so that its
    /// estimate stays current (0: no active probes).
    pub probe_bytes: usize,
}

impl Default for QuantizerSettings {
    fn default() -> Self {
        QuantizerSettings {
            clip: "aciq".into(),
            policy: "fixed".into(),
            min_bits: 2,
            target_items_per_s: 0.0,
            window_s: 1.0,
            probe_bytes: 32 * 1024,
        }
    }
}

impl QuantizerSettings {
    pub fn validate(&self) -> Result<()> {
        self.policy_kind()?;
        quantpipe_messages::Bits::new(self.min_bits)
            .map_err(|e| anyhow::anyhow!("quantizer.min_bits: {e}"))?;
        if !(self.target_items_per_s >= 0.0 && self.target_items_per_s.is_finite()) {
            bail!(
                "quantizer.target_items_per_s must be >= 0 (0: the plan's), got {}",
                self.target_items_per_s
            );
        }
        if !(self.window_s > 0.0 && self.window_s.is_finite()) {
            bail!("quantizer.window_s must be > 0, got {}", self.window_s);
        }
        Ok(())
    }

    pub fn policy_kind(&self) -> Result<quantpipe_adaptive::policy::PolicyKind> {
        self.policy
            .parse()
            .map_err(|e| anyhow::anyhow!("quantizer.policy: {e}"))
    }

    /// The clipping method `clip` names (`naive`, `aciq`, `ds-aciq`).
    pub fn clip_method(&self) -> Result<quantpipe_messages::clipping::ClipMethod> {
        self.clip
            .parse()
            .map_err(|e| anyhow::anyhow!("quantizer.clip: {e}"))
    }
}

/// A stage of a plan forced in the leader's settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ForcedStage {
    pub node: String,
    /// First and last unit, 1-based inclusive.
    pub units: [usize; 2],
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LeaderSettings {
    /// Nodes the leader waits for before planning.
    pub expected: Vec<String>,
    /// How long to wait for them; the leader plans with whoever is alive after this.
    pub wait_s: f64,
    /// Microbatch size of the plan (every node must profile at this size).
    pub ubatch: usize,
    /// Bitwidth of every cut (32 = raw f32).
    pub bits: u8,
    /// A fixed plan instead of the planner's (tests, and cuts at chosen positions).
    pub stages: Vec<ForcedStage>,
    /// How long a node may take to load its shard.
    pub assign_timeout_s: f64,
    /// A device joining after the first plan is taken in (a re-plan) only when the plan with it
    /// predicts at least this fraction more throughput; a stage's node leaving always re-plans.
    pub replan_min_gain: f64,
    /// Flap damping of re-joins ([`crate::runtime::planning::flap_damping`]): a node that left
    /// is planned again only once its token has stayed up for this long, s (0: at once).
    pub rejoin_hold_s: f64,
    /// Each further departure within `rejoin_memory_s` multiplies the hold by this.
    pub rejoin_hold_factor: f64,
    /// The longest hold, s.
    pub rejoin_hold_max_s: f64,
    /// How long a departure counts toward the hold, s.
    pub rejoin_memory_s: f64,
    /// A leader that lost every stage of its plan takes itself for cut off and keeps the plan
    /// (the stages still run it) until it hears them all again, for at most this long, s; past
    /// it, it plans over the stages it hears ([`crate::runtime::planning::partition`]).
    pub partition_hold_s: f64,
}

impl LeaderSettings {
    /// How re-joins are damped.
    pub fn rejoin_damping(&self) -> crate::runtime::planning::flap_damping::DampingRule {
        crate::runtime::planning::flap_damping::DampingRule {
            hold_s: self.rejoin_hold_s,
            factor: self.rejoin_hold_factor,
            max_hold_s: self.rejoin_hold_max_s,
            memory_s: self.rejoin_memory_s,
        }
    }

    /// The longest hold on a plan while cut off from its stages.
    pub fn partition_hold(&self) -> Duration {
        Duration::try_from_secs_f64(self.partition_hold_s).unwrap_or_default()
    }
}

impl Default for LeaderSettings {
    fn default() -> Self {
        const REJOIN: crate::runtime::planning::flap_damping::DampingRule =
            crate::runtime::planning::flap_damping::DampingRule::DEFAULT;
        LeaderSettings {
            expected: Vec::new(),
            wait_s: 60.0,
            ubatch: 8,
            bits: 32,
            stages: Vec::new(),
            assign_timeout_s: 120.0,
            replan_min_gain: 0.1,
            rejoin_hold_s: REJOIN.hold_s,
            rejoin_hold_factor: REJOIN.factor,
            rejoin_hold_max_s: REJOIN.max_hold_s,
            rejoin_memory_s: REJOIN.memory_s,
            partition_hold_s: 30.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientSettings {
    /// Microbatches in flight at once (back-pressure: the client waits for a result beyond this).
    pub window: usize,
    /// Maximum tokens per text item.
    pub max_len: usize,
    /// How long to wait for the leader's plan.
    pub plan_wait_s: f64,
    /// A run fails when no result arrives for this long.
    pub result_timeout_s: f64,
    /// With no result for this long the client asks the leader for its plan, in case it missed
    /// the announcement of a new epoch.
    pub stall_s: f64,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            window: 4,
            max_len: 128,
            plan_wait_s: 120.0,
            result_timeout_s: 120.0,
            stall_s: 5.0,
        }
    }
}

/// Per-window metrics of a node's stage (see [`crate::runtime::metrics`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsSettings {
    /// File the rows are appended to: `.csv` (with a header) or `.jsonl` (one JSON object per
    /// line). No file, no metrics.
    pub file: Option<PathBuf>,
    /// Window length, seconds.
    pub window_s: f64,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            file: None,
            window_s: 1.0,
        }
    }
}

/// Emulation of a slower network on one host (`[emulation]`). The emulated device speed is
/// `device.slowdown`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EmulationSettings {
    /// A bandwidth trace (`at_s, mbit` lines, see `quantpipe_adaptive::trace`) this node's
    /// outgoing data follows: each activation (and result, and probe) is held until it would
    /// have crossed a link at the trace's rate, so the link's measured bandwidth and the
    /// adaptive policies see the trace without shaping the host's network. The trace's clock
    /// starts at the node's first data message. Emulation: no packet is delayed by the network.
    pub link_trace: Option<PathBuf>,
}

impl Settings {
    /// Settings of `name` in `fleet` with every section at its defaults (no endpoints).
    pub fn new(fleet: &str, name: &str, role: Role, model_dir: &Path) -> Self {
        Settings {
            fleet: fleet.to_owned(),
            name: name.to_owned(),
            role,
            model_dir: model_dir.to_path_buf(),
            zenoh: ZenohSettings::default(),
            device: DeviceSettings::default(),
            quantizer: QuantizerSettings::default(),
            leader: LeaderSettings::default(),
            client: ClientSettings::default(),
            metrics: MetricsSettings::default(),
            faults: Default::default(),
            security: SecuritySettings::default(),
            emulation: EmulationSettings::default(),
        }
    }

    /// Reads `path` (TOML) and applies `QUANTPIPE_*` environment overrides.
    pub fn load(path: &Path) -> Result<Settings> {
        if !path.exists() {
            bail!("config file {} does not exist", path.display());
        }
        let built = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("QUANTPIPE")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("zenoh.listen")
                    .with_list_parse_key("zenoh.connect")
                    .with_list_parse_key("leader.expected"),
            )
            .build()
            .with_context(|| format!("reading config {}", path.display()))?;
        let mut s: Settings = built
            .try_deserialize()
            .with_context(|| format!("config {}", path.display()))?;
        if s.model_dir.is_relative() {
            // Relative model folders are relative to the config file's folder when they exist
            // there, else to the working directory.
            if let Some(parent) = path.parent() {
                let candidate = parent.join(&s.model_dir);
                if candidate.exists() {
                    s.model_dir = candidate;
                }
            }
        }
        // The certificate, key, CA and members paths resolve as the model folder does.
        if let Some(parent) = path.parent() {
            s.security.resolve_relative_to(parent);
            if let Some(trace) = &mut s.emulation.link_trace {
                if trace.is_relative() && parent.join(&*trace).exists() {
                    *trace = parent.join(&*trace);
                }
            }
        }
        s.validate()?;
        Ok(s)
    }

    pub fn validate(&self) -> Result<()> {
        let ok_name = |n: &str| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        };
        if !ok_name(&self.fleet) {
            bail!("fleet `{}`: use letters, digits, `-`, `_`, `.`", self.fleet);
        }
        if !ok_name(&self.name) {
            bail!("name `{}`: use letters, digits, `-`, `_`, `.`", self.name);
        }
        if !(self.device.slowdown >= 1.0 && self.device.slowdown.is_finite()) {
            bail!("device.slowdown must be >= 1, got {}", self.device.slowdown);
        }
        if self.device.threads < 1 {
            bail!("device.threads must be >= 1, got {}", self.device.threads);
        }
        if self.client.window == 0 {
            bail!("client.window must be >= 1");
        }
        let b = self.leader.bits;
        if !((1..=16).contains(&b) || b == 32) {
            bail!("leader.bits must be 1..=16 or 32, got {b}");
        }
        if !(self.leader.replan_min_gain >= 0.0 && self.leader.replan_min_gain.is_finite()) {
            bail!(
                "leader.replan_min_gain must be >= 0, got {}",
                self.leader.replan_min_gain
            );
        }
        self.leader
            .rejoin_damping()
            .check()
            .map_err(anyhow::Error::msg)?;
        let hold = self.leader.partition_hold_s;
        if !(hold >= 0.0 && hold.is_finite()) {
            bail!("leader.partition_hold_s must be a number of seconds >= 0, got {hold}");
        }
        if !(self.client.stall_s > 0.0 && self.client.stall_s.is_finite()) {
            bail!("client.stall_s must be > 0, got {}", self.client.stall_s);
        }
        if self.leader.ubatch == 0 {
            bail!("leader.ubatch must be >= 1");
        }
        self.quantizer.clip_method()?;
        self.quantizer.validate()?;
        if !(self.metrics.window_s > 0.0 && self.metrics.window_s.is_finite()) {
            bail!(
                "metrics.window_s must be > 0, got {}",
                self.metrics.window_s
            );
        }
        if let Some(f) = &self.metrics.file {
            crate::runtime::metrics::MetricsFormat::of(f)?;
        }
        if let Some(trace) = &self.emulation.link_trace {
            quantpipe_adaptive::trace::Trace::read(trace)
                .map_err(|e| anyhow::anyhow!("emulation.link_trace: {e}"))?;
        }
        Ok(())
    }

    /// The zenoh configuration these settings describe (see [`ZenohSettings::config`]), secured
    /// by `[security]`: with `ca`, TLS with mutual authentication on every link (all endpoints
    /// `tls/...`), links restricted to TLS, and the access control generated from the members
    /// file, after checking that the certificate names this member and the CA signed it.
    /// Without `ca`, an endpoint beyond loopback is refused unless `insecure = true`, which is
    /// warned about here, at every start.
    pub fn zenoh_config(&self) -> Result<zenoh::Config> {
        let secure = self
            .security
            .secure_zenoh(
                &self.fleet,
                &self.name,
                &self.zenoh.listen,
                &self.zenoh.connect,
            )
            .with_context(|| format!("[security] of `{}`", self.name))?;
        if let Some(w) = &secure.warning {
            tracing::warn!("{w}");
        }
        if let Some(member) = &secure.member {
            let plans = self.role.is_configured_leader() || self.role == Role::Candidate;
            if plans && !member.role.may_lead() {
                bail!(
                    "`{}` has role {:?} (it may plan) but is enrolled as {}: the access control \
                     denies its plan and assignments; enroll it with --role leader",
                    self.name,
                    self.role,
                    member.role
                );
            }
        }
        let mut c = self.zenoh.config()?;
        for (k, v) in &secure.entries {
            c.insert_json5(k, &v.to_string())
                .map_err(|e| anyhow::anyhow!("zenoh setting {k}: {e}"))?;
        }
        Ok(c)
    }

    pub fn device_type(&self) -> String {
        self.device
            .device_type
            .clone()
            .unwrap_or_else(|| self.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_toml_and_rejects_bad_values() {
        let dir = std::env::temp_dir().join(format!("qp-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.toml");
        std::fs::write(
            &path,
            r#"
fleet = "f1"
name = "a"
model_dir = "m"
[zenoh]
listen = ["tcp/127.0.0.1:7001"]
[device]
threads = 2
slowdown = 3.0
[leader]
stages = [{ node = "a", units = [1, 24] }]
"#,
        )
        .unwrap();
        let s = Settings::load(&path).unwrap();
        assert_eq!(s.device.threads, 2);
        assert_eq!(s.device.slowdown, 3.0);
        assert_eq!(s.zenoh.listen, vec!["tcp/127.0.0.1:7001".to_string()]);
        assert_eq!(s.leader.stages[0].units, [1, 24]);
        assert_eq!(s.role, Role::Device);
        s.zenoh_config().unwrap();

        std::fs::write(
            &path,
            "fleet = \"f\"\nname = \"a\"\nrole = \"candidate\"\nmodel_dir = \"m\"\n",
        )
        .unwrap();
        let s = Settings::load(&path).unwrap();
        assert_eq!(s.role, Role::Candidate);
        assert!(s.role.hosts_stage() && !s.role.is_configured_leader());

        std::fs::write(&path, "fleet = \"f/x\"\nname = \"a\"\nmodel_dir = \"m\"\n").unwrap();
        let err = Settings::load(&path).unwrap_err().to_string();
        assert!(err.contains("fleet `f/x`"), "{err}");
        std::fs::write(
            &path,
            "fleet = \"f\"\nname = \"a\"\nmodel_dir = \"m\"\n[device]\nslowdown = 0.5\n",
        )
        .unwrap();
        let err = Settings::load(&path).unwrap_err().to_string();
        assert!(err.contains("slowdown"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_candidate_example_is_a_candidate_that_can_lead_three() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/fleet/candidate.toml");
        let s = Settings::load(&path).unwrap();
        assert_eq!(s.role, Role::Candidate);
        assert_eq!(s.leader.expected, ["cand-a", "cand-b", "cand-c"]);
        assert_eq!(s.leader.ubatch, s.device.profile_ubatch);
        s.zenoh_config().unwrap();
    }

    #[test]
    fn the_leaders_rejoin_damping_is_read_and_bad_values_are_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        let base = "fleet = \"f\"\nname = \"a\"\nmodel_dir = \"m\"\n[leader]\n";
        std::fs::write(&path, base).unwrap();
        let rule = Settings::load(&path).unwrap().leader.rejoin_damping();
        assert_eq!(rule, Default::default());
        std::fs::write(
            &path,
            format!("{base}rejoin_hold_s = 2.0\nrejoin_hold_factor = 3.0\nrejoin_hold_max_s = 20.0\nrejoin_memory_s = 60.0\n"),
        )
        .unwrap();
        let rule = Settings::load(&path).unwrap().leader.rejoin_damping();
        assert_eq!(
            (rule.hold_s, rule.factor, rule.max_hold_s, rule.memory_s),
            (2.0, 3.0, 20.0, 60.0)
        );
        for (line, named) in [
            ("rejoin_hold_s = -1.0", "leader.rejoin_hold_s"),
            ("rejoin_hold_s = nan", "leader.rejoin_hold_s"),
            ("rejoin_hold_factor = 0.5", "leader.rejoin_hold_factor"),
            ("rejoin_hold_max_s = 1.0", "leader.rejoin_hold_max_s"),
            ("rejoin_memory_s = 0.0", "leader.rejoin_memory_s"),
        ] {
            std::fs::write(&path, format!("{base}{line}\n")).unwrap();
            let err = format!("{:#}", Settings::load(&path).unwrap_err());
            assert!(err.contains(named), "{line}: {err}");
        }
    }

    #[test]
    fn the_leaders_partition_hold_is_read_and_a_bad_one_is_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        let base = "fleet = \"f\"\nname = \"a\"\nmodel_dir = \"m\"\n[leader]\n";
        std::fs::write(&path, base).unwrap();
        let leader = Settings::load(&path).unwrap().leader;
        assert_eq!(leader.partition_hold(), Duration::from_secs(30));
        std::fs::write(&path, format!("{base}partition_hold_s = 12.5\n")).unwrap();
        let leader = Settings::load(&path).unwrap().leader;
        assert_eq!(leader.partition_hold(), Duration::from_millis(12_500));
        for bad in ["-1.0", "nan", "inf"] {
            std::fs::write(&path, format!("{base}partition_hold_s = {bad}\n")).unwrap();
            let err = format!("{:#}", Settings::load(&path).unwrap_err());
            assert!(err.contains("leader.partition_hold_s"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_link_trace_is_read_beside_the_config_and_a_bad_one_is_refused_at_load() {
        let dir = std::env::temp_dir().join(format!("qp-config-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.toml");
        let node = "fleet = \"f\"\nname = \"a\"\nmodel_dir = \"m\"\n[emulation]\nlink_trace = \"step.csv\"\n";
        std::fs::write(&path, node).unwrap();
        std::fs::write(dir.join("step.csv"), "0, 100\n10, 2\n").unwrap();
        let s = Settings::load(&path).unwrap();
        assert_eq!(s.emulation.link_trace, Some(dir.join("step.csv")));
        assert!(Settings::new("f", "a", Role::Device, Path::new("m"))
            .emulation
            .link_trace
            .is_none());

        std::fs::write(dir.join("step.csv"), "0, 100\n10, fast\n").unwrap();
        let err = format!("{:#}", Settings::load(&path).unwrap_err());
        assert!(
            err.contains("emulation.link_trace") && err.contains("line 2"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn metrics_section_reads_file_and_window_with_env_override() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        let base = "fleet = \"f\"\nname = \"a\"\nmodel_dir = \"m\"\n";
        std::fs::write(&path, base).unwrap();
        let s = Settings::load(&path).unwrap();
        assert_eq!((s.metrics.file.as_deref(), s.metrics.window_s), (None, 1.0));

        std::fs::write(&path, format!("{base}[metrics]\nfile = \"m.csv\"\n")).unwrap();
        // Only this test sets this variable; other tests' settings ignore the window.
        std::env::set_var("QUANTPIPE_METRICS__WINDOW_S", "2.5");
        let s = Settings::load(&path);
        std::env::remove_var("QUANTPIPE_METRICS__WINDOW_S");
        let s = s.unwrap();
        assert_eq!(s.metrics.file, Some(PathBuf::from("m.csv")));
        assert_eq!(s.metrics.window_s, 2.5);

        std::fs::write(&path, format!("{base}[metrics]\nfile = \"m.txt\"\n")).unwrap();
        let err = format!("{:#}", Settings::load(&path).unwrap_err());
        assert!(err.contains("m.txt"), "{err}");
        std::fs::write(&path, format!("{base}[metrics]\nwindow_s = 0\n")).unwrap();
        let err = format!("{:#}", Settings::load(&path).unwrap_err());
        assert!(err.contains("metrics.window_s"), "{err}");
    }

    #[test]
    fn every_example_in_config_fleet_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/fleet");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Settings::load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                n += 1;
            }
        }
        assert!(n >= 3, "examples in {}", dir.display());
    }

    #[test]
    fn quantizer_section_rejects_unknown_policies_and_bad_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.toml");
        let base = "fleet = \"f\"\nname = \"n\"\nmodel_dir = \"m\"\n[quantizer]\n";
        for (section, needle) in [
            ("policy = \"greedy\"", "unknown policy `greedy`"),
            ("min_bits = 0", "quantizer.min_bits"),
            ("target_items_per_s = -1", "quantizer.target_items_per_s"),
            ("window_s = 0", "quantizer.window_s"),
        ] {
            std::fs::write(&path, format!("{base}{section}\n")).unwrap();
            let err = format!("{:#}", Settings::load(&path).unwrap_err());
            assert!(err.contains(needle), "{section}: {err}");
        }
        std::fs::write(
            &path,
            format!("{base}policy = \"heuristic\"\nmin_bits = 4\n"),
        )
        .unwrap();
        let s = Settings::load(&path).unwrap();
        assert_eq!(
            (s.quantizer.policy.as_str(), s.quantizer.min_bits),
            ("heuristic", 4)
        );
    }

    #[test]
    fn blocked_puts_wait_one_lease_before_zenoh_closes_the_transport_unless_overridden() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.toml");
        let key = "transport/link/tx/queue/congestion_control/block/wait_before_close";
        let base = "fleet = \"f\"\nname = \"n\"\nmodel_dir = \"m\"\n";
        std::fs::write(&path, base).unwrap();
        let c = Settings::load(&path).unwrap().zenoh_config().unwrap();
        assert_eq!(c.get_json(key).unwrap(), "10000000");
        std::fs::write(&path, format!("{base}[zenoh]\nlease_ms = 3000\n")).unwrap();
        let c = Settings::load(&path).unwrap().zenoh_config().unwrap();
        assert_eq!(c.get_json(key).unwrap(), "3000000");
        std::fs::write(
            &path,
            format!("{base}[zenoh.extra]\n\"{key}\" = \"1000\"\n"),
        )
        .unwrap();
        let c = Settings::load(&path).unwrap().zenoh_config().unwrap();
        assert_eq!(c.get_json(key).unwrap(), "1000");
    }

    #[test]
    fn a_peer_connects_to_its_endpoints_without_scouting() {
        let z = ZenohSettings::peer(vec![], vec!["tcp/127.0.0.1:7447".into()]);
        let c = z.config().unwrap();
        assert_eq!(
            c.get_json("connect/endpoints").unwrap(),
            "[\"tcp/127.0.0.1:7447\"]"
        );
        assert_eq!(c.get_json("scouting/multicast/enabled").unwrap(), "false");
        assert_eq!(c.get_json("mode").unwrap(), "\"peer\"");
    }

    #[test]
    fn data_messages_queue_zenohs_largest_number_of_batches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.toml");
        std::fs::write(&path, "fleet = \"f\"\nname = \"n\"\nmodel_dir = \"m\"\n").unwrap();
        let c = Settings::load(&path).unwrap().zenoh_config().unwrap();
        assert_eq!(
            c.get_json("transport/link/tx/queue/size/data").unwrap(),
            DATA_QUEUE_BATCHES.to_string()
        );
    }

    #[test]
    fn the_fleets_lease_and_keep_alive_reach_the_zenoh_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.toml");
        let base = "fleet = \"f\"\nname = \"n\"\nmodel_dir = \"m\"\n";
        std::fs::write(&path, base).unwrap();
        let c = Settings::load(&path).unwrap().zenoh_config().unwrap();
        assert_eq!(c.get_json("transport/link/tx/lease").unwrap(), "10000");
        assert_eq!(c.get_json("transport/link/tx/keep_alive").unwrap(), "4");
        std::fs::write(
            &path,
            format!("{base}[zenoh]\nlease_ms = 2000\nkeep_alive = 5\n"),
        )
        .unwrap();
        let c = Settings::load(&path).unwrap().zenoh_config().unwrap();
        assert_eq!(c.get_json("transport/link/tx/lease").unwrap(), "2000");
        assert_eq!(c.get_json("transport/link/tx/keep_alive").unwrap(), "5");
    }

    #[test]
    fn a_zero_lease_or_no_keep_alive_is_refused_naming_the_setting() {
        let lease = ZenohSettings {
            lease_ms: 0,
            ..ZenohSettings::default()
        };
        let e = lease.config().unwrap_err().to_string();
        assert!(e.contains("zenoh.lease_ms = 0"), "{e}");
        let keep_alive = ZenohSettings {
            keep_alive: 0,
            ..ZenohSettings::default()
        };
        let e = keep_alive.config().unwrap_err().to_string();
        assert!(e.contains("zenoh.keep_alive = 0"), "{e}");
    }
    #[test]
    fn a_node_listening_beyond_loopback_without_a_ca_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.toml");
        let base = "fleet = \"f\"\nname = \"n\"\nmodel_dir = \"m\"\n\
                    [zenoh]\nlisten = [\"tcp/0.0.0.0:7447\"]\n";
        std::fs::write(&path, base).unwrap();
        let err = format!(
            "{:#}",
            Settings::load(&path).unwrap().zenoh_config().unwrap_err()
        );
        assert!(
            err.contains("tcp/0.0.0.0:7447") && err.contains("insecure = true"),
            "{err}"
        );
        std::fs::write(&path, format!("{base}[security]\ninsecure = true\n")).unwrap();
        let c = Settings::load(&path).unwrap().zenoh_config().unwrap();
        assert_eq!(c.get_json("access_control/enabled").unwrap(), "false");
    }

    #[test]
    fn a_member_with_a_ca_gets_tls_links_and_the_generated_access_control() {
        use quantpipe_security::{throwaway_fleet, MemberRole};
        let dir = tempfile::tempdir().unwrap();
        let fleet = throwaway_fleet(
            &dir.path().join("ca"),
            "f",
            &[("n", MemberRole::Leader), ("c", MemberRole::Client)],
        )
        .unwrap();
        let path = dir.path().join("n.toml");
        // Paths relative to the settings file, as `model_dir` is.
        let security = "[security]\nca = \"ca/ca.pem\"\ncertificate = \"ca/members/n.pem\"\n\
                        private_key = \"ca/members/n.key\"\nmembers = \"ca/members.toml\"\n";
        let base = "fleet = \"f\"\nname = \"n\"\nmodel_dir = \"m\"\n";
        std::fs::write(
            &path,
            format!("{base}[zenoh]\nlisten = [\"tls/0.0.0.0:7447\"]\n{security}"),
        )
        .unwrap();
        let s = Settings::load(&path).unwrap();
        assert_eq!(s.security, fleet.security("n").unwrap());
        let c = s.zenoh_config().unwrap();
        assert_eq!(c.get_json("transport/link/protocols").unwrap(), "[\"tls\"]");
        assert_eq!(
            c.get_json("transport/link/tls/enable_mtls").unwrap(),
            "true"
        );
        assert_eq!(c.get_json("access_control/enabled").unwrap(), "true");
        assert_eq!(
            c.get_json("access_control/default_permission").unwrap(),
            "\"deny\""
        );
        std::fs::write(
            &path,
            format!("{base}[zenoh]\nconnect = [\"tcp/127.0.0.1:7447\"]\n{security}"),
        )
        .unwrap();
        let err = format!(
            "{:#}",
            Settings::load(&path).unwrap().zenoh_config().unwrap_err()
        );
        assert!(
            err.contains("`tcp/127.0.0.1:7447`") && err.contains("tls/"),
            "{err}"
        );
    }

    #[test]
    fn a_leader_enrolled_as_a_plain_node_refuses_to_start() {
        use quantpipe_security::{throwaway_fleet, MemberRole};
        let dir = tempfile::tempdir().unwrap();
        let fleet = throwaway_fleet(dir.path(), "f", &[("n", MemberRole::Node)]).unwrap();
        let mut s = Settings::new("f", "n", Role::Candidate, Path::new("m"));
        s.security = fleet.security("n").unwrap();
        let err = format!("{:#}", s.zenoh_config().unwrap_err());
        assert!(err.contains("--role leader"), "{err}");
        s.role = Role::Device;
        s.zenoh_config().unwrap();
    }
}
