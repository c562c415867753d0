//! A stage's node dies mid-run: the leader sees its liveliness token go, plans again over the two
//! nodes left at a new epoch, and the client sends every microbatch not answered yet again under
//! it. The run completes with every output bitwise equal (32 bits) to single-process inference.

use quantpipe_integration::{free_ports, quantpipe_bin, repo_root, Procs};
use std::collections::BTreeMap;
use std::path::Path;
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

fn wait_for(path: &Path, needle: &str, limit: Duration, what: &str, procs: &Procs) {
    let deadline = Instant::now() + limit;
    while !std::fs::read_to_string(path)
        .unwrap_or_default()
        .contains(needle)
    {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {limit:?}:\n{}",
            procs.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_stage_node_leaving_mid_run_replans_and_every_output_stays_bitwise_exact() {
    let bin = quantpipe_bin();
    let model = repo_root().join("data/minilm");
    assert!(
        model.join("model.safetensors").exists(),
        "MiniLM is missing from {}: run scripts/setup",
        model.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let items = texts(40);
    let input = dir.path().join("texts.txt");
    std::fs::write(&input, items.join("\n")).unwrap();
    // Equal profiles: the planner spreads the 24 units over all three nodes.
    let profile = dir.path().join("profile.json");
    let units: Vec<String> = (1..=24)
        .map(|u| format!("{{\"unit\":{u},\"time_s\":0.01,\"parameters\":1,\"weight_bytes\":4,\"output_elements\":1}}"))
        .collect();
    std::fs::write(
        &profile,
        format!("{{\"model\":\"minilm\",\"ubatch\":4,\"threads\":1,\"input_elements\":128,\"units\":[{}]}}", units.join(",")),
    )
    .unwrap();

    let ports = free_ports(5);
    let fleet = format!("replan{}", std::process::id());
    // Emulated slowdown stretches the run so the node dies with microbatches in flight.
    let device = format!(
        "[device]\nthreads = 1\nslowdown = 3.0\nprofile_ubatch = 4\nprofile_file = \"{}\"\n",
        profile.display()
    );
    let leader = "[leader]\nexpected = [\"a\", \"b\", \"c\"]\nwait_s = 60\nubatch = 4\nbits = 32\n";
    let mut procs = Procs::new(dir.path());
    let mut nodes = Owned(BTreeMap::new());
    let path = dir.path().join("leader.toml");
    std::fs::write(
        &path,
        node_toml(&fleet, "leader", &model, "leader", (ports[0], 0), leader),
    )
    .unwrap();
    procs.spawn(
        "leader",
        &bin,
        &["node", "--config", path.to_str().unwrap()],
    );
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            node_toml(
                &fleet,
                name,
                &model,
                "device",
                (ports[i + 1], ports[0]),
                &device,
            ),
        )
        .unwrap();
        let log = dir.path().join(format!("{name}.log"));
        nodes.spawn(
            name,
            &bin,
            &["node", "--config", path.to_str().unwrap()],
            &log,
            &[],
        );
    }
    let leader_log = dir.path().join("leader.log");
    wait_for(
        &leader_log,
        "stage 2 =",
        Duration::from_secs(90),
        "a three-stage plan",
        &procs,
    );
    let first_plan = std::fs::read_to_string(&leader_log).unwrap();
    // The middle stage's node is the one to die: both its neighbours must notice.
    let victim = first_plan
        .lines()
        .find_map(|l| l.split("stage 1 = ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .expect("the leader logs stage 1's node")
        .to_owned();

    let client = dir.path().join("client.toml");
    std::fs::write(
        &client,
        node_toml(
            &fleet,
            "client",
            &model,
            "device",
            (ports[4], ports[0]),
            "[client]\nwindow = 3\nplan_wait_s = 60\nresult_timeout_s = 60\nstall_s = 3\n",
        ),
    )
    .unwrap();
    let outputs = dir.path().join("outputs.json");
    let client_log = dir.path().join("client.log");
    let mut run = Owned(BTreeMap::new());
    run.spawn(
        "client",
        &bin,
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
        &client_log,
        &[("RUST_LOG", "info,quantpipe_actors::runtime::client=debug")],
    );
    wait_for(
        &client_log,
        "microbatch 1 answered",
        Duration::from_secs(60),
        "a first result",
        &procs,
    );
    nodes.kill(&victim);

    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = run.0.get_mut("client").unwrap().try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the run did not finish after {victim} died:\n{}",
            procs.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "client failed ({status}):\n{}",
        procs.logs()
    );
    let report: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(client_log.with_extension("out"))
            .unwrap()
            .trim(),
    )
    .expect("run --json output");
    assert_eq!(report["items"], items.len());
    let epochs = report["epochs"].as_array().unwrap();
    assert!(
        epochs.len() >= 2,
        "the run never moved to a new epoch: {report}"
    );
    let last_epoch = epochs.last().unwrap().as_u64().unwrap();
    let stages = report["plan"]["stages"].as_array().unwrap();
    assert!(
        stages.iter().all(|s| s["node"] != victim.as_str()),
        "the final plan still uses {victim}: {report}"
    );
    let leader_text = std::fs::read_to_string(&leader_log).unwrap();
    assert!(
        leader_text.contains(&format!("[\"{victim}\"] left: re-planning"))
            && leader_text.contains(&format!("plan epoch {last_epoch}: stage 0")),
        "the leader's log shows no re-plan to epoch {last_epoch}:\n{leader_text}"
    );

    let pipeline: Vec<Vec<f32>> =
        serde_json::from_slice(&std::fs::read(&outputs).unwrap()).unwrap();
    let out = procs.run_to_end(
        "infer",
        &bin,
        &[
            "infer",
            "--model-dir",
            model.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--ubatch",
            "4",
            "--threads",
            "1",
            "--json",
        ],
        Duration::from_secs(120),
    );
    let out: serde_json::Value = serde_json::from_str(out.trim()).expect("infer --json output");
    let single: Vec<Vec<f32>> = serde_json::from_value(out["outputs"].clone()).unwrap();
    assert_eq!(pipeline.len(), single.len());
    for (i, (p, s)) in pipeline.iter().zip(&single).enumerate() {
        let differ = p
            .iter()
            .zip(s)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert!(
            p.len() == s.len() && differ == 0,
            "item {i}: {differ} of {} values differ from single-process inference",
            p.len()
        );
    }
}
