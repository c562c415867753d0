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
use crate::runtime::quantizer::{mask_to_wire, tokens_to_wire};
use crate::runtime::transport::{unix_ns, zbytes_of};
use crate::runtime::wire::{self, Activation, Body, Keys, Output, PlanInfo, WIRE_VERSION};
use anyhow::{anyhow, bail, Context as _, Result};
use quantpipe_model_shards::preprocess::TextTokenizer;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};
use zenoh::qos::{CongestionControl, Priority};
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
}

/// Percentile (nearest rank) of samples: the simulator's, so both reports mean the same thing.
pub use quantpipe_simulator::percentile;

/// Asks the leader for its plan until one is ready or `wait` passes.
pub fn wait_for_plan(session: &Session, keys: &Keys, wait: Duration) -> Result<PlanInfo> {
    let deadline = Instant::now() + wait;
    loop {
        let replies = session
            .get(keys.plan())
            .priority(Priority::InteractiveHigh)
            .timeout(Duration::from_secs(2))
            .wait()
            .map_err(|e| anyhow!("plan query: {e}"))?;
        while let Ok(reply) = replies.recv() {
            if let Ok(sample) = reply.result() {
                match wire::from_bytes::<PlanInfo>(&sample.payload().to_bytes(), &keys.fleet) {
                    Ok(p) => return Ok(p),
                    Err(e) => tracing::warn!("ignoring a plan answer: {e}"),
                }
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "no plan from the leader of fleet {} within {wait:?}: is the leader up and are \
                 the expected nodes alive?",
                keys.fleet
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
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

/// What the client's zenoh callbacks hand to its loop.
enum Event {
    Result(Vec<u8>),
    Plan(Vec<u8>),
}

/// Asks the leader once for its plan; `None` when nobody answers in time.
fn query_plan(session: &Session, keys: &Keys) -> Option<PlanInfo> {
    let replies = session
        .get(keys.plan())
        .priority(Priority::InteractiveHigh)
        .timeout(Duration::from_secs(2))
        .wait()
        .ok()?;
    while let Ok(reply) = replies.recv() {
        if let Ok(sample) = reply.result() {
            if let Ok(p) = wire::from_bytes::<PlanInfo>(&sample.payload().to_bytes(), &keys.fleet) {
                return Some(p);
            }
        }
    }
    None
}

/// Like [`run_texts`], on an open session.
///
/// When the leader re-plans (a stage's node left, or a device joined), the client hears the new
/// plan on [`Keys::plan_changed`], or asks for it after `client.stall_s` without a result, and
/// sends every microbatch not answered yet again under the new epoch; results of any other epoch
/// are dropped (see [`InFlight`]), so each item is answered once, in input order.
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
    let c = &settings.client;
    // Subscribe before asking for the plan, so no announcement falls between the two.
    let (tx, events) = std::sync::mpsc::channel::<Event>();
    let _results = {
        let tx = tx.clone();
        session
            .declare_subscriber(keys.result(&settings.name))
            .callback(move |s| {
                let _ = tx.send(Event::Result(s.payload().to_bytes().into_owned()));
            })
            .wait()
            .map_err(|e| anyhow!("subscribing to results: {e}"))?
    };
    let _plans = session
        .declare_subscriber(keys.plan_changed())
        .callback(move |s| {
            let _ = tx.send(Event::Plan(s.payload().to_bytes().into_owned()));
        })
        .wait()
        .map_err(|e| anyhow!("subscribing to plan changes: {e}"))?;
    let mut plan = wait_for_plan(session, keys, Duration::from_secs_f64(c.plan_wait_s))?;
    let tokenizer_path = settings.model_dir.join("tokenizer.json");
    let tokenizer = TextTokenizer::from_file(&tokenizer_path, c.max_len)
        .with_context(|| format!("client tokenizer {}", tokenizer_path.display()))?;
    let run: u64 = unix_ns() ^ ((std::process::id() as u64) << 32);
    let publisher = session
        .declare_publisher(keys.stage_in(0))
        .congestion_control(CongestionControl::Block)
        .priority(Priority::Data)
        .wait()
        .map_err(|e| anyhow!("declaring the stage-0 publisher: {e}"))?;
    let wait_for_stage0 = || -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !publisher
            .matching_status()
            .wait()
            .map_err(|e| anyhow!("matching status: {e}"))?
            .matching()
        {
            if Instant::now() >= deadline {
                bail!(
                    "stage 0 of fleet {} does not listen on {}",
                    keys.fleet,
                    keys.stage_in(0)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    };
    wait_for_stage0()?;

    let ubatch = plan.ubatch.max(1);
    let batches: Vec<&[String]> = texts.chunks(ubatch).collect();
    let mut answered_items = 0usize;
    let send = |seq: u64, epoch: u64| -> Result<()> {
        let refs: Vec<&str> = batches[seq as usize].iter().map(|s| s.as_str()).collect();
        let b = tokenizer.encode_batch(&refs)?;
        let msg = Activation {
            version: WIRE_VERSION,
            fleet: keys.fleet.clone(),
            run,
            client: settings.name.clone(),
            seq,
            epoch,
            stage: 0,
            sent_unix_ns: unix_ns(),
            body: Body::Tokens(tokens_to_wire(&b.tensors[0])?),
            body_len: 0,
            mask: b.mask.as_ref().map(mask_to_wire).transpose()?,
        };
        publisher
            .put(zbytes_of(msg.into_message(Vec::new())))
            .wait()
            .map_err(|e| anyhow!("sending microbatch {seq}: {e}"))
    };
    let timeout = Duration::from_secs_f64(c.result_timeout_s);
    let stall = Duration::from_secs_f64(c.stall_s);
    let mut book = InFlight::new(plan.epoch);
    let mut sent_at: HashMap<u64, Instant> = HashMap::new();
    let mut outputs: BTreeMap<u64, Output> = BTreeMap::new();
    let mut latencies = Vec::with_capacity(batches.len());
    let (mut dup, mut foreign, mut stale) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    let mut last_result = Instant::now();
    let mut next = 0u64;
    while outputs.len() < batches.len() {
        while (next as usize) < batches.len() && book.in_flight() < c.window {
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
        let newer = match events.recv_timeout(stall) {
            Ok(Event::Plan(bytes)) => match wire::from_bytes::<PlanInfo>(&bytes, &keys.fleet) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!("ignoring a plan announcement: {e}");
                    None
                }
            },
            Ok(Event::Result(bytes)) => {
                let out: Output = match wire::from_bytes(&bytes, &keys.fleet) {
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
                let want = batches[out.seq as usize].len() as u64;
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
                answered_items += want as usize;
                progress(answered_items);
                outputs.insert(out.seq, out);
                None
            }
            Err(RecvTimeoutError::Timeout) => {
                // Results stall: perhaps the announcement of a new plan was missed.
                query_plan(session, keys)
            }
            Err(RecvTimeoutError::Disconnected) => bail!("the result subscriber closed"),
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
            wait_for_stage0()?;
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
        items: texts.len(),
        microbatches: batches.len(),
        window: c.window,
        elapsed_s: elapsed,
        items_per_s: texts.len() as f64 / elapsed,
        latency_p50_s: percentile(&latencies, 50.0),
        latency_p90_s: percentile(&latencies, 90.0),
        latency_p99_s: percentile(&latencies, 99.0),
        latency_max_s: latencies.last().copied().unwrap_or(0.0),
        dropped_duplicates: dup,
        dropped_foreign: foreign,
        dropped_stale_epoch: stale,
        outputs: rows,
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
