//! Asking every node of a fleet at once: a zenoh query on a key pattern that each node answers
//! on its own key, every answer kept.

use quantpipe_messages::{envelope, Keys};
use serde::de::DeserializeOwned;
use std::time::Duration;
use zenoh::qos::Priority;
use zenoh::query::{ConsolidationMode, QueryTarget};
use zenoh::{Session, Wait};

/// Every answer to a query on `key` within `limit` that decodes as a `T` of this fleet (answers
/// of other fleets or wire versions are skipped).
pub fn answers<T: DeserializeOwned>(
    session: &Session,
    keys: &Keys,
    key: &str,
    limit: Duration,
) -> Vec<T> {
    let Ok(replies) = session
        .get(key)
        // Every node answers, not only the nearest queryable.
        .target(QueryTarget::All)
        // Each node answers on its own key: keep every answer.
        .consolidation(ConsolidationMode::None)
        .priority(Priority::InteractiveHigh)
        .timeout(limit)
        .wait()
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while let Ok(reply) = replies.recv() {
        if let Ok(sample) = reply.result() {
            if let Ok(v) = envelope::decode::<T>(&sample.payload().to_bytes(), &keys.fleet) {
                out.push(v);
            }
        }
    }
    out
}
