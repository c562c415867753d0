//! What the callers' threads and the service loop share: the batcher (with its book of
//! microbatches per plan epoch), the microbatches unanswered and when each is sent again under
//! the same epoch, each admitted item's waiting caller, and the figures. Every decision here is
//! [`quantpipe_batching`]'s; this only routes its answers to callers.

use crate::item::{ItemError, ItemOutput, ItemResult, SubmitError};
use crate::prepare::Input;
use crate::snapshot::ServiceSnapshot;
use quantpipe_actors::runtime::client::retry::{AfterFailure, Resends};
use quantpipe_batching::resend::predicted_in_flight;
use quantpipe_batching::{BatchConfig, Batcher, Dropped, ItemId, Refusal, ResendRule, Unanswered};
use quantpipe_messages::{Output, PlanInfo};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A caller waiting for one item.
struct Waiter {
    tx: oneshot::Sender<ItemResult>,
    tokens: usize,
}

/// Counters since the client connected.
#[derive(Debug, Default)]
struct Counts {
    items_answered: u64,
    microbatches_sent: u64,
    /// Sum over microbatches of items / the plan's ubatch.
    fill_sum: f64,
    refused_full: u64,
    expired: u64,
    failed: u64,
    duplicates: u64,
    stale: u64,
    foreign: u64,
}

/// The client's state, behind one lock.
pub(crate) struct State {
    batcher: Batcher<Input>,
    waiters: HashMap<ItemId, Waiter>,
    plan: PlanInfo,
    counts: Counts,
    /// Microbatches sent again after a retryable failure.
    resends: Resends,
    /// Microbatches unanswered under the current epoch, and when each is sent again.
    unanswered: Unanswered,
    /// Microbatches in flight at most (for the plan's predicted time in flight).
    window: usize,
    closed: bool,
}

impl State {
    /// A client sending under `plan`, at most `window` microbatches in flight, resending
    /// unanswered ones by `resend`.
    pub fn new(plan: PlanInfo, config: BatchConfig, resend: ResendRule, window: usize) -> Self {
        let mut batcher = Batcher::new(config, plan.epoch);
        batcher.set_ubatch(plan.ubatch);
        let mut unanswered = Unanswered::new(resend);
        unanswered.set_prediction(predicted(&plan, window));
        State {
            batcher,
            waiters: HashMap::new(),
            plan,
            counts: Counts::default(),
            resends: Resends::default(),
            unanswered,
            window,
            closed: false,
        }
    }

    /// Queues a request whole, answering one receiver per item; refuses it whole otherwise.
    pub fn admit(
        &mut self,
        inputs: Vec<Input>,
        now: Instant,
        deadline: Instant,
    ) -> Result<Vec<oneshot::Receiver<ItemResult>>, SubmitError> {
        if self.closed {
            return Err(SubmitError::Unavailable("the client is closed".into()));
        }
        let tokens: Vec<usize> = inputs.iter().map(Input::tokens).collect();
        let ids = self
            .batcher
            .admit(inputs, now, deadline)
            .map_err(|r| self.refused(r))?;
        Ok(ids
            .into_iter()
            .zip(tokens)
            .map(|(id, tokens)| {
                let (tx, rx) = oneshot::channel();
                self.waiters.insert(id, Waiter { tx, tokens });
                rx
            })
            .collect())
    }

    fn refused(&mut self, r: Refusal) -> SubmitError {
        match r {
            Refusal::Full { retry_after } => {
                self.counts.refused_full += 1;
                SubmitError::Full { retry_after }
            }
            Refusal::TooLarge { capacity } => SubmitError::BadItem {
                index: capacity,
                reason: format!("a request holds at most {capacity} items (the queue's size)"),
            },
            Refusal::Empty => SubmitError::BadItem {
                index: 0,
                reason: "the request holds no item".into(),
            },
        }
    }

    fn resolve(&mut self, id: ItemId, result: impl FnOnce(usize) -> ItemResult) {
        if let Some(w) = self.waiters.remove(&id) {
            // A caller that stopped waiting dropped its receiver: nothing to tell.
            let _ = w.tx.send(result(w.tokens));
        }
    }

