//! Processes dying at the worst moments, in MiniLM fleets at 32 bits whose members each run in
//! a network namespace of their own ([`NetnsFleet`]):
//!
//! - a second stage's node killed (SIGKILL) while the leader re-plans around a first one: the
//!   fleet settles on a plan of the survivors and the client's run completes;
//! - a client killed with microbatches in flight and started again under the same name: the new
//!   run completes, the dead run's results reach it only as another run's (its run id differs),
//!   and the stages drain the dead run's work and carry on at their earlier pace;
//! - the gateway (`quantpipe serve`) killed with HTTP requests in flight: its callers get
//!   connection errors at once, not hangs, and once started again it answers like
//!   single-process inference while the stages keep working.
//!
//! In every case every accepted item is answered once, equal to single-process inference, and
//! the test prints its figures (time to detect, time to re-plan or recover, items resent) in
//! one line starting `FIGURES`. They need root (namespaces): elsewhere they say they skip.

use quantpipe_actors::runtime::config::Role;
use quantpipe_actors::runtime::metrics::unix_s;
use quantpipe_integration::chaos::assert_exact_once;
use quantpipe_integration::{minilm_dir, quantpipe_bin, single_process_outputs};
use quantpipe_launcher::minilm::long_texts;
use quantpipe_launcher::netns_fleet::judge::{self, departures, plans, Figures};
use quantpipe_launcher::netns_fleet::{ChaosSpec, NetnsFleet};
use quantpipe_launcher::privilege::root_or_skip;
use quantpipe_launcher::{config_file, Launch, Procs};
use quantpipe_messages::NodeStats;
use std::time::{Duration, Instant};

/// The plan's microbatch size in every fleet here.
const UBATCH: usize = 4;

