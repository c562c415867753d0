//! Weights reach the devices: a node whose model folder is empty joins a MiniLM fleet on
//! loopback, and when the leader plans it in it fetches exactly its shard's tensors (and the
//! small files beside them) from peers holding the model, checked against the digests the
//! assignment carries, into its folder's cache.
//!
//! - It serves a run whose outputs equal single-process inference bitwise (32 bits), and its
//!   resident memory grows with its shard, not with the model.
//! - A peer serving tampered bytes (`[faults] serve_tampered_weights`) is refused, naming the
//!   peer and the tensor, and the bytes come from another peer.
//! - A re-plan giving it other units fetches only the tensors it does not hold.
//!
//! Each test prints its figures in one FIGURES line.

use quantpipe_actors::runtime::config::{DeviceSettings, Role, Settings};
use quantpipe_integration::{
    assert_bitwise_equal, minilm_dir, quantpipe_bin, read_outputs, single_process_outputs,
};
use quantpipe_launcher::minilm::{long_texts, write_uniform_profile};
use quantpipe_launcher::proc_sample;
use quantpipe_launcher::{config_file, free_ports, ClientRun, Fleet, Place};
use std::path::{Path, PathBuf};
use std::time::Duration;

const UBATCH: usize = 4;
const ITEMS: usize = 8;

/// A leader holding MiniLM, device nodes with or without it, and a client, on loopback.
struct WeightsFleet {
    bin: PathBuf,
    model: PathBuf,
    fleet: String,
    ports: Vec<u16>,
    device: DeviceSettings,
    nodes: Fleet,
    /// Last, so the processes are gone before their folder is.
    dir: tempfile::TempDir,
}

/// One fetch as the fetching node logs it.
#[derive(Debug)]
struct Fetched {
    bytes: u64,
    tensors: u64,
    shard_bytes: u64,
    model_bytes: u64,
    refused: String,
}

impl WeightsFleet {
    /// Starts a leader (holding the model, hosting no stage) waiting for `expected`.
    fn new(tag: &str, expected: &[&str]) -> Self {
        let bin = quantpipe_bin();
        let model = minilm_dir();
        let dir = tempfile::tempdir().unwrap();
        let texts = long_texts(ITEMS, 160);
        std::fs::write(dir.path().join("texts.txt"), texts.join("\n")).unwrap();
        // Equal profiles: the planner spreads the 24 units over every device it has. A node
        // without the model file plans with this file too (it cannot measure the model).
        let profile = dir.path().join("profile.json");
        write_uniform_profile(&profile, UBATCH).unwrap();
        let device = DeviceSettings {
            threads: 1,
            profile_ubatch: UBATCH,
            profile_file: Some(profile),
            ..DeviceSettings::default()
        };
        let mut f = WeightsFleet {
            nodes: Fleet::new(&bin, dir.path()),
            bin,
            model,
            dir,
            fleet: format!("{tag}{}", std::process::id()),
            ports: free_ports(5).unwrap(),
            device,
        };
        let mut leader = f.settings("leader", Role::Leader, &f.model, 0);
        leader.leader.expected = expected.iter().map(|n| n.to_string()).collect();
        leader.leader.wait_s = 60.0;
        leader.leader.ubatch = UBATCH;
        leader.leader.bits = 32;
        f.nodes.start(&leader, Place::Here).unwrap();
        f
    }

