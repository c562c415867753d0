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
use quantpipe_actors::runtime::client::{node_stats, run_on, Encoded, Inputs};
use quantpipe_actors::runtime::config::Role;
use quantpipe_launcher::{config_file, free_ports, loopback, Fleet, Place};
use quantpipe_messages::clipping::{ClipMethod, ValueKind};
use quantpipe_messages::codec::{self, Clip};
use quantpipe_messages::{Bits, BoundaryPayload};
use quantpipe_messages::{Body, Keys};
use quantpipe_model_shards::presets::export_preset;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use zenoh::Wait;

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

/// `count` copies of one encoded microbatch of `ubatch` items: what the bench streams.
struct Repeated<'a> {
    payload: &'a [u8],
    ubatch: usize,
    count: usize,
}

impl Inputs for Repeated<'_> {
    fn items(&self) -> usize {
        self.ubatch * self.count
    }

    fn cut(&mut self, ubatch: usize) -> Result<usize> {
        if ubatch != self.ubatch {
            bail!(
                "the plan's microbatches hold {ubatch} items, the bench's {}",
                self.ubatch
            );
        }
        Ok(self.count)
    }

    fn items_in(&self, _seq: usize) -> usize {
        self.ubatch
    }

    fn encode(&self, _seq: usize) -> Result<Encoded> {
        Ok(Encoded {
            body: Body::Payload,
            mask: None,
            payload: self.payload.to_vec(),
        })
    }
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
    let ports = free_ports(nodes + 1)?;
    let leader_port = ports[0];
    let names: Vec<String> = (0..nodes).map(|k| format!("n{k}")).collect();
    let node = |name: &str, role: Role, listen: Vec<String>, connect: Vec<String>| {
        config_file::peer(&fleet_name, name, role, model, listen, connect)
    };
    let to_leader = vec![loopback(leader_port)];
    let exe = std::env::current_exe().context("locating the quantpipe binary")?;
    let mut fleet = Fleet::new(&exe, &dir);
    let mut leader = node("leader", Role::Leader, to_leader.clone(), vec![]);
    leader.leader.expected = names.clone();
    leader.leader.wait_s = 600.0;
    leader.leader.ubatch = args.ubatch;
    leader.leader.bits = 32;
    fleet.start(&leader, Place::Here)?;
    for (k, name) in names.iter().enumerate() {
        let (core, slowdown) = place[k];
        let mut device = node(
            name,
            Role::Device,
            vec![loopback(ports[k + 1])],
            to_leader.clone(),
        );
        device.device.threads = 1;
        device.device.slowdown = slowdown;
        // Loopback moves ~1.5 GB/s (DESIGN.md): 10 Gbit/s is its nominal bandwidth.
        device.device.bw_mbps = 10000.0;
        device.device.mem_mb = 8192.0;
        device.device.profile_ubatch = args.ubatch;
        device.device.profile_file = Some(profile.to_path_buf());
        device.quantizer.clip = "naive".into();
        let at = if pinned {
            Place::Core(core)
        } else {
            Place::Here
        };
        fleet.start(&device, at)?;
    }

    // The bench's client streams through the client library.
    let mut client = node("bench", Role::Device, vec![], to_leader);
    client.client.window = args.window;
    client.client.plan_wait_s = 600.0;
    client.client.result_timeout_s = 120.0;
    let keys = Keys::new(&fleet_name);
    let session = zenoh::open(client.zenoh_config()?)
        .wait()
        .map_err(|e| anyhow!("opening the zenoh session: {e}"))?;
    let result = (|| {
        let plan = fleet.wait_for_plan(&session, &keys, Duration::from_secs(600))?;
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
        let stream = |count: usize| {
            let mut inputs = Repeated {
                payload: &payload,
                ubatch: args.ubatch,
                count,
            };
            run_on(&session, &keys, &client, &mut inputs, &mut |_| {})
        };
        let stats_limit = Duration::from_secs(10);
        if args.warmup > 0 {
            stream(args.warmup)?;
        }
        // Counters after the warm-up: the measured run's share is the difference.
        let before = plan
            .stages
            .iter()
            .map(|s| node_stats(&session, &keys, &s.node, stats_limit))
            .collect::<Result<Vec<_>>>()?;
        let run = stream(args.microbatches)?;
        // Steady state: from the first result to the last.
        let span = run.arrivals_s[args.microbatches - 1] - run.arrivals_s[0];
        let measured = ((args.microbatches - 1) * args.ubatch) as f64 / span;

        let mut stage = Vec::new();
        for (k, s) in plan.stages.iter().enumerate() {
            let st = node_stats(&session, &keys, &s.node, stats_limit)?.since(&before[k]);
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
            latency_p50_s: run.latency_p50_s,
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
