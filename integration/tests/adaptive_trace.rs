//! Adaptive quantization on real shaped links: a 3-stage MiniLM pipeline in network namespaces
//! whose two inter-stage links follow the bandwidth trace `config/traces/step-200-20-5-200.csv`
//! (200 -> 20 -> 5 -> 200 Mbit/s, a step every 18 s) by `tc tbf` (see
//! `quantpipe_launcher::trace_fleet`).
//!
//! With the `controller` policy, the client's mean throughput from 2 windows after each step to
//! the end of the plateau must be >= 95% of the target (every plateau of this trace can carry the
//! target at some allowed bitwidth). With `fixed` 32 bits, the same
//! trace in the same test makes it collapse on the 20 and 5 Mbit/s plateaus: what crosses each
//! cut is 8 x 128 x 384 hidden states, 1.57 MB at 32 bits, 0.63 s at 20 Mbit/s.

use quantpipe_adaptive::trace::Trace;
use quantpipe_integration::{minilm_dir, quantpipe_bin, repo_root};
use quantpipe_launcher::netns::Netns;
use quantpipe_launcher::privilege::root_or_skip;
use quantpipe_launcher::trace_fleet::{figures, run_trace, Params};
use std::time::Instant;

/// Timeline windows (1 s) a node may miss in a row (a stage blocked on a slow put answers
/// stats late) before it counts as gone silent.
const UNRESPONSIVE_WINDOWS: usize = 8;

#[test]
fn the_controller_holds_the_target_through_bandwidth_steps_and_fixed_32_bits_collapses() {
    if !root_or_skip(
        "the_controller_holds_the_target_through_bandwidth_steps_and_fixed_32_bits_collapses",
    ) {
        return;
    }
    let started = Instant::now();
    let bin = quantpipe_bin();
    let model = minilm_dir();
    let trace = Trace::read(&repo_root().join("config/traces/step-200-20-5-200.csv")).unwrap();
    let hold_s = trace.steps()[1].0 - trace.steps()[0].0;
    let p = Params::default();
    let target = p.target_items_per_s;
    let dir = tempfile::tempdir().unwrap();
    let net = Netns::new("qpadapt", 5).unwrap_or_else(|e| panic!("{e}"));

    let mut summary = String::new();
    let mut failures = Vec::new();
    for (policy, port) in [("controller", 7447), ("fixed", 7448)] {
        let run = run_trace(
            &net,
            &bin,
            &model,
            dir.path(),
            policy,
            port,
            &trace,
            hold_s,
            &p,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // A node that goes silent (its link sent nothing for seconds) fails the run whatever
        // the bitwidths: named here so that it is not mistaken for a policy's shortfall.
        let silent = run.unresponsive_nodes(UNRESPONSIVE_WINDOWS);
        if !silent.is_empty() {
            failures.push(format!(
                "{policy}: {silent:?} stopped answering for {UNRESPONSIVE_WINDOWS}+ windows \
                 (see qdiscs.txt: a shaper whose backlog does not move)"
            ));
        }
        summary += &format!(
            "{policy}: results flowed {:.0} s after start\n",
            run.startup_s
        );
        for f in figures(&run, &p) {
            summary += &format!(
                "{policy:>10} {:>5} Mbit/s: held {} items/s ({} of target) from 2 windows after \
                 the step; target met {} s after it; mean bits {:?} (oracle {:.1})\n",
                f.mbit,
                f.held_items_per_s.map_or("-".into(), |h| format!("{h:.1}")),
                f.held_share_of_target
                    .map_or("-".into(), |h| format!("{:.0}%", 100.0 * h)),
                f.regained_after_s
                    .map_or("never".into(), |s| format!("{s:.1}")),
                f.mean_bits_per_link,
                f.oracle_bits,
            );
            let Some(held) = f.held_items_per_s else {
                failures.push(format!("{policy} {} Mbit/s: no window judged", f.mbit));
                continue;
            };
            match policy {
                "controller" if f.feasible && held < 0.95 * target => failures.push(format!(
                    "controller {} Mbit/s: {held:.1} items/s < 95% of {target}",
                    f.mbit
                )),
                "fixed" if f.mbit <= 20.0 && held >= 0.8 * target => failures.push(format!(
                    "fixed 32 bits {} Mbit/s: {held:.1} items/s did not collapse",
                    f.mbit
                )),
                _ => {}
            }
        }
    }
    eprintln!(
        "{summary}test took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        // Keep the timelines and logs for a look.
        let kept = dir.keep();
        panic!(
            "{}\n{summary}timelines and logs kept in {}",
            failures.join("\n"),
            kept.display()
        );
    }
}
