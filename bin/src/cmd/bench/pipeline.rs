//! `quantpipe bench pipeline`: a ViT preset (seeded random weights, one exported folder that
//! every node loads, so all agree on the weights) run as 2- and 3-stage pipelines of separate
//! `quantpipe node` processes on loopback, planned by the leader from the nodes' own profiles.
//! For each: the measured steady-state throughput against the planner's predicted bound for that
//! plan, and each stage's overhead: the CPU its node spends outside the forward passes (codec,
//! transport, runtime) as a share of the forward passes' own CPU, beside the wall-clock share.
//!
//! Pipelines on few cores (see DESIGN.md, "Measuring pipelines on a 2-core machine"): each node
//! runs one intra-op thread, pinned to one core with `taskset` (all its threads: forward, codec,
//! zenoh). The profile every node announces is measured once, before any node starts, by a
//! `quantpipe profile` process with one thread pinned to the core of the bottleneck-to-be (the
//! one no emulated node shares), so that nodes profiling at once on shared cores do not inflate
//! it. With more nodes than cores, the nodes that
//! share a core are emulated slower devices (`device.slowdown`: each forward pass is followed by
//! a sleep of `(slowdown - 1) x` its time), so they use a fraction of their core and the
//! bottleneck stage is the one alone on its core; the report says which nodes are emulated.

use anyhow::{anyhow, bail, Context, Result};
use quantpipe_actors::runtime::client::{percentile, wait_for_plan};
use quantpipe_actors::runtime::transport::{first_answer, unix_ns, zbytes_of};
use quantpipe_actors::runtime::wire::{
    self, Activation, Body, Keys, NodeStats, Output, PlanInfo, WIRE_VERSION,
};
use quantpipe_messages::clipping::{ClipMethod, ValueKind};
use quantpipe_messages::codec::{self, Clip};
use quantpipe_messages::{Bits, BoundaryPayload};
use quantpipe_model_shards::presets::export_preset;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use zenoh::handlers::FifoChannel;
use zenoh::qos::{CongestionControl, Priority};
use zenoh::{Session, Wait};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model preset (seeded random weights).
    #[arg(long, default_value = "vit-base-patch16-224")]
    preset: String,
    #[arg(long, default_value_t = 8)]
    ubatch: usize,
    /// Pipeline depths to run (node processes per run).
    #[arg(long, value_delimiter = ',', default_value = "2,3")]
    stages: Vec<usize>,
    /// Microbatches measured per run (after `warmup` more).
    #[arg(long, default_value_t = 16)]
    microbatches: usize,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Microbatches in flight.
    #[arg(long, default_value_t = 4)]
    window: usize,
    /// Emulated slowdown of nodes that share a core (only with more nodes than cores).
    #[arg(long, default_value_t = 3.0)]
    shared_core_slowdown: f64,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct StageFigures {
    node: String,
    units: [usize; 2],
    core: Option<usize>,
    emulated_slowdown: f64,
    microbatches: u64,
    /// Wall-clock seconds per microbatch: forward (emulated slowdown included), codec (decode +
    /// encode), transport of the incoming microbatch (sender's stamp to this node's receipt).
    /// On a core shared with other work these include waiting for the core.
    compute_s: f64,
    codec_s: f64,
    transport_in_s: f64,
    predicted_compute_s: f64,
    /// CPU seconds per microbatch: the forward pass, and everything else the node process did
    /// meanwhile (codec, zenoh transport, actors, logging).
    forward_cpu_s: f64,
    outside_forward_cpu_s: f64,
    /// The overhead: CPU outside the forward pass / forward CPU. What a stage gives up to the
    /// pipeline's machinery, whatever else shares its core.
    overhead_share: f64,
    /// (codec + transport in) / compute, wall-clock: includes waiting for a shared core and
    /// transfers that overlap the previous microbatch's compute.
    wall_overhead_share: f64,
}

