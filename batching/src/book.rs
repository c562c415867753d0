//! Which items each microbatch sequence number carries, and which of them still wait for an
//! answer: a microbatch may be sent several times (after a re-plan), its items are answered
//! once, by whichever result is taken first; items whose deadline passed in flight are answered
//! then and skipped when their result comes.

use crate::queue::Waiting;
use crate::ItemId;
use std::collections::BTreeMap;
use std::time::Instant;

/// One item of a microbatch; its row in the microbatch is its place in [`Book::items`].
#[derive(Debug, Clone)]
pub struct Slot<T> {
    pub id: ItemId,
    pub item: T,
    pub deadline: Instant,
    /// Answered already (its deadline passed in flight).
    pub done: bool,
}

/// Microbatches sent and not answered, by sequence number.
#[derive(Debug, Clone)]
pub struct Book<T> {
    carried: BTreeMap<u64, Vec<Slot<T>>>,
}

impl<T> Default for Book<T> {
    fn default() -> Self {
        Book {
            carried: BTreeMap::new(),
        }
    }
}

impl<T> Book<T> {
    /// Records that microbatch `seq` carries `items`, in row order.
    pub fn carry(&mut self, seq: u64, items: Vec<Waiting<T>>) {
        let slots = items
            .into_iter()
            .map(|w| Slot {
                id: w.id,
                item: w.item,
                deadline: w.deadline,
                done: false,
            })
            .collect();
        self.carried.insert(seq, slots);
    }

    /// The items of microbatch `seq` in row order (answered ones too: a re-sent microbatch
    /// keeps its rows); `None` when it is not in flight.
    pub fn items(&self, seq: u64) -> Option<&[Slot<T>]> {
        self.carried.get(&seq).map(Vec::as_slice)
    }

    /// Microbatches in flight.
    pub fn microbatches(&self) -> usize {
        self.carried.len()
    }

    /// Items in flight and not answered yet.
    pub fn unanswered(&self) -> usize {
        self.carried
            .values()
            .flat_map(|s| s.iter())
            .filter(|s| !s.done)
            .count()
    }

    /// Takes the result of microbatch `seq`: answers (row, item) for every item not answered
    /// yet, and forgets the microbatch, so that a second result of it answers nothing
    /// (`None`, like a sequence number never carried).
    pub fn answer(&mut self, seq: u64) -> Option<Vec<(usize, ItemId)>> {
        let slots = self.carried.remove(&seq)?;
        Some(
            slots
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.done)
                .map(|(row, s)| (row, s.id))
                .collect(),
        )
    }

    /// Marks every unanswered item in flight whose deadline is not after `now` as answered,
    /// and names them. A microbatch left with nothing to answer is forgotten: it frees its
    /// place in the window even when its result never comes, and is not sent again.
    pub fn expire(&mut self, now: Instant) -> Vec<ItemId> {
        let mut expired = Vec::new();
        for slot in self.carried.values_mut().flat_map(|s| s.iter_mut()) {
            if !slot.done && slot.deadline <= now {
                slot.done = true;
                expired.push(slot.id);
            }
        }
        self.carried
            .retain(|_, slots| slots.iter().any(|s| !s.done));
        expired
    }

    /// Sequence numbers in flight, ascending.
    pub fn sequences(&self) -> Vec<u64> {
        self.carried.keys().copied().collect()
    }

    /// Whether microbatch `seq` is in flight.
    pub fn carries(&self, seq: u64) -> bool {
        self.carried.contains_key(&seq)
    }

    /// The earliest deadline of an unanswered item in flight.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.carried
            .values()
            .flat_map(|s| s.iter())
            .filter(|s| !s.done)
            .map(|s| s.deadline)
            .min()
    }

    /// Forgets every microbatch, naming their unanswered items (the service is closing).
    pub fn drain(&mut self) -> Vec<ItemId> {
        std::mem::take(&mut self.carried)
            .into_values()
            .flatten()
            .filter(|s| !s.done)
            .map(|s| s.id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn items(ids: &[u64], at: Instant, deadline_ms: u64) -> Vec<Waiting<char>> {
        ids.iter()
            .map(|&i| Waiting {
                id: ItemId(i),
                item: 'x',
                admitted: at,
                deadline: at + Duration::from_millis(deadline_ms),
            })
            .collect()
    }

    #[test]
    fn a_resent_microbatch_answers_its_items_once() {
        let t = Instant::now();
        let mut book = Book::default();
        book.carry(3, items(&[10, 11], t, 100));
        // Sent again after a re-plan: the rows are the same items.
        assert_eq!(book.items(3).unwrap().len(), 2);
        assert_eq!(book.answer(3), Some(vec![(0, ItemId(10)), (1, ItemId(11))]));
        assert_eq!(book.answer(3), None);
        assert_eq!(book.unanswered(), 0);
    }

    #[test]
    fn an_item_expired_in_flight_is_answered_once_and_keeps_its_row() {
        let t = Instant::now();
        let mut book = Book::default();
        book.carry(0, items(&[1], t, 100));
        book.carry(1, {
            let mut v = items(&[2], t, 10);
            v.extend(items(&[3], t, 100));
            v
        });
        assert_eq!(book.next_deadline(), Some(t + Duration::from_millis(10)));
        assert_eq!(book.expire(t + Duration::from_millis(10)), vec![ItemId(2)]);
        assert!(book.expire(t + Duration::from_millis(20)).is_empty());
        assert_eq!(book.sequences(), vec![0, 1]);
        assert_eq!(book.answer(1), Some(vec![(1, ItemId(3))]));
        assert_eq!(book.unanswered(), 1);
        assert_eq!(book.drain(), vec![ItemId(1)]);
        assert_eq!(book.microbatches(), 0);
    }

    #[test]
    fn a_microbatch_whose_items_all_expired_leaves_the_book() {
        let t = Instant::now();
        let mut book = Book::default();
        book.carry(0, items(&[1, 2], t, 10));
        book.carry(1, items(&[3], t, 100));
        book.expire(t + Duration::from_millis(10));
        assert!(!book.carries(0) && book.carries(1));
        assert_eq!(book.answer(0), None);
    }
}
