//! The checks of an activation against what the stage takes in ([`Expected`]): body kind, tensor
//! count, rank and dimensions, batch and sequence bounds, token ids inside the vocabulary, the
//! attention mask, and the client name results go to. Pure and allocation-free beyond the
//! refusal's message: it reads the header and the payload's tensor headers in place.

use super::expected::{Expected, StageInput, TokenCount};
use super::refusal::{Reason, Refusal};
use crate::activation::{Activation, Body, Mask, Tokens};
use crate::limits::DecodeLimits;
use crate::payload::BoundaryPayloadRef;

/// What an admitted microbatch holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// Items (0 for a probe).
    pub batch: u64,
    /// Tokens per item (0 for pixels and probes).
    pub tokens: u64,
}

/// Checks `act`, whose body bytes are `body`, against `expected`; payload tensors are parsed
/// under `limits` (their headers only: values are not decoded).
pub fn check_activation(
    act: &Activation,
    body: &[u8],
    expected: &Expected,
    limits: &DecodeLimits,
) -> Result<Admitted, Refusal> {
    check_client(&act.client)?;
    let admitted = match &act.body {
        Body::Probe => {
            return Ok(Admitted {
                batch: 0,
                tokens: 0,
            })
        }
        Body::Tokens(t) => check_tokens(t, expected)?,
        Body::Payload => check_payload(body, expected, limits)?,
    };
    check_mask(act.mask.as_ref(), expected.mask, admitted)?;
    Ok(admitted)
}

/// Stage 0 takes a client's microbatch only from that client's own key
/// ([`crate::Keys::stage0_in_from`], which access control grants to the client's certificate
/// alone): `sender` is the client the key names (`None`: the message came on no client's key).
pub fn check_sender(act: &Activation, sender: Option<&str>) -> Result<(), Refusal> {
    match sender {
        Some(s) if s == act.client => Ok(()),
        Some(s) => Err(Refusal::new(
            Reason::ClientMismatch,
            format!(
                "microbatch names client {:?} but was sent on the key of client {s:?}",
                act.client.chars().take(64).collect::<String>()
            ),
        )),
        None => Err(Refusal::new(
            Reason::ClientMismatch,
            "a stage-0 microbatch must come on its client's own key (qp/<fleet>/stage/0/in/<client>)",
        )),
    }
}

/// Results go to `qp/<fleet>/result/<client>`: the name must be one chunk of a key expression.
fn check_client(client: &str) -> Result<(), Refusal> {
    const MAX_CLIENT_BYTES: usize = 256;
    let bad = client.is_empty()
        || client.len() > MAX_CLIENT_BYTES
        || client
            .chars()
            .any(|c| matches!(c, '/' | '*' | '$' | '?' | '#') || c.is_control());
    if bad {
        let shown: String = client.chars().take(64).collect();
        return Err(Refusal::new(
            Reason::BadClient,
            format!(
                "client name {shown:?} is not one chunk of a key expression (1..={MAX_CLIENT_BYTES} \
                 bytes without '/', '*', '$', '?', '#' or control characters)"
            ),
        ));
    }
    Ok(())
}

fn check_batch(b: u64, expected: &Expected) -> Result<(), Refusal> {
    if b == 0 {
        return Err(Refusal::new(
            Reason::WrongShape,
            "empty microbatch (0 items)",
        ));
    }
    if b > expected.max_batch {
        return Err(Refusal::new(
            Reason::BatchTooLarge,
            format!(
                "microbatch of {b} items, this stage takes at most {}",
                expected.max_batch
            ),
        ));
    }
    Ok(())
}

