//! `quantpipe node`: one device of the fleet (and, when configured, its leader).
//!
//! Start-up, in order: profile the local model (or read the profile file), open the zenoh
//! session, start the actors (StageActor on the arbiter; ForwardWorker, QuantizerActor and
//! TransportActor on SyncArbiter threads; BandwidthProbeActor), declare the device-info,
//! assignment and stats queryables, then the liveliness token `qp/<fleet>/node/<name>`, and, on a
//! configured leader, ask the PlannerActor to plan; it then re-plans as tokens come and go. A
//! `candidate` also declares `qp/<fleet>/candidate/<name>` and starts the PlannerActor when it is
//! elected leader (see [`crate::runtime::election`]). The node runs until SIGINT or SIGTERM, or
//! until the leader it hosts fails to make its first plan or cannot restart its planner (an
//! error the command turns into its exit status).
//!
//! A worker that panics restarts with fresh state ([`crate::runtime::supervision`]); when one
//! cannot, the node drops its liveliness token, so the leader plans around it, and logs why. It
//! keeps answering its stats (`worker_restarts` shows the restarts) until it is stopped.

use crate::runtime::config::{Role, Settings};
use crate::runtime::declarations::{Counted, Kind};
use crate::runtime::election::{watch_tokens, Leadership};
use crate::runtime::emulation::Pacing;
use crate::runtime::forward_worker::ForwardWorker;
use crate::runtime::planner_actor::{start_leading, until_leader_fails};
use crate::runtime::probe::BandwidthProbeActor;
use crate::runtime::quantizer::QuantizerActor;
use crate::runtime::stage::{ReleaseQuery, StageActor, StatsQuery};
use crate::runtime::supervision::WorkerHealth;
use crate::runtime::transport::TransportActor;
use actix::prelude::*;
use anyhow::{anyhow, Context as _, Result};
use quantpipe_messages::DecodeLimits;
use quantpipe_messages::{envelope, DeviceInfo, Keys, UnitTimes};
use quantpipe_model_shards::profile::profile_model;
use quantpipe_model_shards::ModelSource;
use serde::Deserialize;
use std::path::Path;
use zenoh::Wait;

/// The JSON `quantpipe profile --json` prints (the fields a node needs).
#[derive(Deserialize)]
struct ProfileFile {
    model: String,
    ubatch: usize,
    input_elements: u64,
    units: Vec<ProfileUnit>,
}

#[derive(Deserialize)]
struct ProfileUnit {
    time_s: f64,
    weight_bytes: u64,
    output_elements: u64,
}

/// This node's per-unit profile: from `device.profile_file`, or measured now; times scaled by
/// the emulated slowdown.
pub fn node_profile(settings: &Settings, source: &ModelSource) -> Result<UnitTimes> {
    let d = &settings.device;
    let mut p = match &d.profile_file {
        Some(path) => read_profile(path)?,
        None => {
            tracing::info!(
                "{}: profiling {} at microbatch {} on {} thread(s)",
                settings.name,
                source.name(),
                d.profile_ubatch,
                d.threads
            );
            let p = tch::no_grad(|| profile_model(source, d.profile_ubatch, 1, d.profile_repeats))?;
            UnitTimes {
                model: p.model,
                ubatch: p.ubatch,
                input_elements: p.input_elements as u64,
                time_s: p.units.iter().map(|u| u.time_s).collect(),
                weight_bytes: p.units.iter().map(|u| u.weight_bytes as u64).collect(),
                output_elements: p.units.iter().map(|u| u.output_elements as u64).collect(),
            }
        }
    };
    // The model name is the local folder's, whatever the file says, so nodes with the same
    // folder name agree.
    p.model = source.name();
    for t in &mut p.time_s {
        *t *= d.slowdown;
    }
    Ok(p)
}

