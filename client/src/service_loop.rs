//! The loop thread: packs what the batcher says is ready into microbatches, keeps at most
//! `client.window` of them in flight, takes results as they come, answers deadlines, on a new
//! plan epoch sends every unanswered microbatch again, and sends one unanswered past its bound
//! again under the same epoch (a link down for less than the lease lost it).

use crate::encode::encode;
use crate::state::State;
use quantpipe_actors::runtime::client::Stage0;
use quantpipe_actors::runtime::transport::{unix_ns, zbytes_of};
use quantpipe_messages::{envelope, Activation, Output, PlanInfo};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What wakes the loop.
pub(crate) enum Wake {
    /// A result message for this client.
    Result(Vec<u8>),
    /// The leader's plan (announced, or answered when asked).
    Plan(PlanInfo),
    /// A request was queued.
    Submitted,
    /// The client is closing.
    Stop,
}

/// How long the loop waits for stage 0 to listen after a re-plan.
pub(crate) const STAGE0_WAIT: Duration = Duration::from_secs(10);
/// The loop looks at deadlines at least this often even when nothing else is due.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// The loop's own state (the shared part is [`State`]).
pub(crate) struct ServiceLoop {
    pub state: Arc<Mutex<State>>,
    pub wakes: Receiver<Wake>,
    pub stage0: Stage0,
    pub fleet: String,
    pub client: String,
    pub run: u64,
    pub window: usize,
    pub pixel_shape: Option<[usize; 3]>,
}

/// One microbatch ready to put.
struct Outgoing {
    seq: u64,
    epoch: u64,
    message: Result<[Vec<u8>; 2], String>,
}

impl ServiceLoop {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves plain data behind: keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs until [`Wake::Stop`] (or every handle is gone), then answers what still waits with
    /// `Closed`.
    pub fn run(self) {
        loop {
            let now = Instant::now();
            let (outgoing, wake_at) = {
                let mut s = self.lock();
                s.expire(now);
                let mut out = Vec::new();
                while let Some((seq, epoch)) = s.take_ready(now, self.window) {
                    out.push(self.encode(&s, seq, epoch));
                }
                for (seq, epoch) in s.take_unanswered(now) {
                    out.push(self.encode(&s, seq, epoch));
                }
                (out, s.wake_at(now, self.window))
            };
            for o in outgoing {
                self.put(o);
            }
            let sleep = wake_at
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(MAX_SLEEP)
                .min(MAX_SLEEP);
            match self.wakes.recv_timeout(sleep) {
                Ok(Wake::Result(bytes)) => self.on_result(&bytes),
                Ok(Wake::Plan(plan)) => self.on_plan(plan),
                Ok(Wake::Submitted) | Err(RecvTimeoutError::Timeout) => {}
                Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let mut s = self.lock();
        s.close();
        let (duplicates, stale, foreign) = s.dropped();
        tracing::info!(
            "service loop stopped; results dropped: {duplicates} duplicate(s), {stale} of \
             replaced plans, {foreign} foreign"
        );
    }

    /// Microbatch `seq` as its message under `epoch`.
    fn encode(&self, s: &State, seq: u64, epoch: u64) -> Outgoing {
        let message = encode(&s.items(seq), self.pixel_shape)
            .map(|e| {
                let msg = Activation {
                    run: self.run,
                    client: self.client.clone(),
                    seq,
                    epoch,
                    stage: 0,
                    sent_unix_ns: unix_ns(),
                    body: e.body,
                    body_len: 0,
                    mask: e.mask,
                };
                msg.into_message(&self.fleet, e.payload)
            })
            .map_err(|e| format!("{e:#}"));
        Outgoing {
            seq,
            epoch,
            message,
        }
    }

    /// Sends a microbatch; one that cannot be sent stays in flight, so a re-plan sends it again
    /// and its items' deadlines answer them meanwhile.
    fn put(&self, o: Outgoing) {
        let sent = o
            .message
            .and_then(|m| self.stage0.put(zbytes_of(m)).map_err(|e| format!("{e:#}")));
        if let Err(e) = sent {
            tracing::warn!("microbatch {} at plan epoch {}: {e}", o.seq, o.epoch);
        }
    }

    /// Takes a result; a microbatch whose worker panicked is sent once more.
    fn on_result(&self, bytes: &[u8]) {
        let out = match envelope::decode::<Output>(bytes, &self.fleet) {
            Ok(out) => out,
            Err(e) => return tracing::warn!("dropping a result: {e}"),
        };
        let again = {
            let mut s = self.lock();
            s.take_output(out, self.run, Instant::now())
                .map(|seq| self.encode(&s, seq, s.epoch()))
        };
        if let Some(o) = again {
            self.put(o);
        }
    }

    fn on_plan(&self, plan: PlanInfo) {
        let outgoing: Vec<Outgoing> = {
            let mut s = self.lock();
            let again = s.switch_plan(plan, Instant::now());
            if again.is_empty() {
                return;
            }
            let epoch = s.epoch();
            again
                .into_iter()
                .map(|seq| self.encode(&s, seq, epoch))
                .collect()
        };
        if let Err(e) = self.stage0.wait_listening(STAGE0_WAIT) {
            tracing::warn!("after a re-plan: {e:#}");
        }
        for o in outgoing {
            self.put(o);
        }
    }
}
