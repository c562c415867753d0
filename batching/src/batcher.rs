//! The batcher: admission, queue, packing, deadlines and the book of microbatches together,
//! driven by a service loop that passes the time and sends what it is told to.

use crate::admission::{self, Refusal};
use crate::book::{Book, Slot};
use crate::flight::{self, Dropped};
use crate::packing::{self, Pack};
use crate::queue::{Queue, Waiting};
use crate::rate::ServiceRate;
use crate::ItemId;
use std::time::{Duration, Instant};

/// How the batcher packs and bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Items per microbatch, at most (the plan's).
    pub ubatch: usize,
    /// Longest an item waits for its microbatch to fill.
    pub max_delay: Duration,
    /// Items admitted and not answered, at most.
    pub capacity: usize,
}

/// How far back the service rate is measured.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Queued items, microbatches in flight, and the figures of both.
#[derive(Debug, Clone)]
pub struct Batcher<T> {
    config: BatchConfig,
    queue: Queue<T>,
    book: Book<T>,
    rate: ServiceRate,
    next_id: u64,
    next_seq: u64,
    /// The plan epoch microbatches are sent under.
    epoch: u64,
    /// Microbatches sent again under a new epoch.
    resent: u64,
}

impl<T> Batcher<T> {
    /// A batcher sending under plan `epoch`.
    pub fn new(config: BatchConfig, epoch: u64) -> Self {
        Batcher {
            config,
            queue: Queue::default(),
            book: Book::default(),
            rate: ServiceRate::new(RATE_WINDOW),
            next_id: 0,
            next_seq: 0,
            epoch,
            resent: 0,
        }
    }

    /// The plan epoch microbatches are sent under.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Microbatches sent again under a new epoch, in all.
    pub fn resent(&self) -> u64 {
        self.resent
    }

    /// Moves to plan `epoch` when it is newer, answering the microbatches to send again under
    /// it (every one in flight, ascending); an older or the same epoch changes nothing.
    pub fn switch_epoch(&mut self, epoch: u64) -> Vec<u64> {
        if epoch <= self.epoch {
            return Vec::new();
        }
        self.epoch = epoch;
        let again = self.book.sequences();
        self.resent += again.len() as u64;
        again
    }

    pub fn config(&self) -> BatchConfig {
        self.config
    }

    /// A new plan's microbatch size: microbatches packed from now on hold at most `ubatch`
    /// items (those in flight keep theirs).
    pub fn set_ubatch(&mut self, ubatch: usize) {
        self.config.ubatch = ubatch.max(1);
    }

    /// Items admitted and not answered.
    pub fn outstanding(&self) -> usize {
        self.queue.len() + self.book.unanswered()
    }

    /// Items waiting for a microbatch.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Microbatches sent and not answered.
    pub fn in_flight(&self) -> usize {
        self.book.microbatches()
    }

    /// Queues every item of a request with `deadline`, or none of them.
    pub fn admit(
        &mut self,
        items: Vec<T>,
        now: Instant,
        deadline: Instant,
    ) -> Result<Vec<ItemId>, Refusal> {
        let rate = self.rate.items_per_s(now);
        admission::admit(self.outstanding(), items.len(), self.config.capacity, rate)?;
        Ok(items
            .into_iter()
            .map(|item| {
                let id = ItemId(self.next_id);
                self.next_id += 1;
                self.queue.push(Waiting {
                    id,
                    item,
                    admitted: now,
                    deadline,
                });
                id
            })
            .collect())
    }

    /// Takes out every item whose deadline passed: queued ones leave the queue (they are never
    /// sent), those in flight are skipped when their microbatch's result comes.
    pub fn expire(&mut self, now: Instant) -> Vec<ItemId> {
        let mut expired = self.queue.expire(now);
        expired.extend(self.book.expire(now));
        expired
    }

    /// What packing decides now.
    pub fn pack(&self, now: Instant) -> Pack {
        packing::pack(
            self.queue.len(),
            self.queue.oldest(),
            now,
            self.config.ubatch,
            self.config.max_delay,
        )
    }

    /// A microbatch, when one should leave now: its sequence number (its items are
    /// [`Batcher::items`]). Items past their deadline at `now` are never packed.
    pub fn take_ready(&mut self, now: Instant) -> Option<u64> {
        let Pack::Now(n) = self.pack(now) else {
            return None;
        };
        let items = self.queue.take_oldest(n);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.book.carry(seq, items);
        Some(seq)
    }