/// The profile of a node whose folder lacks the model file: it gets its shard's weights from
/// peers once assigned, so it cannot measure the model before it is planned in. It plans with
/// the profile file of its settings (`device.profile_file`: `quantpipe profile --json`
/// measured on a device of its type, or on the leader), scaled by its slowdown like a measured
/// one, under its folder's name as the model's name (as nodes holding the model do).
fn profile_without_weights(settings: &Settings) -> Result<UnitTimes> {
    let d = &settings.device;
    let dir = &settings.model_dir;
    let path = d.profile_file.as_ref().ok_or_else(|| {
        anyhow!(
            "{} holds no model.safetensors, so this node fetches its shard from peers and \
             cannot profile the model: set device.profile_file",
            dir.display()
        )
    })?;
    let mut p = read_profile(path)?;
    p.model = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    for t in &mut p.time_s {
        *t *= d.slowdown;
    }
    tracing::info!(
        "{}: no model file in {}: planned with the profile {} (weights fetched when assigned)",
        settings.name,
        dir.display(),
        path.display()
    );
    Ok(p)
}

fn read_profile(path: &Path) -> Result<UnitTimes> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading profile {}", path.display()))?;
    let f: ProfileFile = serde_json::from_str(&text).with_context(|| {
        format!(
            "profile {} (expected `quantpipe profile --json` output)",
            path.display()
        )
    })?;
    Ok(UnitTimes {
        model: f.model,
        ubatch: f.ubatch,
        input_elements: f.input_elements,
        time_s: f.units.iter().map(|u| u.time_s).collect(),
        weight_bytes: f.units.iter().map(|u| u.weight_bytes).collect(),
        output_elements: f.units.iter().map(|u| u.output_elements).collect(),
    })
}

/// A queryable on `key` that hands each query, with its payload, to the StageActor as the
/// message `wrap` makes (the callback never waits: the actor answers the query).
fn forward_queries<M>(
    session: &zenoh::Session,
    key: String,
    stage: Addr<StageActor>,
    wrap: fn(Vec<u8>, zenoh::query::Query) -> M,
) -> Result<Counted<zenoh::query::Queryable<()>>>
where
    M: Message<Result = ()> + Send + 'static,
    StageActor: Handler<M>,
{
    session
        .declare_queryable(key.clone())
        .callback(move |query| {
            let bytes = query
                .payload()
                .map(|p| p.to_bytes().into_owned())
                .unwrap_or_default();
            stage.do_send(wrap(bytes, query));
        })
        .wait()
        .map(|q| Counted::node(q, Kind::Queryable))
        .map_err(|e| anyhow!("declaring the queryable {key}: {e}"))
}

/// This node's device info and the pacing an emulated device follows, when it hosts a stage.
fn device_info(settings: &Settings) -> Result<(DeviceInfo, Pacing)> {
    let profile = match settings.model_dir.join("model.safetensors").is_file() {
        true => {
            let source = ModelSource::open_dir(&settings.model_dir).with_context(|| {
                format!("opening model folder {}", settings.model_dir.display())
            })?;
            node_profile(settings, &source)?
        }
        false => profile_without_weights(settings)?,
    };
    // The profile (scaled by the slowdown) an emulated device paces its forward passes by.
    let pacing = Pacing {
        unit_times_s: profile.time_s.clone(),
        ubatch: profile.ubatch,
    };
    let info = DeviceInfo {
        name: settings.name.clone(),
        device_type: settings.device_type(),
        mem_bytes: (settings.device.mem_mb * 1024.0 * 1024.0) as u64,
        threads: settings.device.threads,
        slowdown: settings.device.slowdown,
        bw_mbps: settings.device.bw_mbps,
        profile,
    };
    Ok((info, pacing))
}