fn check_tokens(t: &Tokens, expected: &Expected) -> Result<Admitted, Refusal> {
    let StageInput::Tokens {
        vocab,
        max_positions,
    } = expected.input
    else {
        return Err(wrong_kind("token ids", &expected.input));
    };
    let [b, n] = t.shape;
    check_batch(b, expected)?;
    if n == 0 {
        return Err(Refusal::new(Reason::WrongShape, "items of 0 tokens"));
    }
    if n > max_positions {
        return Err(Refusal::new(
            Reason::SequenceTooLong,
            format!("{n} tokens per item, the model has {max_positions} positions"),
        ));
    }
    // b and n are bounded above, so the product cannot overflow.
    if t.ids.len() as u64 != b * n {
        return Err(Refusal::new(
            Reason::WrongShape,
            format!("token ids of shape [{b}, {n}] with {} ids", t.ids.len()),
        ));
    }
    if let Some((at, id)) = t
        .ids
        .iter()
        .enumerate()
        .find(|(_, &id)| id < 0 || id as u64 >= vocab)
    {
        return Err(Refusal::new(
            Reason::TokenOutOfRange,
            format!(
                "token id {id} (item {}, position {}) outside the vocabulary 0..{vocab}",
                at as u64 / n,
                at as u64 % n
            ),
        ));
    }
    Ok(Admitted {
        batch: b,
        tokens: n,
    })
}

fn check_payload(
    body: &[u8],
    expected: &Expected,
    limits: &DecodeLimits,
) -> Result<Admitted, Refusal> {
    if let StageInput::Tokens { .. } = expected.input {
        return Err(wrong_kind("encoded tensors", &expected.input));
    }
    let payload = BoundaryPayloadRef::borrow_from(body, limits).map_err(|e| {
        Refusal::new(
            Reason::Malformed,
            format!("payload of {} bytes: {e}", body.len()),
        )
    })?;
    let shapes: Vec<&[u64]> = payload.tensors().map(|t| t.shape()).collect();
    let wrong = |what: String| Refusal::new(Reason::WrongShape, what);
    match &expected.input {
        StageInput::Tokens { .. } => unreachable!("refused above"),
        StageInput::Pixels {
            channels,
            image_size,
        } => {
            let want = |b| format!("[{b}, {channels}, {image_size}, {image_size}]");
            match shapes[..] {
                [[b, c, h, w]] if c == channels && h == image_size && w == image_size => {
                    check_batch(*b, expected)?;
                    Ok(Admitted {
                        batch: *b,
                        tokens: 0,
                    })
                }
                [s] => Err(wrong(format!(
                    "pixels of shape {s:?}, expected {}",
                    want("batch")
                ))),
                _ => Err(wrong(format!(
                    "{} tensors where pixels (one tensor) are expected",
                    shapes.len()
                ))),
            }
        }
        StageInput::Hidden { widths, tokens } => {
            if shapes.len() != widths.len() {
                return Err(wrong(format!(
                    "{} tensor(s) where this stage takes {}",
                    shapes.len(),
                    widths.len()
                )));
            }
            let (b, t) = match shapes[0] {
                [b, t, _] => (*b, *t),
                s => {
                    return Err(wrong(format!(
                        "tensor 0 of shape {s:?}, expected [batch, tokens, {}]",
                        widths[0]
                    )))
                }
            };
            check_batch(b, expected)?;
            check_token_count(t, *tokens)?;
            for (i, (s, w)) in shapes.iter().zip(widths).enumerate() {
                if *s != [b, t, *w] {
                    return Err(wrong(format!(
                        "tensor {i} of shape {s:?}, expected [{b}, {t}, {w}]"
                    )));
                }
            }
            Ok(Admitted {
                batch: b,
                tokens: t,
            })
        }
    }
}

fn check_token_count(t: u64, tokens: TokenCount) -> Result<(), Refusal> {
    match tokens {
        _ if tokens.admits(t) => Ok(()),
        TokenCount::Exactly(n) => Err(Refusal::new(
            Reason::WrongShape,
            format!("{t} tokens per item, the model's images have {n}"),
        )),
        TokenCount::UpTo(_) if t == 0 => Err(Refusal::new(Reason::WrongShape, "items of 0 tokens")),
        TokenCount::UpTo(max) => Err(Refusal::new(
            Reason::SequenceTooLong,
            format!("{t} tokens per item, the model has {max} positions"),
        )),
    }
}

