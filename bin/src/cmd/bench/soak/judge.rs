//! The soak's verdicts, as plain functions over what was sampled: resident memory growth after
//! warm-up, and whether each node's zenoh declarations come back to their values after a
//! re-plan.

use serde::Serialize;

/// A node's zenoh declarations at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub subscribers: u64,
    pub queryables: u64,
    pub liveliness_tokens: u64,
}

/// Resident memory growth from `warm` to `end` bytes, percent (0 when nothing was measured).
pub fn growth_pct(warm: u64, end: u64) -> f64 {
    if warm == 0 {
        return 0.0;
    }
    (end as f64 - warm as f64) / warm as f64 * 100.0
}

/// Whether every process grew less than `limit_pct` after warm-up.
pub fn memory_holds(growths_pct: &[f64], limit_pct: f64) -> bool {
    growths_pct.iter().all(|&g| g < limit_pct)
}

/// Whether a node's declarations after a re-plan are those it held before it; a node missing
/// on either side (it left and did not come back) does not count as returned.
pub fn returned(before: Option<Counts>, after: Option<Counts>) -> bool {
    matches!((before, after), (Some(b), Some(a)) if a == b)
}

/// Whether a stage that queued at most `high_water` microbatches stayed within a client's
/// `window`. A microbatch is booked out of a stage when its arbiter next polls it after the
/// onward put returned, which may come just after it admitted the client's next one: one more
/// than the window is that lag, not a queue.
pub fn within_window(high_water: u64, window: u64) -> bool {
    high_water <= window + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(subscribers: u64) -> Counts {
        Counts {
            subscribers,
            queryables: 4,
            liveliness_tokens: 1,
        }
    }

    #[test]
    fn growth_is_the_change_from_warm_up_as_a_percentage_of_it() {
        assert!((growth_pct(400, 412) - 3.0).abs() < 1e-12);
        assert!((growth_pct(400, 380) + 5.0).abs() < 1e-12);
        assert_eq!(growth_pct(0, 10), 0.0);
    }

    #[test]
    fn memory_holds_only_while_every_process_stays_under_the_limit() {
        assert!(memory_holds(&[1.0, -2.0, 4.9], 5.0));
        assert!(!memory_holds(&[1.0, 5.0], 5.0));
        assert!(memory_holds(&[], 5.0));
    }

    #[test]
    fn a_queue_within_the_window_and_its_booking_lag_holds() {
        assert!(within_window(4, 4));
        assert!(within_window(5, 4));
        assert!(!within_window(6, 4));
    }

    #[test]
    fn declarations_return_when_equal_to_those_before_the_replan() {
        assert!(returned(Some(counts(3)), Some(counts(3))));
    }

    #[test]
    fn one_more_subscriber_after_a_replan_is_a_leak() {
        assert!(!returned(Some(counts(3)), Some(counts(4))));
    }

    #[test]
    fn a_node_that_did_not_come_back_has_not_returned() {
        assert!(!returned(Some(counts(3)), None));
        assert!(!returned(None, Some(counts(3))));
    }
}
