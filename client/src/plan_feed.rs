//! The thread that follows the leader's plan for the loop: announcements, a new leader's plan
//! queryable, and a question to the leader after `client.stall_s` of silence (in case an
//! announcement was missed).

use crate::service_loop::Wake;
use quantpipe_actors::runtime::client::{Event, PlanWatch};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

/// Feeds every plan `watch` learns of to the loop until `stop` is set (and the watch is
/// nudged) or the loop is gone.
pub(crate) fn feed_plans(
    watch: PlanWatch,
    loop_tx: Sender<Wake>,
    stall: Duration,
    stop: Arc<AtomicBool>,
) {
    loop {
        let event = match watch.recv(stall) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("plan watch: {e:#}");
                return;
            }
        };
        if stop.load(Ordering::Acquire) {
            return;
        }
        let plan = match event {
            Some(Event::Plan(bytes)) => watch.decode(&bytes),
            // A new leader serves its plan: it may have re-planned while taking over.
            Some(Event::PlanServed) | None => watch.ask(),
            // Only the nudge of `stop` comes this way (results go to the loop directly).
            Some(Event::Result(_)) => None,
        };
        if let Some(p) = plan {
            if loop_tx.send(Wake::Plan(p)).is_err() {
                return;
            }
        }
    }
}
