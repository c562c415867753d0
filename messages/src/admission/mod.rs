//! Admission: what a stage checks every incoming message against before anything is allocated
//! for it or handed to the model. In order:
//!
//! 1. [`decode`]: the size against the stage's bound ([`Expected::max_message_bytes`], within
//!    [`DecodeLimits`]) before a byte is parsed, then version, fleet and the header (the
//!    envelope's own checks, [`crate::envelope`]);
//! 2. (the stage's plan epoch and stage number, which only the stage knows);
//! 3. [`check_activation`]: body kind (token ids, pixels, hidden states), tensor count, rank and
//!    dimensions against what the stage's first unit takes ([`Expected::entering`]), the batch
//!    bound, token ids inside the vocabulary and the sequence within the model's positions, the
//!    attention mask, and the client name results go to.
//!
//! Each refusal is a [`Refusal`]: a [`Reason`] from a fixed list, whose name the node counts in
//! [`crate::NodeStats::refused`], and a message naming what was wrong, which goes to the log and,
//! when the header named a client, to that client as an error result.
//!
//! ```
//! use quantpipe_messages::admission::{self, Expected, ModelInputs, ModelShape, Reason};
//! use quantpipe_messages::{Activation, Body, DecodeLimits, Mask, Tokens};
//!
//! let model = ModelShape {
//!     inputs: ModelInputs::Text { vocab: 100, max_positions: 16 },
//!     hidden: 32,
//!     intermediate: 64,
//!     units: 8,
//! };
//! let stage0 = Expected::entering(&model, 1, 4)?;
//! let act = Activation {
//!     run: 1, client: "c".into(), seq: 0, epoch: 1, stage: 0, sent_unix_ns: 0,
//!     body: Body::Tokens(Tokens { shape: [1, 2], ids: vec![7, 100] }),
//!     body_len: 0,
//!     mask: Some(Mask { shape: [1, 2], values: vec![1, 1] }),
//! };
//! let bytes = act.into_message("lab", vec![]).concat();
//! let limits = DecodeLimits::default();
//! let (act, body_at) = admission::decode(&bytes, "lab", &limits, Some(&stage0))?;
//! let refusal = admission::check_activation(&act, &bytes[body_at..], &stage0, &limits)
//!     .unwrap_err();
//! assert_eq!(refusal.reason, Reason::TokenOutOfRange);
//! assert_eq!(refusal.reason.as_str(), "token-out-of-range");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod check;
mod expected;
mod refusal;

pub use check::{check_activation, check_sender, Admitted};
pub use expected::{Expected, ModelInputs, ModelShape, StageInput, TokenCount};
pub use refusal::{Reason, Refusal};

use crate::activation::Activation;
use crate::limits::DecodeLimits;

/// The limits a stage expecting `expected` decodes under: `limits`, with the message size
/// bounded by the largest message an admissible microbatch needs.
pub fn stage_limits(limits: &DecodeLimits, expected: Option<&Expected>) -> DecodeLimits {
    let bound = expected
        .map(|e| usize::try_from(e.max_message_bytes()).unwrap_or(usize::MAX))
        .unwrap_or(usize::MAX);
    DecodeLimits {
        max_message_bytes: limits.max_message_bytes.min(bound),
        ..*limits
    }
}

/// Decodes an activation message of `fleet` (header only; the body's offset is returned) under
/// [`stage_limits`]: a message larger than the stage could ever need is refused before it is
/// parsed.
pub fn decode(
    bytes: &[u8],
    fleet: &str,
    limits: &DecodeLimits,
    expected: Option<&Expected>,
) -> Result<(Activation, usize), Refusal> {
    Activation::from_message_with(bytes, fleet, &stage_limits(limits, expected))
        .map_err(Refusal::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Body, Mask, Tokens};

    fn stage0() -> Expected {
        let model = ModelShape {
            inputs: ModelInputs::Text {
                vocab: 100,
                max_positions: 16,
            },
            hidden: 8,
            intermediate: 12,
            units: 8,
        };
        Expected::entering(&model, 1, 4).unwrap()
    }

    fn message(ids: usize) -> Vec<u8> {
        Activation {
            run: 1,
            client: "c".into(),
            seq: 0,
            epoch: 1,
            stage: 0,
            sent_unix_ns: 0,
            body: Body::Tokens(Tokens {
                shape: [1, ids as u64],
                ids: vec![1; ids],
            }),
            body_len: 0,
            mask: Some(Mask {
                shape: [1, ids as u64],
                values: vec![1; ids],
            }),
        }
        .into_message("f", vec![])
        .concat()
    }

    #[test]
    fn a_message_larger_than_the_stage_could_need_is_too_large_before_parsing() {
        let limits = DecodeLimits::default();
        let bound = stage0().max_message_bytes() as usize;
        // Ids of 1 take a byte each, and the mask another.
        let big = message(bound / 2 + 1);
        assert!(big.len() > bound);
        let r = decode(&big, "f", &limits, Some(&stage0())).unwrap_err();
        assert_eq!(r.reason, Reason::TooLarge);
        // Without an assignment only the node's limits apply.
        assert!(decode(&big, "f", &limits, None).is_ok());
        assert!(decode(&message(4), "f", &limits, Some(&stage0())).is_ok());
    }

    #[test]
    fn the_stage_bound_never_raises_the_node_limit() {
        let tight = DecodeLimits {
            max_message_bytes: 10,
            ..DecodeLimits::default()
        };
        assert_eq!(stage_limits(&tight, Some(&stage0())).max_message_bytes, 10);
        let r = decode(&message(4), "f", &tight, Some(&stage0())).unwrap_err();
        assert_eq!(r.reason, Reason::TooLarge);
    }

    #[test]
    fn garbage_foreign_and_other_versions_keep_their_reasons() {
        let limits = DecodeLimits::default();
        let r = decode(&[0xc1, 0xff, 0x00], "f", &limits, None).unwrap_err();
        assert_eq!(r.reason, Reason::Malformed);
        let r = decode(&message(2), "g", &limits, None).unwrap_err();
        assert_eq!(r.reason, Reason::ForeignFleet);
        let mut old = message(2);
        old[1] = 0x63; // the version fixint
        let r = decode(&old, "f", &limits, None).unwrap_err();
        assert_eq!(r.reason, Reason::WrongVersion, "{r}");
    }
}
