//! Asking the fleet's leader for its status.

use anyhow::{anyhow, bail, Result};
use quantpipe_messages::{envelope, FleetStatus, Keys};
use std::time::Duration;
use zenoh::qos::Priority;
use zenoh::query::{ConsolidationMode, QueryTarget};
use zenoh::{Session, Wait};

/// The status the fleet's leader answers, waiting at most `limit` (the leader itself waits
/// up to 2 s for each kind of answer it gathers, so give it more than 6 s). Fails, naming the
/// fleet, when no node that leads answers.
pub fn ask_leader(session: &Session, keys: &Keys, limit: Duration) -> Result<FleetStatus> {
    let replies = session
        .get(keys.status("*"))
        .target(QueryTarget::All)
        .consolidation(ConsolidationMode::None)
        .priority(Priority::InteractiveHigh)
        .timeout(limit)
        .wait()
        .map_err(|e| anyhow!("status query: {e}"))?;
    let mut answered = Vec::new();
    while let Ok(reply) = replies.recv() {
        let Ok(sample) = reply.result() else { continue };
        match envelope::decode::<FleetStatus>(&sample.payload().to_bytes(), &keys.fleet) {
            Ok(status) => answered.push(status),
            Err(e) => tracing::warn!("a status answer on {}: {e}", sample.key_expr()),
        }
    }
    pick_leader(answered, &keys.fleet, limit)
}

/// The answer of the node that leads, or an error saying who answered instead.
pub fn pick_leader(
    answered: Vec<FleetStatus>,
    fleet: &str,
    limit: Duration,
) -> Result<FleetStatus> {
    let others: Vec<String> = answered
        .iter()
        .filter(|s| !s.leading)
        .map(|s| s.leader.clone())
        .collect();
    if let Some(status) = answered.into_iter().find(|s| s.leading) {
        return Ok(status);
    }
    if others.is_empty() {
        bail!(
            "no leader of fleet {fleet} answered within {limit:?}: is a leader up, and do these \
             settings reach it (zenoh.connect, and on a secured fleet an enrolled member)?"
        );
    }
    bail!(
        "no leader of fleet {fleet} answered within {limit:?}; candidates that do not lead now \
         answered: {}",
        others.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(name: &str, leading: bool) -> FleetStatus {
        FleetStatus {
            leader: name.into(),
            leading,
            ..Default::default()
        }
    }

    #[test]
    fn the_leading_nodes_answer_is_taken_over_candidates() {
        let s = pick_leader(
            vec![answer("cand-b", false), answer("cand-a", true)],
            "f",
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(s.leader, "cand-a");
    }

    #[test]
    fn no_answer_names_the_fleet_and_what_to_check() {
        let e = pick_leader(vec![], "example", Duration::from_secs(3)).unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("no leader of fleet example answered within 3s"),
            "{e}"
        );
    }

    #[test]
    fn only_idle_candidates_answering_is_an_error_naming_them() {
        let e = pick_leader(vec![answer("cand-b", false)], "f", Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cand-b"), "{e}");
    }
}
