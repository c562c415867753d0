//! Self-healing workers on a real fleet on loopback. A panic forced (`[faults]`) in a stage's
//! forward worker mid-run: the worker restarts with its shard loaded afresh, the microbatch in
//! flight comes back to the client as a retryable failure and is sent once more, and the same
//! run completes with every item answered once, bitwise equal (32 bits) to single-process
//! inference. When the worker cannot restart, the node drops its liveliness token, the leader
//! plans around it, and the run completes the same way.

use quantpipe_actors::runtime::config::{DeviceSettings, Role, Settings};
use quantpipe_actors::runtime::faults::FaultSettings;
use quantpipe_integration::{
    assert_bitwise_equal, minilm_dir, peer_session, quantpipe_bin, read_outputs,
    single_process_outputs,
};
use quantpipe_launcher::minilm::{long_texts, write_uniform_profile};
use quantpipe_launcher::{config_file, free_ports, ClientRun, Fleet, Place};
use quantpipe_messages::{envelope, Keys, NodeStats};
use std::path::PathBuf;
use std::time::Duration;
use zenoh::Wait;

const ITEMS: usize = 40;

/// A leader forcing `stages` over device nodes of the same names, and the run's texts, in a
/// temporary folder.
struct TestFleet {
    bin: PathBuf,
    model: PathBuf,
    fleet: String,
    ports: Vec<u16>,
    nodes: Fleet,
    /// Last, so the processes are gone before their folder is.
    dir: tempfile::TempDir,
}

impl TestFleet {
    /// Starts the leader (forced plan `stages`, microbatches of 4 at 32 bits) and one device
    /// node per stage, `faults` forced on `faulty`.
    fn start(
        tag: &str,
        stages: &[(&str, [usize; 2])],
        faulty: &str,
        faults: FaultSettings,
    ) -> Self {
        let bin = quantpipe_bin();
        let model = minilm_dir();
        let dir = tempfile::tempdir().unwrap();
        // Items long enough that the 128-token tokenizer truncates each, so every microbatch
        // has the same length in the pipeline and in the single-process reference.
        std::fs::write(
            dir.path().join("texts.txt"),
            long_texts(ITEMS, 160).join("\n"),
        )
        .unwrap();
        let profile = dir.path().join("profile.json");
        write_uniform_profile(&profile, 4).unwrap();
        let mut f = TestFleet {
            nodes: Fleet::new(&bin, dir.path()),
            bin,
            model,
            dir,
            fleet: format!("{tag}{}", std::process::id()),
            ports: free_ports(stages.len() + 2).unwrap(),
        };
        let mut leader = f.settings("leader", Role::Leader, f.ports[0], None);
        leader.leader.expected = stages.iter().map(|(n, _)| n.to_string()).collect();
        leader.leader.stages = config_file::forced(stages);
        leader.leader.wait_s = 60.0;
        leader.leader.ubatch = 4;
        leader.leader.bits = 32;
        f.nodes.start(&leader, Place::Here).unwrap();
        for (i, (name, _)) in stages.iter().enumerate() {
            let mut s = f.settings(name, Role::Device, f.ports[i + 1], Some(f.ports[0]));
            s.device = DeviceSettings {
                threads: 1,
                profile_ubatch: 4,
                profile_file: Some(profile.clone()),
                ..DeviceSettings::default()
            };
            if *name == faulty {
                s.faults = faults.clone();
            }
            f.nodes.start(&s, Place::Here).unwrap();
        }
        f
    }

