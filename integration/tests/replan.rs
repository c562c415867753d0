//! Re-planning while a client runs. A stage's node dies mid-run: the leader sees its liveliness
//! token go and plans again over the nodes left at a new epoch. A device joins mid-run: the leader
//! plans it in (the plan with it predicts more throughput). Either way the client sends every
//! microbatch not answered yet again under the new epoch, and the run completes with every output
//! bitwise equal (32 bits) to single-process inference.

use quantpipe_actors::runtime::config::{DeviceSettings, Role, Settings};
use quantpipe_integration::{
    assert_bitwise_equal, minilm_dir, quantpipe_bin, read_outputs, single_process_outputs,
};
use quantpipe_launcher::minilm::{long_texts, write_uniform_profile};
use quantpipe_launcher::{config_file, free_ports, ClientRun, Fleet, Place};
use std::path::PathBuf;
use std::time::Duration;

/// A leader, device nodes and a client of one test fleet on loopback, in a temporary folder.
struct TestFleet {
    bin: PathBuf,
    model: PathBuf,
    fleet: String,
    ports: Vec<u16>,
    device: DeviceSettings,
    nodes: Fleet,
    items: usize,
    /// Last, so the processes are gone before their folder is.
    dir: tempfile::TempDir,
}

impl TestFleet {
    /// A leader waiting for `expected`, with `items` texts to run; devices slowed down
    /// `slowdown` times (emulation) so the run lasts while membership changes.
    fn new(tag: &str, expected: &[&str], items: usize, slowdown: f64) -> Self {
        let bin = quantpipe_bin();
        let model = minilm_dir();
        let dir = tempfile::tempdir().unwrap();
        // Items long enough that the 128-token tokenizer truncates each, so every microbatch
        // has the same length in the pipeline and in the single-process reference.
        let texts = long_texts(items, 160);
        std::fs::write(dir.path().join("texts.txt"), texts.join("\n")).unwrap();
        // Equal profiles: the planner spreads the 24 units over every node it has.
        let profile = dir.path().join("profile.json");
        write_uniform_profile(&profile, 4).unwrap();
        let device = DeviceSettings {
            threads: 1,
            slowdown,
            profile_ubatch: 4,
            profile_file: Some(profile),
            ..DeviceSettings::default()
        };
        let mut f = TestFleet {
            nodes: Fleet::new(&bin, dir.path()),
            bin,
            model,
            dir,
            fleet: format!("{tag}{}", std::process::id()),
            ports: free_ports(6).unwrap(),
            device,
            items,
        };
        let mut leader = f.settings("leader", Role::Leader, f.ports[0], None);
        leader.leader.expected = expected.iter().map(|n| n.to_string()).collect();
        leader.leader.wait_s = 60.0;
        leader.leader.ubatch = 4;
        leader.leader.bits = 32;
        f.nodes.start(&leader, Place::Here).unwrap();
        f
    }

