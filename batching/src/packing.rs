//! When queued items leave as a microbatch: at once when a full one is waiting, otherwise when
//! the oldest item has waited `max_delay` (a fuller microbatch is worth a short wait, never a
//! long one).

use std::time::{Duration, Instant};

/// What to do with the queue now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pack {
    /// Send a microbatch of this many items (the oldest ones) now.
    Now(usize),
    /// Look again at this instant (the oldest item's `max_delay` runs out then).
    At(Instant),
    /// Nothing is queued.
    Idle,
}

/// The decision for `queued` items whose oldest was admitted at `oldest`, for microbatches of
/// at most `ubatch` items.
pub fn pack(
    queued: usize,
    oldest: Option<Instant>,
    now: Instant,
    ubatch: usize,
    max_delay: Duration,
) -> Pack {
    let ubatch = ubatch.max(1);
    let Some(oldest) = oldest.filter(|_| queued > 0) else {
        return Pack::Idle;
    };
    if queued >= ubatch {
        return Pack::Now(ubatch);
    }
    let due = oldest + max_delay;
    if now >= due {
        Pack::Now(queued)
    } else {
        Pack::At(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELAY: Duration = Duration::from_millis(5);

    #[test]
    fn a_full_microbatch_leaves_at_once() {
        let t = Instant::now();
        assert_eq!(pack(8, Some(t), t, 8, DELAY), Pack::Now(8));
        assert_eq!(pack(13, Some(t), t, 8, DELAY), Pack::Now(8));
    }

    #[test]
    fn a_lone_item_leaves_after_max_delay() {
        let t = Instant::now();
        assert_eq!(pack(1, Some(t), t, 8, DELAY), Pack::At(t + DELAY));
        assert_eq!(pack(1, Some(t), t + DELAY, 8, DELAY), Pack::Now(1));
    }

    #[test]
    fn an_empty_queue_is_idle() {
        let t = Instant::now();
        assert_eq!(pack(0, None, t, 8, DELAY), Pack::Idle);
        assert_eq!(pack(0, Some(t), t, 8, DELAY), Pack::Idle);
    }
}