/// Starts a stage's actors: the StageActor on the current arbiter; the ForwardWorker,
/// QuantizerActor and two TransportActors (tensors, and control traffic that must never wait
/// behind a blocked tensor put) on SyncArbiter threads; the BandwidthProbeActor.
fn start_stage(
    settings: &Settings,
    session: &zenoh::Session,
    pacing: Pacing,
) -> Result<Addr<StageActor>> {
    let clip = settings.quantizer.clip_method()?;
    let metrics = match &settings.metrics.file {
        Some(path) => Some(crate::runtime::metrics::MetricsWriter::open(path)?),
        None => None,
    };
    let probe = BandwidthProbeActor::default().start();
    let pacer = match &settings.emulation.link_trace {
        Some(path) => Some(crate::runtime::link_pacing::LinkPacer::open(path)?),
        None => None,
    };
    let transport = {
        let (s, p) = (session.clone(), probe.clone());
        SyncArbiter::start(1, move || {
            TransportActor::new(s.clone(), p.clone()).with_pacer(pacer.clone())
        })
    };
    let control = {
        let (s, p) = (session.clone(), probe.clone());
        SyncArbiter::start(1, move || TransportActor::new(s.clone(), p.clone()))
    };
    let (model_dir, slowdown) = (settings.model_dir.clone(), settings.device.slowdown);
    let threads = settings.device.threads;
    let (faults, health) = (settings.faults.clone(), WorkerHealth::node());
    let forward = {
        let (faults, health) = (faults.clone(), health.clone());
        SyncArbiter::start(1, move || {
            tch::set_num_threads(threads);
            ForwardWorker::new(model_dir.clone(), slowdown, Some(pacing.clone()))
                .with_supervision(faults.clone(), health.clone())
        })
    };
    // One thread: the outgoing link's policy state lives in the actor.
    let quant = SyncArbiter::start(1, move || {
        QuantizerActor::new(clip, DecodeLimits::default())
            .with_supervision(faults.clone(), health.clone())
    });
    let keys = Keys::new(&settings.fleet);
    let stage = StageActor::new(
        keys,
        settings.name.clone(),
        forward,
        quant,
        transport,
        probe,
        settings.quantizer.clone(),
    )
    .with_control_transport(control)
    .with_model_dir(settings.model_dir.clone());
    Ok(match metrics {
        Some(writer) => stage.with_metrics(writer, settings.metrics.window_s),
        None => stage,
    }
    .start())
}

/// The queryables of a stage's node: device info (answered from `info`), assignments,
/// releases and stats (handed to the StageActor). Declared outside the arbiter (zenoh's blocking
/// calls refuse to run on a current-thread runtime); their callbacks only hand the query on.
fn declare_stage_queryables(
    session: &zenoh::Session,
    keys: &Keys,
    name: &str,
    stage: &Addr<StageActor>,
    info: &DeviceInfo,
    model_dir: &Path,
) -> Result<Vec<Counted<zenoh::query::Queryable<()>>>> {
    let bytes = envelope::encode(&keys.fleet, info);
    let device = session
        .declare_queryable(keys.device(name))
        .callback(move |q| {
            let key = q.key_expr().clone();
            if let Err(e) = q.reply(key, bytes.clone()).wait() {
                tracing::warn!("answering a device query: {e}");
            }
        })
        .wait()
        .map(|q| Counted::node(q, Kind::Queryable))
        .map_err(|e| anyhow!("declaring the device queryable: {e}"))?;
    // Assignments reach the stage once the folder holds their shard's weights.
    let assign = crate::runtime::weights::gate::declare_assign_queryable(
        session,
        keys,
        name,
        model_dir.to_owned(),
        stage.clone(),
    )?;
    let release = forward_queries(
        session,
        keys.release(name),
        stage.clone(),
        |bytes, query| ReleaseQuery { bytes, query },
    )?;
    let s = stage.clone();
    let stats = session
        .declare_queryable(keys.stats(name))
        .callback(move |query| s.do_send(StatsQuery { query }))
        .wait()
        .map(|q| Counted::node(q, Kind::Queryable))
        .map_err(|e| anyhow!("declaring the stats queryable: {e}"))?;
    Ok(vec![device, assign, release, stats])
}

/// A liveliness token on `key`.
fn declare_token(
    session: &zenoh::Session,
    key: String,
) -> Result<Counted<zenoh::liveliness::LivelinessToken>> {
    session
        .liveliness()
        .declare_token(key.clone())
        .wait()
        .map(|t| Counted::node(t, Kind::LivelinessToken))
        .map_err(|e| anyhow!("declaring the liveliness token {key}: {e}"))
}