    fn settings(&self, name: &str, role: Role, listen: u16, connect: Option<u16>) -> Settings {
        config_file::loopback_peer(&self.fleet, name, role, &self.model, listen, connect)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(&format!("{name}.log"))).unwrap_or_default()
    }

    /// Runs `quantpipe run` over the texts (a window of 3) to completion; answers its report.
    fn run_client(&mut self) -> serde_json::Value {
        let port = *self.ports.last().unwrap();
        let mut client = self.settings("client", Role::Device, port, Some(self.ports[0]));
        client.client.window = 3;
        client.client.plan_wait_s = 90.0;
        client.client.result_timeout_s = 60.0;
        client.client.stall_s = 3.0;
        let client = config_file::write(self.dir.path(), &client).unwrap();
        let run = ClientRun::new(&client, &self.path("texts.txt"))
            .save_outputs(&self.path("outputs.json"))
            .json()
            .launch(&self.bin);
        self.nodes
            .procs()
            .start_with_output("client", &run)
            .unwrap();
        let out = self
            .nodes
            .procs()
            .finish("client", Duration::from_secs(180))
            .unwrap_or_else(|e| panic!("the run did not finish: {e:#}"));
        serde_json::from_str(out.trim()).expect("run --json output")
    }

    /// Every item answered once, each row bitwise equal to single-process inference.
    fn assert_every_item_answered_as_single_process(&mut self, report: &serde_json::Value) {
        assert_eq!(report["items"], ITEMS, "{report}");
        let pipeline = read_outputs(&self.path("outputs.json"));
        assert_eq!(pipeline.len(), ITEMS);
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

    /// Node `name` (listening on `port`)'s stats, asked by a peer of its own; asked again
    /// while the new peer's view of the node's queryables is still forming.
    fn stats(&self, name: &str, port: u16) -> NodeStats {
        let session = peer_session(port);
        let keys = Keys::new(&self.fleet);
        for _ in 0..20 {
            let replies = session
                .get(keys.stats(name))
                .timeout(Duration::from_secs(5))
                .wait()
                .unwrap();
            if let Ok(reply) = replies.recv() {
                let bytes = reply.result().expect("stats").payload().to_bytes();
                return envelope::decode(&bytes, &self.fleet).unwrap();
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("{name} answered no stats")
    }
}

#[test]
fn a_forward_worker_that_panics_mid_run_restarts_and_the_run_completes_exactly() {
    let faults = FaultSettings {
        panic_forward_at: vec![3],
        ..FaultSettings::default()
    };
    let mut f = TestFleet::start("wrestart", &[("a", [1, 12]), ("b", [13, 24])], "b", faults);
    let report = f.run_client();
    f.assert_every_item_answered_as_single_process(&report);
    assert_eq!(
        report["resent_after_failure"], 1,
        "the failed microbatch is sent once more: {report}"
    );
    assert_eq!(
        report["epochs"].as_array().unwrap().len(),
        1,
        "no re-plan: {report}"
    );
    let b = f.log("b");
    assert!(b.contains("FORCED FAULTS ARE ON"), "{b}");
    assert!(b.contains("forward worker panicked in pass 3"), "{b}");
    assert!(b.contains("forward worker restarted"), "{b}");
    assert_eq!(f.stats("b", f.ports[2]).worker_restarts, 1);
    assert_eq!(f.stats("a", f.ports[1]).worker_restarts, 0);
}

#[test]
fn a_forward_worker_that_cannot_restart_takes_its_node_out_and_the_fleet_replans() {
    let faults = FaultSettings {
        panic_forward_at: vec![3],
        fail_restart: true,
        ..FaultSettings::default()
    };
    let stages = [("a", [1, 8]), ("b", [9, 16]), ("c", [17, 24])];
    let mut f = TestFleet::start("wnorestart", &stages, "b", faults);
    let report = f.run_client();
    f.assert_every_item_answered_as_single_process(&report);
    let epochs = report["epochs"].as_array().unwrap();
    assert!(
        epochs.len() >= 2,
        "the run never moved to a new plan: {report}"
    );
    let nodes: Vec<&str> = report["plan"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["node"].as_str().unwrap())
        .collect();
    assert!(!nodes.contains(&"b"), "b is still planned: {report}");
    let b = f.log("b");
    assert!(b.contains("the forward worker cannot restart"), "{b}");
    assert!(b.contains("leaves the fleet"), "{b}");
    let leader = f.log("leader");
    assert!(leader.contains("[\"b\"] left: re-planning"), "{leader}");
    assert_eq!(f.stats("b", f.ports[2]).worker_restarts, 0);
}
