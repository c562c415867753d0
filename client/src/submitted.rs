//! A queued request: each item's result, resolved by the service loop.

use crate::item::{ItemError, ItemResult};
use tokio::sync::oneshot;

/// The items of one accepted request, answered one by one as their microbatches come back.
#[derive(Debug)]
pub struct Submitted {
    pub(crate) results: Vec<oneshot::Receiver<ItemResult>>,
}

impl Submitted {
    /// Each item's result, in the order given. Resolves on the caller's runtime.
    pub async fn outputs(self) -> Vec<ItemResult> {
        let mut out = Vec::with_capacity(self.results.len());
        for rx in self.results {
            // A sender dropped unanswered means the loop is gone.
            out.push(rx.await.unwrap_or(Err(ItemError::Closed)));
        }
        out
    }

    /// The same, blocking (for callers without an async runtime; not from within one).
    pub fn wait(self) -> Vec<ItemResult> {
        self.results
            .into_iter()
            .map(|rx| rx.blocking_recv().unwrap_or(Err(ItemError::Closed)))
            .collect()
    }

    /// Items in the request.
    pub fn len(&self) -> usize {
        self.results.len()
    }

    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }
}
