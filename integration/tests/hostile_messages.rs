//! While a run streams through three node processes on loopback, a hostile peer of the same
//! zenoh mesh publishes on every topic of the fleet: garbage bytes, truncated MessagePack, a
//! wrong wire version, a message of another fleet and a stale-epoch one (on the stage inputs, the
//! client's result topic and the control keys), and sends malformed, foreign and stale
//! assignments to every node's assignment queryable. Each is dropped, logged and counted (the
//! nodes' stats queryables, the client's report), and the run's outputs are still bitwise those
//! of single-process inference at 32 bits.

use quantpipe_integration::{
    assert_bitwise_equal, minilm_dir, peer_session, quantpipe_bin, read_outputs, run_report,
    single_process_outputs, write_loopback_client, LoopbackFleet, LoopbackFleetSpec,
};
use quantpipe_launcher::minilm::long_texts;
use quantpipe_launcher::ClientRun;
use quantpipe_messages::{
    envelope, Activation, AssignAck, Assignment, Envelope, Keys, NextHop, NodeStats, Output,
    PlanInfo, WIRE_VERSION,
};
use std::time::{Duration, Instant};
use zenoh::qos::CongestionControl;
use zenoh::{Session, Wait};

const NODES: [&str; 3] = ["a", "b", "c"];
const UBATCH: usize = 4;
const MICROBATCHES: usize = 24;
/// Rounds of hostile messages.
const ROUNDS: u64 = 2;

/// Puts `bytes` on `key` once a subscriber is known (a put with none is dropped by zenoh), or
/// at once when `must_match` is false (keys nobody subscribes to).
fn put(s: &Session, key: &str, bytes: Vec<u8>, must_match: bool) {
    let p = s
        .declare_publisher(key.to_owned())
        .congestion_control(CongestionControl::Block)
        .wait()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while must_match && !p.matching_status().wait().unwrap().matching() {
        assert!(Instant::now() < deadline, "nobody subscribes to {key}");
        std::thread::sleep(Duration::from_millis(20));
    }
    p.put(bytes).wait().unwrap();
}

/// Asks `key` with `payload` and returns the first answer's bytes.
fn ask(s: &Session, key: &str, payload: Vec<u8>) -> Vec<u8> {
    let replies = s
        .get(key.to_owned())
        .payload(payload)
        .timeout(Duration::from_secs(10))
        .wait()
        .unwrap();
    let reply = replies
        .recv()
        .unwrap_or_else(|_| panic!("no answer on {key}"));
    reply
        .result()
        .unwrap_or_else(|e| panic!("{key} answered an error: {e:?}"))
        .payload()
        .to_bytes()
        .into_owned()
}

/// The malformed variants of a valid message: garbage, truncated MessagePack, wrong version.
fn malformed(valid: &[u8], wrong_version: Vec<u8>) -> Vec<Vec<u8>> {
    vec![
        vec![0xc1, 0xff, 0x00, 0x13, 0x37],
        valid[..valid.len() / 2].to_vec(),
        wrong_version,
    ]
}

/// What the hostile peer sent to each stage (malformed, foreign fleet, stale epoch), for the
/// expected counters.
struct Sent {
    malformed: u64,
    foreign: u64,
    stale: u64,
}

