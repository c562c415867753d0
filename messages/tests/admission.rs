//! The admission path's promises over generated input (the `admission` fuzz target checks the
//! same at scale): arbitrary bytes and arbitrary token microbatches end in Ok or a refusal,
//! never a panic, and what is admitted holds only token ids inside the vocabulary, in a shape
//! within the bounds, with a mask of that shape.

use proptest::prelude::*;
use quantpipe_messages::admission::{self, Expected, ModelInputs, ModelShape, Reason};
use quantpipe_messages::{Activation, Body, DecodeLimits, Mask, Tokens};

const VOCAB: u64 = 50;
const POSITIONS: u64 = 8;
const MAX_BATCH: u64 = 4;

fn text_stage(unit: usize) -> Expected {
    let model = ModelShape {
        inputs: ModelInputs::Text {
            vocab: VOCAB,
            max_positions: POSITIONS,
        },
        hidden: 8,
        intermediate: 12,
        units: 8,
    };
    Expected::entering(&model, unit, MAX_BATCH).unwrap()
}

fn admit(bytes: &[u8], e: &Expected) -> Result<admission::Admitted, admission::Refusal> {
    let limits = DecodeLimits::default();
    let (act, at) = admission::decode(bytes, "f", &limits, Some(e))?;
    admission::check_activation(&act, &bytes[at..], e, &limits)
}

fn tokens_message(b: u64, t: u64, ids: Vec<i64>, mask: Vec<u8>) -> Vec<u8> {
    Activation {
        run: 1,
        client: "c".into(),
        seq: 0,
        epoch: 1,
        stage: 0,
        sent_unix_ns: 0,
        body: Body::Tokens(Tokens { shape: [b, t], ids }),
        body_len: 0,
        mask: Some(Mask {
            shape: [b, t],
            values: mask,
        }),
    }
    .into_message("f", vec![])
    .concat()
}

/// Mostly consistent microbatches (ids and mask of `b * t`, most ids in range), sometimes one
/// id or value too many, so that both admission and each refusal are reached.
fn microbatch() -> impl Strategy<Value = (u64, u64, Vec<i64>, Vec<u8>)> {
    (0u64..6, 0u64..10, 0usize..2, 0usize..2).prop_flat_map(|(b, t, extra_id, extra_mask)| {
        let n = (b * t) as usize;
        (
            Just(b),
            Just(t),
            prop::collection::vec(prop_oneof![20 => 0i64..50, 1 => -3i64..60], n + extra_id),
            prop::collection::vec(prop_oneof![20 => 0u8..2, 1 => 0u8..3], n + extra_mask),
        )
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_are_refused_or_admitted_never_a_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        unit in 1usize..=5,
    ) {
        if let Err(r) = admit(&bytes, &text_stage(unit)) {
            prop_assert!(!r.message.is_empty());
        }
    }

    #[test]
    fn admitted_token_ids_are_inside_the_vocabulary_and_the_bounds(
        (b, t, ids, mask) in microbatch(),
    ) {
        let bytes = tokens_message(b, t, ids.clone(), mask.clone());
        match admit(&bytes, &text_stage(1)) {
            Ok(a) => {
                prop_assert_eq!((a.batch, a.tokens), (b, t));
                prop_assert!((1..=MAX_BATCH).contains(&b) && (1..=POSITIONS).contains(&t));
                prop_assert_eq!(ids.len() as u64, b * t);
                prop_assert!(ids.iter().all(|&id| (0..VOCAB as i64).contains(&id)));
                prop_assert_eq!(mask.len() as u64, b * t);
                prop_assert!(mask.iter().all(|&v| v <= 1));
            }
            Err(r) => {
                let in_range = ids.iter().all(|&id| (0..VOCAB as i64).contains(&id));
                if r.reason == Reason::TokenOutOfRange {
                    prop_assert!(!in_range);
                }
            }
        }
    }
}
