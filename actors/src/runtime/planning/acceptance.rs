//! Whether the stages accept a plan: each answers its assignment with an [`AssignAck`]; a plan
//! is accepted when every stage took its part.

use quantpipe_messages::AssignAck;

/// Why a stage did not take its assignment.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The stage runs a plan of a newer epoch (it refuses older ones): plan again above it.
    Stale { node: String, running: u64 },
    /// Anything else: a bad assignment, a shard that failed to load.
    Failed { node: String, reason: String },
}

impl Refusal {
    /// The epoch to plan above when this refusal is a stale one.
    pub fn plan_again_above(&self) -> Option<u64> {
        match self {
            Refusal::Stale { running, .. } => Some(*running),
            Refusal::Failed { .. } => None,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Stale { node, running } => {
                write!(
                    f,
                    "node {node} refused its assignment: it runs plan epoch {running}"
                )
            }
            Refusal::Failed { node, reason } => {
                write!(f, "node {node} refused its assignment: {reason}")
            }
        }
    }
}

impl std::error::Error for Refusal {}

/// What `node`'s answer to an assignment of `epoch` says: `None` when it took it. A refusal
/// naming a newer epoch than `epoch` is a stale one (the stage's ack names the epoch it runs).
pub fn refusal(node: &str, epoch: u64, ack: &AssignAck) -> Option<Refusal> {
    let reason = ack.error.clone()?;
    Some(if ack.epoch > epoch {
        Refusal::Stale {
            node: node.to_owned(),
            running: ack.epoch,
        }
    } else {
        Refusal::Failed {
            node: node.to_owned(),
            reason,
        }
    })
}

/// Whether every stage took its assignment of `epoch`: the first refusal otherwise, in stage
/// order.
pub fn plan_accepted<'a>(
    epoch: u64,
    answers: impl IntoIterator<Item = (&'a str, &'a AssignAck)>,
) -> Result<(), Refusal> {
    match answers
        .into_iter()
        .find_map(|(node, ack)| refusal(node, epoch, ack))
    {
        Some(r) => Err(r),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(epoch: u64, error: Option<&str>) -> AssignAck {
        AssignAck {
            node: "b".into(),
            epoch,
            error: error.map(String::from),
        }
    }

    #[test]
    fn a_refusal_naming_a_newer_epoch_is_stale_and_says_which() {
        assert_eq!(refusal("b", 7, &ack(7, None)), None);
        assert_eq!(
            refusal("b", 7, &ack(9, Some("assignment of epoch 7 after epoch 9"))),
            Some(Refusal::Stale {
                node: "b".into(),
                running: 9
            })
        );
        let failed = refusal("b", 7, &ack(7, Some("no such unit"))).unwrap();
        assert!(matches!(failed, Refusal::Failed { .. }), "{failed:?}");
        assert_eq!(
            failed.to_string(),
            "node b refused its assignment: no such unit"
        );
        // A malformed assignment is answered with epoch 0: not stale.
        assert!(matches!(
            refusal("b", 7, &ack(0, Some("bad assignment"))),
            Some(Refusal::Failed { .. })
        ));
    }

    #[test]
    fn a_plan_is_accepted_only_when_every_stage_took_its_part() {
        let (ok, stale) = (ack(7, None), ack(9, Some("newer plan")));
        assert_eq!(plan_accepted(7, [("a", &ok), ("b", &ok)]), Ok(()));
        let refused = plan_accepted(7, [("a", &ok), ("b", &stale)]).unwrap_err();
        assert_eq!(refused.plan_again_above(), Some(9));
        let failed = ack(7, Some("no memory"));
        let refused = plan_accepted(7, [("a", &failed), ("b", &stale)]).unwrap_err();
        assert_eq!(refused.plan_again_above(), None, "the first refusal counts");
    }
}
