//! The StageActor's decisions, as plain functions over plain numbers: which microbatches,
//! assignments and releases a stage accepts, how a failed microbatch is counted, and the rate
//! the outgoing link's policy works to.

use quantpipe_adaptive::policy::PolicyKind;

/// What a stage runs now, as far as admission is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Running {
    pub epoch: u64,
    pub stage: u32,
}

/// Why a microbatch (or an acknowledgement) is not for this stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The node runs no stage (never assigned, or released).
    Unassigned,
    /// It travels under another plan than the one this node runs.
    StaleEpoch { found: u64, running: u64 },
    /// It is addressed to another stage of the same plan.
    WrongStage { found: u32, running: u32 },
}

/// Whether a message of plan `epoch` for `stage` is taken by a node running `running`.
pub fn admit(running: Option<Running>, epoch: u64, stage: u32) -> Result<(), Refusal> {
    let r = running.ok_or(Refusal::Unassigned)?;
    if epoch != r.epoch {
        return Err(Refusal::StaleEpoch {
            found: epoch,
            running: r.epoch,
        });
    }
    if stage != r.stage {
        return Err(Refusal::WrongStage {
            found: stage,
            running: r.stage,
        });
    }
    Ok(())
}

/// Microbatches a first stage holds at most from its clients. A client keeps its `window`
/// in flight (a gateway one window for all its callers), far below this, so only senders that
/// ignore their window meet the bound; what they send past it is refused, not queued without
/// bound. Later stages need none: link credits bound what the stage before sends them.
pub const MAX_QUEUED_FROM_CLIENTS: u64 = 64;

/// Whether a microbatch arriving at a stage holding `queued` finds its queue full: only a first
/// stage, whose senders are clients, refuses for it.
pub fn queue_full(first_stage: bool, queued: u64, bound: u64) -> bool {
    first_stage && queued >= bound
}

/// An assignment or release refused because the node already knows a newer plan; `known` is the
/// newest epoch it knows, which the refusal names so that a leader that took over learns which
/// epoch its plan must exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outdated {
    pub found: u64,
    pub known: u64,
}

/// An assignment of plan `epoch` is taken unless the node runs a newer plan or was left out of
/// this plan or a newer one (`released_at`, 0 when never released). Re-assignment at the
/// running epoch is taken (the leader may repeat itself).
pub fn accept_assignment(
    running_epoch: Option<u64>,
    released_at: u64,
    epoch: u64,
) -> Result<(), Outdated> {
    let running = running_epoch.unwrap_or(0);
    if epoch < running || epoch <= released_at {
        return Err(Outdated {
            found: epoch,
            known: running.max(released_at),
        });
    }
    Ok(())
}

/// A release by plan `epoch` is taken unless the node runs that plan or a newer one: a plan
/// that assigned this node cannot also leave it out.
pub fn accept_release(running_epoch: Option<u64>, epoch: u64) -> Result<(), Outdated> {
    match running_epoch {
        Some(running) if epoch <= running => Err(Outdated {
            found: epoch,
            known: running,
        }),
        _ => Ok(()),
    }
}

/// How a microbatch that did not make it through decode, forward, encode and send is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Its bytes were not a valid payload.
    Malformed,
    /// The plan changed under it (its shard was reloaded or released): the client sends it again
    /// under the new plan, so it is no failure of the run.
    Stale,
    /// It failed under the plan still running: the client is told at once.
    Failed,
}

/// Classifies a lost microbatch of plan `epoch`; `malformed` says whether its input was at
/// fault, `running_epoch` is the plan the node runs now.
pub fn classify_loss(malformed: bool, epoch: u64, running_epoch: Option<u64>) -> Loss {
    if malformed {
        Loss::Malformed
    } else if running_epoch != Some(epoch) {
        Loss::Stale
    } else {
        Loss::Failed
    }
}

