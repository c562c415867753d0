//! The status queryable of a node that may lead. Its callback never waits: it hands the query
//! to one worker thread, which looks at the fleet and answers. At most a few queries wait for
//! the worker; more are dropped (their askers time out), so a flood of status queries costs
//! the node one thread and a short queue.

use super::{assemble, observe};
use crate::runtime::declarations::{Counted, Kind};
use anyhow::{anyhow, Result};
use quantpipe_messages::{envelope, Keys};
use std::sync::mpsc::{sync_channel, TrySendError};
use std::time::Duration;
use zenoh::query::{Query, Queryable};
use zenoh::{Session, Wait};

/// Status queries waiting for the worker, at most.
const QUEUED_QUERIES: usize = 4;
/// How long the worker waits for each kind of answer it gathers.
const GATHER_LIMIT: Duration = Duration::from_secs(2);

/// Declares `me`'s status queryable (`qp/<fleet>/status/<me>`).
pub fn declare_status(
    session: &Session,
    keys: &Keys,
    me: &str,
    configured_leader: bool,
    expected: Vec<String>,
) -> Result<Counted<Queryable<()>>> {
    let (tx, rx) = sync_channel::<Query>(QUEUED_QUERIES);
    let (s, k, name) = (session.clone(), keys.clone(), me.to_owned());
    std::thread::Builder::new()
        .name("status".into())
        .spawn(move || {
            // Ends when the queryable (holding the sender) is dropped.
            while let Ok(query) = rx.recv() {
                let seen = observe(&s, &k, &name, configured_leader, &expected, GATHER_LIMIT);
                let bytes = envelope::encode(&k.fleet, &assemble(&seen, &k));
                if let Err(e) = query.reply(query.key_expr().clone(), bytes).wait() {
                    tracing::warn!("answering a status query: {e}");
                }
            }
        })
        .map_err(|e| anyhow!("starting the status thread: {e}"))?;
    let key = keys.status(me);
    session
        .declare_queryable(key.clone())
        .callback(move |query| match tx.try_send(query) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => tracing::debug!("status query dropped: busy"),
            Err(TrySendError::Disconnected(_)) => {}
        })
        .wait()
        .map(|q| Counted::node(q, Kind::Queryable))
        .map_err(|e| anyhow!("declaring the queryable {key}: {e}"))
}
