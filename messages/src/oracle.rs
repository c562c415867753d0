//! What the decoders of messages between nodes promise on any input, as a checking function that
//! the `fuzz/` target `control` and the property tests of this crate both run: decoding returns a
//! value or a typed [`WireError`](crate::WireError) and never panics, and whatever is accepted
//! encodes to bytes that decode to the same value.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::ack::{AssignAck, LinkAck};
use crate::activation::{Activation, Body, Mask, Tokens};
use crate::control::{Assignment, DeviceInfo, NextHop, PlanInfo, PlanStage, Release, UnitTimes};
use crate::envelope;
use crate::limits::DecodeLimits;
use crate::output::Output;
use crate::stats::{LinkStats, NodeStats};

/// The fleet every checked message is decoded for.
pub const FLEET: &str = "f";

/// Small limits so a hostile header cannot make a run slow; the checks are the same at any size.
pub const LIMITS: DecodeLimits = DecodeLimits {
    max_message_bytes: 1 << 20,
    max_elements: 1 << 22,
};

/// Decodes `bytes` as every message kind of [`FLEET`], checks each accepted one round-trips,
/// and answers how many kinds accepted them. Panics (the fuzzer's and the property tests'
/// failure signal) when a promise is broken.
pub fn check_messages(bytes: &[u8]) -> usize {
    [
        round_trips::<DeviceInfo>(bytes),
        round_trips::<Assignment>(bytes),
        round_trips::<Release>(bytes),
        round_trips::<AssignAck>(bytes),
        round_trips::<PlanInfo>(bytes),
        round_trips::<LinkAck>(bytes),
        round_trips::<Output>(bytes),
        round_trips::<NodeStats>(bytes),
        activation_round_trips(bytes),
    ]
    .into_iter()
    .filter(|&accepted| accepted)
    .count()
}

/// If `bytes` decode as a `T`, its encoding decodes to the same `T` and encodes to the same
/// bytes. (Equality of values is asserted only for values equal to themselves: a NaN field,
/// which MessagePack carries faithfully, is compared through the bytes.)
/// Answers whether they did decode.
fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    bytes: &[u8],
) -> bool {
    let Ok(value) = envelope::decode_with::<T>(bytes, FLEET, &LIMITS) else {
        return false;
    };
    let encoded = envelope::encode(FLEET, &value);
    let again: T = envelope::decode_with(&encoded, FLEET, &LIMITS)
        .unwrap_or_else(|e| panic!("own encoding of {value:?} refused: {e}"));
    assert_eq!(envelope::encode(FLEET, &again), encoded);
    #[allow(clippy::eq_op)] // false exactly when a NaN is inside
    if value == value {
        assert_eq!(again, value);
    }
    true
}

/// If `bytes` hold an activation, the same header before the same body decodes to it again.
/// Answers whether they did hold one.
fn activation_round_trips(bytes: &[u8]) -> bool {
    let Ok((header, body_at)) = Activation::from_message_with(bytes, FLEET, &LIMITS) else {
        return false;
    };
    let body = bytes[body_at..].to_vec();
    let message = header.clone().into_message(FLEET, body.clone()).concat();
    let (again, again_at) = Activation::from_message_with(&message, FLEET, &LIMITS)
        .unwrap_or_else(|e| panic!("own encoding of {header:?} refused: {e}"));
    assert_eq!(again, header);
    assert_eq!(&message[again_at..], &body[..]);
    true
}

/// Valid messages of every kind of [`FLEET`], as bytes: what the property tests damage, and the
/// fuzzer's starting corpus.
pub fn sample_messages() -> Vec<Vec<u8>> {
    let assignment = Assignment {
        epoch: 2,
        model: "m".into(),
        stage: 1,
        stages: 3,
        l: 4,
        r: 9,
        next: NextHop::Stage(2),
        out_bits: 4,
        target_items_per_s: 12.5,
        weights: None,
    };
    let plan = PlanInfo {
        epoch: 2,
        model: "m".into(),
        ubatch: 8,
        source: "planner".into(),
        stages: vec![PlanStage {
            node: "a".into(),
            l: 1,
            r: 48,
            out_bits: 32,
            compute_s: 0.5,
            transfer_s: 0.0,
        }],
        predicted_items_per_s: 16.0,
    };
    let stats = NodeStats {
        node: "a".into(),
        stage: Some(0),
        microbatches: 3,
        links: vec![LinkStats {
            to: "qp/f/stage/1/in".into(),
            messages: 3,
            mbps: 940.0,
            ..Default::default()
        }],
        refused: [
            ("token-out-of-range".to_owned(), 3),
            ("too-large".to_owned(), 1),
        ]
        .into_iter()
        .collect(),
        worker_restarts: 1,
        ..Default::default()
    };
    let activation = Activation {
        run: 1,
        client: "c".into(),
        seq: 0,
        epoch: 2,
        stage: 0,
        sent_unix_ns: 9,
        body: Body::Tokens(Tokens {
            shape: [1, 2],
            ids: vec![101, 102],
        }),
        body_len: 0,
        mask: Some(Mask {
            shape: [1, 2],
            values: vec![1, 1],
        }),
    };
    let device = DeviceInfo {
        name: "a".into(),
        device_type: "cpu".into(),
        mem_bytes: 1 << 30,
        threads: 1,
        slowdown: 1.0,
        bw_mbps: 1000.0,
        profile: UnitTimes {
            model: "m".into(),
            ubatch: 8,
            input_elements: 128,
            time_s: vec![0.01, 0.02],
            weight_bytes: vec![10, 20],
            output_elements: vec![384, 384],
        },
    };
    vec![
        envelope::encode(FLEET, &device),
        envelope::encode(FLEET, &assignment),
        envelope::encode(FLEET, &Release { epoch: 2 }),
        envelope::encode(
            FLEET,
            &AssignAck {
                node: "a".into(),
                epoch: 2,
                error: Some("no".into()),
            },
        ),
        envelope::encode(FLEET, &plan),
        envelope::encode(
            FLEET,
            &LinkAck {
                epoch: 2,
                stage: 0,
                run: 1,
                seq: 0,
                bytes: 10,
                sent_unix_ns: 1,
                arrived_unix_ns: 2,
            },
        ),
        envelope::encode(
            FLEET,
            &Output {
                run: 1,
                seq: 0,
                epoch: 2,
                shape: vec![1, 2],
                values: vec![0.5, f32::NAN],
                error: None,
                retryable: false,
            },
        ),
        envelope::encode(FLEET, &stats),
        activation.clone().into_message(FLEET, vec![]).concat(),
        Activation {
            body: Body::Payload,
            ..activation
        }
        .into_message(FLEET, vec![7; 16])
        .concat(),
    ]
}
