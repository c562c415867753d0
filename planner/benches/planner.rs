//! `cargo bench -p quantpipe-planner --bench planner`: prints the planner bench as JSON.
//! (A plain harness: the crate's bench functions already time and summarise.)
//! `QP_BENCH_REPS` sets the repetitions per case, `QP_BENCH_GAP` the heuristic-gap instances.

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let report =
        quantpipe_planner::bench::bench_planner(env("QP_BENCH_REPS", 5), env("QP_BENCH_GAP", 30))
            .expect("bench failed");
    println!(
        "{}",
        serde_json::to_string_pretty(&report).expect("serialise")
    );
}
