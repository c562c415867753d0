//! A leader cut off from its stages while they run, in network namespaces ([`NetnsFleet`]):
//! its link goes down without closing anything, for two leases, while a client that still
//! reaches the stages runs.
//!
//! The leader sees its stages' leases expire one by one. What it plans over the ones it still
//! sees cannot be assigned (they are out of reach), and once it has lost every stage of its
//! plan it takes itself for the one cut off and holds its plan (see
//! `quantpipe_actors::runtime::planning::partition`) until it hears every stage again, instead
//! of planning over the first ones back. The stages keep their plan and their links to each
//! other and to the client, so the run goes on under its epoch and completes. Once the link is
//! back the fleet has one plan: the leader's, which every stage in it runs, and a second run
//! completes on it.
//!
//! Each item is answered exactly once and every output equals single-process inference bitwise
//! (32 bits); the test prints its figures in one `FIGURES` line (how long the leader was cut
//! off, the plans it published meanwhile, how long the fleet took to agree again).

use quantpipe_integration::chaos::assert_exact_once;
use quantpipe_integration::{minilm_dir, quantpipe_bin};
use quantpipe_launcher::netns::LinkFault;
use quantpipe_launcher::netns_fleet::judge::{self, Figures};
use quantpipe_launcher::netns_fleet::{ChaosSpec, NetnsFleet};
use quantpipe_launcher::privilege::root_or_skip;
use std::time::{Duration, Instant};

/// The fleet's zenoh lease, ms (as in `chaos_links`): a silent link is noticed in seconds, and a
/// busy debug build on two shared cores is not dropped for a late keep-alive.
const LEASE_MS: u64 = 3000;
/// Keep-alives per lease: one every 500 ms.
const KEEP_ALIVE: u32 = 6;
const UBATCH: usize = 4;
/// Namespace prefix of this file's fleets (other chaos tests may run at the same time).
const PREFIX: &str = "qppart";

/// The leader's log line saying it holds its plan, cut off (see the planner's re-planning).
const HOLDING: &str = "cut off from the fleet: hearing";
/// The leader's log line saying it hears its stages again.
const BACK: &str = "back in touch with the fleet after";

fn spec(slowdown: f64) -> ChaosSpec {
    ChaosSpec {
        prefix: PREFIX.into(),
        lease_ms: LEASE_MS,
        keep_alive: KEEP_ALIVE,
        ubatch: UBATCH,
        slowdown,
        ..ChaosSpec::default()
    }
}

