//! The client's book of microbatches in flight, across plan epochs: which results to accept,
//! and what to send again when the leader re-plans.
//!
//! A re-plan moves shards between nodes, so whatever was in the old pipeline may be lost (a
//! stage died) or dropped (a stage at the new epoch refuses old-epoch traffic). The client
//! therefore re-sends every microbatch not yet answered under the new epoch, and refuses results
//! of any other epoch: each sequence number is answered exactly once, by the epoch the client
//! sent it under last. Plain data, no zenoh: the client drives it.

use std::collections::{BTreeMap, BTreeSet};

/// What to do with a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The first answer of a microbatch sent under the current epoch: keep it.
    Accept,
    /// This microbatch is already answered.
    Duplicate,
    /// A result of another epoch (late traffic of a replaced plan).
    StaleEpoch,
    /// A sequence number this client never sent.
    Unknown,
}

/// Microbatches sent, answered, and the epoch they travel under.
#[derive(Debug, Clone)]
pub struct InFlight {
    epoch: u64,
    /// Sent and not answered yet.
    pending: BTreeSet<u64>,
    answered: BTreeSet<u64>,
    resent: u64,
    epochs_seen: Vec<u64>,
}

impl InFlight {
    pub fn new(epoch: u64) -> Self {
        InFlight {
            epoch,
            pending: BTreeSet::new(),
            answered: BTreeSet::new(),
            resent: 0,
            epochs_seen: vec![epoch],
        }
    }

    /// The plan epoch new and re-sent microbatches carry.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Every epoch this run used, in order.
    pub fn epochs(&self) -> &[u64] {
        &self.epochs_seen
    }

    /// Microbatches sent again after a re-plan.
    pub fn resent(&self) -> u64 {
        self.resent
    }

    /// Records that `seq` was sent under the current epoch.
    pub fn sent(&mut self, seq: u64) {
        if !self.answered.contains(&seq) {
            self.pending.insert(seq);
        }
    }

    /// Sent and not answered.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    pub fn answered(&self) -> usize {
        self.answered.len()
    }

    /// Pending sequence numbers, ascending.
    pub fn pending(&self) -> Vec<u64> {
        self.pending.iter().copied().collect()
    }

    /// Classifies a result of microbatch `seq` computed under plan `epoch`, and on
    /// [`Verdict::Accept`] marks it answered.
    pub fn result(&mut self, seq: u64, epoch: u64) -> Verdict {
        if self.answered.contains(&seq) {
            return Verdict::Duplicate;
        }
        if !self.pending.contains(&seq) {
            return Verdict::Unknown;
        }
        if epoch != self.epoch {
            return Verdict::StaleEpoch;
        }
        self.pending.remove(&seq);
        self.answered.insert(seq);
        Verdict::Accept
    }

    /// Moves to plan `epoch` when it is newer than the current one, and answers the microbatches
    /// to send again under it (every pending one, ascending); an older or equal epoch changes
    /// nothing and answers none.
    pub fn switch_epoch(&mut self, epoch: u64) -> Vec<u64> {
        if epoch <= self.epoch {
            return Vec::new();
        }
        self.epoch = epoch;
        self.epochs_seen.push(epoch);
        let again = self.pending();
        self.resent += again.len() as u64;
        again
    }
}

/// Results kept by sequence number come out in input order whatever order they arrived in.
pub fn in_order<T>(by_seq: BTreeMap<u64, T>) -> Vec<T> {
    by_seq.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_microbatch_once_under_the_current_epoch() {
        let mut f = InFlight::new(10);
        f.sent(0);
        f.sent(1);
        assert_eq!(f.in_flight(), 2);
        assert_eq!(f.result(1, 10), Verdict::Accept);
        assert_eq!(f.result(1, 10), Verdict::Duplicate);
        assert_eq!(f.result(7, 10), Verdict::Unknown);
        assert_eq!((f.in_flight(), f.answered()), (1, 1));
    }

    #[test]
    fn a_new_epoch_resends_every_pending_microbatch_in_order() {
        let mut f = InFlight::new(10);
        for s in 0..5 {
            f.sent(s);
        }
        f.result(2, 10);
        assert_eq!(f.switch_epoch(11), vec![0, 1, 3, 4]);
        assert_eq!(f.epoch(), 11);
        assert_eq!(f.resent(), 4);
        assert_eq!(f.epochs(), &[10, 11]);
        // Re-sending leaves them pending under the new epoch.
        for s in [0, 1, 3, 4] {
            f.sent(s);
        }
        assert_eq!(f.in_flight(), 4);
    }

    #[test]
    fn late_results_of_the_old_epoch_are_dropped_after_a_switch() {
        let mut f = InFlight::new(10);
        f.sent(0);
        f.sent(1);
        f.switch_epoch(12);
        f.sent(0);
        f.sent(1);
        assert_eq!(f.result(0, 10), Verdict::StaleEpoch);
        assert_eq!(f.result(0, 12), Verdict::Accept);
        // The answer of the old epoch arriving after the new one is a duplicate, not a second row.
        assert_eq!(f.result(0, 10), Verdict::Duplicate);
        assert_eq!(f.result(1, 12), Verdict::Accept);
        assert_eq!(f.in_flight(), 0);
    }

    #[test]
    fn an_older_or_equal_epoch_changes_nothing() {
        let mut f = InFlight::new(10);
        f.sent(0);
        assert!(f.switch_epoch(10).is_empty());
        assert!(f.switch_epoch(9).is_empty());
        assert_eq!(f.epoch(), 10);
        assert_eq!(f.result(0, 9), Verdict::StaleEpoch);
        assert_eq!(f.result(0, 10), Verdict::Accept);
    }

    #[test]
    fn answered_microbatches_are_not_resent() {
        let mut f = InFlight::new(1);
        f.sent(0);
        f.result(0, 1);
        f.sent(0);
        assert!(f.switch_epoch(2).is_empty());
        assert_eq!(
            in_order(BTreeMap::from([(2, 'c'), (0, 'a'), (1, 'b')])),
            vec!['a', 'b', 'c']
        );
    }
}
