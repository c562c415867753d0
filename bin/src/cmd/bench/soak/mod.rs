//! `quantpipe bench soak`: whether anything piles up over a long run. A 3-stage MiniLM fleet on
//! loopback runs `--microbatches` microbatches from a client in this process (rounds of runs of
//! short texts, window after window); every `--replan-every` microbatches one device leaves
//! (killed) and rejoins (started again), so the leader re-plans twice. Every process's resident
//! memory, threads and descriptors are sampled from `/proc`, and each node's zenoh declarations
//! from its stats, before and after every re-plan.
//!
//! With `--flood SECONDS` it is an overload run instead: the client sends as fast as its window
//! lets for that long with no re-plan, and the report shows what each node queued at most.

mod client;
mod fleet;
mod judge;

use anyhow::{Context, Result};
use client::Progress;
use fleet::{SoakFleet, CHURNING, STAYING};
use judge::Counts;
use quantpipe_launcher::proc_sample::ProcSample;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A sentence-embedding model folder (Hugging Face layout).
    #[arg(long, default_value = "data/minilm")]
    model_dir: PathBuf,
    /// Microbatches the client runs.
    #[arg(long, default_value_t = 10_000)]
    microbatches: u64,
    /// A device leaves and rejoins every this many microbatches (0: never).
    #[arg(long, default_value_t = 1_000)]
    replan_every: u64,
    /// Microbatches answered before the warm-up sample (after the first re-plan by default, so
    /// that what a re-plan allocates once is in it).
    #[arg(long, default_value_t = 1_500)]
    warmup: u64,
    /// Overload run instead: send as fast as the window lets for this many seconds, no re-plan.
    #[arg(long)]
    flood: Option<f64>,
    #[arg(long, default_value_t = 2)]
    ubatch: usize,
    /// Microbatches in flight.
    #[arg(long, default_value_t = 4)]
    window: usize,
    #[arg(long, default_value_t = 8)]
    bits: u8,
    /// Seconds between samples of the processes.
    #[arg(long, default_value_t = 15.0)]
    sample_every_s: f64,
    /// Resident memory growth after warm-up the soak holds to, percent.
    #[arg(long, default_value_t = 5.0)]
    growth_limit_pct: f64,
    /// Where the fleet's configs and logs go (default: a temporary folder).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

/// One sample of every process.
#[derive(Serialize)]
struct Sample {
    t_s: f64,
    microbatches: u64,
    processes: BTreeMap<String, ProcSample>,
}

/// A process's resident memory at warm-up and at the end.
#[derive(Serialize)]
struct Growth {
    process: String,
    warm_rss_mb: f64,
    end_rss_mb: f64,
    growth_pct: f64,
    warm: ProcSample,
    end: ProcSample,
    /// False for the device restarted at every re-plan (each incarnation starts afresh).
    judged: bool,
}

/// One node's declarations around a re-plan cycle.
#[derive(Serialize)]
struct NodeCounts {
    node: String,
    before: Option<Counts>,
    /// With the leaving device out of the plan.
    during: Option<Counts>,
    after: Option<Counts>,
    returned: bool,
}

/// A device leaving and rejoining: two re-plans.
#[derive(Serialize)]
struct Replan {
    at_microbatch: u64,
    epochs: [u64; 3],
    leave_to_plan_s: f64,
    join_to_plan_s: f64,
    nodes: Vec<NodeCounts>,
    returned: bool,
}

/// What each stage node queued at most (overload).
#[derive(Serialize)]
struct Queues {
    node: String,
    stage: Option<u32>,
    queued_high_water: u64,
    link_in_flight_high_water: u64,
    refused_overloaded: u64,
}

#[derive(Serialize)]
struct Report {
    model: String,
    ubatch: usize,
    window: usize,
    bits: u8,
    microbatches: u64,
    items: u64,
    elapsed_s: f64,
    microbatches_per_s: f64,
    /// Microbatches sent again after a re-plan.
    resent: u64,
    flood_s: Option<f64>,
    warmup_microbatches: u64,
    growth_limit_pct: f64,
    growth: Vec<Growth>,
    memory_holds: bool,
    replans: Vec<Replan>,
    counts_return: bool,
    queues: Vec<Queues>,
    /// Whether no node ever queued more than the window (overload runs only: while a re-plan
    /// drains, a stage holds the old epoch's microbatches beside their re-sent copies).
    queues_within_window: Option<bool>,
    samples: Vec<Sample>,
}

