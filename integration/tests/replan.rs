//! Re-planning while a client runs. A stage's node dies mid-run: the leader sees its liveliness
//! token go and plans again over the nodes left at a new epoch. A device joins mid-run: the leader
//! plans it in (the plan with it predicts more throughput). Either way the client sends every
//! microbatch not answered yet again under the new epoch, and the run completes with every output
//! bitwise equal (32 bits) to single-process inference.

use quantpipe_integration::fleet::minilm_dir;
use quantpipe_integration::fleet::{
    assert_bitwise_equal, single_process_outputs, write_uniform_minilm_profile,
};
use quantpipe_integration::{free_ports, quantpipe_bin, Procs};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Processes this test starts outside [`Procs`] (so it can kill one on purpose); killed on drop.
struct Owned(BTreeMap<String, Child>);

impl Owned {
    fn spawn(&mut self, name: &str, bin: &Path, args: &[&str], log: &Path, env: &[(&str, &str)]) {
        let out = std::fs::File::create(log).unwrap();
        let child = Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(
                std::fs::File::create(log.with_extension("out"))
                    .map(Stdio::from)
                    .unwrap(),
            )
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        self.0.insert(name.to_owned(), child);
    }

    fn kill(&mut self, name: &str) {
        let mut c = self.0.remove(name).expect("a process of this test");
        c.kill().unwrap();
        c.wait().unwrap();
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        for c in self.0.values_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn node_toml(
    fleet: &str,
    name: &str,
    model: &Path,
    role: &str,
    ports: (u16, u16),
    extra: &str,
) -> String {
    let connect = if ports.1 == 0 {
        String::new()
    } else {
        format!("\"tcp/127.0.0.1:{}\"", ports.1)
    };
    format!(
        "fleet = \"{fleet}\"\nname = \"{name}\"\nrole = \"{role}\"\nmodel_dir = \"{}\"\n\
         [zenoh]\nlisten = [\"tcp/127.0.0.1:{}\"]\nconnect = [{connect}]\n{extra}",
        model.display(),
        ports.0
    )
}

/// Items long enough that the 128-token tokenizer truncates each, so every microbatch has the
/// same length in the pipeline and in the single-process reference.
fn texts(n: usize) -> Vec<String> {
    const WORDS: &[&str] = &[
        "the",
        "central",
        "bank",
        "raised",
        "rates",
        "while",
        "a",
        "late",
        "goal",
        "settled",
        "the",
        "cup",
        "final",
        "and",
        "parliament",
        "debated",
        "the",
        "budget",
        "shares",
        "fell",
    ];
    (0..n)
        .map(|i| {
            (0..160)
                .map(|k| WORDS[(i * 7 + k * 3) % WORDS.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// A leader, device nodes and a client of one test fleet on loopback, in a temporary folder.
struct TestFleet {
    bin: PathBuf,
    model: PathBuf,
    fleet: String,
    ports: Vec<u16>,
    device: String,
    procs: Procs,
    nodes: Owned,
    client: Owned,
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
        std::fs::write(dir.path().join("texts.txt"), texts(items).join("\n")).unwrap();
        // Equal profiles: the planner spreads the 24 units over every node it has.
        let profile = dir.path().join("profile.json");
        write_uniform_minilm_profile(&profile, 4);
        let device = format!(
            "[device]\nthreads = 1\nslowdown = {slowdown}\nprofile_ubatch = 4\nprofile_file = \"{}\"\n",
            profile.display()
        );
        let mut f = TestFleet {
            bin,
            model,
            procs: Procs::new(dir.path()),
            dir,
            fleet: format!("{tag}{}", std::process::id()),
            ports: free_ports(6),
            device,
            nodes: Owned(BTreeMap::new()),
            client: Owned(BTreeMap::new()),
            items,
        };
        let list: Vec<String> = expected.iter().map(|n| format!("\"{n}\"")).collect();
        let leader = format!(
            "[leader]\nexpected = [{}]\nwait_s = 60\nubatch = 4\nbits = 32\n",
            list.join(", ")
        );
        let path = f.dir.path().join("leader.toml");
        std::fs::write(
            &path,
            node_toml(
                &f.fleet,
                "leader",
                &f.model,
                "leader",
                (f.ports[0], 0),
                &leader,
            ),
        )
        .unwrap();
        f.procs.spawn(
            "leader",
            &f.bin,
            &["node", "--config", path.to_str().unwrap()],
        );
        f
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts device node `name` (`i`-th of the fleet, for its port).
    fn start_node(&mut self, name: &str, i: usize) {
        let path = self.path(&format!("{name}.toml"));
        std::fs::write(
            &path,
            node_toml(
                &self.fleet,
                name,
                &self.model,
                "device",
                (self.ports[i + 1], self.ports[0]),
                &self.device,
            ),
        )
        .unwrap();
        let log = self.path(&format!("{name}.log"));
        self.nodes.spawn(
            name,
            &self.bin,
            &["node", "--config", path.to_str().unwrap()],
            &log,
            &[],
        );
    }

    /// Waits until `file` (in the fleet's folder) contains `needle`.
    fn wait_for(&self, file: &str, needle: &str, limit: Duration, what: &str) {
        let path = self.path(file);
        let deadline = Instant::now() + limit;
        while !std::fs::read_to_string(&path)
            .unwrap_or_default()
            .contains(needle)
        {
            assert!(
                Instant::now() < deadline,
                "{what} did not happen within {limit:?}:\n{}",
                self.procs.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
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

    /// Starts `quantpipe run` over the texts (its log shows each answered microbatch).
    fn start_client(&mut self) {
        let client = self.path("client.toml");
        std::fs::write(
            &client,
            node_toml(
                &self.fleet,
                "client",
                &self.model,
                "device",
                (self.ports[5], self.ports[0]),
                "[client]\nwindow = 3\nplan_wait_s = 60\nresult_timeout_s = 60\nstall_s = 3\n",
            ),
        )
        .unwrap();
        let (input, outputs, log) = (
            self.path("texts.txt"),
            self.path("outputs.json"),
            self.path("client.log"),
        );
        self.client.spawn(
            "client",
            &self.bin,
            &[
                "run",
                "--config",
                client.to_str().unwrap(),
                "--input",
                input.to_str().unwrap(),
                "--save-outputs",
                outputs.to_str().unwrap(),
                "--json",
            ],
            &log,
            &[("RUST_LOG", "info,quantpipe_actors::runtime::client=debug")],
        );
    }

    /// Waits for the client to finish and answers its JSON report.
    fn finish_client(&mut self) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(s) = self.client.0.get_mut("client").unwrap().try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "the run did not finish:\n{}",
                self.procs.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            status.success(),
            "client failed ({status}):\n{}",
            self.procs.logs()
        );
        let report: serde_json::Value = serde_json::from_str(
            std::fs::read_to_string(self.path("client.out"))
                .unwrap()
                .trim(),
        )
        .expect("run --json output");
        assert_eq!(report["items"], self.items);
        report
    }

    /// Every output row equals single-process inference of the same microbatches, bitwise.
    fn assert_bitwise_equal_to_single_process(&mut self) {
        let pipeline: Vec<Vec<f32>> =
            serde_json::from_slice(&std::fs::read(self.path("outputs.json")).unwrap()).unwrap();
        let input = self.path("texts.txt");
        let single =
            single_process_outputs(&mut self.procs, "infer", &self.bin, &self.model, &input, 4);
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
    f.start_client();
    f.wait_for(
        "client.log",
        "microbatch 1 answered",
        Duration::from_secs(60),
        "a first result",
    );
    f.nodes.kill(&victim);
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
    f.start_client();
    f.wait_for(
        "client.log",
        "microbatch 1 answered",
        Duration::from_secs(60),
        "a first result",
    );
    // Three equal devices predict 1.5x the throughput of two: above the default 10% gain.
    f.start_node("c", 2);
    let report = f.finish_client();
    f.assert_moved_to_a_new_epoch(&report);
    assert!(final_nodes(&report).contains(&"c".to_string()), "{report}");
    let log = std::fs::read_to_string(f.path("leader.log")).unwrap();
    assert!(log.contains("[\"c\"] joined: re-planning"), "{log}");
    f.assert_bitwise_equal_to_single_process();
}