    /// Settings of `name` on port `i`, with `model` as its model folder.
    fn settings(&self, name: &str, role: Role, model: &Path, i: usize) -> Settings {
        let connect = (i > 0).then_some(self.ports[0]);
        config_file::loopback_peer(&self.fleet, name, role, model, self.ports[i], connect)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// An empty model folder for `name`, named like the leader's (nodes agree on a model by
    /// its folder's name).
    fn empty_folder(&self, name: &str) -> PathBuf {
        let dir = self.path(name).join("minilm");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Starts device `name` on port `i` with `model` as its folder; `tamper` makes its
    /// weights queryable serve flipped bytes.
    fn start_device(&mut self, name: &str, i: usize, model: &Path, tamper: bool) {
        let mut s = self.settings(name, Role::Device, model, i);
        s.device = self.device.clone();
        s.faults.serve_tampered_weights = tamper;
        self.nodes.start(&s, Place::Here).unwrap();
    }

    /// Waits until `file` (in the fleet's folder) contains `needle`.
    fn wait_for(&mut self, file: &str, needle: &str, what: &str) {
        let path = self.path(file);
        self.nodes
            .procs()
            .wait_for_file(&path, what, Duration::from_secs(150), |t| {
                t.contains(needle)
            })
            .unwrap_or_else(|e| panic!("{e:#}"));
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(&format!("{name}.log"))).unwrap_or_default()
    }

    /// The fetches `name` logged, in order.
    fn fetches(&self, name: &str) -> Vec<Fetched> {
        self.log(name)
            .lines()
            .filter_map(|l| parse_fetched(l.split(&format!("{name}: fetched ")).nth(1)?))
            .collect()
    }

    /// Resident memory of node `name`, bytes.
    fn rss(&mut self, name: &str) -> u64 {
        let pid = self.nodes.procs().pid(name).expect("the node runs");
        proc_sample::sample(pid).unwrap().rss_bytes
    }

    /// Runs a client over the texts to the end; every output must equal single-process
    /// inference bitwise.
    fn run_client_bitwise_exact(&mut self) {
        let mut client = self.settings("client", Role::Device, &self.model, 4);
        client.client.window = 2;
        client.client.plan_wait_s = 60.0;
        client.client.result_timeout_s = 90.0;
        let client = config_file::write(self.dir.path(), &client).unwrap();
        let run = ClientRun::new(&client, &self.path("texts.txt"))
            .save_outputs(&self.path("outputs.json"))
            .json()
            .launch(&self.bin);
        let pipeline_path = self.path("outputs.json");
        let (bin, model, input) = (self.bin.clone(), self.model.clone(), self.path("texts.txt"));
        let procs = self.nodes.procs();
        procs.start_with_output("client", &run).unwrap();
        let out = procs
            .finish("client", Duration::from_secs(180))
            .unwrap_or_else(|e| panic!("the run did not finish: {e:#}"));
        let report: serde_json::Value = serde_json::from_str(out.trim()).expect("run --json");
        assert_eq!(report["items"], ITEMS);
        let pipeline = read_outputs(&pipeline_path);
        let single = single_process_outputs(procs, "infer", &bin, &model, &input, UBATCH);
        assert_bitwise_equal(&pipeline, &single);
    }
}

/// `N bytes (T tensors, F files) for units l..r in S s; shard tensors B bytes, model file M
/// bytes; refused: [..]` as the fetching node logs it.
fn parse_fetched(rest: &str) -> Option<Fetched> {
    let num =
        |after: &str| -> Option<u64> { rest.split(after).nth(1)?.split(' ').next()?.parse().ok() };
    Some(Fetched {
        bytes: rest.split(' ').next()?.parse().ok()?,
        tensors: rest
            .split("bytes (")
            .nth(1)?
            .split(' ')
            .next()?
            .parse()
            .ok()?,
        shard_bytes: num("shard tensors ")?,
        model_bytes: num("model file ")?,
        refused: rest
            .split("refused: [")
            .nth(1)?
            .split(']')
            .next()?
            .to_owned(),
    })
}

/// The files in `dir`'s tensor cache, and their bytes.
fn cached(dir: &Path) -> (usize, u64) {
    let cache = dir.join(".quantpipe-cache");
    let files: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "bin"))
        .collect();
    let bytes = files.iter().map(|e| e.metadata().unwrap().len()).sum();
    (files.len(), bytes)
}

