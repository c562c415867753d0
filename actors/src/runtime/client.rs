//! The client: streams microbatches into stage 0, gets results back in order, and measures.
//!
//! Back-pressure: at most `client.window` microbatches are in flight; the client sends the next
//! one only when a result comes back, so a slow stage slows the client and no queue along the
//! pipeline holds more than the window. Results are matched by (run, seq, epoch): duplicates,
//! results of other runs and of replaced plan epochs are dropped and counted; when the leader
//! re-plans, every microbatch not answered yet is sent again under the new epoch, and one left
//! unanswered past a bound is sent again under the same epoch (a link down for less than the
//! lease loses it without a re-plan). Stages keep no memory of what they ran: one that gets a
//! microbatch twice runs it twice, and the client takes the first answer and drops the second.
//! A gap shows up as a missing sequence number when the run times out.

use crate::runtime::config::Settings;
use crate::runtime::transport::first_answer;
use anyhow::{anyhow, bail, Result};
use quantpipe_messages::{Keys, NodeStats, PlanInfo};
use serde::Serialize;
use std::time::{Duration, Instant};
use zenoh::qos::Priority;
use zenoh::{Session, Wait};

/// Figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub client: String,
    pub run: u64,
    /// The plan the run ended under.
    pub plan: PlanInfo,
    /// Every plan epoch the run used, in order (more than one when the leader re-planned).
    pub epochs: Vec<u64>,
    /// Microbatches sent again under a new epoch.
    pub resent: u64,
    /// Microbatches sent again after a retryable failure (a worker panicked and restarted).
    pub resent_after_failure: u64,
    /// Microbatches sent again under the same epoch after going unanswered past a bound (a link
    /// that lost them without a re-plan; see [`quantpipe_batching::resend`]).
    pub resent_unanswered: u64,
    pub items: usize,
    pub microbatches: usize,
    pub window: usize,
    /// First send to last result, seconds.
    pub elapsed_s: f64,
    pub items_per_s: f64,
    /// Microbatch latency (send to result), seconds.
    pub latency_p50_s: f64,
    pub latency_p90_s: f64,
    pub latency_p99_s: f64,
    pub latency_max_s: f64,
    pub dropped_duplicates: u64,
    pub dropped_foreign: u64,
    /// Results of a replaced plan's epoch, dropped.
    pub dropped_stale_epoch: u64,
    /// Per item, in input order: the last stage's output row (embedding or logits).
    #[serde(skip)]
    pub outputs: Vec<Vec<f32>>,
    /// Seconds from the run's first send to each result's arrival, in arrival order (the
    /// steady-state rate is read between the first and the last).
    #[serde(skip)]
    pub arrivals_s: Vec<f64>,
}

/// Percentile (nearest rank) of samples: the simulator's, so both reports mean the same thing.
pub use quantpipe_simulator::percentile;

mod inputs;
mod plan_source;
pub mod results;
pub mod retry;
mod stage0;
mod stream;

pub use inputs::{Encoded, ImageInputs, ImageItem, Inputs, TextInputs};
pub use plan_source::PlanWatch;
pub use stage0::Stage0;
use stream::Stream;

/// What the client's zenoh callbacks hand to its loop.
pub enum Event {
    /// A result for this client.
    Result(Vec<u8>),
    /// A plan announcement.
    Plan(Vec<u8>),
    /// A plan queryable appeared (a leader's first plan, or a new leader).
    PlanServed,
}

/// Waits for the leader's plan: asked as soon as the leader serves one, or heard when it is
/// announced; fails when none comes within `wait`.
pub fn wait_for_plan(session: &Session, keys: &Keys, wait: Duration) -> Result<PlanInfo> {
    PlanWatch::declare(session, keys)?
        .next(Instant::now() + wait)?
        .ok_or_else(|| no_plan(keys, wait))
}

fn no_plan(keys: &Keys, wait: Duration) -> anyhow::Error {
    anyhow!(
        "no plan from the leader of fleet {} within {wait:?}: is the leader up and are the \
         expected nodes alive?",
        keys.fleet
    )
}

