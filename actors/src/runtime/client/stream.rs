//! One run's loop: keeps `client.window` microbatches in flight, takes results as
//! [`results`](super::results) sorts them, follows re-plans by sending what is unanswered again
//! under the new epoch, sends a microbatch unanswered for longer than a bound again under the
//! same epoch ([`quantpipe_batching::resend`]: a link that flaps faster than the fleet's lease
//! loses what crossed it without a re-plan), and gives up when no result comes for
//! `client.result_timeout_s`.

use super::results::{self, Taken};
use super::retry::Resends;
use super::stage0::Stage0;
use super::{Event, Inputs, PlanWatch, RunReport};
use crate::runtime::config::Settings;
use crate::runtime::inflight::{in_order, InFlight};
use crate::runtime::transport::{unix_ns, zbytes_of};
use anyhow::{bail, Context as _, Result};
use quantpipe_batching::resend::{predicted_in_flight, ResendRule};
use quantpipe_batching::Unanswered;
use quantpipe_messages::{envelope, Activation, Keys, Output, PlanInfo};
use quantpipe_simulator::percentile;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// How long the client waits for stage 0 to listen, at the start and after a re-plan.
const STAGE0_WAIT: Duration = Duration::from_secs(30);

/// The state of one run.
pub(super) struct Stream<'a> {
    pub settings: &'a Settings,
    pub keys: &'a Keys,
    pub inputs: &'a mut dyn Inputs,
    pub watch: &'a PlanWatch,
    pub stage0: &'a Stage0,
    pub run: u64,
    pub plan: PlanInfo,
    microbatches: usize,
    book: InFlight,
    resends: Resends,
    /// Microbatches unanswered under the current epoch, and when each is sent again.
    unanswered: Unanswered,
    sent_at: HashMap<u64, Instant>,
    outputs: BTreeMap<u64, Output>,
    latencies: Vec<f64>,
    arrivals_s: Vec<f64>,
    answered_items: usize,
    next: u64,
    dropped: Dropped,
    start: Instant,
    last_result: Instant,
    /// The last event of any kind (a result, a plan): `client.stall_s` after it the client
    /// asks for the plan.
    last_event: Instant,
}

#[derive(Default)]
struct Dropped {
    duplicates: u64,
    foreign: u64,
    stale: u64,
}

impl<'a> Stream<'a> {
    /// A run of `inputs` cut for `plan`, once stage 0 listens.
    pub fn new(
        settings: &'a Settings,
        keys: &'a Keys,
        inputs: &'a mut dyn Inputs,
        watch: &'a PlanWatch,
        stage0: &'a Stage0,
        plan: PlanInfo,
    ) -> Result<Self> {
        stage0.wait_listening(STAGE0_WAIT)?;
        let microbatches = inputs.cut(plan.ubatch.max(1))?;
        let timeout = Duration::from_secs_f64(settings.client.result_timeout_s);
        let mut unanswered = Unanswered::new(ResendRule::within(timeout));
        unanswered.set_prediction(predicted(&plan, settings.client.window));
        Ok(Stream {
            settings,
            keys,
            inputs,
            watch,
            stage0,
            run: unix_ns() ^ ((std::process::id() as u64) << 32),
            book: InFlight::new(plan.epoch),
            resends: Resends::default(),
            unanswered,
            plan,
            microbatches,
            sent_at: HashMap::new(),
            outputs: BTreeMap::new(),
            latencies: Vec::with_capacity(microbatches),
            arrivals_s: Vec::with_capacity(microbatches),
            answered_items: 0,
            next: 0,
            dropped: Dropped::default(),
            start: Instant::now(),
            last_result: Instant::now(),
            last_event: Instant::now(),
        })
    }

    /// Runs until every microbatch is answered.
    pub fn run(mut self, progress: &mut dyn FnMut(usize)) -> Result<RunReport> {
        let c = &self.settings.client;
        let timeout = Duration::from_secs_f64(c.result_timeout_s);
        let stall = Duration::from_secs_f64(c.stall_s);
        while self.outputs.len() < self.microbatches {
            self.fill_window()?;
            self.resend_unanswered()?;
            if self.last_result.elapsed() >= timeout {
                bail!(
                    "no result for {timeout:?}; waiting for microbatches {:?} of run {:x} at plan \
                     epoch {} (a stage died or dropped them: see the nodes' logs)",
                    self.book.pending(),
                    self.run,
                    self.book.epoch()
                );
            }
            let quiet_until = self.last_event + stall;
            let wake = self
                .unanswered
                .next_due()
                .map_or(quiet_until, |t| t.min(quiet_until));
            let event = self
                .watch
                .recv(wake.saturating_duration_since(Instant::now()))?;
            if event.is_some() {
                self.last_event = Instant::now();
            }
            let newer = match event {
                Some(Event::Plan(bytes)) => self.watch.decode(&bytes),
                // A new leader serves its plan: it may have re-planned while taking over.
                Some(Event::PlanServed) => self.watch.ask(),
                Some(Event::Result(bytes)) => {
                    self.on_result(&bytes, progress)?;
                    None
                }
                // Results stall: perhaps the announcement of a new plan was missed.
                None if Instant::now() >= quiet_until => {
                    self.last_event = Instant::now();
                    self.watch.ask()
                }
                // A resend falls due.
                None => None,
            };
            if let Some(p) = newer {
                self.on_plan(p)?;
            }
        }
        Ok(self.report())
    }

    /// Sends microbatches until `client.window` are in flight or all were sent.
    fn fill_window(&mut self) -> Result<()> {
        while (self.next as usize) < self.microbatches
            && self.book.in_flight() < self.settings.client.window
        {
            let seq = self.next;
            let now = Instant::now();
            self.sent_at.insert(seq, now);
            self.send(seq)?;
            self.unanswered.sent(seq, now);
            self.next += 1;
        }
        Ok(())
    }

