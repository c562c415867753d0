//! The client: streams microbatches into stage 0, gets results back in order, and measures.
//!
//! Back-pressure: at most `client.window` microbatches are in flight; the client sends the next
//! one only when a result comes back, so a slow stage slows the client and no queue along the
//! pipeline holds more than the window. Results are matched by (run, seq, epoch): duplicates,
//! results of other runs and of replaced plan epochs are dropped and counted; when the leader
//! re-plans, every microbatch not answered yet is sent again under the new epoch. A gap shows up
//! as a missing sequence number when the run times out.

use crate::runtime::config::Settings;
use crate::runtime::inflight::{in_order, InFlight, Verdict};
use crate::runtime::transport::{first_answer, unix_ns, zbytes_of};
use anyhow::{anyhow, bail, Context as _, Result};
use quantpipe_messages::{envelope, Activation, Keys, NodeStats, Output, PlanInfo};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
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
mod stage0;

pub use inputs::{Encoded, Inputs, TextInputs};
pub use plan_source::PlanWatch;
use stage0::Stage0;

/// What the client's zenoh callbacks hand to its loop.
pub(crate) enum Event {
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
    let c = &settings.client;
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
    let plan_wait = Duration::from_secs_f64(c.plan_wait_s);
    let mut plan = watch
        .next(Instant::now() + plan_wait)?
        .ok_or_else(|| no_plan(keys, plan_wait))?;
    let run: u64 = unix_ns() ^ ((std::process::id() as u64) << 32);
    let stage0 = Stage0::declare(session, keys)?;
    let stage0_limit = Duration::from_secs(30);
    stage0.wait_listening(stage0_limit)?;