fn check_mask(mask: Option<&Mask>, required: bool, admitted: Admitted) -> Result<(), Refusal> {
    let bad = |what: String| Refusal::new(Reason::BadMask, what);
    let Admitted { batch, tokens } = admitted;
    match mask {
        None if required => Err(bad("text models need an attention mask".into())),
        None => Ok(()),
        Some(_) if !required => Err(bad("image models take no attention mask".into())),
        Some(m) => {
            if m.shape != [batch, tokens] {
                return Err(bad(format!(
                    "attention mask of shape {:?}, expected [{batch}, {tokens}]",
                    m.shape
                )));
            }
            if m.values.len() as u64 != batch * tokens {
                return Err(bad(format!(
                    "attention mask of shape {:?} with {} values",
                    m.shape,
                    m.values.len()
                )));
            }
            if let Some(v) = m.values.iter().find(|&&v| v > 1) {
                return Err(bad(format!("attention mask value {v}, expected 0 or 1")));
            }
            Ok(())
        }
    }
}

fn wrong_kind(found: &str, expected: &StageInput) -> Refusal {
    let wants = match expected {
        StageInput::Tokens { .. } => "token ids",
        StageInput::Pixels { .. } => "pixels",
        StageInput::Hidden { .. } => "hidden states",
    };
    Refusal::new(
        Reason::WrongKind,
        format!("{found} sent to a stage that takes {wants}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{Expected, ModelInputs, ModelShape};
    use crate::codec::{self, Clip};
    use crate::{Bits, BoundaryPayload};

    fn text() -> ModelShape {
        ModelShape {
            inputs: ModelInputs::Text {
                vocab: 100,
                max_positions: 16,
            },
            hidden: 8,
            intermediate: 12,
            units: 8,
        }
    }

    fn image() -> ModelShape {
        ModelShape {
            inputs: ModelInputs::Image {
                channels: 3,
                image_size: 4,
                tokens: 5,
            },
            hidden: 8,
            intermediate: 12,
            units: 8,
        }
    }

    fn act(body: Body, mask: Option<Mask>) -> Activation {
        Activation {
            run: 1,
            client: "client".into(),
            seq: 0,
            epoch: 1,
            stage: 0,
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

    fn tokens(b: u64, t: u64, ids: Vec<i64>) -> Activation {
        act(Body::Tokens(Tokens { shape: [b, t], ids }), ones(b, t))
    }

    fn tensor(shape: &[usize], bits: u8) -> crate::EncodedTensor {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|i| (i as f32 * 0.3).sin()).collect();
        codec::encode(&values, shape, Bits::new(bits).unwrap(), Clip::NAIVE).unwrap()
    }

    fn payload(shapes: &[&[usize]]) -> Vec<u8> {
        let mut ts = shapes.iter().map(|s| tensor(s, 8));
        let main = ts.next().unwrap();
        match ts.next() {
            Some(skip) => BoundaryPayload::pair(main, skip).to_bytes(),
            None => BoundaryPayload::single(main).to_bytes(),
        }
    }

    fn check(
        model: &ModelShape,
        unit: usize,
        a: &Activation,
        body: &[u8],
    ) -> Result<Admitted, Refusal> {
        let e = Expected::entering(model, unit, 4).unwrap();
        check_activation(a, body, &e, &DecodeLimits::default())
    }

    fn reason(r: Result<Admitted, Refusal>) -> Reason {
        r.unwrap_err().reason
    }

    #[test]
    fn token_ids_inside_the_vocabulary_are_admitted() {
        let a = tokens(2, 3, vec![0, 99, 5, 1, 2, 3]);
        assert_eq!(
            check(&text(), 1, &a, &[]),
            Ok(Admitted {
                batch: 2,
                tokens: 3
            })
        );
    }

    #[test]
    fn a_token_id_outside_the_vocabulary_is_refused_naming_it_and_where_it_is() {
        for (id, named) in [(100, "100"), (-1, "-1"), (i64::MAX, "9223372036854775807")] {
            let r = check(&text(), 1, &tokens(2, 2, vec![1, 2, 3, id]), &[]).unwrap_err();
            assert_eq!(r.reason, Reason::TokenOutOfRange);
            assert!(
                r.message.contains(named) && r.message.contains("item 1, position 1"),
                "{r}"
            );
        }
    }

    #[test]
    fn sequences_longer_than_the_positions_are_refused() {
        let a = tokens(1, 17, vec![1; 17]);
        assert_eq!(reason(check(&text(), 1, &a, &[])), Reason::SequenceTooLong);
    }

    #[test]
    fn ids_other_than_the_shape_holds_are_the_wrong_shape() {
        let a = tokens(2, 3, vec![1; 5]);
        assert_eq!(reason(check(&text(), 1, &a, &[])), Reason::WrongShape);
        // A shape whose product overflows is refused by the bounds before it is multiplied.
        let a = act(
            Body::Tokens(Tokens {
                shape: [u64::MAX, u64::MAX],
                ids: vec![],
            }),
            None,
        );
        assert_eq!(reason(check(&text(), 1, &a, &[])), Reason::BatchTooLarge);
    }

    #[test]
    fn empty_and_oversized_microbatches_are_refused() {
        let a = tokens(0, 3, vec![]);
        assert_eq!(reason(check(&text(), 1, &a, &[])), Reason::WrongShape);
        let a = tokens(5, 1, vec![1; 5]);
        assert_eq!(reason(check(&text(), 1, &a, &[])), Reason::BatchTooLarge);
        let a = tokens(1, 0, vec![]);
        assert_eq!(reason(check(&text(), 1, &a, &[])), Reason::WrongShape);
    }

    #[test]
    fn tokens_into_a_later_stage_and_tensors_into_the_first_are_the_wrong_kind() {
        let a = tokens(1, 2, vec![1, 2]);
        assert_eq!(reason(check(&text(), 3, &a, &[])), Reason::WrongKind);
        let body = payload(&[&[1, 2, 8]]);
        let a = act(Body::Payload, ones(1, 2));
        assert_eq!(reason(check(&text(), 1, &a, &body)), Reason::WrongKind);
    }

    #[test]
    fn hidden_states_of_the_cut_before_the_stage_are_admitted() {
        // Unit 2 follows an attention unit: context and residual, both of the hidden width.
        let body = payload(&[&[2, 3, 8], &[2, 3, 8]]);
        let a = act(Body::Payload, ones(2, 3));
        assert_eq!(
            check(&text(), 2, &a, &body),
            Ok(Admitted {
                batch: 2,
                tokens: 3
            })
        );
        // Unit 4 follows the first MLP layer: intermediate and residual.
        let body = payload(&[&[2, 3, 12], &[2, 3, 8]]);
        assert!(check(&text(), 4, &a, &body).is_ok());
    }

    #[test]
    fn hidden_states_of_another_count_or_shape_are_the_wrong_shape() {
        let a = act(Body::Payload, ones(2, 3));
        for shapes in [
            &[&[2usize, 3, 8][..]][..],   // one tensor where two cross
            &[&[2, 3, 8], &[2, 3, 9]],    // the residual's width
            &[&[2, 3, 8], &[1, 3, 8]],    // batches that differ
            &[&[2, 3], &[2, 3, 8]],       // rank
            &[&[2, 3, 8, 1], &[2, 3, 8]], // rank
        ] {
            let r = check(&text(), 2, &a, &payload(shapes)).unwrap_err();
            assert_eq!(r.reason, Reason::WrongShape, "{shapes:?}: {r}");
        }
    }

    #[test]
    fn image_hidden_states_need_exactly_the_image_tokens() {
        let body = payload(&[&[1, 5, 8]]);
        let a = act(Body::Payload, None);
        assert!(check(&image(), 3, &a, &body).is_ok());
        let r = check(&image(), 3, &a, &payload(&[&[1, 6, 8]])).unwrap_err();
        assert_eq!(r.reason, Reason::WrongShape);
        assert!(
            r.message.contains("6 tokens") && r.message.contains("have 5"),
            "{r}"
        );
    }

    #[test]
    fn pixels_of_the_model_image_shape_are_admitted_and_others_refused() {
        let a = act(Body::Payload, None);
        assert_eq!(
            check(&image(), 1, &a, &payload(&[&[2, 3, 4, 4]])),
            Ok(Admitted {
                batch: 2,
                tokens: 0
            })
        );
        for shapes in [
            &[&[2usize, 1, 4, 4][..]][..],
            &[&[2, 3, 4]],
            &[&[2, 3, 4, 4], &[2, 3, 4, 4]],
        ] {
            let r = check(&image(), 1, &a, &payload(shapes)).unwrap_err();
            assert_eq!(r.reason, Reason::WrongShape, "{shapes:?}: {r}");
        }
        let a = act(Body::Payload, None);
        assert_eq!(
            reason(check(&image(), 1, &a, &payload(&[&[5, 3, 4, 4]]))),
            Reason::BatchTooLarge
        );
    }

    #[test]
    fn masks_must_match_the_tokens_and_hold_zeros_and_ones() {
        let body = Body::Tokens(Tokens {
            shape: [1, 2],
            ids: vec![1, 2],
        });
        for mask in [
            None,
            ones(1, 3),
            Some(Mask {
                shape: [1, 2],
                values: vec![1],
            }),
            Some(Mask {
                shape: [1, 2],
                values: vec![1, 2],
            }),
        ] {
            let r = check(&text(), 1, &act(body.clone(), mask), &[]);
            assert_eq!(reason(r), Reason::BadMask);
        }
        let body = payload(&[&[1, 5, 8]]);
        let r = check(&image(), 3, &act(Body::Payload, ones(1, 5)), &body);
        assert_eq!(reason(r), Reason::BadMask);
    }

    #[test]
    fn payload_bytes_that_do_not_parse_are_malformed() {
        let a = act(Body::Payload, ones(1, 2));
        for body in [&[][..], &[0xc1], &payload(&[&[1, 2, 8], &[1, 2, 8]])[..20]] {
            assert_eq!(reason(check(&text(), 2, &a, body)), Reason::Malformed);
        }
    }

    #[test]
    fn clients_that_are_not_one_key_chunk_are_refused() {
        for client in ["", "a/b", "**", "a*", "$x", "a?b", "a#", "x\n"] {
            let mut a = tokens(1, 1, vec![1]);
            a.client = client.into();
            assert_eq!(
                reason(check(&text(), 1, &a, &[])),
                Reason::BadClient,
                "{client:?}"
            );
        }
        let mut a = tokens(1, 1, vec![1]);
        a.client = "x".repeat(257);
        assert_eq!(reason(check(&text(), 1, &a, &[])), Reason::BadClient);
    }

    #[test]
    fn probes_are_admitted_without_looking_at_their_filler() {
        let a = act(Body::Probe, None);
        assert_eq!(
            check(&text(), 2, &a, &[0xc1; 10]),
            Ok(Admitted {
                batch: 0,
                tokens: 0
            })
        );
    }

    #[test]
    fn a_stage0_microbatch_is_taken_only_from_the_key_of_the_client_it_names() {
        let a = act(Body::Probe, None);
        assert_eq!(check_sender(&a, Some("client")), Ok(()));
        let forged = check_sender(&a, Some("mallory")).unwrap_err();
        assert_eq!(forged.reason, Reason::ClientMismatch);
        assert!(forged.message.contains("\"mallory\""), "{forged}");
        assert_eq!(
            check_sender(&a, None).unwrap_err().reason,
            Reason::ClientMismatch
        );
    }
}
