//! How the node's workers fare: restarts after panics (shown in `NodeStats::worker_restarts`),
//! and whether one could not restart (the node then drops out of the fleet).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::watch;

/// Shared by a node's workers and the node itself.
#[derive(Debug)]
pub struct WorkerHealth {
    restarts: AtomicU64,
    /// Why a worker could not restart, once one could not.
    broken: watch::Sender<Option<String>>,
}

impl Default for WorkerHealth {
    fn default() -> Self {
        WorkerHealth {
            restarts: AtomicU64::new(0),
            broken: watch::Sender::new(None),
        }
    }
}

impl WorkerHealth {
    /// The health of this process's node (`quantpipe node` runs one node per process): the
    /// node's workers report to it, its stats read it.
    pub fn node() -> Arc<WorkerHealth> {
        static NODE: OnceLock<Arc<WorkerHealth>> = OnceLock::new();
        NODE.get_or_init(Arc::default).clone()
    }

    /// A worker restarted after a panic.
    pub fn restarted(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// Worker restarts so far.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// A worker could not restart (`why`); the first reason is kept.
    pub fn cannot_restart(&self, why: String) {
        self.broken.send_if_modified(|b| {
            if b.is_some() {
                return false;
            }
            *b = Some(why);
            true
        });
    }

    /// Why a worker could not restart, if one could not.
    pub fn broken(&self) -> Option<String> {
        self.broken.borrow().clone()
    }

    /// Answers the reason once a worker could not restart (at once if one already could not).
    pub async fn until_broken(&self) -> String {
        let mut rx = self.broken.subscribe();
        let why = match rx.wait_for(Option::is_some).await {
            Ok(b) => b.clone(),
            // The sender lives as long as `self`: unreachable while borrowed.
            Err(_) => None,
        };
        match why {
            Some(why) => why,
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_are_counted() {
        let h = WorkerHealth::default();
        h.restarted();
        h.restarted();
        assert_eq!(h.restarts(), 2);
        assert_eq!(h.broken(), None);
    }

    #[test]
    fn the_first_reason_a_worker_could_not_restart_is_kept() {
        let h = WorkerHealth::default();
        h.cannot_restart("forward: reload failed".into());
        h.cannot_restart("codec: panicked again".into());
        assert_eq!(h.broken().as_deref(), Some("forward: reload failed"));
    }

    #[test]
    fn waiting_for_a_broken_worker_ends_when_one_cannot_restart() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let h = Arc::new(WorkerHealth::default());
        let why = rt.block_on(async {
            let waiter = tokio::spawn({
                let h = h.clone();
                async move { h.until_broken().await }
            });
            tokio::task::yield_now().await;
            h.cannot_restart("codec: panicked 4 times in 60 s".into());
            waiter.await.unwrap()
        });
        assert_eq!(why, "codec: panicked 4 times in 60 s");
        // Already broken: answered at once.
        assert_eq!(rt.block_on(h.until_broken()), why);
    }
}
