//! Outsiders nobody here wrote (stock `eclipse-zenoh` and `msgpack` from PyPI, installed into
//! `.venv` by scripts/setup; `scripts/tests/outsider_*.py`) against a two-stage MiniLM fleet on
//! loopback, during a real run of the fleet's own client at 32 bits.
//!
//! Each outsider subscribes to every key of the fleet, asks its queryables, puts well-formed
//! token microbatches into every stage's input, and forges results for the client: for each
//! microbatch it sees entering stage 0, a result with its run id, sequence number and epoch at
//! once, and made-up ones all along.
//!
//! - On a plain fleet (the control: the outsider works) it reads the run's activations and
//!   results, its microbatches are computed by both stages, and the client takes its forged
//!   results for the true ones.
//! - On a fleet secured with TLS and the access control generated from its member list, a peer
//!   without a certificate, a peer with a certificate of another CA (named like the client), and
//!   an enrolled client read nothing of the run, no stage counts anything they sent, and the
//!   client's results are exactly those of single-process inference; an enrolled client that
//!   sends token ids outside the vocabulary gets an error result, and the next runs succeed.
//! - An enrolled client cannot have work run in another client's name.

use quantpipe_actors::runtime::config::{Role, Settings};
use quantpipe_actors::runtime::timeline::query_stats;
use quantpipe_integration::{
    minilm_dir, quantpipe_bin, read_outputs, repo_root, single_process_outputs,
};
use quantpipe_launcher::links::{tls_endpoint, MemberRole};
use quantpipe_launcher::minilm::{long_texts, write_uniform_profile};
use quantpipe_launcher::{
    config_file, free_ports, loopback, ClientRun, Fleet, Launch, Links, Place, Procs,
};
use quantpipe_messages::{Keys, NodeStats};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use zenoh::Wait;

const STAGES: [&str; 2] = ["a", "b"];
const UBATCH: usize = 4;
const MICROBATCHES: usize = 12;

/// Enrolled clients that are not the fleet's own: the outsiders with a certificate of the
/// fleet's CA.
const ENROLLED_OUTSIDERS: [&str; 2] = ["mallory", "prober"];

/// A fleet of a leader and two stages of MiniLM on loopback (a forced plan at 32 bits), the
/// settings of its client, and the texts the client runs.
struct TestFleet {
    bin: PathBuf,
    model: PathBuf,
    name: String,
    /// Loopback ports: the leader, the stages, the client.
    ports: Vec<u16>,
    links: Links,
    nodes: Fleet,
    /// The Python processes, each on its own (outsiders end at once; one ending is no failure
    /// of another).
    python: BTreeMap<String, Procs>,
    client: PathBuf,
    input: PathBuf,
    /// Last, so the processes are gone before their folder is.
    dir: tempfile::TempDir,
}

impl TestFleet {
    /// Starts the fleet, over TLS under a throwaway CA when `secured` (the nodes, the client,
    /// the test's own observer and the enrolled outsiders enrolled), else over plain TCP; waits
    /// for the plan.
    fn start(tag: &str, secured: bool) -> TestFleet {
        let bin = quantpipe_bin();
        let model = minilm_dir();
        let dir = tempfile::tempdir().unwrap();
        let name = format!("{tag}{}", std::process::id());
        let links = if secured {
            let mut members = vec![
                ("leader", MemberRole::Leader),
                ("observer", MemberRole::Node),
            ];
            members.extend(STAGES.map(|s| (s, MemberRole::Node)));
            members.push(("client", MemberRole::Client));
            members.extend(ENROLLED_OUTSIDERS.map(|o| (o, MemberRole::Client)));
            Links::throwaway(&dir.path().join("ca"), &name, &members).unwrap()
        } else {
            Links::Plain
        };
        let input = dir.path().join("texts.txt");
        std::fs::write(&input, long_texts(UBATCH * MICROBATCHES, 160).join("\n")).unwrap();
        let profile = dir.path().join("profile.json");
        write_uniform_profile(&profile, UBATCH).unwrap();
        let ports = free_ports(STAGES.len() + 2).unwrap();
        let node = |node: &str, role: Role, listen: u16, connect: Option<u16>| {
            let mut s = config_file::loopback_peer(&name, node, role, &model, listen, connect);
            links.apply(&mut s).unwrap();
            s
        };
        let mut leader = node("leader", Role::Leader, ports[0], None);
        leader.leader.expected = STAGES.map(String::from).to_vec();
        leader.leader.wait_s = 60.0;
        leader.leader.ubatch = UBATCH;
        leader.leader.bits = 32;
        leader.leader.stages = config_file::forced(&[("a", [1, 12]), ("b", [13, 24])]);
        let mut nodes = Fleet::new(&bin, dir.path());
        nodes.start(&leader, Place::Here).unwrap();
        for (i, stage) in STAGES.iter().enumerate() {
            let mut device = node(stage, Role::Device, ports[i + 1], Some(ports[0]));
            device.device.threads = 1;
            device.device.profile_ubatch = UBATCH;
            device.device.profile_file = Some(profile.clone());
            nodes.start(&device, Place::Here).unwrap();
        }
        let mut client: Settings = node(
            "client",
            Role::Device,
            ports[STAGES.len() + 1],
            Some(ports[0]),
        );
        client.client.window = 2;
        client.client.plan_wait_s = 90.0;
        client.client.result_timeout_s = 90.0;
        let client = config_file::write(dir.path(), &client).unwrap();
        let mut fleet = TestFleet {
            bin,
            model,
            name,
            ports,
            links,
            nodes,
            python: BTreeMap::new(),
            client,
            input,
            dir,
        };
        fleet.wait_for_plan();
        fleet
    }

