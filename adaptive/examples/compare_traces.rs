//! Every policy over every trace in `config/traces/`, in the link simulation, on MiniLM's cut:
//! `cargo run -p quantpipe-adaptive --example compare_traces [TRACE...]`; with
//! `QP_WINDOWS=<policy>` in the environment, that policy's windows are printed too.

use quantpipe_adaptive::compare::{compare, LinkSetup};
use quantpipe_adaptive::policy::PolicyKind;
use quantpipe_adaptive::trace::Trace;

fn main() -> Result<(), String> {
    let mut paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/traces");
        let mut found: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| format!("{dir}: {e}"))?
            .filter_map(|e| e.ok().map(|e| e.path().display().to_string()))
            .filter(|p| p.ends_with(".csv"))
            .collect();
        found.sort();
        paths = found;
    }
    let link = LinkSetup::minilm_cut();
    let kinds = [
        PolicyKind::Controller,
        PolicyKind::KalmanIntegral,
        PolicyKind::Heuristic,
        PolicyKind::Fixed,
    ];
    for path in paths {
        let trace = Trace::read(std::path::Path::new(&path))?;
        let hold = 18.0;
        println!("{path}");
        for run in compare(&trace, hold, &link, &kinds)? {
            let j = &run.judgement;
            if std::env::var("QP_WINDOWS").is_ok_and(|p| p == run.policy) {
                for w in &run.windows {
                    println!(
                        "    {:6.1} link {:6.2} measured {:6.2} bits {:5.2} oracle {:5.2} items/s {:5.1}{}",
                        w.start_s,
                        w.link_mbps,
                        w.measured_mbps.unwrap_or(0.0),
                        w.mean_bits.unwrap_or(0.0),
                        w.oracle_bits,
                        w.items_per_s,
                        if w.feasible && w.items_per_s < 19.0 { "  MISS" } else { "" }
                    );
                }
            }
            println!(
                "  {:>15}: held {}/{} feasible windows ({:.1}%), mean {:.2} of target, bits {:.2} vs oracle {:.2} ({:+.2}){}",
                run.policy,
                j.held_windows,
                j.feasible_windows,
                100.0 * j.held_share.unwrap_or(0.0),
                j.mean_share_of_target,
                j.mean_bits.unwrap_or(0.0),
                j.oracle_mean_bits.unwrap_or(0.0),
                j.bits_over_oracle.unwrap_or(0.0),
                run.plateaus.as_ref().map_or(String::new(), |p| format!(
                    "; recovery {:?}",
                    p.recovery.iter().map(|r| r.3).collect::<Vec<_>>()
                )),
            );
        }
    }
    Ok(())
}
