//! Assignments pass through the fetcher before they reach the StageActor: the assignment
//! queryable hands each one to a thread that first makes the model folder hold the shard's
//! weights (fetching what is missing, [`Fetcher::ensure`]), then passes the assignment on.
//! Assignments keep their order; a fetch that fails answers the leader with the reason, and the
//! stage keeps what it ran.

use super::fetch::Fetcher;
use crate::runtime::declarations::{Counted, Kind};
use crate::runtime::stage::{AssignQuery, StageActor};
use actix::Addr;
use anyhow::{anyhow, Result};
use quantpipe_messages::{envelope, AssignAck, Assignment, Keys};
use std::path::PathBuf;
use zenoh::query::Query;
use zenoh::Wait;

/// Declares the assignment queryable of node `name`, whose assignments reach `stage` once the
/// folder `dir` holds their weights.
pub fn declare_assign_queryable(
    session: &zenoh::Session,
    keys: &Keys,
    name: &str,
    dir: PathBuf,
    stage: Addr<StageActor>,
) -> Result<Counted<zenoh::query::Queryable<()>>> {
    let (tx, rx) = std::sync::mpsc::channel::<(Vec<u8>, Query)>();
    let fetcher = Fetcher::new(session.clone(), keys.clone(), name.to_owned(), dir);
    let (me, fleet) = (name.to_owned(), keys.fleet.clone());
    // A plain thread: zenoh's blocking calls refuse to run inside an async runtime. It ends
    // when the queryable (holding the sender) is dropped.
    std::thread::Builder::new()
        .name("weights-fetch".into())
        .spawn(move || {
            for (bytes, query) in rx {
                match prepare(&fetcher, &bytes, &fleet, &me) {
                    Ok(()) => stage.do_send(AssignQuery { bytes, query }),
                    Err((epoch, why)) => refuse(query, &fleet, &me, epoch, why),
                }
            }
        })
        .map_err(|e| anyhow!("starting the weights fetcher: {e}"))?;
    let key = keys.assign(name);
    session
        .declare_queryable(key.clone())
        .callback(move |query| {
            let bytes = query
                .payload()
                .map(|p| p.to_bytes().into_owned())
                .unwrap_or_default();
            let _ = tx.send((bytes, query));
        })
        .wait()
        .map(|q| Counted::node(q, Kind::Queryable))
        .map_err(|e| anyhow!("declaring the queryable {key}: {e}"))
}

/// Fetches what the assignment in `bytes` needs; an assignment that does not decode, or
/// carries no weights, goes on to the stage as it is (the stage judges it).
fn prepare(fetcher: &Fetcher, bytes: &[u8], fleet: &str, me: &str) -> Result<(), (u64, String)> {
    let Ok(a) = envelope::decode::<Assignment>(bytes, fleet) else {
        return Ok(());
    };
    let Some(w) = &a.weights else { return Ok(()) };
    match fetcher.ensure(w) {
        Ok(r) if r.bytes > 0 || !r.refused.is_empty() => {
            tracing::info!(
                "{me}: fetched {} bytes ({} tensors, {} files) for units {}..{} in {:.2} s; \
                 shard tensors {} bytes, model file {} bytes; refused: [{}]",
                r.bytes,
                r.tensors,
                r.files,
                a.l,
                a.r,
                r.seconds,
                w.tensor_bytes(),
                w.file_len,
                r.refused.join(", ")
            );
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::error!(
                "{me}: cannot get the weights of units {}..{}: {e:#}",
                a.l,
                a.r
            );
            Err((a.epoch, format!("fetching weights: {e:#}")))
        }
    }
}

/// Answers the leader that the assignment of `epoch` cannot be taken.
fn refuse(query: Query, fleet: &str, me: &str, epoch: u64, why: String) {
    let ack = AssignAck {
        node: me.to_owned(),
        epoch,
        error: Some(why),
    };
    let key = query.key_expr().clone();
    if let Err(e) = query.reply(key, envelope::encode(fleet, &ack)).wait() {
        tracing::warn!("answering an assignment: {e}");
    }
}
