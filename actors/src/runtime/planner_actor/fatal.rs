//! A leader that cannot make its first plan is useless: the node stops with [`LeaderFailed`]
//! so the operator (or the next candidate) sees it. The planner reports the failure to the
//! actix system's [`LeaderFailures`] service; the node's run future ends with it
//! ([`until_leader_fails`]), and `bin` chooses the exit code.

use actix::prelude::*;
use anyhow::Result;
use std::future::Future;
use tokio::sync::oneshot;

/// The leader hosted by this node could not plan.
#[derive(Debug, Clone, thiserror::Error)]
#[error("node {leader} could not plan as leader: {reason}")]
pub struct LeaderFailed {
    pub leader: String,
    pub reason: String,
}

/// The first [`LeaderFailed`] of this actix system, and who waits for it.
#[derive(Default)]
pub struct LeaderFailures {
    first: Option<LeaderFailed>,
    waiting: Vec<oneshot::Sender<LeaderFailed>>,
}

impl Actor for LeaderFailures {
    type Context = Context<Self>;
}

impl Supervised for LeaderFailures {}
impl SystemService for LeaderFailures {}

/// A leader failed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Report(pub LeaderFailed);

impl Handler<Report> for LeaderFailures {
    type Result = ();
    fn handle(&mut self, Report(failed): Report, _: &mut Context<Self>) {
        if self.first.is_some() {
            return;
        }
        for w in self.waiting.drain(..) {
            let _ = w.send(failed.clone());
        }
        self.first = Some(failed);
    }
}

/// Answers the first failure, once there is one (`None` if the service goes away).
#[derive(Message)]
#[rtype(result = "Option<LeaderFailed>")]
struct NextFailure;

impl Handler<NextFailure> for LeaderFailures {
    type Result = ResponseFuture<Option<LeaderFailed>>;
    fn handle(&mut self, _: NextFailure, _: &mut Context<Self>) -> Self::Result {
        if let Some(f) = &self.first {
            let f = f.clone();
            return Box::pin(async move { Some(f) });
        }
        let (tx, rx) = oneshot::channel();
        self.waiting.push(tx);
        Box::pin(async move { rx.await.ok() })
    }
}

/// Runs `run` (the node's life) until it ends, or until a leader this node hosts fails: then
/// the answer is that failure. Call on the actix system.
pub async fn until_leader_fails(run: impl Future<Output = Result<()>>) -> Result<()> {
    let failed = async {
        match LeaderFailures::from_registry().send(NextFailure).await {
            Ok(Some(f)) => f,
            _ => std::future::pending().await,
        }
    };
    tokio::select! {
        r = run => r,
        f = failed => Err(f.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(leader: &str) -> LeaderFailed {
        LeaderFailed {
            leader: leader.into(),
            reason: "no node came up".into(),
        }
    }

    #[test]
    fn the_node_ends_with_the_first_leader_failure() {
        let sys = actix::System::new();
        let answer = sys.block_on(async {
            let forever = std::future::pending::<Result<()>>();
            actix::spawn(async {
                LeaderFailures::from_registry().do_send(Report(failed("a")));
                LeaderFailures::from_registry().do_send(Report(failed("b")));
            });
            until_leader_fails(forever).await
        });
        let err = answer.unwrap_err();
        let f = err.downcast_ref::<LeaderFailed>().expect("a LeaderFailed");
        assert_eq!(f.leader, "a");
    }

    #[test]
    fn a_node_whose_leader_did_not_fail_ends_as_its_run_does() {
        let sys = actix::System::new();
        let answer = sys.block_on(until_leader_fails(async { Ok(()) }));
        assert!(answer.is_ok());
    }
}
