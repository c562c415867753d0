//! A node that a new plan leaves out drops its shard and its stage subscriptions when the
//! leader releases it: otherwise the stage's new holder would share every microbatch with it
//! (zenoh delivers to every subscriber, over the sender's link). One node process on loopback;
//! the test speaks the leader's side of the protocol.

use quantpipe_actors::runtime::config::Role;
use quantpipe_integration::{minilm_dir, peer_session, quantpipe_bin};
use quantpipe_launcher::minilm::write_uniform_profile;
use quantpipe_launcher::{config_file, free_ports, Fleet, Place};
use quantpipe_messages::{
    envelope, AssignAck, Assignment, DeviceInfo, Keys, NextHop, NodeStats, Release,
};
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
    write_uniform_profile(&profile, 4).unwrap();
    let port = free_ports(1).unwrap()[0];
    let mut device = config_file::loopback_peer(FLEET, "a", Role::Device, &model, port, None);
    device.device.threads = 1;
    device.device.profile_ubatch = 4;
    device.device.profile_file = Some(profile.clone());
    let mut nodes = Fleet::new(&bin, dir.path());
    nodes.start(&device, Place::Here).unwrap();

    let s = peer_session(port);
    let keys = Keys::new(FLEET);
    let deadline = Instant::now() + Duration::from_secs(120);
    let info: DeviceInfo =
        envelope::decode(&ask(&s, &keys.device("a"), vec![], deadline), FLEET).unwrap();
    let assign = |epoch: u64| -> AssignAck {
        let a = Assignment {
            epoch,
            model: info.profile.model.clone(),
            stage: 0,
            stages: 1,
            l: 1,
            r: 24,
            next: NextHop::Client,
            out_bits: 32,
            target_items_per_s: 0.0,
            weights: None,
        };
        let bytes = ask(&s, &keys.assign("a"), envelope::encode(FLEET, &a), deadline);
        envelope::decode(&bytes, FLEET).unwrap()
    };
    let release = |epoch: u64| -> AssignAck {
        let r = Release { epoch };
        let bytes = ask(
            &s,
            &keys.release("a"),
            envelope::encode(FLEET, &r),
            deadline,
        );
        envelope::decode(&bytes, FLEET).unwrap()
    };
    let stats = || -> NodeStats {
        envelope::decode(&ask(&s, &keys.stats("a"), vec![], deadline), FLEET).unwrap()
    };
    let stage_in = keys.stage0_in_from("c");

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
    let ack: AssignAck = envelope::decode(&bytes, FLEET).unwrap();
    assert!(ack.error.is_some());
    let st = stats();
    assert_eq!((st.stage, st.epoch), (Some(0), 12), "{st:?}");
    assert!(st.dropped_malformed >= 1, "{st:?}");
    nodes.procs().kill("a").unwrap();
}
