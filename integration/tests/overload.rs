//! Overload: a client sending faster than the pipeline carries is slowed, not queued without
//! bound. A two-stage MiniLM fleet on loopback; first a client keeps its window full for 15 s
//! (it sends the next microbatch the moment a result comes back): no node ever holds more
//! microbatches than the window, no link more than its credits. Then a sender that ignores any
//! window puts hundreds of microbatches into stage 0 at once: stage 0 holds at most its bound,
//! refuses the rest as overloaded (each answered once, retryable), and the next ordinary run
//! completes.

use quantpipe_actors::runtime::client::run_texts_on;
use quantpipe_actors::runtime::config::Role;
use quantpipe_actors::runtime::stage::rules::MAX_QUEUED_FROM_CLIENTS;
use quantpipe_integration::{minilm_dir, quantpipe_bin, LoopbackFleet, LoopbackFleetSpec};
use quantpipe_launcher::config_file;
use quantpipe_launcher::minilm::long_texts;
use quantpipe_messages::{envelope, Activation, Body, Keys, Mask, NodeStats, Output, Tokens};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use zenoh::qos::CongestionControl;
use zenoh::{Session, Wait};

const NODES: [&str; 2] = ["a", "b"];
const UBATCH: usize = 2;
const WINDOW: usize = 4;
/// Messages a stage may have unacknowledged on its outgoing link (the stage's link credits).
const LINK_CREDITS: u64 = 2;
const BURST: Duration = Duration::from_secs(15);
/// Microbatches the window-less sender puts at once.
const FLOOD: u64 = 400;

/// Every stage node's stats, by node.
fn stats(s: &Session, keys: &Keys) -> Vec<NodeStats> {
    let stats = quantpipe_actors::runtime::timeline::query_stats(s, keys, Duration::from_secs(10));
    assert_eq!(stats.len(), NODES.len(), "stats of every node: {stats:?}");
    stats
}

fn flood_microbatch(fleet: &str, client: &str, epoch: u64, seq: u64) -> Vec<u8> {
    let act = Activation {
        run: 0xf100d,
        client: client.into(),
        seq,
        epoch,
        stage: 0,
        sent_unix_ns: 0,
        body: Body::Tokens(Tokens {
            shape: [1, 3],
            ids: vec![101, 7592, 102],
        }),
        body_len: 0,
        mask: Some(Mask {
            shape: [1, 3],
            values: vec![1; 3],
        }),
    };
    act.into_message(fleet, vec![]).concat()
}

