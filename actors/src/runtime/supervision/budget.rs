//! When a worker that panicked may restart: a bounded number of panics in a short time. A
//! worker that panics again right after each restart is broken beyond what a fresh state fixes
//! (a bad shard file, a libtorch that cannot allocate), and restarting it forever would keep a
//! useless node in the plan.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// At most `max_panics` panics within `within`: the one that exceeds it is not restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartBudget {
    pub max_panics: usize,
    pub within: Duration,
}

impl Default for RestartBudget {
    /// Three panics a minute: one bad microbatch and its resend fit (two), a third in a row is
    /// a pattern.
    fn default() -> Self {
        RestartBudget {
            max_panics: 3,
            within: Duration::from_secs(60),
        }
    }
}

/// The panics a worker had lately, against its [`RestartBudget`].
#[derive(Debug, Clone, Default)]
pub struct PanicHistory {
    budget: RestartBudget,
    recent: VecDeque<Instant>,
}

impl PanicHistory {
    pub fn new(budget: RestartBudget) -> Self {
        PanicHistory {
            budget,
            recent: VecDeque::new(),
        }
    }

    pub fn budget(&self) -> RestartBudget {
        self.budget
    }

    /// Records a panic at `now`; true when the worker may restart after it.
    pub fn panicked(&mut self, now: Instant) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= self.budget.within)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        self.recent.len() <= self.budget.max_panics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max_panics: usize, secs: u64) -> PanicHistory {
        PanicHistory::new(RestartBudget {
            max_panics,
            within: Duration::from_secs(secs),
        })
    }

    #[test]
    fn panics_within_the_budget_restart() {
        let mut h = budget(2, 60);
        let t = Instant::now();
        assert!(h.panicked(t));
        assert!(h.panicked(t + Duration::from_secs(1)));
    }

    #[test]
    fn one_panic_too_many_in_the_window_does_not_restart() {
        let mut h = budget(2, 60);
        let t = Instant::now();
        assert!(h.panicked(t));
        assert!(h.panicked(t + Duration::from_secs(1)));
        assert!(!h.panicked(t + Duration::from_secs(2)));
    }

    #[test]
    fn panics_older_than_the_window_are_forgotten() {
        let mut h = budget(1, 60);
        let t = Instant::now();
        assert!(h.panicked(t));
        assert!(h.panicked(t + Duration::from_secs(61)));
        assert!(!h.panicked(t + Duration::from_secs(62)));
    }

    #[test]
    fn a_budget_of_none_never_restarts() {
        assert!(!budget(0, 60).panicked(Instant::now()));
    }
}
