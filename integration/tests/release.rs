//! A node that a new plan leaves out drops its shard and its stage subscriptions when the
//! leader releases it: otherwise the stage's new holder would share every microbatch with it
//! (zenoh delivers to every subscriber, over the sender's link). One node process on loopback;
//! the test speaks the leader's side of the protocol.

use quantpipe_actors::runtime::wire::{
    self, AssignAck, Assignment, DeviceInfo, Keys, NextHop, NodeStats, Release, WIRE_VERSION,
};
use quantpipe_integration::fleet::{minilm_dir, node_toml, write_uniform_minilm_profile};
use quantpipe_integration::{free_ports, peer_session, quantpipe_bin, Procs};
use std::time::{Duration, Instant};
use zenoh::{Session, Wait};

const FLEET: &str = "release";

/// The first answer to `key` with `payload`, retried until `deadline` while nobody answers.
fn ask(s: &Session, key: &str, payload: Vec<u8>, deadline: Instant) -> Vec<u8> {
    loop {
        let replies = s
            .get(key.to_owned())
            .payload(payload.clone())
            .timeout(Duration::from_secs(10))
            .wait()
            .unwrap();
        if let Ok(reply) = replies.recv() {
            return reply.result().unwrap().payload().to_bytes().into_owned();
        }
        assert!(Instant::now() < deadline, "nobody answers on {key}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until a subscriber of `key` is known (`subscribed`) or none is.
fn wait_subscribed(s: &Session, key: &str, subscribed: bool) {
    let p = s.declare_publisher(key.to_owned()).wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while p.matching_status().wait().unwrap().matching() != subscribed {
        assert!(
            Instant::now() < deadline,
            "{key}: subscribed is not {subscribed} after 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_released_node_drops_its_stage_and_takes_only_newer_assignments() {
    let bin = quantpipe_bin();
    let model = minilm_dir();
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile.json");
    write_uniform_minilm_profile(&profile, 4);
    let port = free_ports(1)[0];
    let config = dir.path().join("a.toml");
    let device = format!(
        "[device]\nthreads = 1\nprofile_ubatch = 4\nprofile_file = \"{}\"\n",
        profile.display()
    );
    let listen = vec![format!("tcp/127.0.0.1:{port}")];
    std::fs::write(
        &config,
        node_toml(FLEET, "a", &model, "device", &listen, &[], &device),
    )
    .unwrap();
    let mut procs = Procs::new(dir.path());
    procs.spawn("a", &bin, &["node", "--config", config.to_str().unwrap()]);

    let s = peer_session(port);
    let keys = Keys::new(FLEET);
    let deadline = Instant::now() + Duration::from_secs(120);
    let info: DeviceInfo =
        wire::from_bytes(&ask(&s, &keys.device("a"), vec![], deadline), FLEET).unwrap();
    let assign = |epoch: u64| -> AssignAck {
        let a = Assignment {
            version: WIRE_VERSION,
            fleet: FLEET.into(),
            epoch,
            model: info.profile.model.clone(),
            stage: 0,
            stages: 1,
            l: 1,
            r: 24,
            next: NextHop::Client,
            out_bits: 32,
            target_items_per_s: 0.0,
        };
        let bytes = ask(&s, &keys.assign("a"), wire::to_bytes(&a), deadline);
        wire::from_bytes(&bytes, FLEET).unwrap()
    };
    let release = |epoch: u64| -> AssignAck {
        let r = Release {
            version: WIRE_VERSION,
            fleet: FLEET.into(),
            epoch,
        };
        let bytes = ask(&s, &keys.release("a"), wire::to_bytes(&r), deadline);
        wire::from_bytes(&bytes, FLEET).unwrap()
    };
    let stats = || -> NodeStats {
        wire::from_bytes(&ask(&s, &keys.stats("a"), vec![], deadline), FLEET).unwrap()
    };
    let stage_in = keys.stage_in(0);

    assert_eq!(assign(10).error, None);
    wait_subscribed(&s, &stage_in, true);
    assert_eq!(stats().stage, Some(0));

    // A release of the plan it runs (or an older one) is refused.
    let refused = release(10);
    assert!(refused.error.is_some(), "{refused:?}");
    assert_eq!(refused.epoch, 10);

    assert_eq!(release(11).error, None);
    wait_subscribed(&s, &stage_in, false);
    let st = stats();
    assert_eq!((st.stage, st.epoch), (None, 11), "{st:?}");

    // The plan that left it out, and older ones, cannot assign it; a newer plan can.
    let stale = assign(11);
    assert!(stale.error.is_some(), "{stale:?}");
    assert_eq!(stale.epoch, 11);
    assert_eq!(assign(12).error, None);
    wait_subscribed(&s, &stage_in, true);
    assert_eq!(stats().stage, Some(0));

    // Garbage on the release queryable is refused and counted, and changes nothing.
    let bytes = ask(&s, &keys.release("a"), vec![0xc1, 0x00], deadline);
    let ack: AssignAck = wire::from_bytes(&bytes, FLEET).unwrap();
    assert!(ack.error.is_some());
    let st = stats();
    assert_eq!((st.stage, st.epoch), (Some(0), 12), "{st:?}");
    assert!(st.dropped_malformed >= 1, "{st:?}");
    procs.kill("a");
}
