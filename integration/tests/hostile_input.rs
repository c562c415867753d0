//! A zenoh session of the mesh that is no client sends a two-stage fleet what no client would:
//! token ids outside MiniLM's vocabulary into stage 0 (the attack that used to panic libtorch's
//! embedding and kill stage 0's forward worker for good), an activation of the wrong shape into
//! stage 1, a message larger than stage 0 could ever need, and garbage bytes into both. Every
//! node stays alive, counts each refusal under its reason in its stats, the results key the
//! messages named gets an error result naming the problem, and the next ordinary run's outputs
//! are bitwise those of single-process inference.

use quantpipe_integration::{
    assert_bitwise_equal, minilm_dir, quantpipe_bin, read_outputs, run_report,
    single_process_outputs, write_loopback_client, LoopbackFleet, LoopbackFleetSpec,
};
use quantpipe_launcher::minilm::long_texts;
use quantpipe_launcher::ClientRun;
use quantpipe_messages::codec::{self, Clip};
use quantpipe_messages::{
    envelope, Activation, Bits, Body, BoundaryPayload, Keys, Mask, NodeStats, Output, Tokens,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use zenoh::handlers::FifoChannelHandler;
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::qos::CongestionControl;
use zenoh::sample::Sample;
use zenoh::{Session, Wait};

const NODES: [&str; 2] = ["a", "b"];
const UBATCH: usize = 4;
const MICROBATCHES: usize = 3;
/// MiniLM's hidden width.
const HIDDEN: usize = 384;
/// Where the hostile session asks results to go.
const VICTIM: &str = "victim";

/// A publisher on `key` once a subscriber of it is known (a put with none is dropped), heard
/// from a matching listener within `limit`.
fn matched_publisher(s: &Session, key: &str, limit: Duration) -> Publisher<'static> {
    let p = s
        .declare_publisher(key.to_owned())
        .congestion_control(CongestionControl::Block)
        .wait()
        .unwrap();
    let listener = p.matching_listener().wait().unwrap();
    let until = Instant::now() + limit;
    while !p.matching_status().wait().unwrap().matching() {
        let left = until.saturating_duration_since(Instant::now());
        match listener.recv_timeout(left) {
            Ok(Some(status)) if status.matching() => break,
            Ok(Some(_)) => continue,
            _ => panic!("nobody subscribed to {key} within {limit:?}"),
        }
    }
    p
}

/// The next result on `results` within `limit`, for the hostile session's run.
fn next_result(results: &Subscriber<FifoChannelHandler<Sample>>, fleet: &str) -> Output {
    let sample = results
        .recv_timeout(Duration::from_secs(30))
        .unwrap()
        .expect("no result within 30 s");
    envelope::decode(&sample.payload().to_bytes(), fleet).unwrap()
}

/// The stats node `name` answers, within 10 s.
fn stats(s: &Session, keys: &Keys, name: &str) -> NodeStats {
    let replies = s
        .get(keys.stats(name))
        .timeout(Duration::from_secs(10))
        .wait()
        .unwrap();
    let reply = replies
        .recv()
        .unwrap_or_else(|_| panic!("{name}: no stats"));
    let bytes = reply.result().unwrap().payload().to_bytes();
    envelope::decode(&bytes, &keys.fleet).unwrap()
}

fn header(seq: u64, epoch: u64, stage: u32, body: Body, mask: Option<Mask>) -> Activation {
    Activation {
        run: 0xbad,
        client: VICTIM.into(),
        seq,
        epoch,
        stage,
        sent_unix_ns: 0,
        body,
        body_len: 0,
        mask,
    }
}

fn ones(b: u64, t: u64) -> Option<Mask> {
    Some(Mask {
        shape: [b, t],
        values: vec![1; (b * t) as usize],
    })
}