    /// Settings of `name` listening on loopback `listen` and connecting to `connect`.
    fn settings(&self, name: &str, role: Role, listen: u16, connect: Option<u16>) -> Settings {
        config_file::loopback_peer(&self.fleet, name, role, &self.model, listen, connect)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts device node `name` (`i`-th of the fleet, for its port).
    fn start_node(&mut self, name: &str, i: usize) {
        let mut s = self.settings(name, Role::Device, self.ports[i + 1], Some(self.ports[0]));
        s.device = self.device.clone();
        self.nodes.start(&s, Place::Here).unwrap();
    }

    /// Waits until `file` (in the fleet's folder) contains `needle`.
    fn wait_for(&mut self, file: &str, needle: &str, limit: Duration, what: &str) {
        let path = self.path(file);
        self.nodes
            .procs()
            .wait_for_file(&path, what, limit, |t| t.contains(needle))
            .unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// The node of stage `i` in the leader's latest logged plan.
    fn stage_node(&self, i: usize) -> String {
        let log = std::fs::read_to_string(self.path("leader.log")).unwrap();
        let needle = format!("stage {i} = ");
        log.lines()
            .rev()
            .find_map(|l| l.split(needle.as_str()).nth(1))
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("the leader logs no stage {i}:\n{log}"))
            .to_owned()
    }

    /// Starts `quantpipe run` over the texts (its log shows each answered microbatch) and
    /// waits for its first result: the run is under way when membership changes.
    fn start_client_and_wait_for_a_result(&mut self) {
        let mut client = self.settings("client", Role::Device, self.ports[5], Some(self.ports[0]));
        client.client.window = 3;
        client.client.plan_wait_s = 60.0;
        client.client.result_timeout_s = 60.0;
        client.client.stall_s = 3.0;
        let client = config_file::write(self.dir.path(), &client).unwrap();
        let run = ClientRun::new(&client, &self.path("texts.txt"))
            .save_outputs(&self.path("outputs.json"))
            .json()
            .launch(&self.bin)
            .env("RUST_LOG", "info,quantpipe_actors::runtime::client=debug");
        self.nodes
            .procs()
            .start_with_output("client", &run)
            .unwrap();
        self.wait_for(
            "client.log",
            "microbatch 1 answered",
            Duration::from_secs(60),
            "a first result",
        );
    }

    /// Waits for the client to finish and answers its JSON report.
    fn finish_client(&mut self) -> serde_json::Value {
        let out = self
            .nodes
            .procs()
            .finish("client", Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("the run did not finish: {e:#}"));
        let report: serde_json::Value =
            serde_json::from_str(out.trim()).expect("run --json output");
        assert_eq!(report["items"], self.items);
        report
    }

    /// Every output row equals single-process inference of the same microbatches, bitwise.
    fn assert_bitwise_equal_to_single_process(&mut self) {
        let pipeline = read_outputs(&self.path("outputs.json"));
        let input = self.path("texts.txt");
        let single = single_process_outputs(
            self.nodes.procs(),
            "infer",
            &self.bin,
            &self.model,
            &input,
            4,
        );
        assert_bitwise_equal(&pipeline, &single);
    }

    /// The run used more than one epoch and the leader logged a plan at its last one.
    fn assert_moved_to_a_new_epoch(&self, report: &serde_json::Value) {
        let epochs = report["epochs"].as_array().unwrap();
        assert!(
            epochs.len() >= 2,
            "the run never moved to a new epoch: {report}"
        );
        let last = epochs.last().unwrap().as_u64().unwrap();
        let log = std::fs::read_to_string(self.path("leader.log")).unwrap();
        assert!(
            log.contains(&format!("plan epoch {last}: stage 0")),
            "the leader's log shows no plan at epoch {last}:\n{log}"
        );
    }
}

fn final_nodes(report: &serde_json::Value) -> Vec<String> {
    report["plan"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["node"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_stage_node_leaving_mid_run_replans_and_every_output_stays_bitwise_exact() {
    let mut f = TestFleet::new("leave", &["a", "b", "c"], 40, 3.0);
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        f.start_node(name, i);
    }
    f.wait_for(
        "leader.log",
        "stage 2 =",
        Duration::from_secs(90),
        "a three-stage plan",
    );
    // The middle stage's node is the one to die: both its neighbours must notice.
    let victim = f.stage_node(1);
    f.start_client_and_wait_for_a_result();
    f.nodes.procs().kill(&victim).unwrap();
    let report = f.finish_client();
    f.assert_moved_to_a_new_epoch(&report);
    assert!(!final_nodes(&report).contains(&victim), "{report}");
    let log = std::fs::read_to_string(f.path("leader.log")).unwrap();
    assert!(
        log.contains(&format!("[\"{victim}\"] left: re-planning")),
        "{log}"
    );
    f.assert_bitwise_equal_to_single_process();
}

#[test]
fn a_device_joining_mid_run_is_planned_in_and_every_output_stays_bitwise_exact() {
    let mut f = TestFleet::new("join", &["a", "b"], 160, 8.0);
    f.start_node("a", 0);
    f.start_node("b", 1);
    f.wait_for(
        "leader.log",
        "stage 1 =",
        Duration::from_secs(90),
        "a two-stage plan",
    );
    f.start_client_and_wait_for_a_result();
    // Three equal devices predict 1.5x the throughput of two: above the default 10% gain.
    f.start_node("c", 2);
    let report = f.finish_client();
    f.assert_moved_to_a_new_epoch(&report);
    assert!(final_nodes(&report).contains(&"c".to_string()), "{report}");
    let log = std::fs::read_to_string(f.path("leader.log")).unwrap();
    assert!(log.contains("[\"c\"] joined: re-planning"), "{log}");
    f.assert_bitwise_equal_to_single_process();
}