/// Waits for the plan and the run's first microbatch, then attacks every topic.
fn attack(s: &Session, fleet: &str) -> (Sent, u64) {
    let keys = Keys::new(fleet);
    // The run's traffic, read off stage 0's input like any peer of the mesh could.
    let sniffer = s
        .declare_subscriber(keys.stage0_ins())
        .with(zenoh::handlers::FifoChannel::new(64))
        .wait()
        .unwrap();
    let (first, first_body) = loop {
        let sample = sniffer
            .recv_timeout(Duration::from_secs(150))
            .unwrap()
            .expect("no microbatch reached stage 0 within 150 s");
        let bytes = sample.payload().to_bytes();
        if let Ok((a, body_at)) = Activation::from_message(&bytes, fleet) {
            break (a, bytes[body_at..].to_vec());
        }
    };
    let message = |e: Envelope<Activation>| e.into_message(first_body.clone()).concat();
    let plan: PlanInfo = envelope::decode(&ask(s, &keys.plan(), vec![]), fleet).unwrap();
    assert_eq!(plan.epoch, first.epoch);

    let mut sent = Sent {
        malformed: 0,
        foreign: 0,
        stale: 0,
    };
    // The client's results first (the client must still be running to count them): garbage,
    // another fleet's, and one of an earlier plan.
    for _ in 0..ROUNDS {
        let out = Output {
            run: first.run,
            seq: 0,
            epoch: plan.epoch - 1,
            shape: vec![1, 1],
            values: vec![0.0],
            error: None,
            retryable: false,
        };
        let result = keys.result(&first.client);
        let old = Envelope {
            version: WIRE_VERSION + 1,
            ..Envelope::new(fleet, out.clone())
        };
        for bytes in malformed(&envelope::encode(fleet, &out), old.to_bytes()) {
            put(s, &result, bytes, true);
        }
        let foreign = Envelope::new(&format!("{fleet}x"), out.clone());
        put(s, &result, foreign.to_bytes(), true);
        put(s, &result, envelope::encode(fleet, &out), true);
    }
    for _ in 0..ROUNDS {
        // Stage inputs: every variant, addressed to the right stage.
        for stage in 0..NODES.len() as u32 {
            let key = match stage {
                0 => keys.stage0_in_from(&first.client),
                _ => keys.stage_in(stage),
            };
            let mut a = first.clone();
            a.stage = stage;
            let valid = message(Envelope::new(fleet, a.clone()));
            let old = Envelope {
                version: WIRE_VERSION + 1,
                ..Envelope::new(fleet, a.clone())
            };
            for bytes in malformed(&valid, message(old)) {
                put(s, &key, bytes, true);
            }
            let foreign = Envelope::new(&format!("{fleet}x"), a.clone());
            put(s, &key, message(foreign), true);
            let mut stale = a.clone();
            stale.epoch = plan.epoch - 1;
            put(s, &key, message(Envelope::new(fleet, stale)), true);
        }
        sent.malformed += 3;
        sent.foreign += 1;
        sent.stale += 1;

        // Assignments: malformed, another fleet's, and one of an earlier plan. Each is refused
        // with an error answer and leaves the node's shard as it was.
        for (i, node) in NODES.iter().enumerate() {
            let key = keys.assign(node);
            let stage = &plan.stages[i];
            let a = Assignment {
                epoch: plan.epoch - 1,
                model: plan.model.clone(),
                stage: i as u32,
                stages: NODES.len() as u32,
                l: stage.l,
                r: stage.r,
                next: NextHop::Client,
                out_bits: 32,
                target_items_per_s: 0.0,
                weights: None,
            };
            let old = Envelope {
                version: WIRE_VERSION + 1,
                ..Envelope::new(fleet, a.clone())
            };
            let foreign = Envelope::new(&format!("{fleet}x"), a.clone());
            let mut variants = malformed(&envelope::encode(fleet, &a), old.to_bytes());
            variants.push(foreign.to_bytes());
            variants.push(envelope::encode(fleet, &a));
            for bytes in variants {
                let ack: AssignAck = envelope::decode(&ask(s, &key, bytes), fleet).unwrap();
                assert!(ack.error.is_some(), "{node} accepted a hostile assignment");
            }
        }
        // Control keys: puts where only queries are answered reach no one and change nothing.
        for key in [
            keys.plan(),
            format!("{}/changed", keys.plan()),
            keys.device("a"),
            keys.stats("a"),
            keys.node("a"),
        ] {
            put(s, &key, vec![0xc1, 0x00], false);
        }
    }
    // Assignments: malformed and foreign ones count as malformed (4 per round), stale ones as stale.
    (sent, plan.epoch)
}