    /// Answers every item whose deadline passed with [`ItemError::Deadline`].
    pub fn expire(&mut self, now: Instant) {
        for id in self.batcher.expire(now) {
            self.counts.expired += 1;
            self.resolve(id, |_| Err(ItemError::Deadline));
        }
        // A microbatch whose items all expired is no longer waited for, nor sent again.
        let batcher = &self.batcher;
        self.unanswered.retain(|seq| batcher.items(seq).is_some());
    }

    /// Whether the window has room for another microbatch.
    pub fn may_send(&self, window: usize) -> bool {
        self.batcher.in_flight() < window.max(1)
    }

    /// The next microbatch to send now, if any: its sequence number and epoch, recorded as
    /// sent (the caller sends it).
    pub fn take_ready(&mut self, now: Instant, window: usize) -> Option<(u64, u64)> {
        if !self.may_send(window) {
            return None;
        }
        let seq = self.batcher.take_ready(now)?;
        let items = self.items(seq).len();
        self.unanswered.sent(seq, now);
        self.counts.microbatches_sent += 1;
        self.counts.fill_sum += items as f64 / self.plan.ubatch.max(1) as f64;
        Some((seq, self.batcher.epoch()))
    }

    /// The items microbatch `seq` carries, in row order (empty once answered).
    pub fn items(&self, seq: u64) -> Vec<&Input> {
        self.batcher
            .items(seq)
            .map(|slots| slots.iter().map(|s| &s.item).collect())
            .unwrap_or_default()
    }

    /// The microbatches unanswered past their bound at `now`, to send again under the current
    /// epoch: (sequence number, epoch) each, recorded as sent again (the caller sends them).
    pub fn take_unanswered(&mut self, now: Instant) -> Vec<(u64, u64)> {
        let due = self.unanswered.take_due(now);
        if !due.is_empty() {
            tracing::info!(
                "microbatch(es) {due:?} unanswered for over {:.1} s at plan epoch {}: sending \
                 them again",
                self.unanswered.bound().as_secs_f64(),
                self.batcher.epoch()
            );
        }
        let epoch = self.batcher.epoch();
        due.into_iter().map(|seq| (seq, epoch)).collect()
    }