    /// Sends again, under the current epoch, every microbatch unanswered past its bound.
    fn resend_unanswered(&mut self) -> Result<()> {
        let due = self.unanswered.take_due(Instant::now());
        if due.is_empty() {
            return Ok(());
        }
        tracing::info!(
            "microbatch(es) {due:?} unanswered for over {:.1} s at plan epoch {}: sending them again",
            self.unanswered.bound().as_secs_f64(),
            self.book.epoch()
        );
        for seq in due {
            self.send(seq)?;
        }
        Ok(())
    }

    /// Sends microbatch `seq` under the current epoch.
    fn send(&mut self, seq: u64) -> Result<()> {
        let e = self.inputs.encode(seq as usize)?;
        let msg = Activation {
            run: self.run,
            client: self.settings.name.clone(),
            seq,
            epoch: self.book.epoch(),
            stage: 0,
            sent_unix_ns: unix_ns(),
            body: e.body,
            body_len: 0,
            mask: e.mask,
        };
        self.stage0
            .put(zbytes_of(msg.into_message(&self.keys.fleet, e.payload)))
            .with_context(|| format!("microbatch {seq}"))?;
        self.book.sent(seq);
        Ok(())
    }

    fn on_result(&mut self, bytes: &[u8], progress: &mut dyn FnMut(usize)) -> Result<()> {
        let out: Output = match envelope::decode(bytes, &self.keys.fleet) {
            Ok(o) => o,
            Err(e) => {
                self.dropped.foreign += 1;
                tracing::warn!("dropping a result: {e}");
                return Ok(());
            }
        };
        let taken = results::take_result(
            &out,
            self.run,
            self.microbatches,
            &mut self.book,
            &mut self.resends,
        )?;
        let counter = match taken {
            Taken::Accept => None,
            Taken::SendAgain => {
                tracing::warn!(
                    "microbatch {} failed ({}): sending it once more",
                    out.seq,
                    out.error.as_deref().unwrap_or_default()
                );
                self.send(out.seq)?;
                self.unanswered.sent(out.seq, Instant::now());
                // An answer, even a failure, is a sign of life.
                self.last_result = Instant::now();
                return Ok(());
            }
            Taken::Foreign => Some(&mut self.dropped.foreign),
            Taken::Stale => Some(&mut self.dropped.stale),
            Taken::Duplicate => Some(&mut self.dropped.duplicates),
        };
        if let Some(count) = counter {
            *count += 1;
            return Ok(());
        }
        let want = self.inputs.items_in(out.seq as usize) as u64;
        results::check_rows(&out, want)?;
        tracing::debug!(
            "microbatch {} answered at plan epoch {}",
            out.seq,
            out.epoch
        );
        self.last_result = Instant::now();
        self.unanswered.answered(out.seq, self.last_result);
        self.latencies
            .push(self.sent_at[&out.seq].elapsed().as_secs_f64());
        self.arrivals_s.push(self.start.elapsed().as_secs_f64());
        self.answered_items += want as usize;
        progress(self.answered_items);
        self.outputs.insert(out.seq, out);
        Ok(())
    }

    /// A plan was announced: a newer one takes every unanswered microbatch again.
    fn on_plan(&mut self, p: PlanInfo) -> Result<()> {
        if !results::switch_to(&self.plan, self.book.epoch(), &p)? {
            return Ok(());
        }
        let again = self.book.switch_epoch(p.epoch);
        tracing::info!(
            "plan epoch {} -> {} ({} stage(s)): sending {} microbatch(es) again",
            self.plan.epoch,
            p.epoch,
            p.stages.len(),
            again.len()
        );
        self.unanswered
            .set_prediction(predicted(&p, self.settings.client.window));
        self.plan = p;
        self.stage0.wait_listening(STAGE0_WAIT)?;
        for seq in again {
            self.send(seq)?;
            self.unanswered.sent(seq, Instant::now());
        }
        // A re-plan is progress: the new pipeline gets a full timeout.
        self.last_result = Instant::now();
        Ok(())
    }

    fn report(mut self) -> RunReport {
        let elapsed = self.start.elapsed().as_secs_f64();
        self.latencies.sort_by(|a, b| a.total_cmp(b));
        let lat = &self.latencies;
        RunReport {
            client: self.settings.name.clone(),
            run: self.run,
            epochs: self.book.epochs().to_vec(),
            resent: self.book.resent(),
            resent_after_failure: self.resends.total(),
            resent_unanswered: self.unanswered.resent(),
            items: self.inputs.items(),
            microbatches: self.microbatches,
            window: self.settings.client.window,
            elapsed_s: elapsed,
            items_per_s: self.inputs.items() as f64 / elapsed,
            latency_p50_s: percentile(lat, 50.0),
            latency_p90_s: percentile(lat, 90.0),
            latency_p99_s: percentile(lat, 99.0),
            latency_max_s: lat.last().copied().unwrap_or(0.0),
            dropped_duplicates: self.dropped.duplicates,
            dropped_foreign: self.dropped.foreign,
            dropped_stale_epoch: self.dropped.stale,
            outputs: results::rows(in_order(self.outputs)),
            arrivals_s: self.arrivals_s,
            plan: self.plan,
        }
    }
}

/// The time a microbatch spends in flight by `plan`'s prediction, `window` in flight.
fn predicted(plan: &PlanInfo, window: usize) -> Option<Duration> {
    predicted_in_flight(
        plan.ubatch,
        plan.predicted_items_per_s,
        plan.stages.len(),
        window,
    )
}