/// Every node of the latest plan runs its epoch and no other node holds a stage: the fleet
/// has one plan.
fn assert_one_plan(f: &mut NetnsFleet, current: &judge::LoggedPlan) {
    // The observer's links form one by one: ask until every stage of the plan answered.
    let deadline = Instant::now() + Duration::from_secs(30);
    let stats = loop {
        let stats = f
            .stats(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{e:#}"));
        let all = current
            .stages
            .iter()
            .all(|n| stats.iter().any(|s| &s.node == n));
        if all || Instant::now() >= deadline {
            break stats;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    for node in &current.stages {
        let s = stats.iter().find(|s| &s.node == node);
        assert_eq!(
            s.map(|s| s.epoch),
            Some(current.epoch),
            "{node} runs the leader's epoch {}: {stats:?}",
            current.epoch
        );
    }
    let strays: Vec<_> = stats
        .iter()
        .filter(|s| s.stage.is_some() && !current.stages.contains(&s.node))
        .collect();
    assert!(strays.is_empty(), "stages outside the plan: {strays:?}");
}

/// Unix seconds of the first line of `log` at or after `from` that contains `text`.
fn first_line_after(log: &str, text: &str, from: f64) -> Option<f64> {
    log.lines()
        .filter(|l| l.contains(text))
        .filter_map(judge::log_unix_s)
        .find(|t| *t >= from)
}

#[test]
fn a_leader_cut_off_from_its_running_stages_leaves_the_run_and_the_plan_alone() {
    let test = "a_leader_cut_off_from_its_running_stages_leaves_the_run_and_the_plan_alone";
    if !root_or_skip(test) {
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let bin = quantpipe_bin();
    let mut f = NetnsFleet::start(spec(4.0), &bin, &minilm_dir(), dir.path())
        .unwrap_or_else(|e| panic!("{e:#}"));
    let plan = f
        .wait_for_plan(3, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let files = f.start_run("run", "client", 0, 200).unwrap();
    f.wait_for_answers("run", 2, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e:#}"));
    // Cut off for two leases: every link to the leader expires on both sides.
    let answered_at_cut = judge::answers(&f.log("run")).len();
    let cut = f.cut("leader", LinkFault::Down).unwrap();
    std::thread::sleep(Duration::from_millis(2 * LEASE_MS + 2000));
    let answered_while_cut = judge::answers(&f.log("run")).len() - answered_at_cut;
    let restored = f.restore("leader", LinkFault::Down).unwrap();
    let facts = f
        .finish_run("run", Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let leader_log = f.leader_log();
    let plans_while_cut = judge::plans(&leader_log)
        .iter()
        .filter(|p| p.unix_s >= cut && p.unix_s <= restored)
        .count();
    assert!(
        answered_while_cut > 0,
        "the stages answered nothing while the leader was cut off\n{}",
        f.log("run")
    );
    let holding_s = first_line_after(&leader_log, HOLDING, cut).map(|t| t - cut);
    assert!(
        holding_s.is_some(),
        "the leader never took itself for cut off:\n{leader_log}"
    );
    assert_eq!(
        plans_while_cut, 0,
        "the leader planned while cut off:\n{leader_log}"
    );
    assert_eq!(
        facts.epochs,
        [plan.epoch],
        "the run left the plan it started on: {facts:?}\n{leader_log}"
    );
    assert_exact_once(&mut f, "run", &files, &facts, UBATCH);

    // Back on the network, the fleet has one plan: the leader's latest, which every stage in
    // it runs and a second run uses from start to end.
    let back = Instant::now();
    let second = f.start_run("after", "client2", 0, 16).unwrap();
    let after = f
        .finish_run("after", Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let second_run_s = back.elapsed().as_secs_f64();
    let leader_log = f.leader_log();
    let current = f.current_plan().expect("the leader logged a plan");
    assert_eq!(after.epochs, [current.epoch], "{after:?}\n{leader_log}");
    assert_exact_once(&mut f, "after", &second, &after, UBATCH);
    assert_one_plan(&mut f, &current);
    // The leader heard its stages again (and re-planned, had they run another plan): the
    // fleet agreed again by the later of the two.
    let heard_again = first_line_after(&leader_log, BACK, restored);
    let replanned_after = judge::plans(&leader_log)
        .iter()
        .map(|p| p.unix_s)
        .filter(|t| *t >= restored)
        .fold(None, |a: Option<f64>, t| Some(a.map_or(t, |a| a.max(t))));
    let converged_s = heard_again
        .into_iter()
        .chain(replanned_after)
        .fold(None, |a: Option<f64>, t| Some(a.map_or(t, |a| a.max(t))))
        .map(|t| t - restored);
    assert!(
        heard_again.is_some(),
        "the leader never said it heard its stages again:\n{leader_log}"
    );
    let figures = Figures {
        detect_s: holding_s,
        ..Figures::of(cut, None, &leader_log, &facts)
    };
    eprintln!(
        "{} (leader cut off {:.1} s, link down; it held plan epoch {} {:.2} s after the cut and \
         published {plans_while_cut} plan(s) meanwhile; {answered_while_cut} microbatches \
         answered meanwhile; the fleet agreed again {} after the return, on epoch {} ({} \
         stage(s)), where a second run of {} items took {second_run_s:.1} s; lease {LEASE_MS} ms; \
         test took {:.0} s)",
        figures.line("leader cut off from its running stages", &facts),
        restored - cut,
        plan.epoch,
        holding_s.unwrap_or(f64::NAN),
        converged_s.map_or("-".to_owned(), |s| format!("{s:.2} s")),
        current.epoch,
        current.stages.len(),
        second.items,
        started.elapsed().as_secs_f64()
    );
}
