//! The copy-free paths of a pipeline hop: encoding straight into the message buffer
//! (`write_payload`) must produce exactly the bytes of the owned types, and parsing with borrowed
//! payloads (`borrow_from`) must decode exactly what the owned parse decodes.

use proptest::prelude::*;
use quantpipe_messages::clipping::{ClipMethod, ValueKind};
use quantpipe_messages::codec::{self, Clip};
use quantpipe_messages::payload::{
    payload_pieces, write_payload, BoundaryPayloadRef, PayloadPiece, TensorToEncode,
};
use quantpipe_messages::tensor::EncodedTensorRef;
use quantpipe_messages::{Bits, BoundaryPayload, DecodeLimits, EncodeError, EncodedTensor};

fn any_bits() -> impl Strategy<Value = Bits> {
    prop_oneof![
        (1u8..=16).prop_map(|b| Bits::new(b).unwrap()),
        Just(Bits::RAW)
    ]
}

fn clip() -> impl Strategy<Value = Clip<'static>> {
    (
        prop_oneof![
            Just(ClipMethod::Naive),
            Just(ClipMethod::Aciq),
            Just(ClipMethod::DsAciq)
        ],
        prop_oneof![Just(ValueKind::TwoSided), Just(ValueKind::OneSidedPostGelu)],
    )
        .prop_map(|(method, kind)| Clip::Method { method, kind })
}

/// (shape, values): 1-3 samples of 0-300 values.
fn tensor() -> impl Strategy<Value = (Vec<usize>, Vec<f32>)> {
    (1usize..=3, 0usize..=300)
        .prop_flat_map(|(s, m)| (Just(vec![s, m]), prop::collection::vec(-50f32..50.0, s * m)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn written_payloads_equal_the_owned_types_bytes(
        (shape, values) in tensor(),
        (skip_shape, skip_values) in tensor(),
        bits in any_bits(),
        skip_bits in any_bits(),
        main_clip in clip(),
        paired in any::<bool>(),
    ) {
        let main = codec::encode(&values, &shape, bits, main_clip).unwrap();
        let skip = codec::encode(&skip_values, &skip_shape, skip_bits, Clip::NAIVE).unwrap();
        let expected = if paired {
            BoundaryPayload::pair(main, skip)
        } else {
            BoundaryPayload::single(main)
        }
        .to_bytes();

        // Written after bytes already in the buffer (a message header), which stay untouched.
        let mut out = vec![0xab, 0xcd];
        let to_encode = |values, shape, bits, clip| TensorToEncode { values, shape, bits, clip };
        write_payload(
            &mut out,
            to_encode(&values, &shape, bits, main_clip),
            paired.then(|| to_encode(&skip_values, &skip_shape, skip_bits, Clip::NAIVE)),
        )
        .unwrap();
        prop_assert_eq!(&out[..2], &[0xab, 0xcd]);
        prop_assert_eq!(&out[2..], &expected[..]);
    }

    #[test]
    fn borrowed_parses_decode_like_owned_ones(
        (shape, values) in tensor(),
        bits in any_bits(),
        paired in any::<bool>(),
    ) {
        let limits = DecodeLimits::default();
        let t = codec::encode(&values, &shape, bits, Clip::NAIVE).unwrap();
        let bytes = t.to_bytes();
        let borrowed = EncodedTensorRef::borrow_from(&bytes, &limits).unwrap();
        prop_assert_eq!(borrowed.to_owned(), t.clone());
        let mut into = vec![0f32; values.len()];
        codec::decode_into(&borrowed, &limits, &mut into).unwrap();
        prop_assert_eq!(&into, &codec::decode(&t, &limits).unwrap().values);

        let payload = if paired {
            BoundaryPayload::pair(t.clone(), t)
        } else {
            BoundaryPayload::single(t)
        };
        let bytes = payload.to_bytes();
        let borrowed = BoundaryPayloadRef::borrow_from(&bytes, &limits).unwrap();
        prop_assert_eq!(borrowed.to_owned(), payload);
        // The borrowed payloads point into the message: nothing was copied out of it.
        let range = bytes.as_ptr_range();
        prop_assert!(borrowed.tensors().all(|t| t.data().is_empty()
            || range.contains(&t.data().as_ptr())));
    }
}

#[test]
fn raw_writes_keep_every_bit_including_non_finite_values() {
    let values = [f32::NAN, -0.0, f32::INFINITY, 1e-42, f32::MIN];
    let mut out = Vec::new();
    let t = TensorToEncode {
        values: &values,
        shape: &[1, 5],
        bits: Bits::RAW,
        clip: Clip::NAIVE,
    };
    write_payload(&mut out, t, None).unwrap();
    let limits = DecodeLimits::default();
    let p = BoundaryPayloadRef::borrow_from(&out, &limits).unwrap();
    let back = codec::decode(p.main(), &limits).unwrap().values;
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&back), bits(&values));
}

