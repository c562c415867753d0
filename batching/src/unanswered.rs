//! The microbatches a client sent under the current plan epoch and has no answer for yet: when
//! each was sent last and how often it was sent again since, the recent answer times the resend
//! bound is read from, and which microbatches are due to be sent again ([`crate::resend`]).
//!
//! An answer's time counts only for a microbatch never sent again: after a resend, which copy
//! answered is unknown, and counting it would move the bound by the bound itself.

use crate::resend::ResendRule;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Answer times the bound is read from, the most recent.
pub const RECENT_ANSWERS: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Sending {
    last: Instant,
    resends: u32,
}

/// Unanswered microbatches and the resends they are due.
#[derive(Debug, Clone)]
pub struct Unanswered {
    rule: ResendRule,
    predicted: Option<Duration>,
    sending: BTreeMap<u64, Sending>,
    answers: VecDeque<Duration>,
    resent: u64,
}

impl Unanswered {
    pub fn new(rule: ResendRule) -> Self {
        Unanswered {
            rule,
            predicted: None,
            sending: BTreeMap::new(),
            answers: VecDeque::with_capacity(RECENT_ANSWERS),
            resent: 0,
        }
    }

    /// The time in flight the plan predicts (see [`crate::resend::predicted_in_flight`]).
    pub fn set_prediction(&mut self, predicted: Option<Duration>) {
        self.predicted = predicted;
    }

    /// Microbatch `seq` was sent at `now`: for the first time, under a new epoch, or after a
    /// failure was answered. Its resends count from zero again.
    pub fn sent(&mut self, seq: u64, now: Instant) {
        self.sending.insert(
            seq,
            Sending {
                last: now,
                resends: 0,
            },
        );
    }

    /// Microbatch `seq` was answered at `now`: it is no longer waited for.
    pub fn answered(&mut self, seq: u64, now: Instant) {
        let Some(s) = self.sending.remove(&seq) else {
            return;
        };
        if s.resends == 0 {
            if self.answers.len() == RECENT_ANSWERS {
                self.answers.pop_front();
            }
            self.answers
                .push_back(now.saturating_duration_since(s.last));
        }
    }

