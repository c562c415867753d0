//! The PlannerActor (hosted by the leader): waits for the expected nodes (liveliness tokens),
//! gathers their device info, plans with [`quantpipe_planner::plan`] (or takes the plan forced in
//! the leader's settings), sends each stage its [`Assignment`] and waits for every node to
//! confirm its shard is loaded, then answers the plan on `qp/<fleet>/plan` and announces it on
//! `qp/<fleet>/plan/changed`.
//!
//! Re-planning: the actor watches the fleet's liveliness tokens. When a node holding a stage
//! leaves, it plans again over the alive devices (the forced plan of the settings when all its
//! nodes are still alive, else the planner's) at a larger epoch, assigns, and announces. When a
//! device joins after the first plan, it plans with it and adopts that plan only when it predicts
//! at least `leader.replan_min_gain` (default 10%) more throughput than the current one
//! ([`membership::adopt_on_join`]): a re-plan reloads shards and makes clients resend what is in
//! flight, so a device that would not speed the pipeline up stays idle; a forced plan is kept on a
//! join. Clients move to the new epoch and resend (see [`crate::runtime::inflight`]).
//!
//! Taking over: while it hosts the planner, a node holds the liveliness token
//! `qp/<fleet>/leader/<name>` (candidates elect a leader only when none is held, see
//! [`membership::elected`]). Before its first plan the actor asks every alive node for its stats:
//! when stages already run a plan (a candidate taking over from a leader that died, or a leader
//! restarting), the first plan gets an epoch above the highest one running, so the stages accept
//! it, and it is made at once over the alive nodes instead of waiting for `leader.expected`.
//!
//! Measured bandwidth: every plan made while stages run (a re-plan, a take-over) uses each node's
//! measured outgoing bandwidth, the last window's estimate of its BandwidthProbeActor read from
//! its stats, in place of the nominal `device.bw_mbps` it announced
//! ([`with_measured_bandwidth`]): a link that degraded since start-up is planned as it is now.
//!
//! It runs on a SyncArbiter thread: gathering and assigning wait on the network.

use crate::runtime::config::{ForcedStage, LeaderSettings};
use crate::runtime::membership;
use crate::runtime::transport::first_answer;
use crate::runtime::wire::{
    self, AssignAck, Assignment, DeviceInfo, Keys, NextHop, NodeStats, PlanInfo, PlanStage,
    Release, WIRE_VERSION,
};
use actix::prelude::*;
use anyhow::{anyhow, bail, Context as _, Result};
use quantpipe_planner::{self as planner, BitPolicy, Device, Fleet, ModelProfile, PlanConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::Subscriber;
use zenoh::qos::{CongestionControl, Priority};
use zenoh::query::Queryable;
use zenoh::{Session, Wait};

/// The planner's inputs built from the nodes' device info.
pub fn planner_inputs(
    infos: &[DeviceInfo],
    ubatch: usize,
    bits: u8,
) -> Result<(ModelProfile, Fleet, PlanConfig)> {
    let first = infos
        .first()
        .ok_or_else(|| anyhow!("no device to plan for"))?;
    let p = &first.profile;
    for i in infos {
        if i.profile.model != p.model || i.profile.time_s.len() != p.time_s.len() {
            bail!(
                "nodes disagree on the model: {} has `{}` ({} units), {} has `{}` ({} units)",
                first.name,
                p.model,
                p.time_s.len(),
                i.name,
                i.profile.model,
                i.profile.time_s.len()
            );
        }
        if i.profile.ubatch != ubatch {
            bail!(
                "node {} profiled microbatches of {}, the plan uses {ubatch}: set its \
                 device.profile_ubatch",
                i.name,
                i.profile.ubatch
            );
        }
    }
    let n = p.time_s.len();
    let mut compute_s = BTreeMap::new();
    for i in infos {
        // Nodes of one type share the first one's profile (the planner groups by type).
        compute_s
            .entry(i.device_type.clone())
            .or_insert_with(|| i.profile.time_s.clone());
    }
    let model = ModelProfile {
        name: p.model.clone(),
        weight_bytes: p.weight_bytes.clone(),
        cut_elements: p.output_elements[..n - 1].to_vec(),
        input_elements: p.input_elements,
        output_elements: p.output_elements[n - 1],
        compute_s,
    };
    let fleet = Fleet::new(
        infos
            .iter()
            .map(|i| Device {
                name: i.name.clone(),
                device_type: i.device_type.clone(),
                mem_bytes: i.mem_bytes,
                bw_mbps: i.bw_mbps,
            })
            .collect(),
    );
    let cfg = PlanConfig {
        ubatch,
        bits: BitPolicy::Fixed { bits },
        ..PlanConfig::default()
    };
    Ok((model, fleet, cfg))
}

/// Each node's measured outgoing bandwidth, Mbit/s: the estimate of its link to the next stage
/// in its stats (links into its own stage are what arrived, not what it sent). Nodes without a
/// measured link (no acknowledgement yet, the last stage) are absent.
pub fn measured_bandwidths(stats: &[NodeStats], keys: &Keys) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in stats {
        let incoming = s.stage.map(|k| keys.stage_in(k));
        let best = s
            .links
            .iter()
            .filter(|l| Some(&l.to) != incoming.as_ref())
            .map(|l| l.mbps)
            .filter(|m| *m > 0.0 && m.is_finite())
            .reduce(f64::max);
        if let Some(m) = best {
            out.insert(s.node.clone(), m);
        }
    }
    out
}

