//! Which results to take across plan epochs: microbatches travel under the plan epoch they were
//! sent under last; on a new epoch every one in flight is sent again, and only a result of the
//! current epoch answers. Unlike a per-run book of every sequence number answered, nothing is
//! kept of an answered microbatch: a long-lived service answers millions, and sequence numbers
//! only grow, so one below the next to be sent and no longer in flight was answered already.

/// Why a result is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Its microbatch was answered already (or all its items' deadlines passed).
    Duplicate,
    /// A result of another epoch (late traffic of a replaced plan): the microbatch was sent
    /// again under the current one.
    StaleEpoch,
    /// A sequence number never sent.
    Unknown,
}

/// What to do with a result of microbatch `seq` computed under plan `epoch`, when the service
/// sends under `current`, has sent sequence numbers below `next_seq`, and `in_flight` says
/// whether `seq` is still unanswered.
pub fn judge(
    seq: u64,
    epoch: u64,
    current: u64,
    next_seq: u64,
    in_flight: bool,
) -> Result<(), Dropped> {
    if !in_flight {
        return Err(if seq < next_seq {
            Dropped::Duplicate
        } else {
            Dropped::Unknown
        });
    }
    if epoch != current {
        return Err(Dropped::StaleEpoch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_result_of_the_current_epoch_answers_a_microbatch_in_flight() {
        assert_eq!(judge(3, 7, 7, 5, true), Ok(()));
        assert_eq!(judge(3, 6, 7, 5, true), Err(Dropped::StaleEpoch));
        assert_eq!(judge(3, 8, 7, 5, true), Err(Dropped::StaleEpoch));
    }

    #[test]
    fn a_result_of_a_microbatch_no_longer_in_flight_is_a_duplicate_or_unknown() {
        assert_eq!(judge(3, 7, 7, 5, false), Err(Dropped::Duplicate));
        assert_eq!(judge(5, 7, 7, 5, false), Err(Dropped::Unknown));
    }
}