    /// The items microbatch `seq` carries, in row order; `None` once it is answered.
    pub fn items(&self, seq: u64) -> Option<&[Slot<T>]> {
        self.book.items(seq)
    }

    /// Takes a result of microbatch `seq` computed under plan `epoch`, at `now`: (row, item)
    /// for each item to answer from it, once; or why the result is dropped.
    pub fn take_result(
        &mut self,
        seq: u64,
        epoch: u64,
        now: Instant,
    ) -> Result<Vec<(usize, ItemId)>, Dropped> {
        flight::judge(
            seq,
            epoch,
            self.epoch,
            self.next_seq,
            self.book.carries(seq),
        )?;
        let rows = self.book.answer(seq).ok_or(Dropped::Duplicate)?;
        self.rate.record(now, rows.len());
        Ok(rows)
    }

    /// The next instant something is due: the oldest item's `max_delay` (only when
    /// `may_send`: with a full window nothing can leave anyway) or a deadline.
    pub fn wake_at(&self, now: Instant, may_send: bool) -> Option<Instant> {
        let packing = match self.pack(now) {
            Pack::Now(_) => Some(now),
            Pack::At(t) => Some(t),
            Pack::Idle => None,
        }
        .filter(|_| may_send);
        [
            packing,
            self.queue.next_deadline(),
            self.book.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Takes out every queued and in-flight item (the service is closing).
    pub fn drain(&mut self) -> Vec<ItemId> {
        let mut all = self.queue.drain();
        all.extend(self.book.drain());
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPOCH: u64 = 7;

    fn batcher(ubatch: usize, capacity: usize) -> Batcher<u32> {
        Batcher::new(
            BatchConfig {
                ubatch,
                max_delay: Duration::from_millis(5),
                capacity,
            },
            EPOCH,
        )
    }

    const LONG: Duration = Duration::from_secs(30);

    #[test]
    fn a_full_microbatch_leaves_at_once() {
        let t = Instant::now();
        let mut b = batcher(4, 64);
        b.admit((0..6).collect(), t, t + LONG).unwrap();
        let seq = b.take_ready(t).unwrap();
        let items: Vec<u32> = b.items(seq).unwrap().iter().map(|s| s.item).collect();
        assert_eq!(items, vec![0, 1, 2, 3]);
        // The remaining two wait for company.
        assert_eq!(b.take_ready(t), None);
        assert_eq!(b.wake_at(t, true), Some(t + Duration::from_millis(5)));
    }

    #[test]
    fn a_lone_item_leaves_after_max_delay() {
        let t = Instant::now();
        let mut b = batcher(4, 64);
        b.admit(vec![7], t, t + LONG).unwrap();
        assert_eq!(b.take_ready(t + Duration::from_millis(4)), None);
        let seq = b.take_ready(t + Duration::from_millis(5)).unwrap();
        assert_eq!(b.items(seq).unwrap().len(), 1);
    }

    #[test]
    fn a_request_that_does_not_fit_is_refused_whole() {
        let t = Instant::now();
        let mut b = batcher(4, 5);
        b.admit(vec![1, 2, 3], t, t + LONG).unwrap();
        // In flight still counts against the capacity.
        b.take_ready(t + LONG / 2).unwrap();
        assert!(matches!(
            b.admit(vec![4, 5, 6], t, t + LONG),
            Err(Refusal::Full { .. })
        ));
        assert_eq!(b.outstanding(), 3);
        assert_eq!(b.admit(vec![4, 5], t, t + LONG).unwrap().len(), 2);
    }

    #[test]
    fn answered_items_make_room_and_set_the_retry_estimate() {
        let t = Instant::now();
        let mut b = batcher(2, 4);
        b.admit(vec![1, 2, 3, 4], t, t + LONG).unwrap();
        let s0 = b.take_ready(t).unwrap();
        let s1 = b.take_ready(t).unwrap();
        b.take_result(s0, EPOCH, t + Duration::from_secs(1))
            .unwrap();
        b.take_result(s1, EPOCH, t + Duration::from_secs(2))
            .unwrap();
        b.admit(vec![5, 6, 7, 8], t, t + LONG).unwrap();
        // 2 items/s measured; two items too many wait a second.
        assert_eq!(
            b.admit(vec![9, 10], t + Duration::from_secs(2), t + LONG),
            Err(Refusal::Full {
                retry_after: Duration::from_secs(1)
            })
        );
    }

    #[test]
    fn an_expired_item_is_never_sent() {
        let t = Instant::now();
        let mut b = batcher(4, 64);
        let short = b.admit(vec![1], t, t + Duration::from_millis(2)).unwrap();
        b.admit(vec![2], t, t + LONG).unwrap();
        let later = t + Duration::from_millis(10);
        assert_eq!(b.expire(later), short);
        let seq = b.take_ready(later).unwrap();
        let items: Vec<u32> = b.items(seq).unwrap().iter().map(|s| s.item).collect();
        assert_eq!(items, vec![2]);
    }

    #[test]
    fn an_item_expired_in_flight_is_not_answered_again_by_its_result() {
        let t = Instant::now();
        let mut b = batcher(2, 64);
        let ids = b.admit(vec![1], t, t + Duration::from_millis(20)).unwrap();
        let other = b.admit(vec![2], t, t + LONG).unwrap();
        let seq = b.take_ready(t).unwrap();
        assert_eq!(b.expire(t + Duration::from_millis(20)), ids);
        assert_eq!(
            b.take_result(seq, EPOCH, t + LONG / 2),
            Ok(vec![(1, other[0])])
        );
        assert_eq!(
            b.take_result(seq, EPOCH, t + LONG / 2),
            Err(Dropped::Duplicate)
        );
        assert_eq!(b.outstanding(), 0);
    }

    #[test]
    fn a_new_plans_microbatch_size_applies_to_the_next_microbatch() {
        let t = Instant::now();
        let mut b = batcher(4, 64);
        b.admit((0..4).collect(), t, t + LONG).unwrap();
        b.set_ubatch(2);
        let seq = b.take_ready(t).unwrap();
        assert_eq!(b.items(seq).unwrap().len(), 2);
    }

    #[test]
    fn with_a_full_window_only_deadlines_wake_the_loop() {
        let t = Instant::now();
        let mut b = batcher(4, 64);
        b.admit(vec![1], t, t + LONG).unwrap();
        assert_eq!(b.wake_at(t, false), Some(t + LONG));
        assert_eq!(b.wake_at(t, true), Some(t + Duration::from_millis(5)));
        assert_eq!(batcher(4, 64).wake_at(t, true), None);
    }

    #[test]
    fn a_resent_microbatch_answers_its_items_once() {
        let t = Instant::now();
        let mut b = batcher(2, 64);
        let ids = b.admit(vec![1, 2, 3], t, t + LONG).unwrap();
        let s0 = b.take_ready(t).unwrap();
        let s1 = b.take_ready(t + LONG / 4).unwrap();
        b.take_result(s0, EPOCH, t).unwrap();
        // A re-plan: only what is unanswered goes again, under the new epoch.
        assert_eq!(b.switch_epoch(EPOCH + 1), vec![s1]);
        assert_eq!((b.epoch(), b.resent()), (EPOCH + 1, 1));
        assert_eq!(b.take_result(s1, EPOCH, t), Err(Dropped::StaleEpoch));
        assert_eq!(b.take_result(s1, EPOCH + 1, t), Ok(vec![(0, ids[2])]));
        assert_eq!(b.take_result(s1, EPOCH + 1, t), Err(Dropped::Duplicate));
        assert_eq!(b.take_result(s1, EPOCH, t), Err(Dropped::Duplicate));
        assert_eq!(b.take_result(s1 + 1, EPOCH + 1, t), Err(Dropped::Unknown));
        // An older or the same epoch changes nothing.
        assert!(b.switch_epoch(EPOCH).is_empty());
        assert_eq!(b.epoch(), EPOCH + 1);
    }

    #[test]
    fn a_microbatch_whose_items_all_expired_frees_its_place_and_is_not_resent() {
        let t = Instant::now();
        let mut b = batcher(1, 64);
        b.admit(vec![1], t, t + Duration::from_millis(20)).unwrap();
        let seq = b.take_ready(t).unwrap();
        assert_eq!(b.in_flight(), 1);
        b.expire(t + Duration::from_millis(20));
        assert_eq!(b.in_flight(), 0);
        assert!(b.switch_epoch(EPOCH + 1).is_empty());
        assert_eq!(b.take_result(seq, EPOCH + 1, t), Err(Dropped::Duplicate));
    }

    #[test]
    fn closing_names_every_item_not_answered() {
        let t = Instant::now();
        let mut b = batcher(1, 64);
        b.admit(vec![1, 2], t, t + LONG).unwrap();
        b.take_ready(t).unwrap();
        assert_eq!(b.drain(), vec![ItemId(1), ItemId(0)]);
        assert_eq!(b.outstanding(), 0);
    }
}
