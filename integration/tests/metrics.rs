//! Node metrics over a real run: two device nodes with a `[metrics] file` (one CSV, one JSONL)
//! and a leader on loopback, logging as JSON (`--log-format json`); during a client run every
//! node appends per-window rows, and the windows the run went through show non-zero items/s.

use quantpipe_actors::runtime::config::Role;
use quantpipe_integration::{minilm_dir, quantpipe_bin, run_report, write_loopback_client};
use quantpipe_launcher::config_file::{self, loopback_peer};
use quantpipe_launcher::minilm::write_uniform_profile;
use quantpipe_launcher::{free_ports, ClientRun, Fleet, Place, Procs};
use std::path::Path;
use std::time::Duration;

/// The lines of `path` once one of them is one `ok` accepts; panics with the logs after `limit`.
fn wait_for_line(
    procs: &Procs,
    path: &Path,
    limit: Duration,
    ok: impl Fn(&str) -> bool,
) -> Vec<String> {
    let text = procs
        .wait_for_file(path, "a matching row", limit, |t| t.lines().any(&ok))
        .unwrap_or_else(|e| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            panic!("{e:#}\n--- {} ---\n{text}", path.display())
        });
    text.lines().map(str::to_owned).collect()
}

#[test]
fn nodes_with_a_metrics_file_write_rows_with_nonzero_items_per_s_during_a_run() {
    let bin = quantpipe_bin();
    let model = minilm_dir();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sentences.txt");
    let lines: Vec<String> = (0..24)
        .map(|i| format!("Sentence number {i} about markets, football and films."))
        .collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let profile = dir.path().join("profile.json");
    write_uniform_profile(&profile, 4).unwrap();

    let ports = free_ports(4).unwrap();
    let fleet = format!("metrics{}", std::process::id());
    let csv = dir.path().join("out/a.csv");
    let jsonl = dir.path().join("out/b.jsonl");
    let mut leader = loopback_peer(&fleet, "leader", Role::Leader, &model, ports[0], None);
    leader.leader.expected = vec!["a".into(), "b".into()];
    leader.leader.wait_s = 60.0;
    leader.leader.ubatch = 4;
    leader.leader.bits = 8;
    leader.leader.stages = config_file::forced(&[("a", [1, 10]), ("b", [11, 24])]);
    let device = |name: &str, port: u16, metrics: &Path| {
        let mut s = loopback_peer(&fleet, name, Role::Device, &model, port, Some(ports[0]));
        s.device.threads = 1;
        s.device.profile_ubatch = 4;
        s.device.profile_file = Some(profile.clone());
        s.metrics.file = Some(metrics.to_path_buf());
        s.metrics.window_s = 0.5;
        s
    };
    let mut nodes = Fleet::new(&bin, dir.path()).log_format("json");
    for s in [
        leader,
        device("a", ports[1], &csv),
        device("b", ports[2], &jsonl),
    ] {
        nodes.start(&s, Place::Here).unwrap();
    }
    let client = write_loopback_client(dir.path(), &fleet, &model, ports[3], ports[0]);
    let procs = nodes.procs();
    let run = ClientRun::new(&client, &input)
        .log_format("json")
        .json()
        .launch(&bin);
    let report = run_report(procs, "client", &run, Duration::from_secs(180));
    assert_eq!(report["items"], lines.len());

    // Node a: CSV with its header and a window of the run with items/s > 0.
    let header = quantpipe_actors::runtime::metrics::CSV_HEADER;
    let col = header.split(',').position(|c| c == "items_per_s").unwrap();
    let stage_col = header.split(',').position(|c| c == "stage").unwrap();
    let rows = wait_for_line(procs, &csv, Duration::from_secs(10), |l| {
        let f: Vec<&str> = l.split(',').collect();
        l != header && f[stage_col] == "0" && f[col].parse::<f64>().is_ok_and(|v| v > 0.0)
    });
    assert_eq!(rows[0], header);
    assert_eq!(rows.iter().filter(|l| *l == header).count(), 1);

    // Node b: JSON lines; its busy windows carry the incoming link's bytes/s.
    let rows = wait_for_line(procs, &jsonl, Duration::from_secs(10), |l| {
        serde_json::from_str::<serde_json::Value>(l)
            .is_ok_and(|v| v["stage"] == 1 && v["items_per_s"].as_f64().unwrap_or(0.0) > 0.0)
    });
    let busy: Vec<serde_json::Value> = rows
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON object per line"))
        .filter(|v| v["items_per_s"].as_f64().unwrap_or(0.0) > 0.0)
        .collect();
    let total: f64 = busy.iter().map(|v| v["items"].as_f64().unwrap()).sum();
    assert!(total <= lines.len() as f64, "{total} items counted");
    assert!(
        busy.iter().any(|v| v["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["direction"] == "in" && l["bytes_per_s"].as_f64().unwrap() > 0.0)),
        "no incoming bytes in {busy:?}"
    );

    // --log-format json: the node's log lines are JSON objects.
    let log = std::fs::read_to_string(dir.path().join("a.log")).unwrap();
    let first = log.lines().next().expect("node a logged nothing");
    let v: serde_json::Value =
        serde_json::from_str(first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert!(v.get("level").is_some(), "{first}");
}