    /// Endpoints of every node, as the fleet's links spell them (`tcp/` or `tls/`).
    fn node_endpoints(&self) -> Vec<String> {
        let endpoint = |p: u16| {
            let e = loopback(p);
            if self.links.is_tls() {
                tls_endpoint(&e)
            } else {
                e
            }
        };
        self.ports[..=STAGES.len()]
            .iter()
            .map(|&p| endpoint(p))
            .collect()
    }

    /// The CA certificate of a secured fleet, and member `name`'s certificate and key.
    fn member_files(&self, name: &str) -> [String; 3] {
        let Links::Tls(ca) = &self.links else {
            panic!("a plain fleet has no certificates");
        };
        let e = &ca.enrolled[name];
        [
            ca.ca.certificate_path(),
            e.certificate.clone(),
            e.private_key.clone(),
        ]
        .map(|p| p.to_string_lossy().into_owned())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn wait_for_plan(&mut self) {
        let session = self.session();
        let keys = Keys::new(&self.name);
        self.nodes
            .wait_for_plan(&session, &keys, Duration::from_secs(150))
            .unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// A session of the test itself: `observer`, a node of the fleet (nodes may read each
    /// other's stats).
    fn session(&self) -> zenoh::Session {
        let mut observer = config_file::peer(
            &self.name,
            "observer",
            Role::Device,
            &self.model,
            vec![],
            vec![loopback(self.ports[0])],
        );
        self.links.apply(&mut observer).unwrap();
        zenoh::open(observer.zenoh_config().unwrap())
            .wait()
            .expect("opening the observer's session")
    }

    /// Every stage's counters, by node, asked until both stages answer.
    fn stage_stats(&self) -> Vec<NodeStats> {
        let session = self.session();
        let keys = Keys::new(&self.name);
        for _ in 0..20 {
            let mut stages: Vec<NodeStats> = query_stats(&session, &keys, Duration::from_secs(2))
                .into_iter()
                .filter(|s| s.stage.is_some())
                .collect();
            if stages.len() == STAGES.len() {
                stages.sort_by(|a, b| a.node.cmp(&b.node));
                return stages;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("not every stage answered its stats:\n{}", self.nodes.logs());
    }

    /// Starts `scripts/tests/<script>` with `.venv`'s Python as process `name` (stdout kept
    /// as its answer).
    fn start_python(&mut self, name: &str, script: &str, args: &[String]) {
        let python = repo_root().join(".venv/bin/python");
        assert!(
            python.exists(),
            "no {}: run scripts/setup --tests",
            python.display()
        );
        let script = repo_root().join("scripts/tests").join(script);
        let mut argv = vec![script.to_string_lossy().into_owned()];
        argv.extend(args.iter().cloned());
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let mut procs = Procs::new(self.dir.path());
        procs
            .start_with_output(name, &Launch::new(&python, &argv))
            .unwrap();
        self.python.insert(name.to_owned(), procs);
    }

    /// The JSON report of the started Python process `name`, once it ends.
    fn python_report(&mut self, name: &str) -> Value {
        let mut procs = self.python.remove(name).expect("a started Python process");
        let out = procs
            .finish(name, Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("{e:#}\nfleet logs:\n{}", self.nodes.logs()));
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{name} printed {out:?}: {e}"))
    }

    /// Runs the fleet's client over the texts: its JSON report (or why it failed) and the
    /// outputs it saved.
    fn run_client(&mut self, name: &str) -> (Result<Value, String>, PathBuf) {
        let outputs = self.path(&format!("{name}-outputs.json"));
        let run = ClientRun::new(&self.client, &self.input)
            .save_outputs(&outputs)
            .json()
            .launch(&self.bin);
        let report = self
            .nodes
            .procs()
            .run_launch(name, &run, Duration::from_secs(180))
            .map(|out| serde_json::from_str(out.trim()).expect("run --json output"))
            .map_err(|e| format!("{e:#}"));
        (report, outputs)
    }

    /// Rows of single-process inference over the texts.
    fn single_process(&mut self) -> Vec<Vec<f32>> {
        let (bin, model, input) = (self.bin.clone(), self.model.clone(), self.input.clone());
        single_process_outputs(self.nodes.procs(), "infer", &bin, &model, &input, UBATCH)
    }
}

/// One outsider's command line: the fleet, its connection and identity, its stop file.
struct Outsider {
    name: &'static str,
    args: Vec<String>,
}

impl Outsider {
    fn new(fleet: &TestFleet, name: &'static str, connect: &[String]) -> Outsider {
        let mut args = vec![
            "--fleet".into(),
            fleet.name.clone(),
            "--name".into(),
            name.into(),
            "--stages".into(),
            STAGES.len().to_string(),
            "--seconds".into(),
            "240".into(),
            "--stop-file".into(),
            fleet.path("stop").to_string_lossy().into_owned(),
            "--ready-file".into(),
            fleet
                .path(&format!("{name}.ready"))
                .to_string_lossy()
                .into_owned(),
        ];
        for c in connect {
            args.extend(["--connect".into(), c.clone()]);
        }
        Outsider { name, args }
    }

    fn arg(mut self, flag: &str, value: &str) -> Outsider {
        self.args.extend([flag.to_owned(), value.to_owned()]);
        self
    }

    fn flag(mut self, flag: &str) -> Outsider {
        self.args.push(flag.to_owned());
        self
    }

    /// An enrolled client of `fleet` (its certificate of the fleet's CA) forging results for
    /// the fleet's client and putting work into every stage in its name.
    fn enrolled(fleet: &TestFleet, name: &'static str) -> Outsider {
        let [ca, cert, key] = fleet.member_files(name);
        Outsider::new(fleet, name, &fleet.node_endpoints())
            .arg("--ca", &ca)
            .arg("--cert", &cert)
            .arg("--key", &key)
            .arg("--victim", "client")
    }
}

/// Starts every outsider and waits until each has declared its subscribers.
fn start_outsiders(fleet: &mut TestFleet, outsiders: &[Outsider]) {
    for o in outsiders {
        fleet.start_python(o.name, "outsider_peer.py", &o.args);
    }
    for o in outsiders {
        let ready = fleet.path(&format!("{}.ready", o.name));
        fleet
            .nodes
            .procs()
            .wait_for_file(&ready, "outsider ready", Duration::from_secs(30), |t| {
                t.contains("ready")
            })
            .unwrap_or_else(|e| panic!("{e:#}"));
    }
    // A round of listening, asking and putting before the run starts.
    std::thread::sleep(Duration::from_secs(2));
}

/// Stops every outsider and answers their reports, by name.
fn stop_outsiders(fleet: &mut TestFleet, outsiders: &[Outsider]) -> Vec<(&'static str, Value)> {
    // A last round after the run's final results.
    std::thread::sleep(Duration::from_secs(1));
    std::fs::write(fleet.path("stop"), "stop").unwrap();
    outsiders
        .iter()
        .map(|o| (o.name, fleet.python_report(o.name)))
        .collect()
}

/// Bytes the outsider received on subscription `key`.
fn received(report: &Value, key: &str) -> u64 {
    report["received"][key]["bytes"].as_u64().unwrap_or(0)
}

/// Rows of `a` that differ from `b` in any bit.
fn rows_differing(a: &[Vec<f32>], b: &[Vec<f32>]) -> usize {
    a.iter()
        .zip(b)
        .filter(|(x, y)| {
            x.len() != y.len() || x.iter().zip(*y).any(|(p, q)| p.to_bits() != q.to_bits())
        })
        .count()
        + a.len().abs_diff(b.len())
}

/// The fleet's client's run, which must succeed: its report and the rows it saved.
fn successful_run(fleet: &mut TestFleet, name: &str) -> (Value, Vec<Vec<f32>>) {
    let (report, outputs) = fleet.run_client(name);
    let report = report.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report["items"], UBATCH * MICROBATCHES, "{report}");
    (report, read_outputs(&outputs))
}

#[test]
fn an_outsider_reads_and_disturbs_a_plain_fleet() {
    let started = Instant::now();
    let mut fleet = TestFleet::start("plainout", false);
    let outsiders =
        [Outsider::new(&fleet, "outsider", &fleet.node_endpoints()).arg("--victim", "client")];
    start_outsiders(&mut fleet, &outsiders);
    let (report, outputs) = fleet.run_client("client");
    let reports = stop_outsiders(&mut fleet, &outsiders);
    let outsider = &reports[0].1;
    let keys = Keys::new(&fleet.name);

    // It reads the run's activations and results, and the fleet's control traffic.
    assert!(outsider["max_peers"].as_u64().unwrap() >= 1, "{outsider}");
    assert!(received(outsider, &keys.stage0_ins()) > 0, "{outsider}");
    assert!(received(outsider, &keys.stage_in(1)) > 0, "{outsider}");
    assert!(outsider["reply_bytes"].as_u64().unwrap() > 0, "{outsider}");
    assert!(outsider["plan_epoch"].is_u64(), "{outsider}");
    // Its microbatches are computed by both stages.
    let stats = fleet.stage_stats();
    for s in &stats {
        assert!(
            s.microbatches > MICROBATCHES as u64,
            "{}: the outsider's microbatches were not accepted: {s:?}",
            s.node
        );
    }
    // The client takes its forged results (or fails on them).
    let single = fleet.single_process();
    let forged = match &report {
        Ok(_) => rows_differing(&read_outputs(&outputs), &single),
        Err(_) => single.len(),
    };
    assert!(forged > 0, "no forged result was taken: {report:?}");
    eprintln!(
        "plain fleet: the outsider read {} bytes ({} microbatches seen entering stage 0); \
         stage microbatches {:?} for the client's {MICROBATCHES}; the client's run: {} of {} \
         rows forged{} ({:.0} s)",
        outsider["received_bytes"],
        outsider["microbatches_seen"],
        stats.iter().map(|s| s.microbatches).collect::<Vec<_>>(),
        forged,
        single.len(),
        if report.is_err() {
            " (the run failed)"
        } else {
            ""
        },
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn outsiders_read_nothing_of_a_secured_fleet_and_nothing_they_send_is_taken() {
    let started = Instant::now();
    let mut fleet = TestFleet::start("secout", true);
    let endpoints = fleet.node_endpoints();
    let [ca, ..] = fleet.member_files("mallory");
    // Another CA, with a member named like the fleet's client.
    let foreign = Links::throwaway(
        &fleet.path("foreign-ca"),
        &fleet.name,
        &[("client", MemberRole::Client)],
    )
    .unwrap();
    let Links::Tls(foreign) = &foreign else {
        unreachable!()
    };
    let foreign_files = &foreign.enrolled["client"];
    let mut plain_and_tls = endpoints.clone();
    plain_and_tls.extend(endpoints.iter().map(|e| e.replacen("tls/", "tcp/", 1)));
    let outsiders = [
        // No certificate: plain TCP, and TLS trusting the fleet's (public) CA certificate.
        Outsider::new(&fleet, "stranger", &plain_and_tls)
            .arg("--ca", &ca)
            .arg("--victim", "client"),
        // A certificate of another CA, in the client's name.
        Outsider::new(&fleet, "client", &endpoints)
            .arg("--ca", &ca)
            .arg("--cert", &foreign_files.certificate.to_string_lossy())
            .arg("--key", &foreign_files.private_key.to_string_lossy())
            .arg("--victim", "client"),
        // An enrolled client: subscribes to the stages and to the client's results, puts into
        // the stages after the first (where only nodes may put), forges the client's results.
        Outsider::enrolled(&fleet, "mallory").flag("--skip-stage0"),
    ];
    start_outsiders(&mut fleet, &outsiders);
    let (report, outputs) = successful_run(&mut fleet, "client-run");
    let reports = stop_outsiders(&mut fleet, &outsiders);
    let keys = Keys::new(&fleet.name);

    for (name, r) in &reports[..2] {
        // Not even linked: nothing read, nothing asked, nothing sent reached anyone.
        assert_eq!(r["max_peers"], 0, "{name}: {r}");
        assert_eq!(r["received_bytes"], 0, "{name}: {r}");
        assert_eq!(r["reply_bytes"], 0, "{name}: {r}");
        assert_eq!(r["liveliness"], serde_json::json!({}), "{name}: {r}");
        assert!(r["rounds"].as_u64().unwrap() > 0, "{name}: {r}");
    }
    let mallory = &reports[2].1;
    // A member, linked to the fleet, but it reads none of the run: no stage traffic, no
    // acknowledgements, not the client's results, no stats, no device information.
    assert!(mallory["max_peers"].as_u64().unwrap() >= 1, "{mallory}");
    assert_eq!(mallory["received_bytes"], 0, "{mallory}");
    for selector in [keys.stats("*"), keys.device("*")] {
        assert!(
            mallory["replies"][&selector].is_null(),
            "{selector}: {mallory}"
        );
    }
    assert!(
        mallory["sent"][keys.stage_in(1)]["samples"]
            .as_u64()
            .unwrap()
            > 0,
        "{mallory}"
    );
    assert!(
        mallory["sent"][keys.result("client")]["samples"]
            .as_u64()
            .unwrap()
            > 0,
        "{mallory}"
    );

    // No stage counted anything but the client's microbatches: nothing the outsiders sent was
    // even refused, it never arrived.
    for s in fleet.stage_stats() {
        assert_eq!(s.microbatches, MICROBATCHES as u64, "{}: {s:?}", s.node);
        let dropped = s.dropped_malformed
            + s.dropped_foreign_fleet
            + s.dropped_stale_epoch
            + s.dropped_wrong_stage;
        assert_eq!(dropped, 0, "{}: {s:?}", s.node);
        assert!(s.refused.is_empty(), "{}: {s:?}", s.node);
    }
    // No forged result reached the client: none dropped, none taken.
    assert_eq!(report["dropped_foreign"], 0, "{report}");
    assert_eq!(report["dropped_duplicates"], 0, "{report}");
    let single = fleet.single_process();
    assert_eq!(
        rows_differing(&outputs, &single),
        0,
        "the client took forged results"
    );

    // An enrolled client sending token ids outside the vocabulary gets an error result, and
    // the valid microbatch it sends next gets its embeddings.
    let [_, prober_cert, prober_key] = fleet.member_files("prober");
    let mut args: Vec<String> = ["--fleet", &fleet.name, "--name", "prober", "--ca", &ca]
        .map(String::from)
        .to_vec();
    args.extend(["--cert".into(), prober_cert, "--key".into(), prober_key]);
    for e in &endpoints {
        args.extend(["--connect".into(), e.clone()]);
    }
    fleet.start_python("prober", "outsider_tokens.py", &args);
    let prober = fleet.python_report("prober");
    let error = prober["bad"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("token"), "{prober}");
    assert_eq!(
        prober["good"]["shape"],
        serde_json::json!([2, 384]),
        "{prober}"
    );
    // And the fleet's own client's next run is exact.
    let (_, outputs) = successful_run(&mut fleet, "client-run-after");
    assert_eq!(
        rows_differing(&outputs, &single),
        0,
        "the run after the bad tokens"
    );
    eprintln!(
        "secured fleet: outsiders read {:?} bytes, stage microbatches as the client's, the \
         out-of-range microbatch answered {error:?} ({:.0} s)",
        reports
            .iter()
            .map(|(n, r)| (*n, r["received_bytes"].clone()))
            .collect::<Vec<_>>(),
        started.elapsed().as_secs_f64()
    );
}

/// An enrolled client puts microbatches naming the fleet's client into stage 0 at the plan's
/// epoch: on the client's own key, which the access control keeps it from putting on, and on
/// its own key, where stage 0 refuses a microbatch that names another client (counted as
/// `client-mismatch`). Nothing of it runs, and the client gets no result it did not ask for.
#[test]
fn an_enrolled_client_cannot_send_work_in_another_client_s_name() {
    let mut fleet = TestFleet::start("impersonate", true);
    let outsiders = [Outsider::enrolled(&fleet, "mallory")];
    start_outsiders(&mut fleet, &outsiders);
    let (report, outputs) = successful_run(&mut fleet, "client-run");
    let reports = stop_outsiders(&mut fleet, &outsiders);
    let mallory = &reports[0].1;
    let keys = Keys::new(&fleet.name);
    for client in ["client", "mallory"] {
        let key = keys.stage0_in_from(client);
        assert!(
            mallory["sent"][&key]["samples"].as_u64().unwrap() > 0,
            "{key}: {mallory}"
        );
    }
    for s in fleet.stage_stats() {
        assert_eq!(s.microbatches, MICROBATCHES as u64, "{}: {s:?}", s.node);
        assert!(
            s.refused.keys().all(|reason| reason == "client-mismatch"),
            "{}: {s:?}",
            s.node
        );
    }
    assert_eq!(report["dropped_foreign"], 0, "{report}");
    let single = fleet.single_process();
    assert_eq!(
        rows_differing(&outputs, &single),
        0,
        "the client took forged results"
    );
}
