//! `quantpipe status --json`, the real binary, against a running two-stage MiniLM fleet on
//! loopback while a client streams through it: the leader answers with every node (alive, its
//! stage and units, the device it announced), the plan in force, and the one link between the
//! stages with its measured bandwidth and the bitwidth in use. Without a leader, status exits
//! non-zero naming the fleet.

use quantpipe_actors::runtime::client::run_texts_on;
use quantpipe_actors::runtime::config::Role;
use quantpipe_integration::{minilm_dir, quantpipe_bin, LoopbackFleet, LoopbackFleetSpec};
use quantpipe_launcher::minilm::long_texts;
use quantpipe_launcher::{config_file, free_ports};
use quantpipe_messages::FleetStatus;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NODES: [&str; 2] = ["sa", "sb"];
const UBATCH: usize = 4;

/// Runs `quantpipe status --config <config> --json --timeout-s <limit>`.
fn status(bin: &Path, config: &Path, limit_s: u32) -> (Output, f64) {
    let started = Instant::now();
    let out = Command::new(bin)
        .args([
            "status",
            "--json",
            "--timeout-s",
            &limit_s.to_string(),
            "--config",
        ])
        .arg(config)
        .output()
        .expect("running quantpipe status");
    (out, started.elapsed().as_secs_f64())
}

#[test]
fn status_shows_the_leaders_nodes_plan_and_measured_links() {
    let bin = quantpipe_bin();
    let model = minilm_dir();
    let dir = tempfile::tempdir().unwrap();
    let spec = LoopbackFleetSpec {
        tag: "status",
        devices: &NODES,
        ubatch: UBATCH,
        bits: 8,
        forced: &[("sa", [1, 12]), ("sb", [13, 24])],
    };
    let mut launched = LoopbackFleet::start(&bin, &model, dir.path(), &spec);
    let (session, keys, plan) = launched.watch_first_plan();
    let LoopbackFleet {
        nodes,
        fleet,
        ports,
    } = launched;

    // A client keeps the link busy while status asks, so that it has a bandwidth and a bitwidth.
    let client = {
        let mut c = config_file::loopback_peer(
            &fleet,
            "client",
            Role::Device,
            &model,
            ports[3],
            Some(ports[0]),
        );
        c.client.window = 2;
        c.client.plan_wait_s = 60.0;
        c.client.result_timeout_s = 60.0;
        c
    };
    let stop = Arc::new(AtomicBool::new(false));
    let streaming = {
        let (stop, session, keys) = (stop.clone(), session.clone(), keys.clone());
        std::thread::spawn(move || {
            let texts = long_texts(8 * UBATCH, 8);
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                run_texts_on(&session, &keys, &client, &texts).expect("a client run");
                runs += 1;
            }
            runs
        })
    };
    std::thread::sleep(Duration::from_secs(4));

    let observer = {
        let port = free_ports(1).unwrap()[0];
        let s = config_file::loopback_peer(
            &fleet,
            "status",
            Role::Device,
            &model,
            port,
            Some(ports[0]),
        );
        config_file::write(dir.path(), &s).unwrap()
    };
    let (out, took_s) = status(&bin, &observer, 20);
    stop.store(true, Ordering::Relaxed);
    let runs = streaming.join().expect("the client thread");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "status failed: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        nodes.logs()
    );
    let st: FleetStatus = serde_json::from_str(&stdout).expect("status --json output");
    println!("{stdout}");
    println!("FIGURES status answered in {took_s:.2} s during {runs} client runs");

    assert_eq!((st.leader.as_str(), st.leading), ("leader", true));
    let p = st.plan.as_ref().expect("a plan");
    assert_eq!(p, &plan);
    let names: Vec<&str> = st.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["leader", "sa", "sb"]);
    for (stage, (name, units)) in [("sa", [1, 12]), ("sb", [13, 24])].into_iter().enumerate() {
        let n = st.nodes.iter().find(|n| n.name == name).unwrap();
        assert!(n.alive, "{n:?}");
        assert_eq!(
            (n.stage, n.units),
            (Some(stage as u32), Some(units)),
            "{n:?}"
        );
        let d = n.device.as_ref().expect("device info");
        assert_eq!((d.threads, d.slowdown), (1, 1.0), "{d:?}");
    }
    let leader = &st.nodes[0];
    assert!(leader.alive && leader.stage.is_none() && leader.device.is_none());
    assert_eq!(st.links.len(), 1, "{:?}", st.links);
    let l = &st.links[0];
    assert_eq!(
        (l.from.as_str(), l.to.as_str(), l.planned_bits),
        ("sa", "sb", 8)
    );
    assert!(l.mbps > 0.0, "no bandwidth measured: {l:?}");
    assert!(l.bits_in_use > 0.0 && l.bits_in_use <= 8.0, "{l:?}");
}

#[test]
fn without_a_leader_status_fails_naming_the_fleet() {
    let bin = quantpipe_bin();
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(2).unwrap();
    // Nobody listens on ports[1]: the session opens and nobody answers.
    let s = config_file::loopback_peer(
        "nobody",
        "status",
        Role::Device,
        &minilm_dir(),
        ports[0],
        Some(ports[1]),
    );
    let config = config_file::write(dir.path(), &s).unwrap();
    let (out, took_s) = status(&bin, &config, 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no leader of fleet nobody answered within 2s"),
        "{stderr}"
    );
    assert!(took_s < 15.0, "status took {took_s:.1} s to give up");
}

/// A node stopped by SIGTERM exits cleanly and closes its session, so its liveliness token
/// goes at once: the leader re-plans without it long before a lease could expire (zenoh's
/// default, 10 s, here), and status shows it.
#[test]
fn a_node_stopped_by_sigterm_leaves_the_plan_at_once() {
    let bin = quantpipe_bin();
    let model = minilm_dir();
    let dir = tempfile::tempdir().unwrap();
    let spec = LoopbackFleetSpec {
        tag: "sigterm",
        devices: &["ta", "tb", "tc"],
        ubatch: UBATCH,
        bits: 32,
        forced: &[],
    };
    let mut launched = LoopbackFleet::start(&bin, &model, dir.path(), &spec);
    let (_watcher, _, plan) = launched.watch_first_plan();
    let LoopbackFleet {
        mut nodes,
        fleet,
        ports,
    } = launched;
    let victim = plan.stages[0].node.clone();
    let observer = {
        let s = config_file::loopback_peer(
            &fleet,
            "status",
            Role::Device,
            &model,
            ports[ports.len() - 1],
            Some(ports[0]),
        );
        config_file::write(dir.path(), &s).unwrap()
    };

    let pid = nodes.procs().pid(&victim).expect("the victim runs");
    let stopped = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    nodes
        .procs()
        .finish(&victim, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{victim} did not exit cleanly on SIGTERM: {e:#}"));
    let exited_s = stopped.elapsed().as_secs_f64();
    let replanned_s = loop {
        let (out, _) = status(&bin, &observer, 10);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let st: FleetStatus = serde_json::from_slice(&out.stdout).unwrap();
        let p = st.plan.as_ref().expect("a plan");
        let gone = st.nodes.iter().any(|n| n.name == victim && !n.alive);
        if gone && p.epoch > plan.epoch && p.stages.iter().all(|s| s.node != victim) {
            break stopped.elapsed().as_secs_f64();
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(8),
            "no re-plan without {victim} 8 s after SIGTERM: {st:?}\n{}",
            nodes.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    println!(
        "FIGURES SIGTERM to {victim}: exited (status 0) after {exited_s:.2} s, re-planned without \
         it after {replanned_s:.2} s"
    );
}
