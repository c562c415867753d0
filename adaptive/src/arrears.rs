//! What a link owes its target: the items it fell behind by, and how much smaller messages
//! must be to catch up.
//!
//! A drop is noticed only when a message that crossed at the new rate arrives; by then that
//! message and the ones already encoded behind it have cost more time than the target allows.
//! Sized for the target alone, the next messages would only keep pace, and the items lost stay
//! lost: the window misses the target although the link could carry it. A stage computes
//! faster than the target (that is how a pipeline has room to adapt), so the controller
//! shrinks its next messages while the link is behind and lets the stage's spare compute
//! make up the difference, then returns to the target's size.
//!
//! Only arrears are kept, never credit: being ahead of the target (a fast link, a stage faster
//! than the target) is no reason to send larger messages than the link carries at the target.
//! And a window in which the link was mostly idle forgives them: the shortfall was elsewhere
//! (a slower stage, a client sending less), and smaller messages would not help.

/// At most this many messages' worth of items are owed (older arrears are written off: they
/// cannot be made up within a window anyway).
const MAX_OWED_MESSAGES: f64 = 2.0;
/// The budget shrinks by this share per message owed ...
const CATCH_UP_PER_MESSAGE: f64 = 0.6;
/// ... down to this share of the target's budget.
const MIN_BUDGET_FACTOR: f64 = 0.6;

/// The items a link is behind its target by.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Arrears {
    owed_items: f64,
    last_arrival_s: Option<f64>,
}

impl Arrears {
    /// A message of `items` arrived at `at_s`; the target accrues `target_items_per_s` from the
    /// previous arrival to this one.
    pub fn on_arrival(
        &mut self,
        at_s: f64,
        items: u64,
        target_items_per_s: f64,
        items_per_message: f64,
    ) {
        if let Some(prev) = self.last_arrival_s {
            self.owed_items += target_items_per_s * (at_s - prev).max(0.0);
        }
        self.last_arrival_s = Some(at_s.max(self.last_arrival_s.unwrap_or(at_s)));
        self.owed_items = (self.owed_items - items as f64)
            .clamp(0.0, MAX_OWED_MESSAGES * items_per_message.max(0.0));
    }

    /// The link was not the bottleneck: what it owed was not its shortfall.
    pub fn forgive(&mut self) {
        self.owed_items = 0.0;
    }

    pub fn owed_items(&self) -> f64 {
        self.owed_items
    }

    /// The share of the target's byte budget the next message may use.
    pub fn budget_factor(&self, items_per_message: f64) -> f64 {
        // Also refuses NaN.
        if items_per_message.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return 1.0;
        }
        (1.0 - CATCH_UP_PER_MESSAGE * self.owed_items / items_per_message)
            .clamp(MIN_BUDGET_FACTOR, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_on_schedule_owes_nothing() {
        let mut a = Arrears::default();
        // 8 items every 0.4 s at 20 items/s.
        for i in 0..10 {
            a.on_arrival(0.4 * f64::from(i), 8, 20.0, 8.0);
        }
        assert!(a.owed_items() < 1e-9);
        assert!(a.budget_factor(8.0) > 1.0 - 1e-9);
    }

    #[test]
    fn a_late_message_shrinks_the_next_ones_until_caught_up() {
        let mut a = Arrears::default();
        a.on_arrival(0.0, 8, 20.0, 8.0);
        // 0.6 s for a message of 0.4 s: 4 items behind, half a message.
        a.on_arrival(0.6, 8, 20.0, 8.0);
        assert!((a.owed_items() - 4.0).abs() < 1e-9);
        assert!((a.budget_factor(8.0) - 0.7).abs() < 1e-9);
        // Messages at the stage's faster pace pay it back.
        a.on_arrival(0.9, 8, 20.0, 8.0);
        a.on_arrival(1.2, 8, 20.0, 8.0);
        assert_eq!(a.owed_items(), 0.0);
        assert_eq!(a.budget_factor(8.0), 1.0);
    }

    #[test]
    fn arrears_are_bounded_and_credit_is_never_kept() {
        let mut a = Arrears::default();
        a.on_arrival(0.0, 8, 20.0, 8.0);
        a.on_arrival(10.0, 8, 20.0, 8.0);
        assert_eq!(a.owed_items(), 16.0, "two messages at most");
        assert_eq!(a.budget_factor(8.0), MIN_BUDGET_FACTOR);
        // Far ahead of the target: no credit for larger messages later.
        for i in 1..20 {
            a.on_arrival(10.0 + 0.01 * f64::from(i), 8, 20.0, 8.0);
        }
        assert_eq!(a.owed_items(), 0.0);
        a.on_arrival(10.6, 8, 20.0, 8.0);
        assert!(a.owed_items() > 0.0, "behind again at once");
    }

    #[test]
    fn an_idle_link_is_forgiven() {
        let mut a = Arrears::default();
        a.on_arrival(0.0, 8, 20.0, 8.0);
        a.on_arrival(1.0, 8, 20.0, 8.0);
        a.forgive();
        assert_eq!(a.budget_factor(8.0), 1.0);
        assert_eq!(a.budget_factor(0.0), 1.0);
    }
}
