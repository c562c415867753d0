//! When a microbatch that has gone unanswered is sent again under the same plan epoch, as plain
//! functions of plain numbers.
//!
//! A link that goes down for less than the fleet's lease can lose what was crossing it (its
//! transport closes and opens again), yet no node leaves, so no re-plan sends the microbatch
//! again under a new epoch. A client therefore sends a microbatch once more when it has gone
//! unanswered for longer than a bound: [`FACTOR`] times the slowest recent answers (their 99th
//! percentile), or the plan's prediction while there are fewer than [`MIN_SAMPLES`] of them;
//! never under [`FLOOR`] (jitter alone must not double the load) nor over a cap that leaves room
//! for every resend before the client's result timeout. Each further resend of the same
//! microbatch waits [`BACKOFF`] times longer than the one before, so an answer that is only
//! slow is not hammered, and a microbatch is sent again at most [`MAX_RESENDS`] times per epoch.
//!
//! A copy that was only slow is computed twice; the client takes the first answer and drops the
//! second as a duplicate, so each item is still answered once.

use std::time::Duration;

/// The shortest a microbatch goes unanswered before it is sent again.
pub const FLOOR: Duration = Duration::from_secs(2);
/// The bound over the 99th percentile of recent answer times (or the predicted time in flight).
pub const FACTOR: f64 = 2.0;
/// Each further resend of one microbatch waits this many times longer than the one before.
pub const BACKOFF: f64 = 1.5;
/// Resends of one microbatch under one epoch, at most.
pub const MAX_RESENDS: u32 = 4;
/// Answers needed before their percentile is trusted over the plan's prediction.
pub const MIN_SAMPLES: usize = 8;

/// How long unanswered microbatches wait before they are sent again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResendRule {
    pub floor: Duration,
    pub factor: f64,
    pub backoff: f64,
    /// The longest wait for any resend.
    pub cap: Duration,
    pub max_resends: u32,
}

impl ResendRule {
    /// The rule of a client that gives up after `result_timeout` without a result: every wait
    /// is at most a share of it, so that all [`MAX_RESENDS`] resends fit before the client
    /// gives up.
    pub fn within(result_timeout: Duration) -> ResendRule {
        ResendRule {
            floor: FLOOR,
            factor: FACTOR,
            backoff: BACKOFF,
            cap: result_timeout / (MAX_RESENDS + 1),
            max_resends: MAX_RESENDS,
        }
    }

    /// How long a microbatch may go unanswered before its first resend, from the times
    /// `recent_answers` took (send to answer) and the time in flight the plan predicts: the
    /// factor times their 99th percentile once there are enough of them, else times the
    /// prediction, within the floor and the cap; the cap when nothing is known.
    pub fn bound(&self, recent_answers: &[Duration], predicted: Option<Duration>) -> Duration {
        let reference = if recent_answers.len() >= MIN_SAMPLES {
            Some(p99(recent_answers))
        } else {
            predicted
        };
        match reference {
            Some(r) => r.mul_f64(self.factor).max(self.floor).min(self.cap),
            None => self.cap,
        }
    }

    /// How long after its latest send a microbatch already sent again `resends` times under
    /// this epoch waits for its next resend, given the `bound` of the first; `None` once it
    /// was sent again the most times.
    pub fn wait(&self, bound: Duration, resends: u32) -> Option<Duration> {
        (resends < self.max_resends).then(|| {
            let grown = bound.as_secs_f64() * self.backoff.powi(resends as i32);
            Duration::from_secs_f64(grown.min(self.cap.max(bound).as_secs_f64()))
        })
    }
}

/// The time a microbatch of `ubatch` items spends in flight by the plan's prediction of
/// `items_per_s` through `stages` stages with `window` microbatches in flight: it waits behind
/// the window's others at the slowest stage, or crosses every stage, a period of the slowest
/// stage each, whichever is longer. `None` when the plan predicts nothing (a forced plan).
pub fn predicted_in_flight(
    ubatch: usize,
    items_per_s: f64,
    stages: usize,
    window: usize,
) -> Option<Duration> {
    if ubatch == 0 || !(items_per_s > 0.0 && items_per_s.is_finite()) {
        return None;
    }
    let period_s = ubatch as f64 / items_per_s;
    let periods = window.max(stages).max(1) as f64;
    Duration::try_from_secs_f64(period_s * periods).ok()
}

