//! The planner's network side: every zenoh call the PlannerActor makes, blocking (it runs on a
//! SyncArbiter thread). Decisions are made in [`crate::runtime::planning`]; these functions only
//! ask, tell and collect answers.

use crate::runtime::planning::acceptance::plan_accepted;
use crate::runtime::planning::assignments;
use crate::runtime::transport::first_answer;
use anyhow::{anyhow, bail, Result};
use quantpipe_messages::{envelope, AssignAck, DeviceInfo, Keys, NodeStats, PlanInfo, Release};
use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use zenoh::handlers::FifoChannelHandler;
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::Subscriber;
use zenoh::qos::{CongestionControl, Priority};
use zenoh::query::{Queryable, Reply};
use zenoh::sample::SampleKind;
use zenoh::{Session, Wait};

/// How long a liveliness or stats query waits for answers.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a node may take to answer its device info.
const DEVICE_TIMEOUT: Duration = Duration::from_secs(10);

/// The leader's zenoh session, as the planner uses it.
pub struct PlannerIo {
    session: Session,
    pub keys: Keys,
    /// How long a node may take to load its shard (or drop it).
    assign_timeout: Duration,
    /// What the plan queryable answers: the current plan's bytes.
    plan_bytes: Arc<RwLock<Vec<u8>>>,
    queryable: Option<Queryable<()>>,
}

impl PlannerIo {
    pub fn new(session: Session, keys: Keys, assign_timeout_s: f64) -> Self {
        PlannerIo {
            session,
            keys,
            assign_timeout: Duration::try_from_secs_f64(assign_timeout_s).unwrap_or_default(),
            plan_bytes: Arc::new(RwLock::new(Vec::new())),
            queryable: None,
        }
    }

    /// Names of the nodes whose liveliness tokens are up now (one liveliness query: the token
    /// events say when to look, the query sees every change that arrived meanwhile).
    pub fn alive_nodes(&self) -> Result<BTreeSet<String>> {
        let replies = self
            .session
            .liveliness()
            .get(self.keys.nodes())
            .timeout(QUERY_TIMEOUT)
            .wait()
            .map_err(|e| anyhow!("liveliness query: {e}"))?;
        let mut names = BTreeSet::new();
        while let Ok(reply) = replies.recv() {
            if let Ok(sample) = reply.result() {
                if let Some(name) = self.keys.token_name("node", sample.key_expr().as_str()) {
                    names.insert(name.to_owned());
                }
            }
        }
        Ok(names)
    }

    /// Calls `on_change` with the node's name and whether its token is up whenever a node's
    /// liveliness token appears or goes, and once for each token already up (history).
    pub fn watch_nodes(
        &self,
        on_change: impl Fn(&str, bool) + Send + Sync + 'static,
    ) -> Result<Subscriber<()>> {
        let keys = self.keys.clone();
        self.session
            .liveliness()
            .declare_subscriber(self.keys.nodes())
            .history(true)
            .callback(move |sample| {
                if let Some(name) = keys.token_name("node", sample.key_expr().as_str()) {
                    on_change(name, sample.kind() == SampleKind::Put);
                }
            })
            .wait()
            .map_err(|e| anyhow!("watching the fleet's liveliness tokens: {e}"))
    }

    /// `qp/<fleet>/leader/<name>`: candidates elect nobody while it is alive.
    pub fn declare_leader_token(&self, name: &str) -> Result<LivelinessToken> {
        self.session
            .liveliness()
            .declare_token(self.keys.leader(name))
            .wait()
            .map_err(|e| anyhow!("declaring the leader token: {e}"))
    }

    /// The stats of the alive nodes that host a stage, from their stats queryables; queries go
    /// out together, and a node without a stage (a leader-only node, a client) answers nothing.
    pub fn stage_stats(&self, alive: &BTreeSet<String>) -> Result<Vec<NodeStats>> {
        let mut pending = Vec::new();
        for name in alive {
            let replies = self
                .ask(self.keys.stats(name), None, QUERY_TIMEOUT)
                .map_err(|e| anyhow!("stats query of {name}: {e}"))?;
            pending.push(replies);
        }
        let mut stats = Vec::new();
        for replies in pending {
            while let Ok(reply) = replies.recv() {
                let Ok(sample) = reply.result() else { continue };
                match envelope::decode::<NodeStats>(&sample.payload().to_bytes(), &self.keys.fleet)
                {
                    Ok(s) => stats.push(s),
                    Err(e) => tracing::warn!("ignoring a stats answer: {e}"),
                }
            }
        }
        Ok(stats)
    }