#[test]
fn hostile_input_is_refused_counted_and_answered_and_the_next_run_is_exact() {
    let started = Instant::now();
    let bin = quantpipe_bin();
    let model = minilm_dir();
    let dir = tempfile::tempdir().unwrap();
    let texts = long_texts(UBATCH * MICROBATCHES, 160);
    let input = dir.path().join("texts.txt");
    std::fs::write(&input, texts.join("\n")).unwrap();
    // A cut after u1 (attention): stage 1 takes two [batch, tokens, 384] tensors.
    let spec = LoopbackFleetSpec {
        tag: "hostileinput",
        devices: &NODES,
        ubatch: UBATCH,
        bits: 32,
        forced: &[("a", [1, 1]), ("b", [2, 24])],
    };
    let mut launched = LoopbackFleet::start(&bin, &model, dir.path(), &spec);
    let (hostile, keys, plan) = launched.watch_first_plan();
    let LoopbackFleet {
        mut nodes,
        fleet,
        ports,
    } = launched;
    let epoch = plan.epoch;
    let results = hostile
        .declare_subscriber(keys.result(VICTIM))
        .wait()
        .unwrap();
    let stage0 = matched_publisher(
        &hostile,
        &keys.stage0_in_from(VICTIM),
        Duration::from_secs(60),
    );
    let stage1 = matched_publisher(&hostile, &keys.stage_in(1), Duration::from_secs(60));

    // Stage 0: garbage, then a message of 2.25 MB (250,000 ids of 9 bytes: stage 0 needs at
    // most 256 items x 512 tokens, 1.3 MB), neither of which names a client to answer; then
    // three items with an id past the vocabulary, as in the original attack.
    stage0
        .put(vec![0xc1, 0xff, 0x00, 0x13, 0x37])
        .wait()
        .unwrap();
    let n = 250_000;
    let huge = header(
        9,
        epoch,
        0,
        Body::Tokens(Tokens {
            shape: [1, n],
            ids: vec![1 << 40; n as usize],
        }),
        ones(1, n),
    );
    let huge = huge.into_message(&fleet, vec![]).concat();
    assert!(huge.len() > 2_000_000);
    stage0.put(huge).wait().unwrap();
    let bad_ids = header(
        0,
        epoch,
        0,
        Body::Tokens(Tokens {
            shape: [3, 3],
            ids: vec![101, 7592, 102, 101, 999_999, 102, 101, -5, 102],
        }),
        ones(3, 3),
    );
    stage0
        .put(bad_ids.into_message(&fleet, vec![]).concat())
        .wait()
        .unwrap();
    let out = next_result(&results, &fleet);
    let error = out.error.clone().unwrap_or_default();
    assert_eq!((out.run, out.seq), (0xbad, 0), "{out:?}");
    assert!(
        error.contains("token-out-of-range") && error.contains("999999"),
        "{error}"
    );
    assert!(out.values.is_empty());

    // Stage 1: garbage, then one [1, 3, 384] tensor where a cut after attention carries two.
    stage1.put(b"not a message at all".to_vec()).wait().unwrap();
    let values = vec![0.5f32; 3 * HIDDEN];
    let t = codec::encode(&values, &[1, 3, HIDDEN], Bits::RAW, Clip::NAIVE).unwrap();
    let body = BoundaryPayload::single(t).to_bytes();
    let wrong = header(1, epoch, 1, Body::Payload, ones(1, 3));
    stage1
        .put(wrong.into_message(&fleet, body).concat())
        .wait()
        .unwrap();
    let out = next_result(&results, &fleet);
    let error = out.error.clone().unwrap_or_default();
    assert_eq!((out.run, out.seq), (0xbad, 1), "{out:?}");
    assert!(
        error.contains("wrong-shape") && error.contains("1 tensor(s)"),
        "{error}"
    );

    // Each refusal counted by reason; nothing reached a forward pass or failed in one.
    let refused = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
        pairs.iter().map(|&(r, n)| (r.to_owned(), n)).collect()
    };
    let a = stats(&hostile, &keys, "a");
    assert_eq!(
        a.refused,
        refused(&[
            ("malformed", 1),
            ("too-large", 1),
            ("token-out-of-range", 1)
        ]),
        "{a:?}"
    );
    let b = stats(&hostile, &keys, "b");
    assert_eq!(
        b.refused,
        refused(&[("malformed", 1), ("wrong-shape", 1)]),
        "{b:?}"
    );
    for s in [&a, &b] {
        assert_eq!(
            (s.microbatches, s.failed, s.worker_restarts),
            (0, 0, 0),
            "{s:?}"
        );
    }
    drop((stage0, stage1, results));
    // Every node is still running.
    nodes.check().unwrap();

    // The next ordinary run succeeds, and equals single-process inference bitwise.
    let client = write_loopback_client(dir.path(), &fleet, &model, ports[3], ports[0]);
    let outputs = dir.path().join("outputs.json");
    let run = ClientRun::new(&client, &input)
        .save_outputs(&outputs)
        .json()
        .launch(&bin);
    let procs = nodes.procs();
    let report = run_report(procs, "client", &run, Duration::from_secs(180));
    assert_eq!(report["items"], texts.len());
    for name in NODES {
        let s = stats(&hostile, &keys, name);
        assert_eq!(s.microbatches, MICROBATCHES as u64, "{name}: {s:?}");
        assert_eq!(s.failed, 0, "{name}: {s:?}");
    }
    hostile.close().wait().unwrap();
    let pipeline = read_outputs(&outputs);
    let single = single_process_outputs(procs, "infer", &bin, &model, &input, UBATCH);
    assert_bitwise_equal(&pipeline, &single);
    eprintln!(
        "hostile input test took {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
