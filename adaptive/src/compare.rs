//! Several policies over one trace in the link simulation, each judged the same way: what
//! `quantpipe bench adaptive --simulate` prints.

use crate::judge::{judge, Judgement};
use crate::policy::{Policy, PolicyConfig, PolicyKind};
use crate::simulate::{figures, lowest_fits, simulate, Figures, SimConfig, WindowRecord};
use crate::sizes::{allowed_bits, SizeTable};
use crate::trace::Trace;
use quantpipe_messages::Bits;
use serde::Serialize;

/// One link of a pipeline: what crosses it and how fast it must.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkSetup {
    /// Payload bytes per bitwidth (at least `min_bits..=max_bits`).
    pub sizes: SizeTable,
    pub min_bits: Bits,
    pub max_bits: Bits,
    pub target_items_per_s: f64,
    /// The sending stage's own rate (at or above the target, so it can catch up).
    pub compute_items_per_s: f64,
    pub items_per_message: f64,
    pub window_s: f64,
    /// Messages sent and not yet arrived before the stage waits.
    pub in_flight: usize,
}

impl LinkSetup {
    /// MiniLM's cut as `bench adaptive` runs it: 8 articles of 128 tokens of 384 hidden values
    /// per message, stages at 25 items/s, a target of 20 items/s, 3 s windows, at least 2 bits.
    pub fn minilm_cut() -> LinkSetup {
        let min_bits = Bits::new(2).expect("2 is a bitwidth");
        LinkSetup {
            sizes: SizeTable::from_shapes(&[vec![8, 128, 384]], &allowed_bits(min_bits, Bits::RAW))
                .expect("MiniLM's cut encodes"),
            min_bits,
            max_bits: Bits::RAW,
            target_items_per_s: 20.0,
            compute_items_per_s: 25.0,
            items_per_message: 8.0,
            window_s: 3.0,
            in_flight: 2,
        }
    }

    fn policy(&self, kind: PolicyKind) -> Result<Policy, String> {
        Policy::new(
            PolicyConfig {
                kind,
                max_bits: self.max_bits,
                min_bits: self.min_bits,
                target_items_per_s: self.target_items_per_s,
                items_per_message: self.items_per_message,
                window_s: self.window_s,
            },
            self.sizes.clone(),
        )
    }
}

/// One policy's simulated run over the trace.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyRun {
    pub policy: String,
    pub judgement: Judgement,
    /// Per plateau figures, for a trace whose every step lasts at least two windows (a step
    /// trace); None for a recorded trace, which has no plateaus.
    pub plateaus: Option<Figures>,
    pub windows: Vec<WindowRecord>,
}

/// Runs each of `kinds` over `trace` (the last rate held for `hold_s`) and judges it.
pub fn compare(
    trace: &Trace,
    hold_s: f64,
    link: &LinkSetup,
    kinds: &[PolicyKind],
) -> Result<Vec<PolicyRun>, String> {
    let steps = trace.steps();
    let duration_s = steps.last().map_or(0.0, |s| s.0) + hold_s;
    let sim = SimConfig {
        window_s: link.window_s,
        duration_s,
        target_items_per_s: link.target_items_per_s,
        compute_items_per_s: link.compute_items_per_s,
        items_per_message: link.items_per_message,
        in_flight: link.in_flight,
    };
    let is_step_trace = trace.has_plateaus(link.window_s);
    kinds
        .iter()
        .map(|&kind| {
            let policy = link.policy(kind)?;
            let probe = policy.clone();
            let windows = simulate(trace, &link.sizes, policy, &sim)?;
            let judged: Vec<_> = windows.iter().map(WindowRecord::judged).collect();
            let plateaus = is_step_trace.then(|| {
                figures(trace, &windows, link.target_items_per_s, |mbps| {
                    lowest_fits(&link.sizes, &probe, mbps)
                })
            });
            Ok(PolicyRun {
                policy: kind.to_string(),
                judgement: judge(&judged, link.target_items_per_s),
                plateaus,
                windows,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_trace_gets_plateau_figures_and_a_recorded_one_does_not() {
        let link = LinkSetup::minilm_cut();
        let step = Trace::new(vec![(0.0, 200.0), (18.0, 20.0)]).unwrap();
        let runs = compare(&step, 18.0, &link, &[PolicyKind::Fixed]).unwrap();
        assert_eq!(runs[0].policy, "fixed");
        assert_eq!(runs[0].plateaus.as_ref().unwrap().recovery.len(), 2);
        assert_eq!(runs[0].windows.len(), 12);
        let jittery = Trace::new((0..20).map(|i| (f64::from(i), 20.0)).collect()).unwrap();
        let runs = compare(&jittery, 3.0, &link, &[PolicyKind::Fixed]).unwrap();
        assert!(runs[0].plateaus.is_none());
    }

    #[test]
    fn fixed_raw_holds_a_fast_link_and_misses_a_slow_one() {
        let link = LinkSetup::minilm_cut();
        // 200 Mbit/s carries 32-bit messages at 25 items/s; 20 Mbit/s carries about 20 bits.
        let fast = Trace::new(vec![(0.0, 200.0)]).unwrap();
        let j = &compare(&fast, 30.0, &link, &[PolicyKind::Fixed]).unwrap()[0].judgement;
        assert_eq!(j.held_share, Some(1.0), "{j:?}");
        let slow = Trace::new(vec![(0.0, 20.0)]).unwrap();
        let j = &compare(&slow, 30.0, &link, &[PolicyKind::Fixed]).unwrap()[0].judgement;
        assert_eq!(j.held_windows, 0, "{j:?}");
        assert!(j.bits_over_oracle.unwrap() > 10.0, "{j:?}");
    }
}
