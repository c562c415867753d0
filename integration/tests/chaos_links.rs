//! Links that fail the way edge devices' links do, in network namespaces: nothing is closed,
//! packets stop (a lost board, a device out of radio range). Every node runs in its own
//! namespace ([`NetnsFleet`]); the fleet's zenoh lease is [`LEASE_MS`], so a silent node is
//! noticed when its lease expires.
//!
//! - A middle stage's link drops every packet mid-run: the leader sees it leave within a bound
//!   derived from the lease, re-plans over the others, and the run completes.
//!
//! In every case each item is answered exactly once and every output equals single-process
//! inference bitwise (32 bits); each test prints its figures in one `FIGURES` line.

use quantpipe_integration::{minilm_dir, quantpipe_bin, read_outputs, single_process_outputs};
use quantpipe_launcher::netns::LinkFault;
use quantpipe_launcher::netns_fleet::judge::{self, Figures, RunFacts};
use quantpipe_launcher::netns_fleet::{ChaosSpec, NetnsFleet, RunFiles};
use quantpipe_launcher::privilege::root_or_skip;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The fleets' zenoh lease, ms: short enough that a silent node leaves the plan in seconds,
/// long enough that a busy debug build on two shared cores is not dropped for a late
/// keep-alive.
const LEASE_MS: u64 = 3000;
/// Keep-alives per lease: one every 500 ms, so five may be lost before the lease expires.
const KEEP_ALIVE: u32 = 6;
const UBATCH: usize = 4;

/// One fleet at a time: fleets running side by side on two cores would starve each other's
/// keep-alives, and zenoh's runtime in this process lives in one observer's namespace.
static SERIAL: Mutex<()> = Mutex::new(());

/// Longest time from a silent cut to the leader's line that the node left: the lease expires
/// at most one lease after the last message heard, then the leader asks the others' stats and
/// plans (a debug build on a shared machine: a few seconds).
fn detection_bound_s() -> f64 {
    LEASE_MS as f64 / 1000.0 + 4.0
}

fn spec(prefix: &str, slowdown: f64) -> ChaosSpec {
    ChaosSpec {
        prefix: prefix.into(),
        lease_ms: LEASE_MS,
        keep_alive: KEEP_ALIVE,
        ubatch: UBATCH,
        slowdown,
        ..ChaosSpec::default()
    }
}

/// The problems of a finished run (answered once, bitwise exact); panics listing them.
fn assert_exact_once(
    f: &mut NetnsFleet,
    bin: &Path,
    run: &str,
    files: &RunFiles,
    facts: &RunFacts,
) {
    let outputs = read_outputs(&files.outputs);
    let reference = single_process_outputs(
        f.procs(),
        &format!("{run}-infer"),
        bin,
        &minilm_dir(),
        &files.input,
        UBATCH,
    );
    let problems = judge::problems(files.items, facts, &f.log(run), &outputs, &reference);
    assert!(
        problems.is_empty(),
        "{run}: {problems:#?}\nleader:\n{}\n{}",
        f.leader_log(),
        f.logs()
    );
}

#[test]
fn a_middle_stage_cut_off_silently_leaves_the_plan_within_the_lease_and_the_run_completes() {
    let test =
        "a_middle_stage_cut_off_silently_leaves_the_plan_within_the_lease_and_the_run_completes";
    if !root_or_skip(test) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let bin = quantpipe_bin();
    let mut f = NetnsFleet::start(spec("qpcut", 4.0), &bin, &minilm_dir(), dir.path())
        .unwrap_or_else(|e| panic!("{e:#}"));
    let plan = f
        .wait_for_plan(3, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let victim = plan.stages[1].clone();
    let files = f.start_run("run", "client", 0, 80).unwrap();
    f.wait_for_answers("run", 2, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let fault = f.cut(&victim, LinkFault::Loss).unwrap();
    let replanned = f
        .wait_for_plan_after(plan.epoch, 2, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(!replanned.stages.contains(&victim), "{replanned:?}");
    let facts = f
        .finish_run("run", Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let figures = Figures::of(fault, Some(&victim), &f.leader_log(), &facts);
    eprintln!(
        "{} (lease {LEASE_MS} ms, keep-alive x{KEEP_ALIVE}, loss 100% on {victim}'s link; test took {:.0} s)",
        figures.line("silent cut of a middle stage", &facts),
        started.elapsed().as_secs_f64()
    );
    let detect = figures.detect_s.unwrap_or_else(|| {
        panic!(
            "the leader never logged {victim} leaving:\n{}",
            f.leader_log()
        )
    });
    assert!(
        detect <= detection_bound_s(),
        "{victim} left the plan {detect:.2} s after the cut, above the bound of {:.1} s",
        detection_bound_s()
    );
    assert!(
        facts.epochs.len() >= 2,
        "the run never moved to a new epoch: {facts:?}"
    );
    assert_exact_once(&mut f, &bin, "run", &files, &facts);
}
