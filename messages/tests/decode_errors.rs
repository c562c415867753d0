//! Hostile and broken buffers: each must produce the typed error that names what is wrong.

use quantpipe_messages::codec::{self, Clip};
use quantpipe_messages::{Bits, BoundaryPayload, DecodeError, DecodeLimits, EncodedTensor};
use serde_bytes::ByteBuf;

/// The wire layout of EncodedTensor, written field by field so tests can break one at a time.
type Raw = (
    u16,
    Vec<u64>,
    u8,
    u8,
    Vec<(f32, f32)>,
    Vec<(u32, f32, f32)>,
    ByteBuf,
);

fn raw(shape: &[u64], bits: u8, params: &[(f32, f32)], data_len: usize) -> Vec<u8> {
    raw_with_outliers(shape, bits, params, &[], data_len)
}

fn raw_with_outliers(
    shape: &[u64],
    bits: u8,
    params: &[(f32, f32)],
    outliers: &[(u32, f32, f32)],
    data_len: usize,
) -> Vec<u8> {
    let r: Raw = (
        2,
        shape.to_vec(),
        0,
        bits,
        params.to_vec(),
        outliers.to_vec(),
        ByteBuf::from(vec![0u8; data_len]),
    );
    rmp_serde::to_vec(&r).unwrap()
}

fn parse(buf: &[u8]) -> Result<EncodedTensor, DecodeError> {
    EncodedTensor::from_bytes(buf, &DecodeLimits::default())
}

fn valid() -> Vec<u8> {
    let values: Vec<f32> = (0..24).map(|i| i as f32).collect();
    codec::encode(&values, &[2, 12], Bits::new(5).unwrap(), Clip::NAIVE)
        .unwrap()
        .to_bytes()
}

#[test]
fn the_raw_layout_matches_the_real_one() {
    // Guards the other tests: a well-formed Raw is accepted.
    let buf = raw(&[2, 4], 4, &[(1.0, 0.0), (0.5, -1.0)], 4);
    let t = parse(&buf).unwrap();
    assert_eq!(t.shape(), &[2, 4]);
    assert_eq!(t.to_bytes(), buf);
}

#[test]
fn every_truncation_is_reported_as_truncated() {
    let buf = valid();
    for cut in 0..buf.len() {
        match parse(&buf[..cut]) {
            Err(DecodeError::Truncated(_)) => {}
            other => panic!("cut at {cut}/{}: {other:?}", buf.len()),
        }
    }
    assert!(parse(&buf).is_ok());
}

#[test]
fn oversized_messages_are_refused_before_parsing() {
    let buf = valid();
    let limits = DecodeLimits {
        max_message_bytes: buf.len() - 1,
        ..DecodeLimits::default()
    };
    assert_eq!(
        EncodedTensor::from_bytes(&buf, &limits),
        Err(DecodeError::MessageTooLarge {
            len: buf.len(),
            max: buf.len() - 1
        })
    );
    assert_eq!(DecodeLimits::default().max_message_bytes, 256 << 20);
}

#[test]
fn wrong_version_is_named_even_if_the_rest_is_garbage() {
    let mut buf = valid();
    assert_eq!(
        buf[1], 2,
        "version is a fixint right after the array marker"
    );
    buf[1] = 7;
    buf.truncate(4); // the rest would not parse: the version must be checked first
    assert_eq!(
        parse(&buf),
        Err(DecodeError::UnsupportedVersion {
            found: 7,
            supported: 2
        })
    );
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut buf = valid();
    let len = buf.len();
    buf.extend_from_slice(&[0, 0, 0]);
    assert_eq!(
        parse(&buf),
        Err(DecodeError::TrailingBytes { len, count: 3 })
    );
}