/// A fleet of `stages` slowed down `slowdown` times, once its leader logged a plan over all.
fn fleet(prefix: &str, stages: &[&str], slowdown: f64, dir: &std::path::Path) -> NetnsFleet {
    let spec = ChaosSpec {
        prefix: prefix.into(),
        stages: stages.iter().map(|s| s.to_string()).collect(),
        ubatch: UBATCH,
        slowdown,
        ..ChaosSpec::default()
    };
    let mut f = NetnsFleet::start(spec, &quantpipe_bin(), &minilm_dir(), dir)
        .unwrap_or_else(|e| panic!("{e:#}"));
    f.wait_for_plan(stages.len(), Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e:#}"));
    f
}

/// Waits (polling every 10 ms) until the leader's log satisfies `ok`, and answers it.
fn wait_leader<T>(
    f: &NetnsFleet,
    what: &str,
    limit: Duration,
    ok: impl Fn(&str) -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(t) = ok(&f.leader_log()) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not in the leader's log within {limit:?}:\n{}",
            f.logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The `--json` report process `run` printed (fields beyond `judge::RunFacts`).
fn report(f: &NetnsFleet, run: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(f.dir().join(format!("{run}.out"))).unwrap();
    serde_json::from_str(text.trim()).expect("run --json")
}

/// The stats of the nodes that run a stage, by name, once every one of `stages` answered.
fn stage_stats(f: &mut NetnsFleet, stages: usize) -> Vec<NodeStats> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats: Vec<NodeStats> = f
            .stats(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e:#}"))
            .into_iter()
            .filter(|s| s.stage.is_some())
            .collect();
        if stats.len() == stages {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "not every stage answered its stats: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The stages' stats once they stopped changing: two answers `quiet` apart agree on every
/// stage's microbatches. A stage counts a microbatch when it is done with it, so `quiet` must
/// exceed the longest a stage takes for one; then no work is left in the fleet.
fn settled_stage_stats(f: &mut NetnsFleet, stages: usize, quiet: Duration) -> Vec<NodeStats> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let counts = |s: &[NodeStats]| s.iter().map(|n| n.microbatches).collect::<Vec<_>>();
    let mut last = stage_stats(f, stages);
    loop {
        std::thread::sleep(quiet);
        let now = stage_stats(f, stages);
        if counts(&now) == counts(&last) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the stages kept working for a minute: {now:?}"
        );
        last = now;
    }
}

#[test]
fn a_second_stage_dying_while_the_leader_replans_settles_on_the_survivors() {
    let test = "a_second_stage_dying_while_the_leader_replans_settles_on_the_survivors";
    if !root_or_skip(test) {
        return;
    }
    const ITEMS: usize = 48;
    let dir = tempfile::tempdir().unwrap();
    let mut f = fleet("qpcp2nd", &["a", "b", "c", "d"], 3.0, dir.path());
    let first_plan = f.current_plan().unwrap();
    let files = f.start_run("run", "client", 0, ITEMS).unwrap();
    f.wait_for_answers("run", 2, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e:#}"));

    // The middle stage dies first: both its neighbours lose it.
    let first = first_plan.stages[1].clone();
    let first_at = unix_s();
    f.kill(&first).unwrap();
    // The hook: the leader logged that it re-plans and is assigning the new plan, which is in
    // force only once it logs the plan at the new epoch.
    let departure = wait_leader(&f, "the re-plan", Duration::from_secs(30), |log| {
        departures(log)
            .into_iter()
            .find(|d| d.nodes.contains(&first))
    });
    let log = f.leader_log();
    assert!(
        !plans(&log).iter().any(|p| p.epoch >= departure.to_epoch),
        "the re-plan to epoch {} was in force before the second kill:\n{log}",
        departure.to_epoch
    );
    let second = first_plan.stages[0].clone();
    let second_at = unix_s();
    f.kill(&second).unwrap();

    let survivors: Vec<String> = first_plan
        .stages
        .iter()
        .filter(|n| **n != first && **n != second)
        .cloned()
        .collect();
    let settled = wait_leader(
        &f,
        "a plan of the survivors",
        Duration::from_secs(90),
        |log| {
            plans(log).pop().filter(|p| {
                p.epoch > first_plan.epoch && p.stages.iter().all(|n| survivors.contains(n))
            })
        },
    );
    let facts = f
        .finish_run("run", Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let mut final_nodes = settled.stages.clone();
    final_nodes.sort();
    assert_eq!(final_nodes, survivors, "{settled:?}");
    assert_eq!(facts.epochs.last(), Some(&settled.epoch), "{facts:?}");
    assert_eq!(
        plans(&f.leader_log()).last().map(|p| p.epoch),
        Some(settled.epoch),
        "the fleet settled on one plan"
    );
    assert_exact_once(&mut f, "run", &files, &facts, UBATCH);
    // The leader saw the second node go too (as a departure from the plan still in force), and
    // re-planned over the survivors without publishing the plan that assigned the dead node.
    let log = f.leader_log();
    assert!(
        departures(&log).iter().any(|d| d.nodes.contains(&second)),
        "{log}"
    );
    let failed_attempts = log.matches("re-planning (attempt").count();

    let figures = Figures::of(first_at, Some(&first), &f.leader_log(), &facts);
    eprintln!(
        "{}; second kill ({second}) {:.2} s into the re-plan to epoch {}, which became \
         epoch {} over {survivors:?} {:.2} s after the first kill ({:.2} s after the \
         second; {failed_attempts} re-plan attempt(s) failed on the way); {} items resent",
        figures.line("second stage dies during a re-plan", &facts),
        second_at - departure.unix_s,
        departure.to_epoch,
        settled.epoch,
        settled.unix_s - first_at,
        settled.unix_s - second_at,
        figures.resent * UBATCH as u64,
    );
}

#[test]
fn a_client_killed_with_microbatches_in_flight_and_started_again_runs_exactly_once() {
    let test = "a_client_killed_with_microbatches_in_flight_and_started_again_runs_exactly_once";
    if !root_or_skip(test) {
        return;
    }
    const ITEMS: usize = 40;
    // Longer than a stage takes for a microbatch (about 0.4 s at this slowdown).
    const QUIET: Duration = Duration::from_millis(1500);
    let microbatches = (ITEMS / UBATCH) as u64;
    let dir = tempfile::tempdir().unwrap();
    let mut f = fleet("qpcpcli", &["a", "b"], 3.0, dir.path());
    let member = f.client_member(0);
    // Listening nowhere, so that a client started again binds nothing its predecessor held.
    let mut client = f.settings("client", Role::Device, member);
    client.zenoh.listen.clear();
    client.client.window = 3;
    client.client.plan_wait_s = 90.0;
    client.client.result_timeout_s = 90.0;
    client.client.stall_s = 3.0;
    let window = client.client.window as u64;
    // A clean run first: the pace the fleet keeps, and the stages' counters before the kill.
    let clean_files = f.start_run_with("clean", &client, member, ITEMS).unwrap();
    let clean = f
        .finish_run("clean", Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_exact_once(&mut f, "clean", &clean_files, &clean, UBATCH);
    let before = settled_stage_stats(&mut f, 2, QUIET);

    f.start_run_with("dead", &client, member, ITEMS).unwrap();
    f.wait_for_answers("dead", 2, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let killed_at = unix_s();
    f.kill("dead").unwrap();
    let answered_before_kill = judge::answers(&f.log("dead")).len() as u64;
    // Started again at once under the same name (the same settings file): the dead run's
    // results still arrive on the name's results key while the new run listens there.
    let files = f.start_run_with("again", &client, member, ITEMS).unwrap();
    let facts = f
        .finish_run("again", Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let recovered_s = unix_s() - killed_at;
    assert_exact_once(&mut f, "again", &files, &facts, UBATCH);
    assert_eq!(facts.resent, 0, "no re-plan, nothing resent: {facts:?}");
    assert_eq!(facts.epochs, clean.epochs, "{facts:?}");

    // What the stages did since the clean run: the new run's microbatches, and those the dead
    // run had sent (answered before the kill, or in flight and drained after it). Nothing is
    // left in them, nothing failed, nothing was taken for another plan's.
    let after = settled_stage_stats(&mut f, 2, QUIET);
    let mut drained = Vec::new();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a.node, b.node);
        let d = a.since(b);
        assert_eq!((d.failed, d.dropped_stale_epoch), (0, 0), "{d:?}");
        let dead_run = d
            .microbatches
            .checked_sub(microbatches)
            .unwrap_or_else(|| panic!("{}: fewer microbatches than the new run's: {d:?}", a.node));
        assert!(
            (answered_before_kill..=answered_before_kill + window).contains(&dead_run),
            "{}: {} microbatches since the clean run, {microbatches} of the new run, \
             {answered_before_kill} answered to the dead one before it died",
            a.node,
            d.microbatches
        );
        drained.push(dead_run - answered_before_kill);
    }
    let again = report(&f, "again");
    let foreign = again["dropped_foreign"].as_u64().unwrap();
    assert!(
        foreign <= *drained.iter().max().unwrap(),
        "results taken for another run's ({foreign}) beyond what the dead run had in flight"
    );
    // Windows and credits came back: the run after the kill kept the clean run's pace (a
    // credit held for a dead run's message would stall a stage for its 30 s timeout).
    let pace = |r: &serde_json::Value| r["items_per_s"].as_f64().unwrap();
    let clean_pace = pace(&report(&f, "clean"));
    assert!(
        pace(&again) >= 0.5 * clean_pace,
        "the run after the kill went at {:.1} items/s, the clean one at {clean_pace:.1}",
        pace(&again)
    );
    eprintln!(
        "FIGURES client killed with microbatches in flight and started again: \
         {answered_before_kill} of {microbatches} microbatches answered before the kill, \
         {drained:?} more drained by the stages after it; the new run under the same name \
         dropped {foreign} result(s) of the dead run as another run's, resent 0 items and \
         answered {ITEMS} items once, bitwise equal to single-process, {recovered_s:.2} s \
         after the kill ({:.1} items/s, clean run {clean_pace:.1})",
        pace(&again)
    );
}

/// What an HTTP request came back with, and when (Unix seconds).
struct Outcome {
    at: f64,
    answer: Result<(u16, serde_json::Value), String>,
}

/// POSTs `body` to `url`: the status and JSON answer, or the transport error.
fn post(url: &str, body: &str) -> Outcome {
    let answer = match ureq::post(url)
        .timeout(Duration::from_secs(120))
        .set("Content-Type", "application/json")
        .send_string(body)
    {
        Ok(r) | Err(ureq::Error::Status(_, r)) => {
            let status = r.status();
            r.into_string()
                .map_err(|e| format!("reading the answer: {e}"))
                .and_then(|t| {
                    serde_json::from_str(&t)
                        .map(|v| (status, v))
                        .map_err(|e| format!("{e}: {t}"))
                })
        }
        Err(e) => Err(e.to_string()),
    };
    Outcome {
        at: unix_s(),
        answer,
    }
}

/// A gauge or counter (`<name>` or `<name>_total`) of the gateway's `/metrics`, 0 when it
/// cannot be read.
fn metric(base: &str, name: &str) -> f64 {
    let Ok(r) = ureq::get(&format!("{base}/metrics"))
        .timeout(Duration::from_secs(5))
        .call()
    else {
        return 0.0;
    };
    let text = r.into_string().unwrap_or_default();
    let total = format!("{name}_total");
    text.lines()
        .find_map(|l| {
            let (key, value) = l.split_once(' ')?;
            (key == name || key == total).then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0.0)
}

/// Microbatches each stage ran, by node, as the gateway's `/metrics` shows the nodes' own stats
/// (the observer's zenoh session is for one test a process: zenoh's threads stay in the first
/// session's namespace).
fn stage_microbatches(base: &str) -> Vec<(String, u64)> {
    let Ok(r) = ureq::get(&format!("{base}/metrics"))
        .timeout(Duration::from_secs(10))
        .call()
    else {
        return Vec::new();
    };
    let text = r.into_string().unwrap_or_default();
    let mut out: Vec<(String, u64)> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("quantpipe_stage_microbatches_total{node=\"")?;
            let (node, rest) = rest.split_once('"')?;
            let count = rest.rsplit_once(' ')?.1.trim().parse().ok()?;
            Some((node.to_owned(), count))
        })
        .collect();
    out.sort();
    out
}

/// [`stage_microbatches`] of `stages` stages once two answers `quiet` apart agree (see
/// [`settled_stage_stats`]), asked from `member`'s namespace.
fn settled_microbatches(
    f: &NetnsFleet,
    member: usize,
    base: &str,
    stages: usize,
    quiet: Duration,
) -> Vec<(String, u64)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let read = || f.net().run_in(member, || stage_microbatches(base));
    let mut last = read();
    loop {
        std::thread::sleep(quiet);
        let now = read();
        if now.len() == stages && now == last {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the stages' microbatches did not settle within a minute: {now:?}"
        );
        last = now;
    }
}

/// Whether the gateway at `base` answers `/v2/health/ready` with 200.
fn ready(base: &str) -> bool {
    ureq::get(&format!("{base}/v2/health/ready"))
        .timeout(Duration::from_secs(5))
        .call()
        .is_ok_and(|r| r.status() == 200)
}

fn embedding(answer: &serde_json::Value) -> Vec<f32> {
    serde_json::from_value(answer["data"][0]["embedding"].clone())
        .unwrap_or_else(|e| panic!("no embedding in {answer}: {e}"))
}

/// Panics unless `got` is within 1e-5 of `want` in every value (the gateway pads items to
/// their microbatch's longest; the reference runs each alone).
fn assert_close(i: usize, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "item {i}: length");
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= 1e-5,
        "item {i}: differs from single-process by {worst}"
    );
}

/// Sends every text as its own request at once, from `member`'s namespace; while they are in
/// flight, `during` runs once.
fn post_all(
    f: &NetnsFleet,
    member: usize,
    url: &str,
    texts: &[String],
    during: impl FnOnce() + Send,
) -> Vec<Outcome> {
    let body = |t: &str| serde_json::json!({"model": "minilm", "input": t}).to_string();
    // Threads started by a thread inside a namespace are inside it too.
    f.net().run_in(member, || {
        std::thread::scope(|s| {
            let handles: Vec<_> = texts
                .iter()
                .map(|t| {
                    let body = body(t);
                    s.spawn(move || post(url, &body))
                })
                .collect();
            during();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    })
}

#[test]
fn a_gateway_killed_with_requests_in_flight_fails_them_at_once_and_serves_after_a_restart() {
    let test =
        "a_gateway_killed_with_requests_in_flight_fails_them_at_once_and_serves_after_a_restart";
    if !root_or_skip(test) {
        return;
    }
    const REQUESTS: usize = 16;
    // Longer than a stage takes for a microbatch (about 1.2 s at this slowdown).
    const QUIET: Duration = Duration::from_secs(3);
    let bin = quantpipe_bin();
    let dir = tempfile::tempdir().unwrap();
    let mut f = fleet("qpcpgw", &["a", "b"], 10.0, dir.path());
    // The gateway runs in the client member; requests come from the observer's namespace.
    let member = f.client_member(0);
    let observer = f.net().len() - 1;
    let mut s = f.settings("gateway", Role::Device, member);
    // Listening nowhere on zenoh, so that the gateway started again binds nothing it held.
    s.zenoh.listen.clear();
    s.client.window = 2;
    s.client.plan_wait_s = 90.0;
    let config = config_file::write(f.dir(), &s).unwrap();
    let listen = format!("{}:8080", f.net().addr(member));
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[gateway]\nlisten = \"{listen}\"\nmax_delay_ms = 20\nserved_name = \"minilm\"\n"
    ));
    std::fs::write(&config, text).unwrap();
    let serve = Launch::new(&bin, &["serve", "--config", &config.to_string_lossy()])
        .in_netns(f.net().ns(member));
    // Its own processes, so that it can be killed while requests borrow the namespaces; declared
    // after the fleet, so it dies first.
    let mut gateway = Procs::new(f.dir());
    let base = format!("http://{listen}");
    let wait_ready = |f: &NetnsFleet, gateway: &mut Procs| {
        let deadline = Instant::now() + Duration::from_secs(150);
        while !f.net().run_in(observer, || ready(&base)) {
            gateway.check().unwrap_or_else(|e| panic!("{e:#}"));
            assert!(
                Instant::now() < deadline,
                "the gateway was not ready:\n{}",
                f.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    gateway.start("gateway", &serve).unwrap();
    wait_ready(&f, &mut gateway);

    let texts: Vec<String> = long_texts(REQUESTS, 20)
        .into_iter()
        .map(|t| t.split(' ').take(12).collect::<Vec<_>>().join(" "))
        .collect();
    let input = f.dir().join("texts.txt");
    std::fs::write(&input, texts.join("\n")).unwrap();
    let single = single_process_outputs(f.procs(), "infer", &bin, &minilm_dir(), &input, 1);
    let url = format!("{base}/v1/embeddings");

    // The gateway dies once microbatches of these requests are in the stages.
    let (mut killed_at, mut sent_before_kill) = (0.0, 0.0);
    let outcomes = post_all(&f, observer, &url, &texts, || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while metric(&base, "quantpipe_inflight_microbatches") < 1.0 {
            assert!(Instant::now() < deadline, "no request reached the fleet");
            std::thread::sleep(Duration::from_millis(20));
        }
        sent_before_kill = metric(&base, "quantpipe_microbatches_sent");
        killed_at = unix_s();
        gateway.kill("gateway").unwrap();
    });
    let (mut answered, mut failed, mut worst_s) = (0, 0, 0f64);
    for (i, o) in outcomes.iter().enumerate() {
        match &o.answer {
            Ok((200, answer)) => {
                assert_close(i, &embedding(answer), &single[i]);
                answered += 1;
            }
            Ok((status, answer)) => panic!("request {i}: {status} {answer}"),
            Err(e) => {
                failed += 1;
                let after = o.at - killed_at;
                worst_s = worst_s.max(after);
                assert!(
                    after < 5.0,
                    "request {i} hung {after:.1} s after the kill: {e}"
                );
            }
        }
    }
    assert!(failed > 0, "every request was answered before the kill");

    // Started again with the same settings: the same HTTP address, the same client name.
    let restarted_at = unix_s();
    gateway.start("gateway-again", &serve).unwrap();
    wait_ready(&f, &mut gateway);
    let ready_s = unix_s() - restarted_at;
    // The stages finished what the dead gateway had sent (at most a window more than it had
    // counted when it died): every one went through both stages.
    let before = settled_microbatches(&f, observer, &base, 2, QUIET);
    let sent = sent_before_kill as u64;
    let window = s.client.window as u64;
    for (node, count) in &before {
        assert!(
            (1..=sent + window).contains(count),
            "the dead gateway had sent {sent} microbatches (then at most {window} more); \
             {node} ran {count}"
        );
    }
    assert!(
        before.iter().all(|(_, c)| *c == before[0].1),
        "a microbatch of the dead gateway went through one stage and not the other: {before:?}"
    );
    let again = post_all(&f, observer, &url, &texts, || {});
    for (i, o) in again.iter().enumerate() {
        match &o.answer {
            Ok((200, answer)) => assert_close(i, &embedding(answer), &single[i]),
            Ok((status, answer)) => panic!("request {i} after the restart: {status} {answer}"),
            Err(e) => panic!("request {i} after the restart: {e}"),
        }
    }
    // The fleet is not stuck: every stage ran each microbatch the new gateway sent, and then
    // nothing.
    let sent_again = f
        .net()
        .run_in(observer, || metric(&base, "quantpipe_microbatches_sent"));
    let after = settled_microbatches(&f, observer, &base, 2, QUIET);
    for ((node, b), (_, a)) in before.iter().zip(&after) {
        assert_eq!(
            a - b,
            sent_again as u64,
            "{node}: microbatches since the restart"
        );
    }
    eprintln!(
        "FIGURES gateway killed with {REQUESTS} requests in flight: {answered} answered \
         before the kill, {failed} failed with a connection error within {worst_s:.2} s of it \
         (none hung); the stages finished the dead gateway's {} microbatches; started again \
         and ready in {ready_s:.2} s; {REQUESTS} requests answered after it within 1e-5 of \
         single-process; stages' microbatches {:?} -> {:?}; 0 items resent",
        before[0].1,
        before.iter().map(|s| s.1).collect::<Vec<_>>(),
        after.iter().map(|s| s.1).collect::<Vec<_>>(),
    );
}