#[derive(Serialize)]
struct RunFigures {
    nodes: usize,
    stages: usize,
    cores: usize,
    pinned: bool,
    /// What limits the run and why it does not share a core.
    bottleneck: String,
    predicted_items_per_s: f64,
    measured_items_per_s: f64,
    ratio_to_bound: f64,
    /// ubatch / the slowest stage's measured forward time per microbatch in this run: the rate
    /// the pipeline could reach with the compute it actually got (on a shared machine other
    /// processes' load moves it away from the profile the plan was made with).
    measured_bottleneck_items_per_s: f64,
    ratio_to_measured_bottleneck: f64,
    latency_p50_s: f64,
    /// The largest stage overhead (CPU outside the forward pass / forward CPU), and the same
    /// share in wall-clock terms.
    max_overhead_share: f64,
    max_wall_overhead_share: f64,
    stage: Vec<StageFigures>,
}

#[derive(Serialize)]
struct Report {
    preset: String,
    ubatch: usize,
    bits: u8,
    microbatches: usize,
    warmup: usize,
    window: usize,
    goal_ratio_to_bound: f64,
    goal_max_overhead_share: f64,
    runs: Vec<RunFigures>,
}

/// Node processes, killed on drop.
struct Fleet(Vec<Child>);

impl Drop for Fleet {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn have_taskset() -> bool {
    Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Cores this process may run on.
fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Core of node `k` of `n` and its emulated slowdown: round-robin over cores; nodes that share
/// a core are slowed by `shared` (1 when every node has its own core).
pub fn placement(n: usize, cores: usize, shared: f64) -> Vec<(usize, f64)> {
    (0..n)
        .map(|k| {
            let core = k % cores;
            let sharing = (0..n).filter(|j| j % cores == core).count() > 1;
            (core, if sharing { shared } else { 1.0 })
        })
        .collect()
}

fn write_config(dir: &Path, name: &str, body: &str) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn spawn(dir: &Path, name: &str, config: &Path, core: Option<usize>) -> Result<Child> {
    let exe = std::env::current_exe().context("locating the quantpipe binary")?;
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let mut cmd = match core {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &c.to_string()]).arg(&exe);
            cmd
        }
        None => Command::new(&exe),
    };
    cmd.args(["node", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    cmd.spawn().with_context(|| format!("starting node {name}"))
}

/// Per-unit profile of `model` at `ubatch`, one intra-op thread, pinned to `core` when
/// possible: the file every node reads (`device.profile_file`; nodes scale it by their slowdown).
fn measure_profile(
    model: &Path,
    ubatch: usize,
    core: Option<usize>,
    dir: &Path,
) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the quantpipe binary")?;
    let mut cmd = match core {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &c.to_string()]).arg(&exe);
            cmd
        }
        None => Command::new(&exe),
    };
    let out = cmd
        .args(["profile", "--model-dir"])
        .arg(model)
        .args(["--threads", "1", "--ubatch", &ubatch.to_string()])
        .args([
            "--device-type",
            "bench",
            "--warmup",
            "1",
            "--repeats",
            "3",
            "--json",
            "--out",
        ])
        .arg(dir.join("pipeedge"))
        .stderr(Stdio::inherit())
        .output()
        .context("running quantpipe profile")?;
    if !out.status.success() {
        bail!("quantpipe profile failed ({})", out.status);
    }
    let path = dir.join("profile.json");
    std::fs::write(&path, &out.stdout)?;
    Ok(path)
}

fn ask_stats(session: &Session, keys: &Keys, node: &str) -> Result<NodeStats> {
    let replies = session
        .get(keys.stats(node))
        .priority(Priority::InteractiveHigh)
        .timeout(Duration::from_secs(10))
        .wait()
        .map_err(|e| anyhow!("stats query: {e}"))?;
    first_answer(&replies, node, "stats", &keys.fleet)
}

