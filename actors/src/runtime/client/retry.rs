//! What a client does with a microbatch that failed in the pipeline: send it once more when the
//! failure was not the input's (a worker panicked and restarted, see
//! [`crate::runtime::supervision`]), else give it up. A second failure is final, so an input that
//! makes a worker panic every time cannot loop through the fleet.

use std::collections::HashMap;

/// How many times a microbatch is sent again after retryable failures.
pub const RESENDS_AFTER_FAILURE: u32 = 1;

/// What to do with a failed microbatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    SendAgain,
    Fail,
}

/// The decision for a failure (`retryable` as the stage said) of a microbatch already sent
/// again `resends` times after failures.
pub fn after_failure(retryable: bool, resends: u32) -> AfterFailure {
    if retryable && resends < RESENDS_AFTER_FAILURE {
        AfterFailure::SendAgain
    } else {
        AfterFailure::Fail
    }
}

/// The microbatches of one run (or service) sent again after failures.
#[derive(Debug, Clone, Default)]
pub struct Resends {
    by_seq: HashMap<u64, u32>,
    total: u64,
}

impl Resends {
    /// Decides for a failure of microbatch `seq`, and records a resend.
    pub fn after_failure(&mut self, seq: u64, retryable: bool) -> AfterFailure {
        let resends = self.by_seq.get(&seq).copied().unwrap_or(0);
        let decision = after_failure(retryable, resends);
        if decision == AfterFailure::SendAgain {
            self.by_seq.insert(seq, resends + 1);
            self.total += 1;
        }
        decision
    }

    /// Microbatch `seq` is answered: its count is no longer needed.
    pub fn answered(&mut self, seq: u64) {
        self.by_seq.remove(&seq);
    }

    /// Resends after failures so far.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retryable_failure_is_sent_again_once() {
        assert_eq!(after_failure(true, 0), AfterFailure::SendAgain);
        assert_eq!(after_failure(true, 1), AfterFailure::Fail);
    }

    #[test]
    fn a_failure_of_the_input_is_never_sent_again() {
        assert_eq!(after_failure(false, 0), AfterFailure::Fail);
    }

    #[test]
    fn a_microbatch_that_fails_twice_fails_for_good() {
        let mut r = Resends::default();
        assert_eq!(r.after_failure(4, true), AfterFailure::SendAgain);
        assert_eq!(r.after_failure(4, true), AfterFailure::Fail);
        // Another microbatch has its own resend.
        assert_eq!(r.after_failure(5, true), AfterFailure::SendAgain);
        assert_eq!(r.total(), 2);
    }

    #[test]
    fn an_answered_microbatch_is_forgotten() {
        let mut r = Resends::default();
        r.after_failure(4, true);
        r.answered(4);
        assert_eq!(r.after_failure(4, true), AfterFailure::SendAgain);
        assert_eq!(r.total(), 2);
    }
}