    /// Keeps waiting only for the microbatches `keep` names (the others' items were answered
    /// otherwise, e.g. their deadlines passed).
    pub fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) {
        self.sending.retain(|&seq, _| keep(seq));
    }

    /// Forgets every microbatch (the client is closing).
    pub fn clear(&mut self) {
        self.sending.clear();
    }

    /// How long a microbatch may go unanswered before its first resend, now.
    pub fn bound(&self) -> Duration {
        let answers: Vec<Duration> = self.answers.iter().copied().collect();
        self.rule.bound(&answers, self.predicted)
    }

    /// When microbatch `seq`'s next resend falls due; `None` when it will not be sent again.
    fn due_at(&self, s: &Sending, bound: Duration) -> Option<Instant> {
        self.rule.wait(bound, s.resends).map(|w| s.last + w)
    }

    /// The microbatches due to be sent again at `now`, ascending; each is recorded as sent
    /// again at `now` (the caller sends them under the current epoch).
    pub fn take_due(&mut self, now: Instant) -> Vec<u64> {
        let bound = self.bound();
        let due: Vec<u64> = self
            .sending
            .iter()
            .filter(|(_, s)| self.due_at(s, bound).is_some_and(|t| t <= now))
            .map(|(&seq, _)| seq)
            .collect();
        for seq in &due {
            if let Some(s) = self.sending.get_mut(seq) {
                s.last = now;
                s.resends += 1;
            }
        }
        self.resent += due.len() as u64;
        due
    }

    /// When the next resend falls due; `None` when none will.
    pub fn next_due(&self) -> Option<Instant> {
        let bound = self.bound();
        self.sending
            .values()
            .filter_map(|s| self.due_at(s, bound))
            .min()
    }

    /// Resends of unanswered microbatches so far.
    pub fn resent(&self) -> u64 {
        self.resent
    }

    /// Microbatches waited for.
    pub fn len(&self) -> usize {
        self.sending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resend::{FLOOR, MAX_RESENDS, MIN_SAMPLES};

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn unanswered() -> Unanswered {
        Unanswered::new(ResendRule::within(Duration::from_secs(90)))
    }

    /// `n` microbatches from `first` on, each answered `took` after it was sent.
    fn answer(u: &mut Unanswered, first: u64, n: u64, t: Instant, took: Duration) {
        for seq in first..first + n {
            u.sent(seq, t);
            u.answered(seq, t + took);
        }
    }

    #[test]
    fn a_microbatch_unanswered_past_the_bound_is_due_once() {
        let t = Instant::now();
        let mut u = unanswered();
        answer(&mut u, 0, MIN_SAMPLES as u64, t, secs(0.5));
        assert_eq!(u.bound(), FLOOR);
        u.sent(8, t);
        u.sent(9, t + secs(1.0));
        assert!(u.take_due(t + secs(1.9)).is_empty());
        assert_eq!(u.next_due(), Some(t + FLOOR));
        assert_eq!(u.take_due(t + FLOOR), vec![8]);
        // Sent again now: not due again at once.
        assert_eq!(u.take_due(t + FLOOR), Vec::<u64>::new());
        assert_eq!(u.take_due(t + secs(3.0)), vec![9]);
        assert_eq!(u.resent(), 2);
    }

    #[test]
    fn an_answered_microbatch_is_never_due() {
        let t = Instant::now();
        let mut u = unanswered();
        u.sent(0, t);
        u.answered(0, t + secs(1.0));
        assert!(u.take_due(t + secs(600.0)).is_empty());
        assert_eq!(u.next_due(), None);
    }

    #[test]
    fn a_microbatch_is_sent_again_at_most_max_resends_times_with_growing_waits() {
        let t = Instant::now();
        let mut u = unanswered();
        answer(&mut u, 0, MIN_SAMPLES as u64, t, secs(0.5));
        u.sent(100, t);
        let mut at = t;
        let mut waits = Vec::new();
        while let Some(next) = u.next_due() {
            waits.push(next - at);
            at = next;
            assert_eq!(u.take_due(at), vec![100]);
        }
        assert_eq!(waits.len(), MAX_RESENDS as usize);
        assert!(waits.windows(2).all(|w| w[0] < w[1]), "{waits:?}");
        assert_eq!(u.resent(), MAX_RESENDS as u64);
    }

    #[test]
    fn only_answers_of_microbatches_never_resent_move_the_bound() {
        let t = Instant::now();
        let mut u = unanswered();
        answer(&mut u, 0, MIN_SAMPLES as u64, t, secs(1.5));
        assert_eq!(u.bound(), secs(3.0));
        // A resent microbatch answered late says nothing of which copy answered.
        u.sent(50, t);
        u.take_due(t + secs(3.0));
        u.answered(50, t + secs(20.0));
        assert_eq!(u.bound(), secs(3.0));
        // Slower answers of microbatches sent once do.
        answer(&mut u, 60, RECENT_ANSWERS as u64, t, secs(4.0));
        assert_eq!(u.bound(), secs(8.0));
    }

    #[test]
    fn a_microbatch_sent_under_a_new_epoch_counts_its_resends_from_zero() {
        let t = Instant::now();
        let mut u = unanswered();
        answer(&mut u, 0, MIN_SAMPLES as u64, t, secs(0.5));
        u.sent(9, t);
        let mut at = t;
        while let Some(next) = u.next_due() {
            at = next;
            u.take_due(at);
        }
        u.sent(9, at);
        assert_eq!(u.next_due(), Some(at + FLOOR));
    }

    #[test]
    fn microbatches_no_longer_carried_are_forgotten() {
        let t = Instant::now();
        let mut u = unanswered();
        u.sent(1, t);
        u.sent(2, t);
        u.retain(|seq| seq != 1);
        assert_eq!(u.len(), 1);
        assert_eq!(u.take_due(t + secs(600.0)), vec![2]);
        u.clear();
        assert!(u.is_empty());
    }

    #[test]
    fn before_any_answer_the_plans_prediction_sets_the_bound() {
        let mut u = unanswered();
        assert_eq!(u.bound(), u.rule.cap);
        u.set_prediction(Some(secs(2.5)));
        assert_eq!(u.bound(), secs(5.0));
    }
}
