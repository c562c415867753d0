//! What a node that may lead sees of its fleet, asked over its own session: the node tokens,
//! the leader tokens, the plan, and every node's device info and stats.

use super::Observed;
use crate::runtime::fleet_answers::answers;
use crate::runtime::timeline::query_stats;
use quantpipe_messages::{DeviceInfo, Keys, PlanInfo};
use std::collections::BTreeSet;
use std::time::Duration;
use zenoh::{Session, Wait};

/// What `me` sees of the fleet now, waiting at most `limit` for each kind of answer.
/// `configured_leader`: `me` leads for its whole life; otherwise it leads while its leader
/// token is up.
pub fn observe(
    session: &Session,
    keys: &Keys,
    me: &str,
    configured_leader: bool,
    expected: &[String],
    limit: Duration,
) -> Observed {
    let leaders = tokens(session, keys, &keys.leaders(), "leader", limit);
    Observed {
        leader: me.to_owned(),
        leading: configured_leader || leaders.contains(me),
        plan: answers::<PlanInfo>(session, keys, &keys.plan(), limit)
            .into_iter()
            .max_by_key(|p| p.epoch),
        alive: tokens(session, keys, &keys.nodes(), "node", limit),
        expected: expected.to_vec(),
        devices: answers::<DeviceInfo>(session, keys, &keys.device("*"), limit),
        stats: query_stats(session, keys, limit),
    }
}

/// The names of the liveliness tokens under `pattern` (`qp/<fleet>/<kind>/*`).
fn tokens(
    session: &Session,
    keys: &Keys,
    pattern: &str,
    kind: &str,
    limit: Duration,
) -> BTreeSet<String> {
    let Ok(replies) = session.liveliness().get(pattern).timeout(limit).wait() else {
        return BTreeSet::new();
    };
    let mut names = BTreeSet::new();
    while let Ok(reply) = replies.recv() {
        if let Ok(sample) = reply.result() {
            if let Some(name) = keys.token_name(kind, sample.key_expr().as_str()) {
                names.insert(name.to_owned());
            }
        }
    }
    names
}