/// `infos` with each node's announced bandwidth replaced by its measured one, where measured.
pub fn with_measured_bandwidth(
    infos: &[DeviceInfo],
    measured: &BTreeMap<String, f64>,
) -> Vec<DeviceInfo> {
    infos
        .iter()
        .map(|i| match measured.get(&i.name) {
            Some(&m) => {
                if (m - i.bw_mbps).abs() > 0.1 * i.bw_mbps {
                    tracing::info!(
                        "planning {} at its measured {m:.1} Mbit/s (announced {:.1})",
                        i.name,
                        i.bw_mbps
                    );
                }
                DeviceInfo {
                    bw_mbps: m,
                    ..i.clone()
                }
            }
            None => i.clone(),
        })
        .collect()
}

/// The plan the planner picks for these nodes.
pub fn plan_stages(infos: &[DeviceInfo], ubatch: usize, bits: u8) -> Result<(Vec<PlanStage>, f64)> {
    let (model, fleet, cfg) = planner_inputs(infos, ubatch, bits)?;
    let plan = planner::plan(&model, &fleet, &cfg).context("planning")?;
    let stages = plan
        .stages
        .iter()
        .map(|s| PlanStage {
            node: s.device.clone(),
            l: s.l,
            r: s.r,
            out_bits: s.out_bits.unwrap_or(32),
            compute_s: s.compute_s,
            transfer_s: s.transfer_s,
        })
        .collect();
    Ok((stages, plan.throughput_items_per_s))
}

/// A forced plan, checked: contiguous from unit 1 to `units`, on known nodes, each used once.
pub fn forced_stages(
    forced: &[ForcedStage],
    units: usize,
    nodes: &BTreeSet<String>,
    bits: u8,
) -> Result<Vec<PlanStage>> {
    let mut next = 1;
    let mut used = BTreeSet::new();
    for s in forced {
        let [l, r] = s.units;
        if l != next || r < l {
            bail!(
                "forced plan: stage on {} covers units {l}..{r}, expected it to start at unit {next}",
                s.node
            );
        }
        if !nodes.contains(&s.node) {
            bail!("forced plan names node {} which is not alive", s.node);
        }
        if !used.insert(&s.node) {
            bail!("forced plan uses node {} twice", s.node);
        }
        next = r + 1;
    }
    if next != units + 1 {
        bail!("forced plan covers units 1..{} of {units}", next - 1);
    }
    Ok(forced
        .iter()
        .map(|s| PlanStage {
            node: s.node.clone(),
            l: s.units[0],
            r: s.units[1],
            out_bits: bits,
            compute_s: 0.0,
            transfer_s: 0.0,
        })
        .collect())
}

/// Why a stage did not take its assignment.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The stage runs a plan of a newer epoch (it refuses older ones): plan again above it.
    Stale { node: String, running: u64 },
    /// Anything else: a bad assignment, a shard that failed to load.
    Failed { node: String, reason: String },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Stale { node, running } => {
                write!(
                    f,
                    "node {node} refused its assignment: it runs plan epoch {running}"
                )
            }
            Refusal::Failed { node, reason } => {
                write!(f, "node {node} refused its assignment: {reason}")
            }
        }
    }
}