/// Runs a node until SIGINT/SIGTERM, or until the leader it hosts cannot make its first plan.
pub fn run_node(settings: Settings) -> Result<()> {
    if !crate::runtime::heap::keep_freed_buffers() {
        tracing::warn!(
            "the allocator refused its thresholds: large buffers are mapped afresh per microbatch"
        );
    }
    tch::set_num_threads(settings.device.threads);
    settings.faults.warn_if_set(&settings.name);
    let keys = Keys::new(&settings.fleet);
    let stage_info = match settings.role.hosts_stage() {
        true => Some(device_info(&settings)?),
        false => None,
    };
    let session = zenoh::open(settings.zenoh_config()?)
        .wait()
        .map_err(|e| anyhow!("opening the zenoh session: {e}"))?;

    let system = actix::System::new();
    let (stage, leadership) = system.block_on(async {
        let stage = match stage_info.as_ref() {
            Some((_, pacing)) => Some(start_stage(&settings, &session, pacing.clone())?),
            None => None,
        };
        let leadership = (settings.role == Role::Candidate).then(|| {
            let (me, leader) = (settings.name.clone(), settings.leader.clone());
            Leadership::new(session.clone(), keys.clone(), me, leader).start()
        });
        Ok::<_, anyhow::Error>((stage, leadership))
    })?;
    let queryables = match (&stage, &stage_info) {
        (Some(stage), Some((info, _))) => declare_stage_queryables(
            &session,
            &keys,
            &settings.name,
            stage,
            info,
            &settings.model_dir,
        )?,
        _ => Vec::new(),
    };
    // A node holding the model file serves it to peers that lack their shard's tensors, and
    // digests it for the assignments it may send as leader.
    let weights = crate::runtime::weights::serve::declare_if_held(
        &session,
        &keys,
        &settings.name,
        &settings.model_dir,
        settings.faults.serve_tampered_weights,
    )?;
    if weights.is_some() {
        crate::runtime::weights::hold_model(&settings.model_dir);
    }
    // The token goes up last: a node the leader sees alive answers its device info and takes
    // assignments, so a node joining after the first plan can be planned in at once.
    let token = declare_token(&session, keys.node(&settings.name))?;
    let d = &settings.device;
    let (name, fleet, role) = (&settings.name, &settings.fleet, settings.role);
    tracing::info!(
        "node {name} up in fleet {fleet} ({role:?}, {} thread(s), emulated slowdown x{})",
        d.threads,
        d.slowdown
    );
    // A candidate's token goes up with the node's: from then on it may be elected.
    let _candidate_token = match &leadership {
        Some(_) => Some(declare_token(&session, keys.candidate(&settings.name))?),
        None => None,
    };
    let _election = match leadership {
        Some(l) => Some(watch_tokens(session.clone(), keys.clone(), l)?),
        None => None,
    };
    // A node that may lead answers `quantpipe status` ([`crate::runtime::status`]).
    let status = match settings.role {
        Role::Device => None,
        role => Some(crate::runtime::status::declare_status(
            &session,
            &keys,
            &settings.name,
            role.is_configured_leader(),
            settings.leader.expected.clone(),
        )?),
    };

    let result = system.block_on(serve(&settings, &session, &keys, token));
    drop(_election);
    drop(status);
    drop(stage);
    drop(queryables);
    drop(weights);
    if let Err(e) = session.close().wait() {
        tracing::warn!("closing the zenoh session: {e}");
    }
    result
}

/// Serves until SIGINT/SIGTERM, hosting the planner for the node's lifetime on a configured
/// leader (its actor owns the plan queryable and the leader token). Holds the node's liveliness
/// `token` until a worker cannot restart.
async fn serve(
    settings: &Settings,
    session: &zenoh::Session,
    keys: &Keys,
    token: Counted<zenoh::liveliness::LivelinessToken>,
) -> Result<()> {
    let _planner = settings.role.is_configured_leader().then(|| {
        let (name, leader) = (settings.name.clone(), settings.leader.clone());
        start_leading(session.clone(), keys.clone(), name, leader)
    });
    let health = WorkerHealth::node();
    until_leader_fails(async {
        tokio::select! {
            r = wait_for_signal() => r,
            r = leave_when_broken(&settings.name, &health, token) => r,
        }
    })
    .await
}

/// Drops the node's liveliness `token` once one of its workers cannot restart, so the leader
/// plans around the node; then waits forever (the node still answers its stats).
async fn leave_when_broken(
    name: &str,
    health: &WorkerHealth,
    token: Counted<zenoh::liveliness::LivelinessToken>,
) -> Result<()> {
    let why = health.until_broken().await;
    drop(token);
    tracing::error!(
        "{name} leaves the fleet: liveliness token dropped so the leader plans around it ({why})"
    );
    std::future::pending().await
}

async fn wait_for_signal() -> Result<()> {
    use actix_rt::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        r = actix_rt::signal::ctrl_c() => r.context("waiting for ctrl-c")?,
        _ = term.recv() => {}
    }
    tracing::info!("stopping");
    Ok(())
}