#[test]
fn a_failed_write_leaves_the_buffer_as_it_was() {
    let mut out = vec![1, 2, 3];
    let good = [0.5f32; 4];
    let bad = [0.5, f32::NAN, 0.5, 0.5];
    let t = |values| TensorToEncode {
        values,
        shape: &[1, 4],
        bits: Bits::new(4).unwrap(),
        clip: Clip::NAIVE,
    };
    // The skip tensor fails after the main one was written: both are taken back.
    let err = write_payload(&mut out, t(&good), Some(t(&bad))).unwrap_err();
    assert!(
        matches!(err, EncodeError::NonFinite { index: 1, .. }),
        "{err}"
    );
    assert_eq!(out, vec![1, 2, 3]);
    let err = write_payload(
        &mut out,
        TensorToEncode {
            shape: &[2, 3],
            ..t(&good)
        },
        None,
    )
    .unwrap_err();
    assert!(matches!(err, EncodeError::ShapeMismatch { .. }), "{err}");
    assert_eq!(out, vec![1, 2, 3]);
}

#[test]
fn owned_and_borrowed_tensors_report_the_same_header_length() {
    let t: EncodedTensor =
        codec::encode(&[1.0; 64], &[2, 32], Bits::new(6).unwrap(), Clip::NAIVE).unwrap();
    let bytes = t.to_bytes();
    let r = EncodedTensorRef::borrow_from(&bytes, &DecodeLimits::default()).unwrap();
    assert_eq!(r.header_len(), t.header_len());
    assert_eq!(t.header_len() + t.data().len(), bytes.len());
}

#[test]
fn a_written_payload_takes_one_allocation_of_about_its_size() {
    for bits in [Bits::RAW, Bits::new(3).unwrap()] {
        let values = vec![0.25f32; 3 * 1000];
        let t = |shape| TensorToEncode {
            values: &values,
            shape,
            bits,
            clip: Clip::NAIVE,
        };
        let mut out = Vec::new();
        write_payload(&mut out, t(&[3, 1000]), Some(t(&[3, 10, 100]))).unwrap();
        // Reserved once up front: never doubled past the message.
        assert!(out.capacity() >= out.len());
        assert!(
            out.capacity() <= out.len() + 128,
            "{bits}: capacity {} for {} bytes",
            out.capacity(),
            out.len()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn payload_pieces_concatenate_to_the_written_payload(
        (shape, values) in tensor(),
        (skip_shape, skip_values) in tensor(),
        bits in any_bits(),
        skip_bits in any_bits(),
        paired in any::<bool>(),
    ) {
        let to_encode = |values, shape, bits| TensorToEncode { values, shape, bits, clip: Clip::NAIVE };
        let main = to_encode(&values, &shape, bits);
        let skip = paired.then(|| to_encode(&skip_values, &skip_shape, skip_bits));
        let mut expected = Vec::new();
        write_payload(&mut expected, main, skip).unwrap();

        let tensors = [&values, &skip_values];
        let mut joined = Vec::new();
        let mut borrowed = 0;
        for piece in payload_pieces(main, skip).unwrap() {
            match piece {
                PayloadPiece::Written(b) => joined.extend_from_slice(&b),
                PayloadPiece::Values(i) => {
                    borrowed += 1;
                    joined.extend(tensors[i].iter().flat_map(|v| v.to_le_bytes()));
                }
            }
        }
        prop_assert_eq!(joined, expected);
        // Every raw tensor, and only those, is left in place.
        let raw = usize::from(bits.is_raw()) + usize::from(paired && skip_bits.is_raw());
        prop_assert_eq!(borrowed, raw);
    }
}
