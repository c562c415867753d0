//! Drives a stage's whole admission path with arbitrary messages: the first byte picks the stage
//! (`stages.rs`), the rest is the message as it arrives on the stage's input key. Whatever the
//! bytes, decoding and checking end in Ok or a [`Refusal`] with a reason and a message (never a
//! panic, never an allocation beyond the stage's bound), and whatever is admitted meets what
//! the shard requires of its input, checked here independently of the admission code: the
//! count, rank and dimensions of its tensors, token ids inside the vocabulary, the batch and
//! sequence bounds, a 0/1 mask of the items' tokens for text and none for images, and payloads
//! that decode to exactly their element count.

#![no_main]

#[path = "../src/stages.rs"]
mod stages;

use libfuzzer_sys::fuzz_target;
use quantpipe_messages::admission::{self, Admitted, Expected, Refusal, StageInput, TokenCount};
use quantpipe_messages::{codec, Activation, Body, BoundaryPayloadRef, DecodeLimits};
use std::sync::OnceLock;

/// Small limits so a hostile header cannot make a run slow; the checks are the same at any size.
const LIMITS: DecodeLimits = DecodeLimits {
    max_message_bytes: 1 << 20,
    max_elements: 1 << 22,
};

fn stages() -> &'static [Expected] {
    static STAGES: OnceLock<Vec<Expected>> = OnceLock::new();
    STAGES.get_or_init(stages::stages)
}

fn refused(r: &Refusal) {
    assert!(!r.message.is_empty(), "a refusal names what was wrong");
    assert!(!r.reason.as_str().is_empty());
}

/// What a shard requires of what it is given, stated apart from the admission code.
fn meets_the_shard_input(act: &Activation, body: &[u8], e: &Expected, a: Admitted) {
    let tokens = match (&act.body, &e.input) {
        (Body::Probe, _) => return,
        (
            Body::Tokens(t),
            StageInput::Tokens {
                vocab,
                max_positions,
            },
        ) => {
            let [b, n] = t.shape;
            assert!((1..=e.max_batch).contains(&b) && (1..=*max_positions).contains(&n));
            assert_eq!(t.ids.len() as u64, b * n);
            assert!(t.ids.iter().all(|&id| id >= 0 && (id as u64) < *vocab));
            assert_eq!((a.batch, a.tokens), (b, n));
            n
        }
        (
            Body::Payload,
            StageInput::Pixels {
                channels,
                image_size,
            },
        ) => {
            let p = BoundaryPayloadRef::borrow_from(body, &LIMITS).expect("admitted payload");
            let shapes: Vec<&[u64]> = p.tensors().map(|t| t.shape()).collect();
            assert_eq!(shapes.len(), 1);
            let s = shapes[0];
            assert_eq!(s.len(), 4);
            assert!((1..=e.max_batch).contains(&s[0]));
            assert_eq!(&s[1..], &[*channels, *image_size, *image_size]);
            decodes(&p);
            0
        }
        (Body::Payload, StageInput::Hidden { widths, tokens }) => {
            let p = BoundaryPayloadRef::borrow_from(body, &LIMITS).expect("admitted payload");
            let shapes: Vec<&[u64]> = p.tensors().map(|t| t.shape()).collect();
            assert_eq!(shapes.len(), widths.len());
            let (b, t) = (shapes[0][0], shapes[0][1]);
            assert!((1..=e.max_batch).contains(&b));
            match tokens {
                TokenCount::Exactly(n) => assert_eq!(t, *n),
                TokenCount::UpTo(max) => assert!((1..=*max).contains(&t)),
            }
            for (s, w) in shapes.iter().zip(widths) {
                assert_eq!(*s, &[b, t, *w][..]);
            }
            decodes(&p);
            t
        }
        (body, input) => panic!("{body:?} admitted into a stage taking {input:?}"),
    };
    match &act.mask {
        None => assert!(!e.mask, "text admitted without a mask"),
        Some(m) => {
            assert!(e.mask, "a mask admitted into an image stage");
            assert_eq!(m.shape, [a.batch, tokens]);
            assert_eq!(m.values.len() as u64, a.batch * tokens);
            assert!(m.values.iter().all(|&v| v <= 1));
        }
    }
    assert!(!act.client.is_empty() && !act.client.contains(['/', '*', '$', '?', '#']));
}

/// Every tensor of an admitted payload decodes to exactly its element count.
fn decodes(p: &BoundaryPayloadRef<'_>) {
    for t in p.tensors() {
        let n = t.element_count().expect("validated") as usize;
        let mut values = vec![0f32; n];
        codec::decode_into(t, &LIMITS, &mut values).expect("an admitted tensor decodes");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, message)) = data.split_first() else {
        return;
    };
    let e = &stages()[pick as usize % stages().len()];
    match admission::decode(message, stages::FLEET, &LIMITS, Some(e)) {
        Err(r) => refused(&r),
        Ok((act, body_at)) => {
            assert!(message.len() as u64 <= e.max_message_bytes());
            let body = &message[body_at..];
            match admission::check_activation(&act, body, e, &LIMITS) {
                Err(r) => refused(&r),
                Ok(a) => meets_the_shard_input(&act, body, e, a),
            }
        }
    }
});