#[test]
fn payload_length_must_be_dense() {
    // 2 x 3 values at 5 bits = 30 bits = 4 bytes.
    let err = parse(&raw(&[2, 3], 5, &[(1.0, 0.0); 2], 5)).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::PayloadLength {
                expected: 4,
                found: 5,
                bits: 5,
                ..
            }
        ),
        "{err:?}"
    );
    let err = parse(&raw(&[3], 32, &[], 11)).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::PayloadLength {
                expected: 12,
                found: 11,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn parameter_count_and_values_are_checked() {
    let err = parse(&raw(&[2, 3], 8, &[(1.0, 0.0)], 6)).unwrap_err();
    assert_eq!(
        err,
        DecodeError::ParamCount {
            bits: 8,
            expected: 2,
            found: 1
        }
    );
    let err = parse(&raw(&[3], 32, &[(1.0, 0.0)], 12)).unwrap_err();
    assert_eq!(
        err,
        DecodeError::ParamCount {
            bits: 32,
            expected: 0,
            found: 1
        }
    );
    for (scale, offset) in [(f32::NAN, 0.0), (-1.0, 0.0), (1.0, f32::INFINITY)] {
        let err = parse(&raw(&[2, 3], 8, &[(1.0, 0.0), (scale, offset)], 6)).unwrap_err();
        assert!(
            matches!(err, DecodeError::InvalidParams { sample: 1, .. }),
            "{err:?}"
        );
    }
    let err = parse(&raw(&[1, 3], 16, &[(1e35, 3e38)], 6)).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::RangeOverflow {
                sample: 0,
                max_code: 65535,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn huge_shapes_are_refused_without_allocating() {
    let err = parse(&raw(&[u64::MAX, 2], 8, &[], 0)).unwrap_err();
    assert!(matches!(err, DecodeError::ShapeOverflow { .. }), "{err:?}");
    // 2^40 elements declared in a few bytes: refused by the element limit, not by an
    // allocation failure.
    let err = parse(&raw(&[1 << 40], 1, &[], 0)).unwrap_err();
    assert!(
        matches!(err, DecodeError::TooManyElements { elements, .. } if elements == 1 << 40),
        "{err:?}"
    );
    // A bin header declaring 4 GiB with 10 bytes behind it.
    let mut buf = raw(&[1], 8, &[(1.0, 0.0)], 0);
    buf.pop(); // the empty bin8 length byte
    buf.pop(); // and its marker
    buf.extend_from_slice(&[0xc6, 0xff, 0xff, 0xff, 0xff]);
    buf.extend_from_slice(&[0; 10]);
    assert!(matches!(parse(&buf), Err(DecodeError::Truncated(_))));
}

#[test]
fn invalid_bits_and_dtype_are_malformed_and_named() {
    let err = parse(&raw(&[2], 17, &[], 0)).unwrap_err();
    assert!(
        matches!(&err, DecodeError::Malformed(m) if m.contains("invalid bitwidth 17")),
        "{err:?}"
    );
    let mut r: Raw = (
        2,
        vec![1],
        0,
        8,
        vec![(1.0, 0.0)],
        vec![],
        ByteBuf::from(vec![0u8]),
    );
    r.2 = 9;
    let err = parse(&rmp_serde::to_vec(&r).unwrap()).unwrap_err();
    assert!(
        matches!(&err, DecodeError::Malformed(m) if m.contains("dtype")),
        "{err:?}"
    );
    let err = parse(&[0x81, 0x01, 0x02]).unwrap_err();
    assert!(
        matches!(&err, DecodeError::Malformed(m) if m.contains("array")),
        "{err:?}"
    );
}

#[test]
fn decode_checks_structs_that_arrived_through_serde() {
    // An inconsistent tensor embedded in some other message, deserialised without from_bytes.
    let t: EncodedTensor = rmp_serde::from_slice(&raw(&[2, 3], 5, &[(1.0, 0.0); 2], 5)).unwrap();
    let limits = DecodeLimits::default();
    assert!(matches!(
        codec::decode(&t, &limits),
        Err(DecodeError::PayloadLength { .. })
    ));
    let good = parse(&valid()).unwrap();
    let mut out = vec![0f32; 23];
    assert_eq!(
        codec::decode_into(&good, &limits, &mut out),
        Err(DecodeError::OutputLength {
            expected: 24,
            found: 23
        })
    );
}

#[test]
fn payload_errors_name_the_tensor() {
    let good = parse(&valid()).unwrap();
    let bad: EncodedTensor = rmp_serde::from_slice(&raw(&[2, 3], 5, &[(1.0, 0.0); 2], 5)).unwrap();
    let buf = BoundaryPayload::pair(good, bad).to_bytes();
    let err = BoundaryPayload::from_bytes(&buf, &DecodeLimits::default()).unwrap_err();
    assert!(
        matches!(&err, DecodeError::PayloadTensor { index: 1, source } if matches!(**source, DecodeError::PayloadLength { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("tensor 1"));
}

#[test]
fn outlier_channels_are_checked() {
    let params = [(1.0, 0.0); 2];
    let ok = raw_with_outliers(&[2, 4], 4, &params, &[(1, 0.5, -3.0), (3, 2.0, 1.0)], 4);
    let t = parse(&ok).unwrap();
    assert_eq!(t.outliers().len(), 2);
    assert_eq!(t.to_bytes(), ok);
    let malformed = |outliers: &[(u32, f32, f32)], bits: u8, data_len: usize, what: &str| {
        let p: &[(f32, f32)] = if bits == 32 { &[] } else { &params };
        let err = parse(&raw_with_outliers(&[2, 4], bits, p, outliers, data_len)).unwrap_err();
        assert!(
            matches!(&err, DecodeError::Malformed(m) if m.contains(what)),
            "{outliers:?}: {err:?}"
        );
    };
    malformed(&[(4, 1.0, 0.0)], 4, 4, "outside the last dimension");
    malformed(&[(u32::MAX, 1.0, 0.0)], 4, 4, "outside the last dimension");
    malformed(&[(2, 1.0, 0.0), (2, 1.0, 0.0)], 4, 4, "strictly increasing");
    malformed(&[(3, 1.0, 0.0), (1, 1.0, 0.0)], 4, 4, "strictly increasing");
    malformed(&[(1, f32::NAN, 0.0)], 4, 4, "invalid parameters");
    malformed(&[(1, -1.0, 0.0)], 4, 4, "invalid parameters");
    malformed(&[(1, 3e38, 3e38)], 4, 4, "not finite");
    malformed(&[(1, 1.0, 0.0)], 32, 32, "raw 32-bit");
    // A rank-0 tensor has no last dimension to index.
    let err = parse(&raw_with_outliers(
        &[],
        8,
        &[(1.0, 0.0)],
        &[(0, 1.0, 0.0)],
        1,
    ))
    .unwrap_err();
    assert!(matches!(err, DecodeError::Malformed(_)), "{err:?}");
}

#[test]
fn outlier_channels_decode_with_their_own_parameters() {
    // [1, 2, 3] at 8 bits, codes all 2: channel 1 decodes with (0.5, 10) instead of (1, 0).
    let mut buf = raw_with_outliers(&[1, 2, 3], 8, &[(1.0, 0.0)], &[(1, 0.5, 10.0)], 6);
    let n = buf.len();
    buf[n - 6..].fill(2);
    let t = parse(&buf).unwrap();
    let d = codec::decode(&t, &DecodeLimits::default()).unwrap();
    assert_eq!(d.values, [2.0, 11.0, 2.0, 2.0, 11.0, 2.0]);
}

#[test]
fn an_array_of_integers_is_not_a_payload() {
    // The data field as [0, 122] instead of a bin: the borrowed parse cannot take it, so the
    // owned one must not either (found by the decode fuzz target).
    let r = (
        2u16,
        vec![1u64, 3],
        0u8,
        5u8,
        vec![(1.0f32, 0.0f32)],
        Vec::<(u32, f32, f32)>::new(),
        vec![0u8, 122],
    );
    let buf = rmp_serde::to_vec(&r).unwrap();
    let err = parse(&buf).unwrap_err();
    assert!(matches!(err, DecodeError::Malformed(_)), "{err:?}");
    let payload = rmp_serde::to_vec(&(2u16, r, ())).unwrap();
    let owned = BoundaryPayload::from_bytes(&payload, &DecodeLimits::default());
    assert!(owned.is_err(), "{owned:?}");
}