    /// When the loop must look again, whatever arrives: a microbatch's `max_delay`, a
    /// deadline, or a resend of an unanswered microbatch.
    pub fn wake_at(&self, now: Instant, window: usize) -> Option<Instant> {
        let batcher = self.batcher.wake_at(now, self.may_send(window));
        [batcher, self.unanswered.next_due()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Takes a result message of run `run`: answers its items once, with their rows or with
    /// the stage's error; drops (and counts) duplicates, other epochs' and foreign results.
    /// A retryable failure of a microbatch in flight under the current plan is not answered
    /// the first time: the answer is its sequence number, for the caller to send it once more.
    pub fn take_output(&mut self, out: Output, run: u64, now: Instant) -> Option<u64> {
        if out.run != run {
            self.counts.foreign += 1;
            return None;
        }
        let rows_sent = self.items(out.seq).len();
        let in_flight = rows_sent > 0 && out.epoch == self.batcher.epoch();
        if out.error.is_some()
            && out.retryable
            && in_flight
            && self.resends.after_failure(out.seq, true) == AfterFailure::SendAgain
        {
            tracing::warn!(
                "microbatch {} failed ({}): sending it once more",
                out.seq,
                out.error.as_deref().unwrap_or_default()
            );
            self.unanswered.sent(out.seq, now);
            return Some(out.seq);
        }
        let dropped = match self.batcher.take_result(out.seq, out.epoch, now) {
            Ok(rows) => Ok(rows),
            Err(Dropped::Duplicate) => Err(&mut self.counts.duplicates),
            Err(Dropped::StaleEpoch) => Err(&mut self.counts.stale),
            Err(Dropped::Unknown) => Err(&mut self.counts.foreign),
        };
        let rows = match dropped {
            Ok(rows) => rows,
            Err(count) => {
                *count += 1;
                return None;
            }
        };
        self.resends.answered(out.seq);
        self.unanswered.answered(out.seq, now);
        let error = out
            .error
            .clone()
            .or_else(|| row_shape_error(&out, rows_sent));
        self.counts.items_answered += rows.len() as u64;
        if let Some(e) = error {
            tracing::warn!("microbatch {} failed: {e}", out.seq);
            self.counts.failed += rows.len() as u64;
            for (_, id) in rows {
                self.resolve(id, |_| Err(ItemError::Pipeline(e.clone())));
            }
            return None;
        }
        let d = out.shape[1] as usize;
        for (row, id) in rows {
            let values = out.values[row * d..(row + 1) * d].to_vec();
            self.resolve(id, |tokens| Ok(ItemOutput { values, tokens }));
        }
        None
    }

    /// Moves to a newer plan at `now`: answers the microbatches to send again under its epoch
    /// (none for an older or the same epoch), recorded as sent then.
    pub fn switch_plan(&mut self, plan: PlanInfo, now: Instant) -> Vec<u64> {
        if plan.epoch <= self.batcher.epoch() {
            return Vec::new();
        }
        let again = self.batcher.switch_epoch(plan.epoch);
        self.batcher.set_ubatch(plan.ubatch);
        for &seq in &again {
            self.unanswered.sent(seq, now);
        }
        self.unanswered
            .set_prediction(predicted(&plan, self.window));
        tracing::info!(
            "plan epoch {} -> {} ({} stage(s), microbatches of {}): sending {} again",
            self.plan.epoch,
            plan.epoch,
            plan.stages.len(),
            plan.ubatch,
            again.len()
        );
        self.plan = plan;
        again
    }

    pub fn epoch(&self) -> u64 {
        self.batcher.epoch()
    }

    pub fn plan(&self) -> &PlanInfo {
        &self.plan
    }

    /// Answers every item still waiting with [`ItemError::Closed`]; later requests are refused.
    pub fn close(&mut self) {
        self.closed = true;
        self.unanswered.clear();
        for id in self.batcher.drain() {
            self.resolve(id, |_| Err(ItemError::Closed));
        }
        for (_, w) in self.waiters.drain() {
            let _ = w.tx.send(Err(ItemError::Closed));
        }
    }

    pub fn snapshot(&self) -> ServiceSnapshot {
        let c = &self.counts;
        ServiceSnapshot {
            plan: Some(self.plan.clone()),
            queued_items: self.batcher.queued(),
            in_flight_microbatches: self.batcher.in_flight(),
            items_answered: c.items_answered,
            microbatches_sent: c.microbatches_sent,
            mean_fill: if c.microbatches_sent == 0 {
                0.0
            } else {
                c.fill_sum / c.microbatches_sent as f64
            },
            resent: self.batcher.resent(),
            resent_unanswered: self.unanswered.resent(),
            refused_full: c.refused_full,
            expired: c.expired,
        }
    }

    /// Results dropped: (duplicates, other epochs', foreign).
    pub fn dropped(&self) -> (u64, u64, u64) {
        (
            self.counts.duplicates,
            self.counts.stale,
            self.counts.foreign,
        )
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

/// Why a result's rows do not fit the `rows` items its microbatch carried, if they do not.
fn row_shape_error(out: &Output, rows: usize) -> Option<String> {
    let fits = out.shape.len() == 2
        && out.shape[0] == rows as u64
        && out.values.len() as u64 == out.shape[0].saturating_mul(out.shape[1]);
    (!fits).then(|| {
        format!(
            "result of microbatch {} has shape {:?} and {} values for {rows} items",
            out.seq,
            out.shape,
            out.values.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const RUN: u64 = 42;
    const LONG: Duration = Duration::from_secs(30);

    fn plan(epoch: u64, ubatch: usize) -> PlanInfo {
        PlanInfo {
            epoch,
            model: "m".into(),
            ubatch,
            source: "planner".into(),
            stages: vec![],
            predicted_items_per_s: 0.0,
        }
    }

    /// A client whose runs give up after 10 minutes without a result: no resend of an
    /// unanswered microbatch falls due within [`LONG`] unless answers set a shorter bound.
    fn state(ubatch: usize, capacity: usize) -> State {
        State::new(
            plan(1, ubatch),
            BatchConfig {
                ubatch: 1,
                max_delay: Duration::from_millis(5),
                capacity,
            },
            ResendRule::within(Duration::from_secs(600)),
            4,
        )
    }

    fn texts(n: usize) -> Vec<Input> {
        (0..n)
            .map(|i| Input::Tokens(vec![101, i as i64, 102]))
            .collect()
    }

    /// A result of `rows` rows of width 2, row i holding [seq, i].
    fn output(seq: u64, epoch: u64, rows: usize) -> Output {
        Output {
            run: RUN,
            seq,
            epoch,
            shape: vec![rows as u64, 2],
            values: (0..rows).flat_map(|i| [seq as f32, i as f32]).collect(),
            error: None,
            retryable: false,
        }
    }

    fn got(rx: &mut oneshot::Receiver<ItemResult>) -> Option<ItemResult> {
        rx.try_recv().ok()
    }

    #[test]
    fn each_item_gets_its_own_row_and_token_count() {
        let t = Instant::now();
        let mut s = state(2, 16);
        let mut rx = s.admit(texts(2), t, t + LONG).unwrap();
        let (seq, epoch) = s.take_ready(t, 4).unwrap();
        s.take_output(output(seq, epoch, 2), RUN, t);
        assert_eq!(
            got(&mut rx[1]),
            Some(Ok(ItemOutput {
                values: vec![seq as f32, 1.0],
                tokens: 3
            }))
        );
        assert_eq!(s.snapshot().items_answered, 2);
        assert_eq!(s.snapshot().mean_fill, 1.0);
    }

    #[test]
    fn a_stage_error_fails_only_the_items_of_its_microbatch() {
        let t = Instant::now();
        let mut s = state(1, 16);
        let mut rx = s.admit(texts(2), t, t + LONG).unwrap();
        let (a, epoch) = s.take_ready(t, 4).unwrap();
        let (b, _) = s.take_ready(t, 4).unwrap();
        let mut failed = output(a, epoch, 0);
        failed.error = Some("stage 1: out of memory".into());
        s.take_output(failed, RUN, t);
        s.take_output(output(b, epoch, 1), RUN, t);
        assert_eq!(
            got(&mut rx[0]),
            Some(Err(ItemError::Pipeline("stage 1: out of memory".into())))
        );
        assert!(matches!(got(&mut rx[1]), Some(Ok(_))));
    }

    #[test]
    fn a_microbatch_whose_worker_panicked_is_sent_once_more_then_answered() {
        let t = Instant::now();
        let mut s = state(1, 16);
        let mut rx = s.admit(texts(1), t, t + LONG).unwrap();
        let (a, epoch) = s.take_ready(t, 4).unwrap();
        let mut failed = output(a, epoch, 0);
        failed.error = Some("stage 1: forward worker panicked".into());
        failed.retryable = true;
        assert_eq!(s.take_output(failed.clone(), RUN, t), Some(a));
        assert_eq!(got(&mut rx[0]), None, "the caller still waits");
        assert_eq!(s.take_output(output(a, epoch, 1), RUN, t), None);
        assert!(matches!(got(&mut rx[0]), Some(Ok(_))));
    }

    #[test]
    fn a_microbatch_whose_worker_panicked_twice_fails() {
        let t = Instant::now();
        let mut s = state(1, 16);
        let mut rx = s.admit(texts(1), t, t + LONG).unwrap();
        let (a, epoch) = s.take_ready(t, 4).unwrap();
        let mut failed = output(a, epoch, 0);
        failed.error = Some("stage 1: forward worker panicked".into());
        failed.retryable = true;
        assert_eq!(s.take_output(failed.clone(), RUN, t), Some(a));
        assert_eq!(s.take_output(failed, RUN, t), None);
        assert_eq!(
            got(&mut rx[0]),
            Some(Err(ItemError::Pipeline(
                "stage 1: forward worker panicked".into()
            )))
        );
    }

    #[test]
    fn a_result_whose_rows_do_not_match_its_items_fails_them() {
        let t = Instant::now();
        let mut s = state(2, 16);
        let mut rx = s.admit(texts(2), t, t + LONG).unwrap();
        let (seq, epoch) = s.take_ready(t, 4).unwrap();
        s.take_output(output(seq, epoch, 1), RUN, t);
        assert!(
            matches!(got(&mut rx[0]), Some(Err(ItemError::Pipeline(e))) if e.contains("shape"))
        );
    }

    #[test]
    fn a_microbatch_resent_after_a_replan_answers_its_items_once() {
        let t = Instant::now();
        let mut s = state(2, 16);
        let mut rx = s.admit(texts(2), t, t + LONG).unwrap();
        let (seq, old) = s.take_ready(t, 4).unwrap();
        assert_eq!(s.switch_plan(plan(old + 1, 2), t), vec![seq]);
        // The replaced pipeline's late answer is dropped; the new epoch's is taken, once.
        s.take_output(output(seq, old, 2), RUN, t);
        assert_eq!(got(&mut rx[0]), None);
        s.take_output(output(seq, old + 1, 2), RUN, t);
        s.take_output(output(seq, old + 1, 2), RUN, t);
        assert!(matches!(got(&mut rx[0]), Some(Ok(_))));
        assert!(matches!(got(&mut rx[1]), Some(Ok(_))));
        assert_eq!(s.dropped(), (1, 1, 0));
        // A sequence number never sent is foreign.
        s.take_output(output(seq + 1, old + 1, 2), RUN, t);
        assert_eq!(s.dropped(), (1, 1, 1));
        assert_eq!(s.snapshot().items_answered, 2);
        assert_eq!(s.snapshot().resent, 1);
        // An older or the same epoch changes nothing.
        assert!(s.switch_plan(plan(old, 2), t).is_empty());
    }

    /// Eight microbatches answered in 0.5 s each: the resend bound is the floor, 2 s.
    fn answered_quickly(s: &mut State, t: Instant) {
        s.admit(texts(8), t, t + LONG).unwrap();
        for _ in 0..8 {
            let (seq, epoch) = s.take_ready(t, 16).unwrap();
            s.take_output(output(seq, epoch, 1), RUN, t + Duration::from_millis(500));
        }
    }

    #[test]
    fn a_microbatch_unanswered_past_its_bound_is_sent_again_under_the_same_epoch_and_answers_once()
    {
        let t = Instant::now();
        let mut s = state(1, 64);
        answered_quickly(&mut s, t);
        let mut rx = s.admit(texts(1), t, t + LONG).unwrap();
        let (lost, epoch) = s.take_ready(t, 16).unwrap();
        assert!(s
            .take_unanswered(t + Duration::from_millis(1900))
            .is_empty());
        assert_eq!(s.wake_at(t, 16), Some(t + Duration::from_secs(2)));
        assert_eq!(
            s.take_unanswered(t + Duration::from_secs(2)),
            vec![(lost, epoch)]
        );
        // Either copy answers; the other's answer is a duplicate.
        let later = t + Duration::from_secs(3);
        s.take_output(output(lost, epoch, 1), RUN, later);
        s.take_output(output(lost, epoch, 1), RUN, later);
        assert!(matches!(got(&mut rx[0]), Some(Ok(_))));
        assert_eq!(s.dropped(), (1, 0, 0));
        let snap = s.snapshot();
        assert_eq!((snap.resent_unanswered, snap.resent), (1, 0));
        assert_eq!(snap.items_answered, 9);
        assert!(s.take_unanswered(t + LONG).is_empty());
    }

    #[test]
    fn a_microbatch_whose_items_expired_is_not_sent_again() {
        let t = Instant::now();
        let mut s = state(1, 64);
        answered_quickly(&mut s, t);
        let short = Duration::from_secs(1);
        let mut rx = s.admit(texts(1), t, t + short).unwrap();
        s.take_ready(t, 16).unwrap();
        s.expire(t + short);
        assert_eq!(got(&mut rx[0]), Some(Err(ItemError::Deadline)));
        assert!(s.take_unanswered(t + LONG).is_empty());
        assert_eq!(s.wake_at(t + short, 16), None);
    }

    #[test]
    fn after_a_replan_a_resent_microbatch_waits_its_bound_anew() {
        let t = Instant::now();
        let mut s = state(1, 64);
        answered_quickly(&mut s, t);
        s.admit(texts(1), t, t + LONG).unwrap();
        let (seq, old) = s.take_ready(t, 16).unwrap();
        let replanned = t + Duration::from_secs(1);
        assert_eq!(s.switch_plan(plan(old + 1, 1), replanned), vec![seq]);
        assert!(s.take_unanswered(t + Duration::from_secs(2)).is_empty());
        assert_eq!(
            s.take_unanswered(replanned + Duration::from_secs(2)),
            vec![(seq, old + 1)]
        );
        let snap = s.snapshot();
        assert_eq!((snap.resent_unanswered, snap.resent), (1, 1));
    }

    #[test]
    fn results_of_other_runs_are_dropped_as_foreign() {
        let t = Instant::now();
        let mut s = state(1, 16);
        let mut rx = s.admit(texts(1), t, t + LONG).unwrap();
        let (seq, epoch) = s.take_ready(t, 4).unwrap();
        s.take_output(output(seq, epoch, 1), RUN + 1, t);
        assert_eq!(got(&mut rx[0]), None);
        assert_eq!(s.dropped(), (0, 0, 1));
    }

    #[test]
    fn the_window_bounds_the_microbatches_in_flight() {
        let t = Instant::now();
        let mut s = state(1, 16);
        s.admit(texts(3), t, t + LONG).unwrap();
        assert!(s.take_ready(t, 2).is_some());
        assert!(s.take_ready(t, 2).is_some());
        assert_eq!(s.take_ready(t, 2), None);
        // With the window full only the deadline is due.
        assert_eq!(s.wake_at(t, 2), Some(t + LONG));
        assert_eq!(s.snapshot().queued_items, 1);
        assert_eq!(s.snapshot().in_flight_microbatches, 2);
    }

    #[test]
    fn a_passed_deadline_answers_deadline_and_a_full_queue_refuses() {
        let t = Instant::now();
        let mut s = state(4, 2);
        let mut rx = s.admit(texts(1), t, t + Duration::from_millis(1)).unwrap();
        s.admit(texts(1), t, t + LONG).unwrap();
        assert!(matches!(
            s.admit(texts(1), t, t + LONG),
            Err(SubmitError::Full { .. })
        ));
        s.expire(t + Duration::from_millis(1));
        assert_eq!(got(&mut rx[0]), Some(Err(ItemError::Deadline)));
        let snap = s.snapshot();
        assert_eq!(
            (snap.refused_full, snap.expired, snap.queued_items),
            (1, 1, 1)
        );
    }

    #[test]
    fn closing_answers_waiting_items_and_refuses_later_requests() {
        let t = Instant::now();
        let mut s = state(1, 16);
        let mut rx = s.admit(texts(2), t, t + LONG).unwrap();
        s.take_ready(t, 4).unwrap();
        s.close();
        assert_eq!(got(&mut rx[0]), Some(Err(ItemError::Closed)));
        assert_eq!(got(&mut rx[1]), Some(Err(ItemError::Closed)));
        assert!(matches!(
            s.admit(texts(1), t, t + LONG),
            Err(SubmitError::Unavailable(_))
        ));
    }

    #[test]
    fn an_oversized_or_empty_request_is_a_bad_request() {
        let t = Instant::now();
        let mut s = state(1, 2);
        assert!(matches!(
            s.admit(texts(3), t, t + LONG),
            Err(SubmitError::BadItem { index: 2, .. })
        ));
        assert!(matches!(
            s.admit(vec![], t, t + LONG),
            Err(SubmitError::BadItem { index: 0, .. })
        ));
    }
}