impl std::error::Error for Refusal {}

/// What `node`'s answer to an assignment of `epoch` says: `None` when it took it. A refusal
/// naming a newer epoch than `epoch` is a stale one (the stage's ack names the epoch it runs).
pub fn refusal(node: &str, epoch: u64, ack: &AssignAck) -> Option<Refusal> {
    let reason = ack.error.clone()?;
    Some(if ack.epoch > epoch {
        Refusal::Stale {
            node: node.to_owned(),
            running: ack.epoch,
        }
    } else {
        Refusal::Failed {
            node: node.to_owned(),
            reason,
        }
    })
}

pub struct PlannerActor {
    pub session: Session,
    pub keys: Keys,
    /// The hosting node's name: its leader token says who leads.
    pub name: String,
    pub settings: LeaderSettings,
    /// `qp/<fleet>/leader/<name>`, held while this actor leads.
    token: Option<LivelinessToken>,
    /// Set when the host steps down ([`Leading::step_down`]): the actor no longer plans,
    /// answers or watches. Shared, so a first plan still waiting for nodes sees it at once.
    retired: Arc<AtomicBool>,
    plan: Option<PlanInfo>,
    /// What the plan queryable answers: the current plan's bytes.
    plan_bytes: Arc<RwLock<Vec<u8>>>,
    queryable: Option<Queryable<()>>,
    /// Liveliness subscriber: every node's token appearing or going triggers [`Reconsider`].
    watcher: Option<Subscriber<()>>,
    /// Device info of alive nodes that host a stage.
    devices: BTreeMap<String, DeviceInfo>,
    /// Alive nodes that answered no device info (a leader-only node).
    not_devices: BTreeSet<String>,
}

impl PlannerActor {
    pub fn new(session: Session, keys: Keys, name: String, settings: LeaderSettings) -> Self {
        PlannerActor {
            session,
            keys,
            name,
            settings,
            token: None,
            retired: Arc::new(AtomicBool::new(false)),
            plan: None,
            plan_bytes: Arc::new(RwLock::new(Vec::new())),
            queryable: None,
            watcher: None,
            devices: BTreeMap::new(),
            not_devices: BTreeSet::new(),
        }
    }

    /// Names of the nodes whose liveliness tokens are up.
    fn alive(&self) -> Result<BTreeSet<String>> {
        let replies = self
            .session
            .liveliness()
            .get(self.keys.nodes())
            .timeout(Duration::from_secs(2))
            .wait()
            .map_err(|e| anyhow!("liveliness query: {e}"))?;
        let prefix = format!("qp/{}/node/", self.keys.fleet);
        let mut names = BTreeSet::new();
        while let Ok(reply) = replies.recv() {
            if let Ok(sample) = reply.result() {
                if let Some(name) = sample.key_expr().as_str().strip_prefix(&prefix) {
                    names.insert(name.to_owned());
                }
            }
        }
        Ok(names)
    }

    /// The stats of the alive nodes that host a stage, from their stats queryables.
    fn stage_stats(&self, alive: &BTreeSet<String>) -> Result<Vec<NodeStats>> {
        let mut pending = Vec::new();
        for name in alive {
            let replies = self
                .session
                .get(self.keys.stats(name))
                .priority(Priority::InteractiveHigh)
                .timeout(Duration::from_secs(2))
                .wait()
                .map_err(|e| anyhow!("stats query of {name}: {e}"))?;
            pending.push(replies);
        }
        let mut stats = Vec::new();
        for replies in pending {
            // A node without a stage (a leader-only node, a client) answers nothing.
            while let Ok(reply) = replies.recv() {
                if let Ok(sample) = reply.result() {
                    match wire::from_bytes::<NodeStats>(
                        &sample.payload().to_bytes(),
                        &self.keys.fleet,
                    ) {
                        Ok(s) => stats.push(s),
                        Err(e) => tracing::warn!("ignoring a stats answer: {e}"),
                    }
                }
            }
        }
        Ok(stats)
    }

    /// The known devices, at their measured bandwidths where `stats` hold one.
    fn infos(&self, stats: &[NodeStats]) -> Vec<DeviceInfo> {
        let infos: Vec<DeviceInfo> = self.devices.values().cloned().collect();
        with_measured_bandwidth(&infos, &measured_bandwidths(stats, &self.keys))
    }