#[test]
fn hostile_messages_on_every_topic_are_dropped_counted_and_the_run_is_exact() {
    let started = Instant::now();
    let bin = quantpipe_bin();
    let model = minilm_dir();
    let dir = tempfile::tempdir().unwrap();
    let texts = long_texts(UBATCH * MICROBATCHES, 160);
    let input = dir.path().join("texts.txt");
    std::fs::write(&input, texts.join("\n")).unwrap();
    // A profile file spares the nodes a measurement the forced plan does not use.
    // Cuts after u0 (two tensors) and after u3.
    let spec = LoopbackFleetSpec {
        tag: "hostile",
        devices: &NODES,
        ubatch: UBATCH,
        bits: 32,
        forced: &[("a", [1, 1]), ("b", [2, 8]), ("c", [9, 24])],
    };
    let LoopbackFleet {
        mut nodes,
        fleet,
        ports,
    } = LoopbackFleet::start(&bin, &model, dir.path(), &spec);
    let client = write_loopback_client(dir.path(), &fleet, &model, ports[4], ports[0]);
    let procs = nodes.procs();

    let hostile = peer_session(ports[0]);
    let outputs = dir.path().join("outputs.json");
    let ((sent, epoch), report) = std::thread::scope(|scope| {
        let attacker = scope.spawn(|| attack(&hostile, &fleet));
        let run = ClientRun::new(&client, &input)
            .save_outputs(&outputs)
            .json()
            .launch(&bin);
        let report = run_report(procs, "client", &run, Duration::from_secs(180));
        (attacker.join().expect("the hostile peer failed"), report)
    });
    assert_eq!(report["items"], texts.len());

    let keys = Keys::new(&fleet);
    for node in NODES {
        let stats: NodeStats =
            envelope::decode(&ask(&hostile, &keys.stats(node), vec![]), &fleet).unwrap();
        assert_eq!(stats.epoch, epoch, "{node} changed plan: {stats:?}");
        let m = stats.microbatches;
        assert_eq!(m, MICROBATCHES as u64, "{node}: {stats:?}");
        // Stage input: 3 malformed per round; assignments: 3 malformed + 1 foreign per round.
        assert_eq!(
            stats.dropped_malformed,
            sent.malformed + 4 * ROUNDS,
            "{node}: {stats:?}"
        );
        assert_eq!(
            stats.dropped_foreign_fleet, sent.foreign,
            "{node}: {stats:?}"
        );
        // Stage input: 1 stale per round; assignments: 1 stale per round.
        assert_eq!(
            stats.dropped_stale_epoch,
            sent.stale + ROUNDS,
            "{node}: {stats:?}"
        );
        assert_eq!(stats.failed, 0, "{node}: {stats:?}");
        let log = std::fs::read_to_string(dir.path().join(format!("{node}.log"))).unwrap();
        assert!(
            log.contains("dropped a message of fleet"),
            "{node} logged no foreign drop"
        );
        assert!(log.contains("epoch"), "{node} logged no stale drop");
    }
    // Every hostile result was dropped and counted by the client (it ran past them: they were
    // sent after its first microbatch, before its last result).
    // (Stale-epoch results count as foreign, or on their own where the client tells them apart.)
    let client_dropped = report["dropped_foreign"].as_u64().unwrap()
        + report["dropped_stale_epoch"].as_u64().unwrap_or(0);
    assert_eq!(client_dropped, 5 * ROUNDS, "client report: {report}");

    hostile.close().wait().unwrap();

    // Outputs equal single-process inference bitwise (every item has 128 tokens, so the
    // padding of each microbatch is the same in both).
    let pipeline = read_outputs(&outputs);
    let single = single_process_outputs(procs, "infer", &bin, &model, &input, UBATCH);
    assert_bitwise_equal(&pipeline, &single);
    eprintln!(
        "hostile messages test took {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
