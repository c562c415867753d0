//! The client's way into the pipeline: the stage-0 publisher, and whether stage 0 listens,
//! learnt from the publisher's matching listener rather than by asking again and again.

use anyhow::{anyhow, bail, Result};
use quantpipe_messages::Keys;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use zenoh::bytes::ZBytes;
use zenoh::matching::MatchingListener;
use zenoh::pubsub::Publisher;
use zenoh::qos::{CongestionControl, Priority};
use zenoh::{Session, Wait};

/// The stage-0 publisher with its matching changes.
pub struct Stage0 {
    // Dropped before the publisher it belongs to (see `PlanWatch`).
    _listener: MatchingListener<()>,
    publisher: Publisher<'static>,
    changes: Receiver<bool>,
    key: String,
}

impl Stage0 {
    /// `client` is the name the client's microbatches carry: stage 0 takes them only on that
    /// client's own key.
    pub fn declare(session: &Session, keys: &Keys, client: &str) -> Result<Stage0> {
        let key = keys.stage0_in_from(client);
        let publisher = session
            .declare_publisher(key.clone())
            .congestion_control(CongestionControl::Block)
            .priority(Priority::Data)
            .wait()
            .map_err(|e| anyhow!("declaring the stage-0 publisher: {e}"))?;
        let (tx, changes) = channel();
        let listener = publisher
            .matching_listener()
            .callback(move |m| {
                let _ = tx.send(m.matching());
            })
            .wait()
            .map_err(|e| anyhow!("watching stage 0's subscribers: {e}"))?;
        Ok(Stage0 {
            key,
            publisher,
            changes,
            _listener: listener,
        })
    }

    fn matching(&self) -> Result<bool> {
        Ok(self
            .publisher
            .matching_status()
            .wait()
            .map_err(|e| anyhow!("matching status: {e}"))?
            .matching())
    }

    /// Returns once a subscriber of stage 0 is known; fails after `limit` without one.
    pub fn wait_listening(&self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        // The listener was declared before this check: a change after it is in `changes`.
        while !self.matching()? {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.changes.recv_timeout(left) {
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    bail!("stage 0 does not listen on {}", self.key)
                }
                Err(RecvTimeoutError::Disconnected) => bail!("the matching listener closed"),
            }
        }
        Ok(())
    }

    pub fn put(&self, payload: ZBytes) -> Result<()> {
        self.publisher
            .put(payload)
            .wait()
            .map_err(|e| anyhow!("sending to stage 0: {e}"))
    }
}
