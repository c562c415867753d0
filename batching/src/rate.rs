//! The measured service rate: items answered per second over a recent window, which is what a
//! refused caller's Retry-After is estimated from.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Answers recorded over the last `window`.
#[derive(Debug, Clone)]
pub struct ServiceRate {
    window: Duration,
    answers: VecDeque<(Instant, usize)>,
}

impl ServiceRate {
    pub fn new(window: Duration) -> Self {
        ServiceRate {
            window,
            answers: VecDeque::new(),
        }
    }

    /// Records that `items` were answered at `now`.
    pub fn record(&mut self, now: Instant, items: usize) {
        self.answers.push_back((now, items));
        self.forget_before(now);
    }

    /// Items per second over the window ending at `now`; `None` until two answers lie in it
    /// (one answer alone says nothing about a rate).
    pub fn items_per_s(&mut self, now: Instant) -> Option<f64> {
        self.forget_before(now);
        let (first, _) = *self.answers.front()?;
        let (last, _) = *self.answers.back()?;
        let span = last.duration_since(first).as_secs_f64();
        if self.answers.len() < 2 || span <= 0.0 {
            return None;
        }
        // Items answered after the first answer, over the time since it.
        let items: usize = self.answers.iter().skip(1).map(|&(_, n)| n).sum();
        Some(items as f64 / span)
    }

    fn forget_before(&mut self, now: Instant) {
        while let Some(&(at, _)) = self.answers.front() {
            if now.saturating_duration_since(at) <= self.window {
                break;
            }
            self.answers.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_items_over_the_time_between_answers() {
        let t0 = Instant::now();
        let mut r = ServiceRate::new(Duration::from_secs(10));
        r.record(t0, 8);
        assert_eq!(r.items_per_s(t0), None);
        r.record(t0 + Duration::from_millis(500), 4);
        r.record(t0 + Duration::from_secs(1), 6);
        let rate = r.items_per_s(t0 + Duration::from_secs(1)).unwrap();
        assert!((rate - 10.0).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn answers_older_than_the_window_are_forgotten() {
        let t0 = Instant::now();
        let mut r = ServiceRate::new(Duration::from_secs(1));
        r.record(t0, 100);
        r.record(t0 + Duration::from_millis(100), 100);
        assert_eq!(r.items_per_s(t0 + Duration::from_secs(5)), None);
    }
}