    fn device_info(&self, name: &str) -> Result<DeviceInfo> {
        let replies = self
            .session
            .get(self.keys.device(name))
            .priority(Priority::InteractiveHigh)
            .timeout(Duration::from_secs(10))
            .wait()
            .map_err(|e| anyhow!("device query: {e}"))?;
        first_answer(&replies, name, "device info", &self.keys.fleet)
    }

    /// Brings the device-info cache in line with `alive`: forgets nodes that are gone (a node
    /// coming back under the same name is asked again) and asks the new ones.
    fn learn_devices(&mut self, alive: &BTreeSet<String>) {
        self.devices.retain(|n, _| alive.contains(n));
        self.not_devices.retain(|n| alive.contains(n));
        for name in alive {
            if self.devices.contains_key(name) || self.not_devices.contains(name) {
                continue;
            }
            match self.device_info(name) {
                Ok(i) => {
                    self.devices.insert(name.clone(), i);
                }
                Err(e) => {
                    tracing::info!("{name} hosts no stage: {e:#}");
                    self.not_devices.insert(name.clone());
                }
            }
        }
    }

    fn stepped_down(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
    }

    fn make_plan(&mut self) -> Result<PlanInfo> {
        if self.stepped_down() {
            bail!("{} stepped down as leader", self.name);
        }
        let expected: BTreeSet<String> = self.settings.expected.iter().cloned().collect();
        let stats = self.stage_stats(&self.alive()?)?;
        // The highest plan epoch the stages run (0 when none runs a plan yet).
        let running = stats.iter().map(|s| s.epoch).max().unwrap_or(0);
        // Stages already run a plan: the fleet is up, so plan at once over whoever is alive.
        let wait_s = if running > 0 {
            tracing::warn!(
                "{} takes over as leader: stages run plan epoch {running}, planning now over \
                 the alive nodes",
                self.name
            );
            0.0
        } else {
            self.settings.wait_s
        };
        let deadline = Instant::now() + Duration::from_secs_f64(wait_s);
        let alive = loop {
            if self.stepped_down() {
                bail!("{} stepped down as leader", self.name);
            }
            let alive = self.alive()?;
            if !expected.is_empty() && expected.is_subset(&alive) {
                break alive;
            }
            if Instant::now() >= deadline {
                if alive.is_empty() {
                    bail!(
                        "no node of fleet {} came up within {wait_s}s",
                        self.keys.fleet
                    );
                }
                let missing: Vec<_> = expected.difference(&alive).collect();
                tracing::warn!("planning without {missing:?}: not up after {wait_s}s");
                break alive;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let candidates: BTreeSet<String> = if expected.is_empty() {
            alive
        } else {
            alive.intersection(&expected).cloned().collect()
        };
        self.learn_devices(&candidates);
        let infos = self.infos(&stats);
        let plan = self.plan_for(&infos, running)?;
        match self.assign(&plan) {
            Ok(()) => Ok(plan),
            Err(e) => {
                // A stage whose stats did not answer in time runs a newer plan than `running`:
                // its refusal names the epoch, so plan once more above it.
                let Some(Refusal::Stale { running, .. }) = e.downcast_ref::<Refusal>() else {
                    return Err(e);
                };
                tracing::warn!("{e}: planning again above epoch {running}");
                let plan = self.plan_for(&infos, *running)?;
                self.assign(&plan)?;
                Ok(plan)
            }
        }
    }

    /// A plan over `infos` at an epoch above `previous`: the forced one of the settings when
    /// every node it names is among them, else the planner's.
    fn plan_for(&self, infos: &[DeviceInfo], previous: u64) -> Result<PlanInfo> {
        let first = infos
            .first()
            .ok_or_else(|| anyhow!("no node answered its device info"))?;
        let units = first.profile.time_s.len();
        let model = first.profile.model.clone();
        let bits = self.settings.bits;
        let names: BTreeSet<String> = infos.iter().map(|i| i.name.clone()).collect();
        let forced_alive = !self.settings.stages.is_empty()
            && self.settings.stages.iter().all(|s| names.contains(&s.node));
        let (stages, predicted, source) = if forced_alive {
            (
                forced_stages(&self.settings.stages, units, &names, bits)?,
                0.0,
                "forced",
            )
        } else {
            if !self.settings.stages.is_empty() {
                tracing::warn!(
                    "a node of the forced plan is not alive: planning over {names:?} instead"
                );
            }
            let (s, p) = plan_stages(infos, self.settings.ubatch, bits)?;
            (s, p, "planner")
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1);
        Ok(PlanInfo {
            version: WIRE_VERSION,
            fleet: self.keys.fleet.clone(),
            epoch: membership::next_epoch(previous, now_ms),
            model,
            ubatch: self.settings.ubatch,
            source: source.into(),
            stages,
            predicted_items_per_s: predicted,
        })
    }

    /// Makes `plan` the current one: the plan queryable answers it and every client hears of it
    /// on [`Keys::plan_changed`] (control priority).
    fn publish(&mut self, plan: PlanInfo) -> Result<()> {
        let nodes = |p: &PlanInfo| -> BTreeSet<String> {
            p.stages.iter().map(|s| s.node.clone()).collect()
        };
        // (The liveliness query only when someone may be left out: most plans keep every node.)
        let left_out = match &self.plan {
            Some(old) if !nodes(old).is_subset(&nodes(&plan)) => {
                membership::left_out(&nodes(old), &nodes(&plan), &self.alive()?)
            }
            _ => BTreeSet::new(),
        };
        let bytes = wire::to_bytes(&plan);
        *self.plan_bytes.write().expect("plan lock") = bytes.clone();
        if self.queryable.is_none() {
            let current = self.plan_bytes.clone();
            let q = self
                .session
                .declare_queryable(self.keys.plan())
                .callback(move |query| {
                    let key = query.key_expr().clone();
                    let bytes = current.read().expect("plan lock").clone();
                    if let Err(e) = query.reply(key, bytes).wait() {
                        tracing::warn!("answering a plan query: {e}");
                    }
                })
                .wait()
                .map_err(|e| anyhow!("declaring the plan queryable: {e}"))?;
            self.queryable = Some(q);
        }
        self.session
            .put(self.keys.plan_changed(), bytes)
            .priority(Priority::InteractiveHigh)
            .congestion_control(CongestionControl::Block)
            .wait()
            .map_err(|e| anyhow!("announcing plan epoch {}: {e}", plan.epoch))?;
        for (i, s) in plan.stages.iter().enumerate() {
            tracing::info!(
                "plan epoch {}: stage {i} = {} units {}..{} (out {} bits, predicted compute {:.1} ms)",
                plan.epoch, s.node, s.l, s.r, s.out_bits, s.compute_s * 1e3
            );
        }
        // After the announcement: by then clients send under the new plan, so what the left-out
        // nodes had in flight is late traffic of a replaced plan.
        for node in left_out {
            if let Err(e) = self.release(&node, plan.epoch) {
                tracing::warn!("{e:#}");
            }
        }
        self.plan = Some(plan);
        Ok(())
    }

    /// Tells `node`, which plan `epoch` leaves out, to drop its shard and stage subscriptions.
    fn release(&self, node: &str, epoch: u64) -> Result<()> {
        let r = Release {
            version: WIRE_VERSION,
            fleet: self.keys.fleet.clone(),
            epoch,
        };
        let timeout = Duration::from_secs_f64(self.settings.assign_timeout_s);
        let replies = self
            .session
            .get(self.keys.release(node))
            .payload(wire::to_bytes(&r))
            .priority(Priority::InteractiveHigh)
            .timeout(timeout)
            .wait()
            .map_err(|e| anyhow!("releasing {node}: {e}"))?;
        let ack: AssignAck = first_answer(&replies, node, "release", &self.keys.fleet)?;
        if let Some(e) = ack.error {
            bail!("node {node} refused its release at epoch {epoch}: {e}");
        }
        tracing::info!("plan epoch {epoch}: {node} left out, its shard released");
        Ok(())
    }

    /// Compares who is alive with the current plan and plans again when a stage's node left,
    /// or when a device joined and a plan with it predicts enough more throughput.
    fn reconsider(&mut self) -> Result<()> {
        let Some(current) = self.plan.clone() else {
            // The first plan is still being made; it reads the alive set itself.
            return Ok(());
        };
        let alive = self.alive()?;
        self.learn_devices(&alive);
        let plan_nodes: BTreeSet<String> = current.stages.iter().map(|s| s.node.clone()).collect();
        let devices: BTreeSet<String> = self.devices.keys().cloned().collect();
        let change = membership::change(&plan_nodes, &alive, &devices);
        if change.is_empty() {
            return Ok(());
        }
        let infos = self.infos(&self.stage_stats(&alive)?);
        if infos.is_empty() {
            tracing::error!(
                "every stage node left ({:?}): waiting for a device to join",
                change.left
            );
            return Ok(());
        }
        let candidate = self.plan_for(&infos, current.epoch)?;
        if change.left.is_empty() {
            if !membership::adopt_on_join(
                current.predicted_items_per_s,
                candidate.predicted_items_per_s,
                self.settings.replan_min_gain,
            ) {
                tracing::info!(
                    "{:?} joined; keeping plan epoch {} ({:.2} items/s predicted, {:.2} with them)",
                    change.joined,
                    current.epoch,
                    current.predicted_items_per_s,
                    candidate.predicted_items_per_s
                );
                return Ok(());
            }
            tracing::info!(
                "{:?} joined: re-planning from epoch {} to {} ({:.2} -> {:.2} items/s predicted)",
                change.joined,
                current.epoch,
                candidate.epoch,
                current.predicted_items_per_s,
                candidate.predicted_items_per_s
            );
        } else {
            tracing::warn!(
                "{:?} left: re-planning from epoch {} to {} over {:?}",
                change.left,
                current.epoch,
                candidate.epoch,
                self.devices.keys().collect::<Vec<_>>()
            );
        }
        self.assign(&candidate)?;
        self.publish(candidate)
    }

    /// Sends every stage its assignment and waits until all confirm.
    fn assign(&self, plan: &PlanInfo) -> Result<()> {
        let n = plan.stages.len() as u32;
        let timeout = Duration::from_secs_f64(self.settings.assign_timeout_s);
        let mut pending = Vec::new();
        for (i, s) in plan.stages.iter().enumerate() {
            let i = i as u32;
            let a = Assignment {
                version: WIRE_VERSION,
                fleet: self.keys.fleet.clone(),
                epoch: plan.epoch,
                model: plan.model.clone(),
                stage: i,
                stages: n,
                l: s.l,
                r: s.r,
                next: if i + 1 == n {
                    NextHop::Client
                } else {
                    NextHop::Stage(i + 1)
                },
                out_bits: s.out_bits,
                target_items_per_s: plan.predicted_items_per_s,
            };
            let replies = self
                .session
                .get(self.keys.assign(&s.node))
                .payload(wire::to_bytes(&a))
                .priority(Priority::InteractiveHigh)
                .timeout(timeout)
                .wait()
                .map_err(|e| anyhow!("assigning {}: {e}", s.node))?;
            pending.push((s.node.clone(), replies));
        }
        for (node, replies) in pending {
            let ack: AssignAck = first_answer(&replies, &node, "assignment", &self.keys.fleet)?;
            if let Some(r) = refusal(&node, plan.epoch, &ack) {
                return Err(r.into());
            }
        }
        Ok(())
    }
}

impl Actor for PlannerActor {
    type Context = SyncContext<Self>;

    fn started(&mut self, ctx: &mut SyncContext<Self>) {
        let me = ctx.address();
        match self
            .session
            .liveliness()
            .declare_subscriber(self.keys.nodes())
            .callback(move |_| me.do_send(Reconsider))
            .wait()
        {
            Ok(w) => self.watcher = Some(w),
            Err(e) => tracing::error!("watching the fleet's liveliness tokens: {e}"),
        }
        // Candidates elect nobody while this token is alive.
        match self
            .session
            .liveliness()
            .declare_token(self.keys.leader(&self.name))
            .wait()
        {
            Ok(t) => self.token = Some(t),
            Err(e) => tracing::error!("declaring the leader token: {e}"),
        }
    }
}

/// Stop leading (a configured leader, or a candidate with a smaller name, leads): withdraw the
/// leader token, the plan queryable and the membership watcher. The watcher's callback holds
/// this actor's address, so dropping it lets the actor end once its host drops its address.
/// Sent by [`Leading::step_down`].
#[derive(Message)]
#[rtype(result = "()")]
struct StepDown;

impl Handler<StepDown> for PlannerActor {
    type Result = ();
    fn handle(&mut self, _: StepDown, _: &mut SyncContext<Self>) {
        tracing::warn!("{} steps down as leader", self.name);
        self.retired.store(true, Ordering::Relaxed);
        self.token = None;
        self.queryable = None;
        self.watcher = None;
        self.plan = None;
    }
}

/// A node's hosted planner; the node leads while it holds this.
pub struct Leading {
    planner: Addr<PlannerActor>,
    retired: Arc<AtomicBool>,
}

impl Leading {
    /// Stops leading: a first plan still waiting for nodes gives up, and the actor withdraws
    /// the leader token, the plan queryable and its watcher.
    pub fn step_down(self) {
        self.retired.store(true, Ordering::Relaxed);
        self.planner.do_send(StepDown);
    }
}

/// Starts a PlannerActor on its own SyncArbiter thread and asks it for the first plan; a leader
/// that cannot plan (and did not step down meanwhile) stops the process, so the operator (or
/// the next candidate) sees it. Call on an actix arbiter.
pub fn start_leading(
    session: Session,
    keys: Keys,
    name: String,
    settings: LeaderSettings,
) -> Leading {
    let retired = Arc::new(AtomicBool::new(false));
    let planner = {
        let retired = retired.clone();
        SyncArbiter::start(1, move || {
            let mut p = PlannerActor::new(
                session.clone(),
                keys.clone(),
                name.clone(),
                settings.clone(),
            );
            p.retired = retired.clone();
            p
        })
    };
    let first = planner.clone();
    let gave_up = retired.clone();
    actix::spawn(async move {
        match first.send(MakePlan).await {
            Ok(Ok(plan)) => tracing::info!(
                "plan epoch {} ready: {} stage(s) ({})",
                plan.epoch,
                plan.stages.len(),
                plan.source
            ),
            Ok(Err(e)) if gave_up.load(Ordering::Relaxed) => {
                tracing::info!("first plan abandoned: {e:#}")
            }
            Ok(Err(e)) => {
                tracing::error!("planning failed: {e:#}");
                // A leader without a plan is useless: stop so the operator sees it.
                std::process::exit(2);
            }
            Err(e) => tracing::error!("planner actor: {e}"),
        }
    });
    Leading { planner, retired }
}

/// Plan now (waiting for the nodes), assign, and publish the plan.
#[derive(Message)]
#[rtype(result = "Result<PlanInfo>")]
pub struct MakePlan;

impl Handler<MakePlan> for PlannerActor {
    type Result = Result<PlanInfo>;
    fn handle(&mut self, _: MakePlan, _: &mut SyncContext<Self>) -> Result<PlanInfo> {
        let plan = self.make_plan()?;
        if self.stepped_down() {
            bail!("{} stepped down as leader before publishing", self.name);
        }
        self.publish(plan.clone())?;
        Ok(plan)
    }
}

/// A node's liveliness token appeared or went: check the plan against who is alive.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconsider;

impl Handler<Reconsider> for PlannerActor {
    type Result = ();
    fn handle(&mut self, _: Reconsider, _: &mut SyncContext<Self>) {
        // A node may die while it is being assigned: try again over the new alive set.
        for attempt in 1..=3 {
            match self.reconsider() {
                Ok(()) => return,
                Err(e) => tracing::error!("re-planning (attempt {attempt} of 3): {e:#}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::wire::UnitTimes;

    fn info(name: &str, scale: f64) -> DeviceInfo {
        DeviceInfo {
            version: WIRE_VERSION,
            fleet: "f".into(),
            name: name.into(),
            device_type: name.into(),
            mem_bytes: 1 << 30,
            threads: 1,
            slowdown: scale,
            bw_mbps: 1000.0,
            profile: UnitTimes {
                model: "m".into(),
                ubatch: 8,
                input_elements: 128,
                time_s: vec![0.01 * scale; 8],
                weight_bytes: vec![1 << 20; 8],
                output_elements: vec![1000; 8],
            },
        }
    }

    fn ack(epoch: u64, error: Option<&str>) -> AssignAck {
        AssignAck {
            version: WIRE_VERSION,
            fleet: "f".into(),
            node: "b".into(),
            epoch,
            error: error.map(String::from),
        }
    }

    #[test]
    fn a_refusal_naming_a_newer_epoch_is_stale_and_says_which() {
        assert_eq!(refusal("b", 7, &ack(7, None)), None);
        assert_eq!(
            refusal("b", 7, &ack(9, Some("assignment of epoch 7 after epoch 9"))),
            Some(Refusal::Stale {
                node: "b".into(),
                running: 9
            })
        );
        let failed = refusal("b", 7, &ack(7, Some("no such unit"))).unwrap();
        assert!(matches!(failed, Refusal::Failed { .. }), "{failed:?}");
        assert_eq!(
            failed.to_string(),
            "node b refused its assignment: no such unit"
        );
        // A malformed assignment is answered with epoch 0: not stale.
        assert!(matches!(
            refusal("b", 7, &ack(0, Some("bad assignment"))),
            Some(Refusal::Failed { .. })
        ));
    }

    #[test]
    fn planner_gives_the_slow_node_fewer_units() {
        let infos = [info("fast", 1.0), info("slow", 3.0)];
        let (stages, predicted) = plan_stages(&infos, 8, 32).unwrap();
        assert!(predicted > 0.0);
        let units = |n: &str| {
            stages
                .iter()
                .filter(|s| s.node == n)
                .map(|s| s.r - s.l + 1)
                .sum::<usize>()
        };
        assert_eq!(units("fast") + units("slow"), 8);
        assert!(units("fast") > units("slow"), "{stages:?}");
    }

    #[test]
    fn measured_bandwidth_is_a_nodes_outgoing_link_estimate() {
        use crate::runtime::wire::LinkStats;
        let keys = Keys::new("f");
        let link = |to: String, mbps: f64| LinkStats {
            to,
            mbps,
            ..Default::default()
        };
        let stats = [
            NodeStats {
                node: "a".into(),
                stage: Some(0),
                links: vec![link(keys.stage_in(0), 50.0), link(keys.stage_in(1), 12.5)],
                ..Default::default()
            },
            // The last stage: what arrived, and results nobody acknowledges.
            NodeStats {
                node: "b".into(),
                stage: Some(1),
                links: vec![link(keys.stage_in(1), 12.0), link(keys.result("c"), 0.0)],
                ..Default::default()
            },
        ];
        let measured = measured_bandwidths(&stats, &keys);
        assert_eq!(measured, BTreeMap::from([("a".to_string(), 12.5)]));
        let infos = with_measured_bandwidth(&[info("a", 1.0), info("b", 1.0)], &measured);
        assert_eq!((infos[0].bw_mbps, infos[1].bw_mbps), (12.5, 1000.0));
    }

    #[test]
    fn a_link_measured_slow_is_planned_slow() {
        let infos = [info("a", 1.0), info("b", 1.0)];
        let (_, nominal) = plan_stages(&infos, 8, 32).unwrap();
        // 8 x 1000 f32 per cut: 32 kB, 0.5 s at 0.5 Mbit/s, far above the 0.08 s of compute.
        let slow = with_measured_bandwidth(&infos, &BTreeMap::from([("a".to_string(), 0.5)]));
        let (stages, measured) = plan_stages(&slow, 8, 32).unwrap();
        assert!(measured < nominal, "{measured} vs {nominal}");
        assert!(
            stages.len() == 1 || stages.last().unwrap().node == "a",
            "a sends no cut over its slow link: {stages:?}"
        );
    }

    #[test]
    fn mismatched_profiles_are_refused() {
        let mut b = info("b", 1.0);
        b.profile.ubatch = 4;
        let err = planner_inputs(&[info("a", 1.0), b], 8, 32)
            .unwrap_err()
            .to_string();
        assert!(err.contains("profiled microbatches of 4"), "{err}");
    }

    #[test]
    fn forced_plans_are_checked() {
        let nodes: BTreeSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let st = |n: &str, l, r| ForcedStage {
            node: n.into(),
            units: [l, r],
        };
        assert_eq!(
            forced_stages(&[st("a", 1, 3), st("b", 4, 8)], 8, &nodes, 32)
                .unwrap()
                .len(),
            2
        );
        let err = forced_stages(&[st("a", 1, 3), st("b", 5, 8)], 8, &nodes, 32).unwrap_err();
        assert!(err.to_string().contains("start at unit 4"), "{err}");
        let err = forced_stages(&[st("a", 1, 3), st("c", 4, 8)], 8, &nodes, 32).unwrap_err();
        assert!(err.to_string().contains("not alive"), "{err}");
        let err = forced_stages(&[st("a", 1, 7)], 8, &nodes, 32).unwrap_err();
        assert!(err.to_string().contains("1..7 of 8"), "{err}");
    }
}