    let microbatches = inputs.cut(plan.ubatch.max(1))?;
    let mut answered_items = 0usize;
    let send = |seq: u64, epoch: u64| -> Result<()> {
        let e = inputs.encode(seq as usize)?;
        let msg = Activation {
            run,
            client: settings.name.clone(),
            seq,
            epoch,
            stage: 0,
            sent_unix_ns: unix_ns(),
            body: e.body,
            body_len: 0,
            mask: e.mask,
        };
        stage0
            .put(zbytes_of(msg.into_message(&keys.fleet, e.payload)))
            .with_context(|| format!("microbatch {seq}"))
    };
    let timeout = Duration::from_secs_f64(c.result_timeout_s);
    let stall = Duration::from_secs_f64(c.stall_s);
    let mut book = InFlight::new(plan.epoch);
    let mut sent_at: HashMap<u64, Instant> = HashMap::new();
    let mut outputs: BTreeMap<u64, Output> = BTreeMap::new();
    let mut latencies = Vec::with_capacity(microbatches);
    let mut arrivals_s = Vec::with_capacity(microbatches);
    let (mut dup, mut foreign, mut stale) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    let mut last_result = Instant::now();
    let mut next = 0u64;
    while outputs.len() < microbatches {
        while (next as usize) < microbatches && book.in_flight() < c.window {
            sent_at.insert(next, Instant::now());
            send(next, book.epoch())?;
            book.sent(next);
            next += 1;
        }
        if last_result.elapsed() >= timeout {
            bail!(
                "no result for {timeout:?}; waiting for microbatches {:?} of run {run:x} at plan \
                 epoch {} (a stage died or dropped them: see the nodes' logs)",
                book.pending(),
                book.epoch()
            );
        }
        let newer = match watch.recv(stall)? {
            Some(Event::Plan(bytes)) => watch.decode(&bytes),
            // A new leader serves its plan: it may have re-planned while taking over.
            Some(Event::PlanServed) => watch.ask(),
            Some(Event::Result(bytes)) => {
                let out: Output = match envelope::decode(&bytes, &keys.fleet) {
                    Ok(o) => o,
                    Err(e) => {
                        foreign += 1;
                        tracing::warn!("dropping a result: {e}");
                        continue;
                    }
                };
                if out.run != run {
                    foreign += 1;
                    continue;
                }
                if out.epoch != book.epoch() {
                    // Late traffic (or a failure) of a replaced plan: its microbatches were
                    // sent again under the current epoch.
                    stale += 1;
                    continue;
                }
                if let Some(err) = &out.error {
                    bail!("microbatch {} failed in the pipeline: {err}", out.seq);
                }
                if out.seq >= microbatches as u64 {
                    foreign += 1;
                    continue;
                }
                match book.result(out.seq, out.epoch) {
                    Verdict::Accept => {}
                    Verdict::Duplicate => {
                        dup += 1;
                        continue;
                    }
                    Verdict::StaleEpoch => {
                        stale += 1;
                        continue;
                    }
                    Verdict::Unknown => {
                        foreign += 1;
                        continue;
                    }
                }
                let want = inputs.items_in(out.seq as usize) as u64;
                if out.shape.len() != 2
                    || out.shape[0] != want
                    || out.values.len() as u64 != want * out.shape[1]
                {
                    bail!(
                        "result {} has shape {:?} for {want} items",
                        out.seq,
                        out.shape
                    );
                }
                tracing::debug!(
                    "microbatch {} answered at plan epoch {}",
                    out.seq,
                    out.epoch
                );
                last_result = Instant::now();
                latencies.push(sent_at[&out.seq].elapsed().as_secs_f64());
                arrivals_s.push(start.elapsed().as_secs_f64());
                answered_items += want as usize;
                progress(answered_items);
                outputs.insert(out.seq, out);
                None
            }
            // Results stall: perhaps the announcement of a new plan was missed.
            None => watch.ask(),
        };
        if let Some(p) = newer {
            if p.epoch <= book.epoch() {
                continue;
            }
            if p.ubatch != plan.ubatch {
                bail!(
                    "plan epoch {} uses microbatches of {}, this run cut its input in {}",
                    p.epoch,
                    p.ubatch,
                    plan.ubatch
                );
            }
            let again = book.switch_epoch(p.epoch);
            tracing::info!(
                "plan epoch {} -> {} ({} stage(s)): sending {} microbatch(es) again",
                plan.epoch,
                p.epoch,
                p.stages.len(),
                again.len()
            );
            plan = p;
            stage0.wait_listening(stage0_limit)?;
            for seq in again {
                send(seq, book.epoch())?;
                book.sent(seq);
            }
            // A re-plan is progress: the new pipeline gets a full timeout.
            last_result = Instant::now();
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let rows: Vec<Vec<f32>> = in_order(outputs)
        .into_iter()
        .flat_map(|o| {
            let d = o.shape[1] as usize;
            o.values
                .chunks(d.max(1))
                .map(|r| r.to_vec())
                .collect::<Vec<_>>()
        })
        .collect();
    Ok(RunReport {
        client: settings.name.clone(),
        run,
        plan,
        epochs: book.epochs().to_vec(),
        resent: book.resent(),
        items: inputs.items(),
        microbatches,
        window: c.window,
        elapsed_s: elapsed,
        items_per_s: inputs.items() as f64 / elapsed,
        latency_p50_s: percentile(&latencies, 50.0),
        latency_p90_s: percentile(&latencies, 90.0),
        latency_p99_s: percentile(&latencies, 99.0),
        latency_max_s: latencies.last().copied().unwrap_or(0.0),
        dropped_duplicates: dup,
        dropped_foreign: foreign,
        dropped_stale_epoch: stale,
        outputs: rows,
        arrivals_s,
    })
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 50.0), 50.0);
        assert_eq!(percentile(&s, 99.0), 99.0);
        assert_eq!(percentile(&s, 100.0), 100.0);
        assert_eq!(percentile(&[3.0], 90.0), 3.0);
        assert_eq!(percentile(&[], 90.0), 0.0);
    }
}