/// Streams `total` copies of one pixel microbatch through the plan's stage 0 with `window` in
/// flight; answers each result's arrival time and each microbatch's latency.
fn stream(
    session: &Session,
    keys: &Keys,
    plan: &PlanInfo,
    payload: &[u8],
    total: usize,
    window: usize,
) -> Result<(Vec<Instant>, Vec<f64>)> {
    let client = "bench";
    let run: u64 = unix_ns();
    let results = session
        .declare_subscriber(keys.result(client))
        .with(FifoChannel::new(window * 4 + 16))
        .wait()
        .map_err(|e| anyhow!("subscribing to results: {e}"))?;
    let publisher = session
        .declare_publisher(keys.stage_in(0))
        .congestion_control(CongestionControl::Block)
        .priority(Priority::Data)
        .wait()
        .map_err(|e| anyhow!("declaring the stage-0 publisher: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !publisher
        .matching_status()
        .wait()
        .map_err(|e| anyhow!("matching status: {e}"))?
        .matching()
    {
        if Instant::now() >= deadline {
            bail!("stage 0 does not listen on {}", keys.stage_in(0));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut sent_at: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut arrivals = Vec::with_capacity(total);
    let mut latencies = Vec::with_capacity(total);
    let mut next = 0u64;
    while arrivals.len() < total {
        while (next as usize) < total && sent_at.len() < window {
            let msg = Activation {
                version: WIRE_VERSION,
                fleet: keys.fleet.clone(),
                run,
                client: client.into(),
                seq: next,
                epoch: plan.epoch,
                stage: 0,
                sent_unix_ns: unix_ns(),
                body: Body::Payload,
                body_len: 0,
                mask: None,
            };
            sent_at.insert(next, Instant::now());
            publisher
                .put(zbytes_of(msg.into_message(payload.to_vec())))
                .wait()
                .map_err(|e| anyhow!("sending microbatch {next}: {e}"))?;
            next += 1;
        }
        let sample = results
            .recv_timeout(Duration::from_secs(120))
            .map_err(|e| anyhow!("results: {e}"))?
            .ok_or_else(|| anyhow!("no result for 120 s: see the node logs"))?;
        let out: Output = wire::from_bytes(&sample.payload().to_bytes(), &keys.fleet)?;
        if out.run != run {
            continue;
        }
        if let Some(e) = out.error {
            bail!("microbatch {} failed in the pipeline: {e}", out.seq);
        }
        if let Some(t) = sent_at.remove(&out.seq) {
            latencies.push(t.elapsed().as_secs_f64());
            arrivals.push(Instant::now());
        }
    }
    Ok((arrivals, latencies))
}

fn run_one(
    args: &Args,
    model: &Path,
    profile: &Path,
    nodes: usize,
    work: &Path,
) -> Result<RunFigures> {
    let dir = work.join(format!("run{nodes}"));
    std::fs::create_dir_all(&dir)?;
    let cores = cores();
    let pinned = have_taskset();
    let place = placement(nodes, cores, args.shared_core_slowdown);
    let fleet_name = format!("bench{}x{nodes}", std::process::id());
    let leader_port = free_port()?;
    let names: Vec<String> = (0..nodes).map(|k| format!("n{k}")).collect();
    let common = |name: &str, role: &str, port: u16, connect: &str| {
        format!(
            "fleet = \"{fleet_name}\"\nname = \"{name}\"\nrole = \"{role}\"\nmodel_dir = \"{}\"\n\
             [zenoh]\nlisten = [\"tcp/127.0.0.1:{port}\"]\nconnect = [{connect}]\n",
            model.display()
        )
    };
    let to_leader = format!("\"tcp/127.0.0.1:{leader_port}\"");
    let mut fleet = Fleet(Vec::new());
    let expected: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    let leader = common("leader", "leader", leader_port, "")
        + &format!(
            "[leader]\nexpected = [{}]\nwait_s = 600\nubatch = {}\nbits = 32\n",
            expected.join(", "),
            args.ubatch
        );
    let path = write_config(&dir, "leader", &leader)?;
    fleet.0.push(spawn(&dir, "leader", &path, None)?);
    for (k, name) in names.iter().enumerate() {
        let (core, slowdown) = place[k];
        // Loopback moves ~1.5 GB/s (DESIGN.md): 10 Gbit/s is its nominal bandwidth.
        let body = common(name, "device", free_port()?, &to_leader)
            + &format!(
                "[device]\nthreads = 1\nslowdown = {slowdown}\nbw_mbps = 10000\nmem_mb = 8192\n\
                 profile_ubatch = {}\nprofile_file = \"{}\"\n[quantizer]\nclip = \"naive\"\n",
                args.ubatch,
                profile.display()
            );
        let path = write_config(&dir, name, &body)?;
        fleet
            .0
            .push(spawn(&dir, name, &path, pinned.then_some(core))?);
    }

    let keys = Keys::new(&fleet_name);
    let mut zc = zenoh::Config::default();
    let set = |c: &mut zenoh::Config, k: &str, v: &str| {
        c.insert_json5(k, v)
            .map_err(|e| anyhow!("zenoh setting {k}: {e}"))
    };
    set(&mut zc, "mode", "\"peer\"")?;
    set(&mut zc, "connect/endpoints", &format!("[{to_leader}]"))?;
    set(&mut zc, "scouting/multicast/enabled", "false")?;
    let session = zenoh::open(zc)
        .wait()
        .map_err(|e| anyhow!("opening the zenoh session: {e}"))?;
    let result = (|| {
        let plan = wait_for_plan(&session, &keys, Duration::from_secs(600))
            .with_context(|| format!("no plan: see the logs in {}", dir.display()))?;
        if plan.source != "planner" {
            bail!(
                "the leader's plan is {} rather than the planner's",
                plan.source
            );
        }
        tch::manual_seed(7);
        // Pixels into unit 1 travel as raw f32 (32 bits: no clipping applies).
        let shape = [args.ubatch, 3, 224, 224];
        let pixels = tch::Tensor::randn(shape.map(|d| d as i64), tch::kind::FLOAT_CPU);
        let values = Vec::<f32>::try_from(&pixels.view(-1))?;
        let clip = Clip::Method {
            method: ClipMethod::Naive,
            kind: ValueKind::TwoSided,
        };
        let encoded = codec::encode(&values, &shape, Bits::new(32)?, clip)?;
        let payload = BoundaryPayload::single(encoded).to_bytes();
        if args.warmup > 0 {
            stream(&session, &keys, &plan, &payload, args.warmup, args.window)?;
        }
        // Counters after the warm-up: the measured run's share is the difference.
        let before = plan
            .stages
            .iter()
            .map(|s| ask_stats(&session, &keys, &s.node))
            .collect::<Result<Vec<_>>>()?;
        let (arrivals, mut latencies) = stream(
            &session,
            &keys,
            &plan,
            &payload,
            args.microbatches,
            args.window,
        )?;
        // Steady state: from the first result to the last.
        let span = arrivals[args.microbatches - 1]
            .duration_since(arrivals[0])
            .as_secs_f64();
        let measured = ((args.microbatches - 1) * args.ubatch) as f64 / span;
        latencies.sort_by(|a, b| a.total_cmp(b));

        let mut stage = Vec::new();
        for (k, s) in plan.stages.iter().enumerate() {
            let st = ask_stats(&session, &keys, &s.node)?.since(&before[k]);
            let m = st.microbatches.max(1) as f64;
            let incoming = keys.stage_in(k as u32);
            let transport_in_s = st
                .links
                .iter()
                .find(|l| l.to == incoming)
                .map(|l| l.transfer_s_mean)
                .unwrap_or(0.0);
            let idx = names.iter().position(|n| *n == s.node).unwrap_or(0);
            let compute_s = st.busy_forward_s / m;
            let codec_s = st.busy_codec_s / m;
            let forward_cpu_s = st.forward_cpu_s / m;
            let outside_forward_cpu_s = (st.process_cpu_s - st.forward_cpu_s).max(0.0) / m;
            stage.push(StageFigures {
                node: s.node.clone(),
                units: [s.l, s.r],
                core: pinned.then_some(place[idx].0),
                emulated_slowdown: place[idx].1,
                microbatches: st.microbatches,
                compute_s,
                codec_s,
                transport_in_s,
                predicted_compute_s: s.compute_s,
                forward_cpu_s,
                outside_forward_cpu_s,
                overhead_share: outside_forward_cpu_s / forward_cpu_s.max(1e-9),
                wall_overhead_share: (codec_s + transport_in_s) / compute_s.max(1e-9),
            });
        }
        let bottleneck = plan
            .stages
            .iter()
            .enumerate()
            .max_by(|a, b| {
                a.1.compute_s
                    .max(a.1.transfer_s)
                    .total_cmp(&b.1.compute_s.max(b.1.transfer_s))
            })
            .map(|(k, s)| {
                let idx = names.iter().position(|n| *n == s.node).unwrap_or(0);
                let (core, slow) = place[idx];
                let shares = place.iter().filter(|p| p.0 == core).count() > 1;
                format!(
                    "stage {k} ({}, units {}..{}): {}{}",
                    s.node,
                    s.l,
                    s.r,
                    if slow > 1.0 {
                        format!("emulated slowdown x{slow}, ")
                    } else {
                        String::new()
                    },
                    if !pinned {
                        "unpinned (no taskset)".to_owned()
                    } else if shares {
                        format!("shares core {core} with an emulated slower node")
                    } else {
                        format!("alone on core {core}")
                    }
                )
            })
            .unwrap_or_default();
        let max_overhead_share = stage.iter().map(|s| s.overhead_share).fold(0.0, f64::max);
        let max_wall_overhead_share = stage
            .iter()
            .map(|s| s.wall_overhead_share)
            .fold(0.0, f64::max);
        let slowest = stage.iter().map(|s| s.compute_s).fold(0.0, f64::max);
        let measured_bottleneck = args.ubatch as f64 / slowest.max(1e-9);
        Ok(RunFigures {
            nodes,
            stages: plan.stages.len(),
            cores,
            pinned,
            bottleneck,
            predicted_items_per_s: plan.predicted_items_per_s,
            measured_items_per_s: measured,
            ratio_to_bound: measured / plan.predicted_items_per_s,
            measured_bottleneck_items_per_s: measured_bottleneck,
            ratio_to_measured_bottleneck: measured / measured_bottleneck,
            latency_p50_s: percentile(&latencies, 50.0),
            max_overhead_share,
            max_wall_overhead_share,
            stage,
        })
    })();
    if let Err(e) = session.close().wait() {
        tracing::warn!("closing the zenoh session: {e}");
    }
    drop(fleet);
    result
}

pub fn run(args: Args) -> Result<()> {
    if args.stages.iter().any(|&n| n < 2) {
        bail!(
            "--stages: pipelines of 2 or more nodes, got {:?}",
            args.stages
        );
    }
    if args.microbatches < 2 || args.window == 0 || args.ubatch == 0 {
        bail!("--microbatches must be >= 2, --window and --ubatch >= 1");
    }
    if args.shared_core_slowdown.is_nan() || args.shared_core_slowdown < 1.0 {
        bail!("--shared-core-slowdown must be >= 1");
    }
    let work = tempfile::tempdir()?;
    // One folder for every node: same seed, same weights.
    let model = work.path().join(&args.preset);
    export_preset(
        &args.preset,
        quantpipe_model_shards::DEFAULT_PRESET_SEED,
        &model,
    )
    .with_context(|| format!("exporting preset {}", args.preset))?;
    // The core no emulated node shares: the last one (round-robin fills the first cores twice).
    let cores = cores();
    let core = have_taskset().then_some(cores - 1);
    let profile = measure_profile(&model, args.ubatch, core, work.path())?;
    let mut runs = Vec::new();
    for &n in &args.stages {
        runs.push(
            run_one(&args, &model, &profile, n, work.path())
                .with_context(|| format!("{n} nodes"))?,
        );
    }
    let report = Report {
        preset: args.preset.clone(),
        ubatch: args.ubatch,
        bits: 32,
        microbatches: args.microbatches,
        warmup: args.warmup,
        window: args.window,
        goal_ratio_to_bound: 0.9,
        goal_max_overhead_share: 0.05,
        runs,
    };
    super::print(&report, args.json, |r| {
        let mut out = format!("{} ubatch {} at 32 bits\n", r.preset, r.ubatch);
        for run in &r.runs {
            out += &format!(
                "{} nodes, {} stages: {:.2} items/s measured, {:.2} predicted bound ({:.0}%), \
                 {:.0}% of the measured slowest stage; overhead up to {:.1}% of forward CPU \
                 ({:.1}% wall-clock); bottleneck {}\n",
                run.nodes,
                run.stages,
                run.measured_items_per_s,
                run.predicted_items_per_s,
                run.ratio_to_bound * 100.0,
                run.ratio_to_measured_bottleneck * 100.0,
                run.max_overhead_share * 100.0,
                run.max_wall_overhead_share * 100.0,
                run.bottleneck
            );
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::placement;

    #[test]
    fn nodes_get_their_own_core_until_they_must_share_and_sharers_are_slowed() {
        assert_eq!(placement(2, 2, 3.0), vec![(0, 1.0), (1, 1.0)]);
        assert_eq!(placement(3, 2, 3.0), vec![(0, 3.0), (1, 1.0), (0, 3.0)]);
        assert_eq!(placement(2, 4, 3.0), vec![(0, 1.0), (1, 1.0)]);
    }
}