#[test]
fn a_node_with_an_empty_model_folder_joins_fetches_its_shard_and_serves_bitwise_exact() {
    let mut f = WeightsFleet::new("wfjoin", &["a"]);
    let model = f.model.clone();
    f.start_device("a", 1, &model, false);
    f.wait_for("leader.log", "stage 0 = a", "a plan over a");

    let empty = f.empty_folder("b");
    f.start_device("b", 2, &empty, false);
    f.wait_for("b.log", "node b up", "b up");
    let rss_before = f.rss("b");
    f.wait_for("leader.log", "stage 1 = ", "a plan with b in it");
    let rss_after = f.rss("b");

    let fetched = f.fetches("b");
    assert_eq!(fetched.len(), 1, "one fetch:\n{}", f.log("b"));
    let got = &fetched[0];
    assert!(got.refused.is_empty(), "{got:?}");
    // Exactly the shard's tensors, and a few small files (config, pooling, modules).
    assert!(got.bytes >= got.shard_bytes && got.bytes < got.shard_bytes + 64 * 1024);
    assert!(got.shard_bytes < got.model_bytes);
    assert!(!empty.join("model.safetensors").exists());
    let (files, cached_bytes) = cached(&empty);
    assert_eq!(cached_bytes, got.shard_bytes, "{files} cached tensors");

    f.run_client_bitwise_exact();

    let growth = rss_after.saturating_sub(rss_before);
    // The shard is loaded once; libtorch's and the allocator's own growth stays far below a
    // whole model's weights.
    assert!(
        growth < got.shard_bytes + 48 * 1024 * 1024,
        "b's resident memory grew {growth} bytes for a shard of {} bytes",
        got.shard_bytes
    );
    println!(
        "FIGURES weights_fetch join: fetched {} bytes ({} tensors) against the shard's tensor \
         bytes {} and the model file's {} ({:.0}%); {} tensors cached; resident memory of the \
         fetching node grew {} bytes on loading its shard ({:.2}x the shard, {:.2}x the model)",
        got.bytes,
        got.tensors,
        got.shard_bytes,
        got.model_bytes,
        100.0 * got.bytes as f64 / got.model_bytes as f64,
        files,
        growth,
        growth as f64 / got.shard_bytes as f64,
        growth as f64 / got.model_bytes as f64,
    );
}

#[test]
fn tampered_bytes_are_refused_and_fetched_from_another_peer() {
    let mut f = WeightsFleet::new("wftamper", &["a", "b"]);
    let model = f.model.clone();
    // `a` holds the model but serves every byte flipped; it comes first in the order peers
    // are asked, so `b` asks it first.
    f.start_device("a", 1, &model, true);
    let empty = f.empty_folder("b");
    f.start_device("b", 2, &empty, false);
    f.wait_for("leader.log", "stage 1 = ", "a plan over a and b");

    assert!(
        f.log("a").contains("FORCED FAULTS ARE ON"),
        "{}",
        f.log("a")
    );
    let log = f.log("b");
    let refusals = log
        .lines()
        .filter(|l| l.contains("refusing") && l.contains("from a:"))
        .count();
    assert!(refusals >= 1, "b refused nothing from a:\n{log}");
    let fetched = f.fetches("b");
    assert_eq!(fetched.len(), 1, "{log}");
    let got = &fetched[0];
    assert_eq!(got.refused, "a", "{got:?}");
    assert!(got.bytes >= got.shard_bytes, "{got:?}");
    let (_, cached_bytes) = cached(&empty);
    assert_eq!(cached_bytes, got.shard_bytes);
    println!(
        "FIGURES weights_fetch tamper: {refusals} refusal(s) of a's bytes; {} bytes ({} \
         tensors) fetched from another peer, shard tensor bytes {}",
        got.bytes, got.tensors, got.shard_bytes
    );
}

#[test]
fn a_new_assignment_fetches_only_what_the_node_does_not_hold() {
    let mut f = WeightsFleet::new("wfreplan", &["a"]);
    let model = f.model.clone();
    f.start_device("a", 1, &model, false);
    f.wait_for("leader.log", "stage 0 = a", "a plan over a");
    let empty = f.empty_folder("b");
    f.start_device("b", 2, &empty, false);
    f.wait_for("leader.log", "stage 1 = ", "a plan with b in it");
    // `a` leaves: the re-plan gives `b` every unit, half of which it holds already.
    f.nodes.procs().kill("a").unwrap();
    f.wait_for("leader.log", "stage 0 = b units 1..24", "a plan of b alone");
    f.wait_for("b.log", "units 1..24", "b's second fetch");

    let fetched = f.fetches("b");
    assert_eq!(fetched.len(), 2, "{}", f.log("b"));
    let (first, second) = (&fetched[0], &fetched[1]);
    // The second fetch is the whole model's tensors less those of the first shard: nothing
    // fetched twice (and the small files, held already, not again).
    assert_eq!(
        second.bytes + first.shard_bytes,
        second.shard_bytes,
        "{fetched:?}"
    );
    let (_, cached_bytes) = cached(&empty);
    assert_eq!(cached_bytes, second.shard_bytes);
    f.run_client_bitwise_exact();
    println!(
        "FIGURES weights_fetch replan: first assignment fetched {} bytes (shard {}), the \
         second {} bytes for a shard of {} (held {}); model file {}",
        first.bytes,
        first.shard_bytes,
        second.bytes,
        second.shard_bytes,
        first.shard_bytes,
        second.model_bytes
    );
}