/// A node's stats (its `stats` queryable), waiting at most `limit` for the answer.
pub fn node_stats(
    session: &Session,
    keys: &Keys,
    node: &str,
    limit: Duration,
) -> Result<NodeStats> {
    let replies = session
        .get(keys.stats(node))
        .priority(Priority::InteractiveHigh)
        .timeout(limit)
        .wait()
        .map_err(|e| anyhow!("stats query: {e}"))?;
    first_answer(&replies, node, "stats", &keys.fleet)
}

/// Streams `texts` through the fleet's pipeline. Opens its own zenoh session.
pub fn run_texts(settings: &Settings, texts: &[String]) -> Result<RunReport> {
    run_texts_with_progress(settings, texts, &mut |_| {})
}

/// Like [`run_texts`], calling `progress` with the number of items answered so far after each
/// result.
pub fn run_texts_with_progress(
    settings: &Settings,
    texts: &[String],
    progress: &mut dyn FnMut(usize),
) -> Result<RunReport> {
    if texts.is_empty() {
        bail!("no input item to run");
    }
    let keys = Keys::new(&settings.fleet);
    let session = zenoh::open(settings.zenoh_config()?)
        .wait()
        .map_err(|e| anyhow!("opening the zenoh session: {e}"))?;
    let result = run_texts_on_with_progress(&session, &keys, settings, texts, progress);
    if let Err(e) = session.close().wait() {
        tracing::warn!("closing the zenoh session: {e}");
    }
    result
}

/// Like [`run_texts`], on an open session.
///
/// When the leader re-plans (a stage's node left, or a device joined), the client hears the new
/// plan on [`Keys::plan_changed`] (or from a new leader's plan queryable, or by asking after
/// `client.stall_s` without a result), and sends every microbatch not answered yet again under
/// the new epoch; results of any other epoch are dropped (see [`InFlight`]), so each item is
/// answered once, in input order.
pub fn run_texts_on(
    session: &Session,
    keys: &Keys,
    settings: &Settings,
    texts: &[String],
) -> Result<RunReport> {
    run_texts_on_with_progress(session, keys, settings, texts, &mut |_| {})
}

/// Like [`run_texts_on`], calling `progress` with the number of items answered so far after
/// each result.
pub fn run_texts_on_with_progress(
    session: &Session,
    keys: &Keys,
    settings: &Settings,
    texts: &[String],
    progress: &mut dyn FnMut(usize),
) -> Result<RunReport> {
    let mut inputs = TextInputs::new(texts, &settings.model_dir, settings.client.max_len)?;
    run_on(session, keys, settings, &mut inputs, progress)
}

/// Streams `inputs` through the fleet's pipeline on an open session (see [`run_texts_on`]).
pub fn run_on(
    session: &Session,
    keys: &Keys,
    settings: &Settings,
    inputs: &mut dyn Inputs,
    progress: &mut dyn FnMut(usize),
) -> Result<RunReport> {
    if inputs.items() == 0 {
        bail!("no input item to run");
    }
    // Subscribed before asking for the plan, so no announcement falls between the two.
    let watch = PlanWatch::declare(session, keys)?;
    let _results = {
        let tx = watch.sender();
        session
            .declare_subscriber(keys.result(&settings.name))
            .callback(move |s| {
                let _ = tx.send(Event::Result(s.payload().to_bytes().into_owned()));
            })
            .wait()
            .map_err(|e| anyhow!("subscribing to results: {e}"))?
    };
    let plan_wait = Duration::from_secs_f64(settings.client.plan_wait_s);
    let plan = watch
        .next(Instant::now() + plan_wait)?
        .ok_or_else(|| no_plan(keys, plan_wait))?;
    let stage0 = Stage0::declare(session, keys, &settings.name)?;
    Stream::new(settings, keys, inputs, &watch, &stage0, plan)?.run(progress)
}
