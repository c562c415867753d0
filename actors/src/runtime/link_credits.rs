//! Credit-based flow control of a stage's outgoing link: at most a few messages sent and not
//! yet acknowledged by the next stage.
//!
//! A zenoh put returns once the message is in the transport's queue and the socket's buffer,
//! which on a slow link can hold seconds of data. Without a bound, a stage keeps encoding into
//! those buffers at bitwidths chosen before a bandwidth drop, and they drain long after it
//! (while the drop's first measurement arrives only once they did). With credits, what is
//! queued ahead of the link is at most `credits` messages: one crossing, one waiting behind it
//! so the link never idles for an acknowledgement's round trip.
//!
//! A credit comes back with the message's acknowledgement, or after `timeout` when none comes
//! (the receiver dropped the message, or left): a lost acknowledgement slows a stage for a
//! while, never stops it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

/// A message on the link: (run, sequence number).
pub type MessageId = (u64, u64);

#[derive(Clone)]
pub struct LinkCredits {
    credits: Arc<Semaphore>,
    held: Arc<Mutex<HashMap<MessageId, OwnedSemaphorePermit>>>,
    timeout: Duration,
}

impl LinkCredits {
    pub fn new(credits: usize, timeout: Duration) -> Self {
        LinkCredits {
            credits: Arc::new(Semaphore::new(credits.max(1))),
            held: Arc::default(),
            timeout,
        }
    }

    /// Waits for a credit and holds it for message `id` until [`LinkCredits::acknowledged`] or
    /// the timeout. Must run inside an actix (tokio local) runtime, which runs the timeout.
    pub async fn take(&self, id: MessageId) -> Result<(), AcquireError> {
        let permit = self.credits.clone().acquire_owned().await?;
        self.held.lock().expect("credits lock").insert(id, permit);
        let (held, timeout) = (self.held.clone(), self.timeout);
        actix_rt::spawn(async move {
            tokio::time::sleep(timeout).await;
            if held.lock().expect("credits lock").remove(&id).is_some() {
                tracing::debug!("no acknowledgement of message {id:?} in {timeout:?}");
            }
        });
        Ok(())
    }

    /// The next stage acknowledged message `id`: its credit is free again. False when the
    /// message holds none (a probe, a timed-out or a repeated acknowledgement).
    pub fn acknowledged(&self, id: MessageId) -> bool {
        self.held
            .lock()
            .expect("credits lock")
            .remove(&id)
            .is_some()
    }

    /// The link's assignment was replaced: every message still waiting for a credit fails at
    /// once (its plan is over), rather than waiting out the timeout of acknowledgements the next
    /// stage, which refuses stale epochs, will never send, while holding the stage's send slot
    /// against the new plan's microbatches.
    pub fn close(&self) {
        self.credits.close();
    }

    /// Messages sent and not acknowledged.
    pub fn in_flight(&self) -> usize {
        self.held.lock().expect("credits lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[actix_rt::test]
    async fn a_third_message_waits_for_an_acknowledgement_of_the_first_two() {
        let c = LinkCredits::new(2, Duration::from_secs(60));
        c.take((1, 0)).await.unwrap();
        c.take((1, 1)).await.unwrap();
        assert_eq!(c.in_flight(), 2);
        let waiting = c.clone();
        let third = actix_rt::spawn(async move { waiting.take((1, 2)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!third.is_finished(), "no credit left");
        assert!(c.acknowledged((1, 0)));
        assert!(
            !c.acknowledged((1, 0)),
            "a repeated acknowledgement frees nothing"
        );
        third.await.unwrap().unwrap();
        assert_eq!(c.in_flight(), 2);
    }

    #[actix_rt::test]
    async fn a_lost_acknowledgement_frees_its_credit_after_the_timeout() {
        let c = LinkCredits::new(1, Duration::from_millis(100));
        c.take((7, 0)).await.unwrap();
        let t = Instant::now();
        c.take((7, 1)).await.unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(90),
            "{:?}",
            t.elapsed()
        );
        assert!(!c.acknowledged((7, 0)), "timed out already");
        assert!(c.acknowledged((7, 1)));
    }

    #[actix_rt::test]
    async fn closing_fails_a_waiting_message_at_once() {
        let c = LinkCredits::new(1, Duration::from_secs(60));
        c.take((3, 0)).await.unwrap();
        let waiting = c.clone();
        let second = actix_rt::spawn(async move { waiting.take((3, 1)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "no credit left");
        c.close();
        let t = Instant::now();
        assert!(
            second.await.unwrap().is_err(),
            "a closed link gives no credit"
        );
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(c.take((3, 2)).await.is_err(), "nor to a later message");
    }
}