/// The 99th percentile (nearest rank) of `samples`, which is not empty.
fn p99(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = (sorted.len() as f64 * 0.99).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn rule() -> ResendRule {
        ResendRule::within(Duration::from_secs(90))
    }

    #[test]
    fn the_bound_is_a_multiple_of_the_slowest_recent_answers() {
        let mut answers = vec![secs(1.0); 99];
        answers.push(secs(4.0));
        // The 99th percentile of 100 samples is the 99th smallest: one outlier does not count.
        assert_eq!(rule().bound(&answers, None), secs(2.0));
        answers.push(secs(4.0));
        assert_eq!(rule().bound(&answers, None), secs(8.0));
    }

    #[test]
    fn fast_answers_never_bring_the_bound_under_the_floor() {
        assert_eq!(rule().bound(&[secs(0.05); 20], None), FLOOR);
    }

    #[test]
    fn slow_answers_never_bring_the_bound_over_the_cap() {
        assert_eq!(rule().cap, secs(18.0));
        assert_eq!(rule().bound(&[secs(30.0); 20], None), secs(18.0));
    }

    #[test]
    fn the_prediction_stands_in_until_there_are_enough_answers() {
        let few = vec![secs(5.0); MIN_SAMPLES - 1];
        assert_eq!(rule().bound(&few, Some(secs(3.0))), secs(6.0));
        let enough = vec![secs(5.0); MIN_SAMPLES];
        assert_eq!(rule().bound(&enough, Some(secs(3.0))), secs(10.0));
    }

    #[test]
    fn with_nothing_known_a_microbatch_waits_the_cap() {
        assert_eq!(rule().bound(&[], None), rule().cap);
    }

    #[test]
    fn a_short_result_timeout_keeps_every_wait_below_it() {
        let r = ResendRule::within(Duration::from_secs(5));
        assert_eq!(r.bound(&[secs(1.0); 20], None), secs(1.0));
        let total: Duration = (0..MAX_RESENDS)
            .map(|k| r.wait(secs(1.0), k).unwrap())
            .sum();
        assert!(total < Duration::from_secs(5), "{total:?}");
    }

    #[test]
    fn each_further_resend_waits_longer_up_to_the_cap() {
        let r = rule();
        assert_eq!(r.wait(secs(4.0), 0), Some(secs(4.0)));
        assert_eq!(r.wait(secs(4.0), 1), Some(secs(6.0)));
        assert_eq!(r.wait(secs(4.0), 2), Some(secs(9.0)));
        assert_eq!(r.wait(secs(12.0), 3), Some(secs(18.0)));
    }

    #[test]
    fn a_microbatch_is_sent_again_at_most_max_resends_times() {
        assert!(rule().wait(secs(2.0), MAX_RESENDS - 1).is_some());
        assert_eq!(rule().wait(secs(2.0), MAX_RESENDS), None);
    }

    #[test]
    fn the_predicted_time_in_flight_is_the_window_or_the_stages_in_periods() {
        // 4 items at 8 items/s: a period of 0.5 s.
        assert_eq!(predicted_in_flight(4, 8.0, 3, 2), Some(secs(1.5)));
        assert_eq!(predicted_in_flight(4, 8.0, 3, 6), Some(secs(3.0)));
    }

    #[test]
    fn a_plan_that_predicts_nothing_predicts_no_time_in_flight() {
        assert_eq!(predicted_in_flight(4, 0.0, 3, 4), None);
        assert_eq!(predicted_in_flight(4, f64::NAN, 3, 4), None);
        assert_eq!(predicted_in_flight(0, 8.0, 3, 4), None);
    }
}