pub fn run(args: Args) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = args.out.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    eprintln!(
        "starting a 3-stage MiniLM fleet (logs in {})",
        dir.display()
    );
    let mut fleet = SoakFleet::start(&args.model_dir, &dir, args.ubatch, args.bits)?;
    let flood = args.flood.map(Duration::from_secs_f64);
    let total = match flood {
        Some(_) => u64::MAX,
        None => args.microbatches,
    };
    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    let client = client::spawn(
        fleet.session.clone(),
        fleet.keys.clone(),
        fleet.client_settings(args.window),
        args.ubatch,
        total,
        progress.clone(),
    );
    let replan_every = if flood.is_some() {
        0
    } else {
        args.replan_every
    };
    let warmup = args.warmup;
    let mut next_replan = replan_every;
    let mut warm = None;
    let mut samples = Vec::new();
    let mut replans = Vec::new();
    let mut next_sample = Instant::now();
    let every = Duration::from_secs_f64(args.sample_every_s);
    while !client.is_finished() {
        let done = progress.answered();
        if flood.is_some_and(|f| started.elapsed() >= f) {
            progress.stop();
        }
        if warm.is_none() && done >= warmup {
            warm = Some(fleet.processes());
        }
        if replan_every > 0 && done >= next_replan && next_replan < total {
            let r = replan(&mut fleet, &progress, args.window as u64)?;
            eprintln!(
                "re-plan at microbatch {}: epochs {:?}, leave {:.1} s, join {:.1} s, declarations returned: {}",
                r.at_microbatch, r.epochs, r.leave_to_plan_s, r.join_to_plan_s, r.returned
            );
            replans.push(r);
            next_replan += replan_every;
        }
        if Instant::now() >= next_sample {
            let s = Sample {
                t_s: started.elapsed().as_secs_f64(),
                microbatches: progress.answered(),
                processes: fleet.processes(),
            };
            eprintln!("{}", sample_line(&s));
            samples.push(s);
            next_sample = Instant::now() + every;
        }
        fleet.nodes.check()?;
        std::thread::sleep(Duration::from_millis(200));
    }
    client
        .join()
        .map_err(|_| anyhow::anyhow!("the client thread panicked"))??;
    let elapsed_s = started.elapsed().as_secs_f64();
    let end = fleet.processes();
    let stats = fleet.stats();
    let warm = warm.unwrap_or_default();
    let growth: Vec<Growth> = end
        .iter()
        .filter_map(|(name, e)| {
            let w = warm.get(name)?;
            Some(Growth {
                process: name.clone(),
                warm_rss_mb: w.rss_bytes as f64 / 1e6,
                end_rss_mb: e.rss_bytes as f64 / 1e6,
                growth_pct: judge::growth_pct(w.rss_bytes, e.rss_bytes),
                warm: *w,
                end: *e,
                judged: name != CHURNING || replans.is_empty(),
            })
        })
        .collect();
    let judged: Vec<f64> = growth
        .iter()
        .filter(|g| g.judged)
        .map(|g| g.growth_pct)
        .collect();
    let queues: Vec<Queues> = stats
        .values()
        .map(|s| Queues {
            node: s.node.clone(),
            stage: s.stage,
            queued_high_water: s.queued_high_water,
            link_in_flight_high_water: s.link_in_flight_high_water,
            refused_overloaded: s.refused.get("overloaded").copied().unwrap_or(0),
        })
        .collect();
    let window = args.window as u64;
    let microbatches = progress.answered();
    let report = Report {
        model: args.model_dir.display().to_string(),
        ubatch: args.ubatch,
        window: args.window,
        bits: args.bits,
        microbatches,
        items: microbatches * args.ubatch as u64,
        elapsed_s,
        microbatches_per_s: microbatches as f64 / elapsed_s,
        resent: progress.resent(),
        flood_s: args.flood,
        warmup_microbatches: warmup,
        growth_limit_pct: args.growth_limit_pct,
        memory_holds: judge::memory_holds(&judged, args.growth_limit_pct),
        growth,
        counts_return: replans.iter().all(|r| r.returned),
        replans,
        queues_within_window: flood.is_some().then(|| {
            queues
                .iter()
                .all(|q| judge::within_window(q.queued_high_water, window))
        }),
        queues,
        samples,
    };
    super::print(&report, args.json, human)
}

