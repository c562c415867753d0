//! Admitted items waiting for a microbatch, oldest first, each with its deadline.

use crate::ItemId;
use std::collections::VecDeque;
use std::time::Instant;

/// One queued item.
#[derive(Debug, Clone)]
pub struct Waiting<T> {
    pub id: ItemId,
    pub item: T,
    pub admitted: Instant,
    pub deadline: Instant,
}

/// First in, first out; items past their deadline are taken out by [`Queue::expire`].
#[derive(Debug, Clone)]
pub struct Queue<T> {
    items: VecDeque<Waiting<T>>,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue {
            items: VecDeque::new(),
        }
    }
}

impl<T> Queue<T> {
    pub fn push(&mut self, w: Waiting<T>) {
        self.items.push_back(w);
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// When the oldest queued item was admitted.
    pub fn oldest(&self) -> Option<Instant> {
        self.items.front().map(|w| w.admitted)
    }

    /// The earliest deadline of a queued item.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.items.iter().map(|w| w.deadline).min()
    }

    /// Takes out the `n` oldest items (fewer when fewer are queued).
    pub fn take_oldest(&mut self, n: usize) -> Vec<Waiting<T>> {
        let n = n.min(self.items.len());
        self.items.drain(..n).collect()
    }

    /// Takes out every item whose deadline is not after `now`, answering their ids.
    pub fn expire(&mut self, now: Instant) -> Vec<ItemId> {
        let mut expired = Vec::new();
        self.items.retain(|w| {
            let keep = w.deadline > now;
            if !keep {
                expired.push(w.id);
            }
            keep
        });
        expired
    }

    /// Takes out every item (the service is closing).
    pub fn drain(&mut self) -> Vec<ItemId> {
        self.items.drain(..).map(|w| w.id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn waiting(id: u64, at: Instant, deadline_ms: u64) -> Waiting<()> {
        Waiting {
            id: ItemId(id),
            item: (),
            admitted: at,
            deadline: at + Duration::from_millis(deadline_ms),
        }
    }

    #[test]
    fn the_oldest_items_leave_first() {
        let t = Instant::now();
        let mut q = Queue::default();
        for i in 0..3 {
            q.push(waiting(i, t + Duration::from_millis(i), 100));
        }
        let ids: Vec<u64> = q.take_oldest(2).iter().map(|w| w.id.0).collect();
        assert_eq!(ids, vec![0, 1]);
        assert_eq!(q.oldest(), Some(t + Duration::from_millis(2)));
        assert_eq!(q.take_oldest(5).len(), 1);
        assert!(q.is_empty());
    }

    #[test]
    fn expired_items_are_taken_out_and_named() {
        let t = Instant::now();
        let mut q = Queue::default();
        q.push(waiting(0, t, 10));
        q.push(waiting(1, t, 50));
        q.push(waiting(2, t, 10));
        assert_eq!(q.next_deadline(), Some(t + Duration::from_millis(10)));
        assert_eq!(
            q.expire(t + Duration::from_millis(10)),
            vec![ItemId(0), ItemId(2)]
        );
        assert_eq!(q.len(), 1);
    }
}
