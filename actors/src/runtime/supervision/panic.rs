//! Catching a worker's panic, the error that tells it apart from every other failure, and what
//! a stage answers its client for it.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// A worker panicked while it handled a message. The message's input was not at fault as far
/// as the node can tell, so the client may send it once more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{worker} worker panicked ({message}){}", if *.restarted { "; it restarted" } else { "; it could not restart" })]
pub struct WorkerPanicked {
    /// `forward`, `codec` or `planner`.
    pub worker: &'static str,
    /// The panic's message.
    pub message: String,
    /// Whether the worker restarted after it: when it could not, the node leaves the fleet.
    pub restarted: bool,
}

/// Runs `f`, answering its panic's message instead of unwinding further. The caller must throw
/// away whatever state `f` touched: a panic may leave it half-mutated.
pub fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string())
    })
}

/// What a stage answers the client of a microbatch that failed with `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReply {
    /// An error result the client must not send again.
    Final,
    /// An error result the client may send once more: a worker panicked and restarted.
    Retryable,
    /// Nothing: the worker could not restart and the node is leaving the fleet; the leader's
    /// re-plan makes the client send the microbatch again to the new pipeline.
    Silent,
}

/// The reply for a microbatch that failed with `error`.
pub fn reply_for(error: &anyhow::Error) -> FailureReply {
    match error
        .chain()
        .find_map(|e| e.downcast_ref::<WorkerPanicked>())
    {
        Some(p) if p.restarted => FailureReply::Retryable,
        Some(_) => FailureReply::Silent,
        None => FailureReply::Final,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::{anyhow, Context as _};

    fn panicked(restarted: bool) -> anyhow::Error {
        WorkerPanicked {
            worker: "forward",
            message: "index out of range in self".into(),
            restarted,
        }
        .into()
    }

    #[test]
    fn a_panic_is_answered_with_its_message() {
        assert_eq!(catch_panic(|| 7), Ok(7));
        let m = catch_panic(|| -> u32 { panic!("index {} out of range", 9) }).unwrap_err();
        assert_eq!(m, "index 9 out of range");
        let m = catch_panic(|| -> u32 { panic!("static text") }).unwrap_err();
        assert_eq!(m, "static text");
    }

    #[test]
    fn a_worker_that_restarted_makes_the_failure_retryable() {
        assert_eq!(reply_for(&panicked(true)), FailureReply::Retryable);
        // Context added on the way keeps it retryable.
        let wrapped = Err::<(), _>(panicked(true)).context("stage 1").unwrap_err();
        assert_eq!(reply_for(&wrapped), FailureReply::Retryable);
    }

    #[test]
    fn a_worker_that_could_not_restart_answers_nothing() {
        assert_eq!(reply_for(&panicked(false)), FailureReply::Silent);
    }

    #[test]
    fn any_other_failure_is_final() {
        assert_eq!(
            reply_for(&anyhow!("transport: closed")),
            FailureReply::Final
        );
    }

    #[test]
    fn the_error_says_which_worker_and_whether_it_restarted() {
        let e = panicked(true).to_string();
        assert!(e.contains("forward worker panicked"), "{e}");
        assert!(e.contains("index out of range"), "{e}");
        assert!(e.contains("it restarted"), "{e}");
        assert!(panicked(false).to_string().contains("could not restart"));
    }
}