/// A device leaves (killed) and rejoins (started again): each node's declarations before,
/// with the device out of the plan, and once the client runs under the plan with it again.
fn replan(fleet: &mut SoakFleet, progress: &Progress, window: u64) -> Result<Replan> {
    let at_microbatch = progress.answered();
    let before = fleet.counts();
    let first = fleet
        .wait_for_plan(Duration::from_secs(30), |_| true)?
        .epoch;
    let t = Instant::now();
    fleet.nodes.procs().kill(CHURNING)?;
    let out = fleet.wait_for_plan(Duration::from_secs(60), |p| {
        p.epoch > first && p.stages.iter().all(|s| s.node != CHURNING)
    })?;
    let leave_to_plan_s = t.elapsed().as_secs_f64();
    let during = fleet.counts();
    let t = Instant::now();
    fleet.start_device(CHURNING)?;
    let back = fleet.wait_for_plan(Duration::from_secs(120), |p| {
        p.epoch > out.epoch && p.stages.iter().any(|s| s.node == CHURNING)
    })?;
    let join_to_plan_s = t.elapsed().as_secs_f64();
    // Declarations are read once the client runs under the new plan.
    let answered = progress.answered();
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress.answered() < answered + 2 * window
        && Instant::now() < deadline
        && !progress.finished()
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = fleet.counts();
    let nodes: Vec<NodeCounts> = STAYING
        .iter()
        .chain([&CHURNING])
        .map(|name| {
            let (b, a) = (before.get(*name).copied(), after.get(*name).copied());
            NodeCounts {
                node: name.to_string(),
                before: b,
                during: during.get(*name).copied(),
                after: a,
                returned: judge::returned(b, a),
            }
        })
        .collect();
    Ok(Replan {
        at_microbatch,
        epochs: [first, out.epoch, back.epoch],
        leave_to_plan_s,
        join_to_plan_s,
        returned: nodes.iter().all(|n| n.returned),
        nodes,
    })
}

fn sample_line(s: &Sample) -> String {
    let procs: Vec<String> = s
        .processes
        .iter()
        .map(|(n, p)| {
            format!(
                "{n} {:.0} MB/{}t/{}fd",
                p.rss_bytes as f64 / 1e6,
                p.threads,
                p.fds
            )
        })
        .collect();
    format!(
        "{:>6.0} s {:>6} microbatches: {}",
        s.t_s,
        s.microbatches,
        procs.join(", ")
    )
}

fn human(r: &Report) -> String {
    let mut lines = vec![format!(
        "{} microbatches of {} ({} items) in {:.0} s ({:.1} microbatches/s), window {}, {} bits, {} resent",
        r.microbatches, r.ubatch, r.items, r.elapsed_s, r.microbatches_per_s, r.window, r.bits, r.resent
    )];
    lines.push(format!(
        "resident memory after warm-up ({} microbatches), limit {}%:",
        r.warmup_microbatches, r.growth_limit_pct
    ));
    for g in &r.growth {
        lines.push(format!(
            "  {:<8} {:>7.1} -> {:>7.1} MB  {:+.2}%  threads {} -> {}, fds {} -> {}{}",
            g.process,
            g.warm_rss_mb,
            g.end_rss_mb,
            g.growth_pct,
            g.warm.threads,
            g.end.threads,
            g.warm.fds,
            g.end.fds,
            if g.judged {
                ""
            } else {
                "  (restarted at each re-plan: not judged)"
            }
        ));
    }
    lines.push(format!("memory holds: {}", r.memory_holds));
    for p in &r.replans {
        let nodes: Vec<String> = p
            .nodes
            .iter()
            .map(|n| {
                let c = |c: &Option<Counts>| match c {
                    Some(c) => format!(
                        "{}s/{}q/{}t",
                        c.subscribers, c.queryables, c.liveliness_tokens
                    ),
                    None => "-".into(),
                };
                format!(
                    "{} {} > {} > {}",
                    n.node,
                    c(&n.before),
                    c(&n.during),
                    c(&n.after)
                )
            })
            .collect();
        lines.push(format!(
            "re-plan @{:>5} epochs {:?} ({:.1} s / {:.1} s): {}{}",
            p.at_microbatch,
            p.epochs,
            p.leave_to_plan_s,
            p.join_to_plan_s,
            nodes.join("; "),
            if p.returned { "" } else { "  NOT RETURNED" }
        ));
    }
    if !r.replans.is_empty() {
        lines.push(format!(
            "declarations back to their values after every re-plan: {}",
            r.counts_return
        ));
    }
    for q in &r.queues {
        lines.push(format!(
            "  {:<8} stage {:?}: queued at most {} (window {}), link in flight at most {}, refused overloaded {}",
            q.node, q.stage, q.queued_high_water, r.window, q.link_in_flight_high_water, q.refused_overloaded
        ));
    }
    if let Some(within) = r.queues_within_window {
        lines.push(format!("queues within the window: {within}"));
    }
    lines.join("\n")
}
