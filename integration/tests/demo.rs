//! README's main command, `quantpipe demo`, on a small slice of BBC News: it starts its leader
//! and three device nodes, runs the story (the emulated link steps down and back up, a device
//! leaves mid-run), and writes a report whose story holds: the bitwidth dropped during the low
//! step and came back, the fleet re-planned, every item was answered exactly once, accuracy
//! figures are there; a PNG chart, per-node metrics, and node logs in the format asked for with
//! `--log-format`.

use quantpipe_integration::{quantpipe_bin, repo_root};
use quantpipe_launcher::{free_ports, Procs};
use std::time::Duration;

#[test]
fn demo_tells_the_story_and_writes_report_chart_metrics_and_json_node_logs() {
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
            Duration::from_secs(400),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("demo --json printed no JSON report ({e}):\n{stdout}"));
    assert_eq!(report["test_items"], 24);
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);

    // The first plan: three device stages over consecutive units.
    let stages = report["plan"]["stages"].as_array().expect("plan stages");
    assert_eq!(stages.len(), 3, "three device stages: {}", report["plan"]);
    let units: Vec<[u64; 2]> = stages
        .iter()
        .map(|s| [s["l"].as_u64().unwrap(), s["r"].as_u64().unwrap()])
        .collect();
    assert_eq!(units[0][0], 1, "the plan starts at unit 1: {units:?}");
    assert!(
        units.windows(2).all(|w| w[1][0] == w[0][1] + 1),
        "stages cover consecutive units: {units:?}"
    );

    // The link stepped down and back up, and the bitwidth followed it.
    let phases = &report["bits_by_phase"];
    let (before, low, after) = (f(&phases["before"]), f(&phases["low"]), f(&phases["after"]));
    println!(
        "FIGURES bits before {before:.2}, low step {low:.2}, after {after:.2}; target {} items/s; \
         link {} / {} Mbit/s",
        report["story"]["target_items_per_s"],
        report["story"]["high_mbps"],
        report["story"]["low_mbps"]
    );
    assert!(
        low <= before - 1.0 && after >= low + 1.0,
        "the bitwidth drops during the low step and comes back: {phases}"
    );
    assert_eq!(report["bits_followed_link"], true);

    // A device left and the fleet re-planned around it.
    let left = report["timeline"]["left"]
        .as_array()
        .expect("a device left");
    let gone = left[0].as_str().unwrap();
    let plans = report["plans"].as_array().unwrap();
    assert!(plans.len() >= 2, "a re-plan after {gone} left: {plans:?}");
    let last = &plans[plans.len() - 1];
    assert_eq!(last["number"], plans.len());
    assert!(
        last["plan"]["stages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["node"] != gone),
        "the last plan leaves {gone} out: {last}"
    );
    println!(
        "FIGURES {gone} left at {:.1} s, plan {} at {:.1} s; {} microbatches resent",
        f(&left[1]),
        last["number"],
        f(&last["at_s"]),
        report["pipeline"]["resent"]
    );

    // Every item answered exactly once, with accuracy figures.
    assert_eq!(report["answered_once"], true, "every item answered once");
    assert_eq!(report["pipeline"]["items"], report["items"]);
    for key in ["pipeline_accuracy", "single_device_accuracy", "agreement"] {
        let a = f(&report[key]);
        assert!((0.0..=1.0).contains(&a), "{key}: {a}");
    }
    assert!(
        f(&report["pipeline_accuracy"]) > 0.5,
        "1-NN accuracy should be well above chance: {}",
        report["pipeline_accuracy"]
    );
    assert!(f(&report["pipeline"]["items_per_s"]) > 0.0);

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
