//! An emulated outgoing link (`[emulation] link_trace`): the node's data transport holds each
//! message it puts until the message would have crossed a link following the trace
//! ([`quantpipe_adaptive::pacing::PacedLink`]), so that receivers' acknowledgements, and with
//! them the BandwidthProbeActor's estimate and the QuantizerActor's policy, see the trace's rate
//! on a host whose real network is far faster. No network namespace, no root.
//!
//! The trace's clock starts at the node's first data message: the stages of one run start their
//! clocks within a forward pass of each other, and a node whose first message is a result to a
//! client (the last stage) keeps its clock when a re-plan makes it send to a stage.

use anyhow::{anyhow, Result};
use quantpipe_adaptive::pacing::PacedLink;
use quantpipe_adaptive::trace::Trace;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct LinkPacer {
    link: PacedLink,
    origin: Option<Instant>,
}

impl LinkPacer {
    pub fn new(trace: Trace) -> Self {
        LinkPacer {
            link: PacedLink::new(trace),
            origin: None,
        }
    }

    /// The pacer of the trace file `path`; the error names the file and the line at fault.
    pub fn open(path: &Path) -> Result<Self> {
        Trace::read(path)
            .map(LinkPacer::new)
            .map_err(|e| anyhow!("emulation.link_trace: {e}"))
    }

    /// How long to hold a message of `bytes` handed over now (the first one starts the clock).
    pub fn hold(&mut self, bytes: u64) -> Duration {
        self.hold_at(Instant::now(), bytes)
    }

    fn hold_at(&mut self, now: Instant, bytes: u64) -> Duration {
        let origin = *self.origin.get_or_insert(now);
        let now_s = now.duration_since(origin).as_secs_f64();
        Duration::from_secs_f64(self.link.wait_s(now_s, bytes).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_starts_at_the_first_message_and_follows_the_trace() {
        let trace = Trace::new(vec![(0.0, 80.0), (5.0, 8.0)]).unwrap();
        let mut p = LinkPacer::new(trace);
        let t0 = Instant::now() + Duration::from_secs(100);
        // 1 MB at 80 Mbit/s at the clock's start, however late the first message comes.
        let first = p.hold_at(t0, 1_000_000).as_secs_f64();
        assert!((first - 0.1).abs() < 1e-6, "{first}");
        // Six seconds later the link runs at 8 Mbit/s.
        let later = p
            .hold_at(t0 + Duration::from_secs(6), 1_000_000)
            .as_secs_f64();
        assert!((later - 1.0).abs() < 1e-6, "{later}");
    }

    #[test]
    fn a_missing_trace_file_is_named() {
        let err = LinkPacer::open(Path::new("/nonexistent/step.csv")).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("emulation.link_trace") && text.contains("/nonexistent/step.csv"),
            "{text}"
        );
    }
}
