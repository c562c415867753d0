//! README's main command, `quantpipe demo`, on a small slice of BBC News: it starts its leader
//! and three device nodes, runs the pipeline, and writes a report whose figures hang together,
//! a PNG chart, per-node metrics, and node logs in the format asked for with `--log-format`.

use quantpipe_integration::{quantpipe_bin, repo_root};
use quantpipe_launcher::{free_ports, Procs};
use std::time::Duration;

#[test]
fn demo_runs_the_fleet_and_writes_report_chart_metrics_and_json_node_logs() {
    let bin = quantpipe_bin();
    let root = repo_root();
    assert!(
        root.join("data/minilm/model.safetensors").exists() && root.join("data/bbc").exists(),
        "MiniLM or BBC News missing under {}: run scripts/setup",
        root.join("data").display()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let base_port = free_ports(1).unwrap()[0].to_string();
    let mut procs = Procs::new(dir.path());
    let stdout = procs
        .run_to_end(
            "demo",
            &bin,
            &[
                "--log-format",
                "json",
                "demo",
                "--model-dir",
                root.join("data/minilm").to_str().unwrap(),
                "--bbc",
                root.join("data/bbc").to_str().unwrap(),
                "--limit",
                "24",
                "--train-limit",
                "40",
                "--base-port",
                &base_port,
                "--out",
                out.to_str().unwrap(),
                "--json",
            ],
            Duration::from_secs(300),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("demo --json printed no JSON report ({e}):\n{stdout}"));
    assert_eq!(report["test_items"], 24);
    let stages = report["stages"].as_array().expect("stages");
    assert_eq!(stages.len(), 3, "three device stages: {report}");
    let units: Vec<[u64; 2]> = stages
        .iter()
        .map(|s| {
            let u = s["units"].as_array().unwrap();
            [u[0].as_u64().unwrap(), u[1].as_u64().unwrap()]
        })
        .collect();
    assert_eq!(units[0][0], 1, "the plan starts at unit 1: {units:?}");
    assert!(
        units.windows(2).all(|w| w[1][0] == w[0][1] + 1),
        "stages cover consecutive units: {units:?}"
    );
    let items_per_s = report["pipeline"]["items_per_s"].as_f64().unwrap();
    assert!(items_per_s > 0.0, "pipeline throughput: {report}");
    let accuracy = report["pipeline_accuracy"].as_f64().unwrap();
    assert!(
        (0.0..=1.0).contains(&accuracy) && accuracy > 0.5,
        "1-NN accuracy on 24 articles should be well above chance: {accuracy}"
    );

    let chart = std::fs::read(out.join("demo.png")).expect("demo.png");
    assert!(chart.starts_with(b"\x89PNG"), "demo.png is a PNG");
    for node in ["board-a", "board-b", "laptop-c"] {
        let metrics = std::fs::read_to_string(out.join(format!("metrics-{node}.jsonl")))
            .unwrap_or_else(|e| panic!("metrics of {node}: {e}"));
        assert!(!metrics.trim().is_empty(), "metrics of {node} are empty");
        let log = std::fs::read_to_string(out.join(format!("{node}.log"))).unwrap();
        let first = log
            .lines()
            .next()
            .unwrap_or_else(|| panic!("{node}.log is empty"));
        serde_json::from_str::<serde_json::Value>(first)
            .unwrap_or_else(|e| panic!("{node}.log is not JSON lines ({e}): {first}"));
    }
}