#[test]
fn a_client_faster_than_the_pipeline_is_slowed_and_no_queue_grows_past_its_bound() {
    let bin = quantpipe_bin();
    let model = minilm_dir();
    let dir = tempfile::tempdir().unwrap();
    let spec = LoopbackFleetSpec {
        tag: "overload",
        devices: &NODES,
        ubatch: UBATCH,
        bits: 8,
        forced: &[],
    };
    let mut launched = LoopbackFleet::start(&bin, &model, dir.path(), &spec);
    let (session, keys, plan) = launched.watch_first_plan();
    let LoopbackFleet {
        nodes,
        fleet,
        ports,
    } = launched;
    assert_eq!(plan.stages.len(), 2, "{plan:?}");

    // A client keeping its window full for the burst, run after run.
    let mut client = config_file::loopback_peer(
        &fleet,
        "steady",
        Role::Device,
        &model,
        ports[3],
        Some(ports[0]),
    );
    client.client.window = WINDOW;
    client.client.plan_wait_s = 60.0;
    client.client.result_timeout_s = 60.0;
    let texts = long_texts(100 * UBATCH, 8);
    let started = Instant::now();
    let mut microbatches = 0;
    while started.elapsed() < BURST {
        let report = run_texts_on(&session, &keys, &client, &texts)
            .unwrap_or_else(|e| panic!("{e:#}\n{}", nodes.logs()));
        microbatches += report.microbatches;
    }
    let secs = started.elapsed().as_secs_f64();
    let during = stats(&session, &keys);
    println!(
        "window {WINDOW}: {microbatches} microbatches in {secs:.1} s ({:.1}/s)",
        microbatches as f64 / secs
    );
    for s in &during {
        println!(
            "  {} stage {:?}: queued at most {}, link in flight at most {}, queued now {}",
            s.node, s.stage, s.queued_high_water, s.link_in_flight_high_water, s.queued
        );
        // A microbatch is booked out when the stage's arbiter next polls it after its onward
        // put returned, which may come just after it admitted the client's next one (the
        // mailbox is served first): hence one more than the window.
        assert!(
            s.queued_high_water >= 1 && s.queued_high_water <= WINDOW as u64 + 1,
            "{}: queued {} with a window of {WINDOW}",
            s.node,
            s.queued_high_water
        );
        assert!(s.link_in_flight_high_water <= LINK_CREDITS, "{s:?}");
        assert!(!s.refused.contains_key("overloaded"), "{s:?}");
    }

    // A sender ignoring any window: everything it puts at once gets exactly one answer, and
    // stage 0 never holds more than its bound.
    let flooder = "flooder";
    let results = session
        .declare_subscriber(keys.result(flooder))
        .wait()
        .unwrap();
    let stage0 = session
        .declare_publisher(keys.stage0_in_from(flooder))
        .congestion_control(CongestionControl::Block)
        .wait()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stage0.matching_status().wait().unwrap().matching() {
        assert!(Instant::now() < deadline, "stage 0 does not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let flood_started = Instant::now();
    for seq in 0..FLOOD {
        stage0
            .put(flood_microbatch(&fleet, flooder, plan.epoch, seq))
            .wait()
            .unwrap();
    }
    let put_s = flood_started.elapsed().as_secs_f64();
    let (mut answered, mut refused) = (BTreeSet::new(), 0);
    let deadline = Instant::now() + Duration::from_secs(120);
    while answered.len() < FLOOD as usize {
        let left = deadline.saturating_duration_since(Instant::now());
        let sample = results
            .recv_timeout(left)
            .unwrap()
            .unwrap_or_else(|| panic!("{} of {FLOOD} answered", answered.len()));
        let out: Output = envelope::decode(&sample.payload().to_bytes(), &fleet).unwrap();
        assert!(
            answered.insert(out.seq),
            "microbatch {} answered twice",
            out.seq
        );
        if let Some(e) = &out.error {
            assert!(e.contains("overloaded") && out.retryable, "{out:?}");
            refused += 1;
        }
    }
    let after = stats(&session, &keys);
    let first = after.iter().find(|s| s.stage == Some(0)).unwrap();
    println!(
        "{FLOOD} microbatches put in {put_s:.2} s without a window: {} computed, {refused} refused \
         overloaded; stage 0 queued at most {} (bound {MAX_QUEUED_FROM_CLIENTS})",
        FLOOD - refused,
        first.queued_high_water
    );
    assert!(
        first.queued_high_water <= MAX_QUEUED_FROM_CLIENTS,
        "{first:?}"
    );
    assert!(refused > 0, "a flood of {FLOOD} at once met no bound");
    assert_eq!(first.refused.get("overloaded"), Some(&refused));
    for s in &after {
        assert!(s.link_in_flight_high_water <= LINK_CREDITS, "{s:?}");
    }
    // Every answered microbatch leaves its stage's books (just after its answer, at worst).
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(s) = stats(&session, &keys).into_iter().find(|s| s.queued > 0) {
        assert!(
            Instant::now() < deadline,
            "{} still holds {} microbatches",
            s.node,
            s.queued
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The fleet serves an ordinary client again.
    let report = run_texts_on(&session, &keys, &client, &texts[..8 * UBATCH]).unwrap();
    assert_eq!(report.items, 8 * UBATCH);
}
