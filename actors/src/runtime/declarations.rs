//! What a node holds declared on zenoh: subscribers, queryables and liveliness tokens, each
//! counted when declared and again when undeclared, so a node's stats say whether re-plans
//! leave declarations behind. zenoh does not expose a session's declarations, and guessing them
//! from the keys a stage uses would hide exactly the leaks this is for.
//!
//! A [`Declared`] guard is kept beside the zenoh object it counts (in the same struct or tuple):
//! dropping it with the object undeclares both.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// What kind of declaration a [`Declared`] guard counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A subscriber, liveliness subscribers included.
    Subscriber,
    Queryable,
    LivelinessToken,
}

/// Declarations held now, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    pub subscribers: u64,
    pub queryables: u64,
    pub liveliness_tokens: u64,
}

/// Counters of declarations held; clones share them.
#[derive(Clone, Default)]
pub struct Declarations {
    counts: Arc<[AtomicU64; 3]>,
}

impl Declarations {
    /// The node's registry: one per process, as a node is one process.
    pub fn node() -> Declarations {
        static NODE: OnceLock<Declarations> = OnceLock::new();
        NODE.get_or_init(Declarations::default).clone()
    }

    /// Counts a declaration of `kind` until the guard is dropped.
    pub fn declared(&self, kind: Kind) -> Declared {
        self.counts[kind as usize].fetch_add(1, Ordering::Relaxed);
        Declared {
            counts: self.counts.clone(),
            kind,
        }
    }

    pub fn held(&self) -> Held {
        let n = |k: Kind| self.counts[k as usize].load(Ordering::Relaxed);
        Held {
            subscribers: n(Kind::Subscriber),
            queryables: n(Kind::Queryable),
            liveliness_tokens: n(Kind::LivelinessToken),
        }
    }
}

/// One declaration held: counted from its creation to its drop.
pub struct Declared {
    counts: Arc<[AtomicU64; 3]>,
    kind: Kind,
}

impl Drop for Declared {
    fn drop(&mut self) {
        self.counts[self.kind as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

/// A zenoh declaration with its count: undeclared (and uncounted) when dropped.
pub struct Counted<T> {
    pub value: T,
    _declared: Declared,
}

impl<T> Counted<T> {
    /// `value`, a declaration of `kind`, counted in the node's registry.
    pub fn node(value: T, kind: Kind) -> Counted<T> {
        Counted {
            value,
            _declared: Declarations::node().declared(kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declaration_is_held_until_its_guard_is_dropped() {
        let d = Declarations::default();
        let sub = d.declared(Kind::Subscriber);
        let q = d.declared(Kind::Queryable);
        let t = d.declared(Kind::LivelinessToken);
        let sub2 = d.declared(Kind::Subscriber);
        let held = |subscribers, queryables, liveliness_tokens| Held {
            subscribers,
            queryables,
            liveliness_tokens,
        };
        assert_eq!(d.held(), held(2, 1, 1));
        drop(sub);
        drop(t);
        assert_eq!(d.held(), held(1, 1, 0));
        drop((q, sub2));
        assert_eq!(d.held(), Held::default());
    }

    #[test]
    fn clones_of_a_registry_share_its_counts() {
        let d = Declarations::default();
        let _q = d.clone().declared(Kind::Queryable);
        assert_eq!(d.held().queryables, 1);
        assert_eq!(Declarations::default().held(), Held::default());
    }
}