    /// A control query on `key` (above tensor traffic), with `payload` if any; its answers
    /// arrive on the returned channel until `timeout`.
    fn ask(
        &self,
        key: String,
        payload: Option<Vec<u8>>,
        timeout: Duration,
    ) -> zenoh::Result<FifoChannelHandler<Reply>> {
        let query = self
            .session
            .get(key)
            .priority(Priority::InteractiveHigh)
            .timeout(timeout);
        match payload {
            Some(p) => query.payload(p).wait(),
            None => query.wait(),
        }
    }

    /// `name`'s device info; an error for a node that hosts no stage.
    pub fn device_info(&self, name: &str) -> Result<DeviceInfo> {
        let replies = self
            .ask(self.keys.device(name), None, DEVICE_TIMEOUT)
            .map_err(|e| anyhow!("device query: {e}"))?;
        first_answer(&replies, name, "device info", &self.keys.fleet)
    }

    /// Sends every stage its assignment and waits until all confirm; a refusal is returned as
    /// a [`crate::runtime::planning::Refusal`].
    pub fn assign(&self, plan: &PlanInfo) -> Result<()> {
        let mut pending = Vec::new();
        for (node, mut a) in assignments(plan) {
            crate::runtime::weights::attach_weights(&mut a);
            let order = envelope::encode(&self.keys.fleet, &a);
            let replies = self
                .ask(self.keys.assign(&node), Some(order), self.assign_timeout)
                .map_err(|e| anyhow!("assigning {node}: {e}"))?;
            pending.push((node, replies));
        }
        let mut acks = Vec::new();
        for (node, replies) in &pending {
            let ack: AssignAck = first_answer(replies, node, "assignment", &self.keys.fleet)?;
            acks.push((node.as_str(), ack));
        }
        plan_accepted(plan.epoch, acks.iter().map(|(n, a)| (*n, a)))?;
        Ok(())
    }

    /// Tells `node`, which plan `epoch` leaves out, to drop its shard and stage subscriptions.
    pub fn release(&self, node: &str, epoch: u64) -> Result<()> {
        let r = Release { epoch };
        let order = envelope::encode(&self.keys.fleet, &r);
        let replies = self
            .ask(self.keys.release(node), Some(order), self.assign_timeout)
            .map_err(|e| anyhow!("releasing {node}: {e}"))?;
        let ack: AssignAck = first_answer(&replies, node, "release", &self.keys.fleet)?;
        if let Some(e) = ack.error {
            bail!("node {node} refused its release at epoch {epoch}: {e}");
        }
        tracing::info!("plan epoch {epoch}: {node} left out, its shard released");
        Ok(())
    }

    /// Makes `plan` the one the plan queryable answers, and tells every client on
    /// [`Keys::plan_changed`] (control priority).
    pub fn publish(&mut self, plan: &PlanInfo) -> Result<()> {
        let bytes = envelope::encode(&self.keys.fleet, plan);
        *self.plan_bytes.write().unwrap_or_else(|e| e.into_inner()) = bytes.clone();
        if self.queryable.is_none() {
            self.queryable = Some(self.declare_plan_queryable()?);
        }
        self.session
            .put(self.keys.plan_changed(), bytes)
            .priority(Priority::InteractiveHigh)
            .congestion_control(CongestionControl::Block)
            .wait()
            .map_err(|e| anyhow!("announcing plan epoch {}: {e}", plan.epoch))
    }

    fn declare_plan_queryable(&self) -> Result<Queryable<()>> {
        let current = self.plan_bytes.clone();
        self.session
            .declare_queryable(self.keys.plan())
            .callback(move |query| {
                let key = query.key_expr().clone();
                let bytes = current.read().unwrap_or_else(|e| e.into_inner()).clone();
                if let Err(e) = query.reply(key, bytes).wait() {
                    tracing::warn!("answering a plan query: {e}");
                }
            })
            .wait()
            .map_err(|e| anyhow!("declaring the plan queryable: {e}"))
    }

    /// Stops answering the plan (the host no longer leads).
    pub fn withdraw_plan(&mut self) {
        self.queryable = None;
    }
}