/// The items/s the outgoing link's policy works to: none (0) under `fixed` or an unknown policy,
/// else the node's configured target, else the plan's predicted rate.
pub fn link_target(policy: Option<PolicyKind>, configured: f64, planned: f64) -> f64 {
    match policy {
        None | Some(PolicyKind::Fixed) => 0.0,
        Some(_) if configured > 0.0 => configured,
        Some(_) => planned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: Option<Running> = Some(Running { epoch: 4, stage: 1 });

    #[test]
    fn a_first_stage_refuses_client_microbatches_once_its_queue_holds_the_bound() {
        assert!(!queue_full(true, 63, 64));
        assert!(queue_full(true, 64, 64));
        assert!(queue_full(true, 65, 64));
    }

    #[test]
    fn later_stages_never_refuse_for_their_queue() {
        assert!(!queue_full(false, 1_000, 64));
    }

    #[test]
    fn microbatch_of_the_running_plan_and_stage_is_admitted() {
        assert_eq!(admit(RUN, 4, 1), Ok(()));
    }

    #[test]
    fn microbatch_before_any_assignment_is_refused() {
        assert_eq!(admit(None, 4, 1), Err(Refusal::Unassigned));
    }

    #[test]
    fn microbatch_of_another_epoch_is_stale_whether_older_or_newer() {
        assert_eq!(
            admit(RUN, 3, 1),
            Err(Refusal::StaleEpoch {
                found: 3,
                running: 4
            })
        );
        assert_eq!(
            admit(RUN, 5, 1),
            Err(Refusal::StaleEpoch {
                found: 5,
                running: 4
            })
        );
    }

    #[test]
    fn microbatch_for_another_stage_is_refused_after_the_epoch_check() {
        assert_eq!(
            admit(RUN, 4, 2),
            Err(Refusal::WrongStage {
                found: 2,
                running: 1
            })
        );
        assert!(matches!(admit(RUN, 3, 2), Err(Refusal::StaleEpoch { .. })));
    }

    #[test]
    fn first_assignment_is_accepted() {
        assert_eq!(accept_assignment(None, 0, 1), Ok(()));
    }

    #[test]
    fn assignment_at_the_running_epoch_is_accepted_again() {
        assert_eq!(accept_assignment(Some(4), 0, 4), Ok(()));
    }

    #[test]
    fn older_assignment_is_refused_naming_the_running_epoch() {
        assert_eq!(
            accept_assignment(Some(4), 0, 3),
            Err(Outdated { found: 3, known: 4 })
        );
    }

    #[test]
    fn assignment_of_the_plan_that_released_the_node_is_refused() {
        assert_eq!(
            accept_assignment(None, 6, 6),
            Err(Outdated { found: 6, known: 6 })
        );
        assert_eq!(accept_assignment(None, 6, 7), Ok(()));
    }

    #[test]
    fn release_by_the_running_plan_or_an_older_one_is_refused() {
        assert_eq!(
            accept_release(Some(4), 4),
            Err(Outdated { found: 4, known: 4 })
        );
        assert_eq!(
            accept_release(Some(4), 2),
            Err(Outdated { found: 2, known: 4 })
        );
    }

    #[test]
    fn release_by_a_newer_plan_or_of_an_idle_node_is_accepted() {
        assert_eq!(accept_release(Some(4), 5), Ok(()));
        assert_eq!(accept_release(None, 1), Ok(()));
    }

    #[test]
    fn bad_input_is_malformed_whatever_the_plan() {
        assert_eq!(classify_loss(true, 4, Some(4)), Loss::Malformed);
        assert_eq!(classify_loss(true, 4, Some(5)), Loss::Malformed);
    }

    #[test]
    fn loss_under_a_replaced_plan_is_stale_not_failed() {
        assert_eq!(classify_loss(false, 4, Some(5)), Loss::Stale);
        assert_eq!(classify_loss(false, 4, None), Loss::Stale);
    }

    #[test]
    fn loss_under_the_running_plan_is_a_failure() {
        assert_eq!(classify_loss(false, 4, Some(4)), Loss::Failed);
    }

    #[test]
    fn fixed_policy_has_no_target() {
        assert_eq!(link_target(Some(PolicyKind::Fixed), 20.0, 30.0), 0.0);
        assert_eq!(link_target(None, 20.0, 30.0), 0.0);
    }

    #[test]
    fn adaptive_policy_prefers_the_configured_target_over_the_plan() {
        assert_eq!(link_target(Some(PolicyKind::Controller), 20.0, 30.0), 20.0);
        assert_eq!(link_target(Some(PolicyKind::Heuristic), 0.0, 30.0), 30.0);
    }
}
