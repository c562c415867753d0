//! Property tests of the codec: the round-trip error bound for every bitwidth, exactness at 32
//! bits, clipping, constant samples, non-finite input, and the payload size.

use proptest::prelude::*;
use quantpipe_messages::clipping::{ClipMethod, ClipRange, ValueKind};
use quantpipe_messages::codec::{self, Clip};
use quantpipe_messages::{Bits, BoundaryPayload, DecodeLimits, EncodeError, EncodedTensor};

fn quantized_bits() -> impl Strategy<Value = Bits> {
    (1u8..=16).prop_map(|b| Bits::new(b).unwrap())
}

/// (shape, values): 1-4 samples of 0-70 finite values spanning a random magnitude.
fn tensor() -> impl Strategy<Value = (Vec<usize>, Vec<f32>)> {
    (1usize..=4, 0usize..=70, -6i32..=6).prop_flat_map(|(s, m, exp)| {
        let mag = 10f32.powi(exp);
        (Just(vec![s, m]), prop::collection::vec(-mag..=mag, s * m))
    })
}

/// |x - x^| <= step/2 plus float rounding: a hundredth of a step for the scaled arithmetic, and
/// a few ulps of the sample's magnitude for the final offset + code * scale.
fn bound(scale: f32, max_abs: f32) -> f32 {
    scale * 0.51 + 4.0 * f32::EPSILON * max_abs
}

fn roundtrip(t: &EncodedTensor) -> Vec<f32> {
    let limits = DecodeLimits::default();
    let back = EncodedTensor::from_bytes(&t.to_bytes(), &limits).unwrap();
    assert_eq!(&back, t);
    codec::decode(&back, &limits).unwrap().values
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn unclipped_error_is_at_most_half_a_step((shape, values) in tensor(), bits in quantized_bits()) {
        let t = codec::encode(&values, &shape, bits, Clip::NAIVE).unwrap();
        prop_assert_eq!(t.data().len(), (values.len() * usize::from(bits.get())).div_ceil(8));
        let decoded = roundtrip(&t);
        let per = shape[1];
        for (i, (&x, &y)) in values.iter().zip(&decoded).enumerate() {
            let p = t.params()[i / per];
            let max_abs = p.offset.abs().max((p.offset + p.scale * bits.max_code() as f32).abs());
            prop_assert!((x - y).abs() <= bound(p.scale, max_abs),
                "bits {} x {} y {} scale {}", bits, x, y, p.scale);
        }
    }

    #[test]
    fn raw_32_bits_is_bit_exact(values in prop::collection::vec(any::<f32>(), 0..100)) {
        // any::<f32>() includes NaN and infinities: raw passthrough carries them unchanged.
        let shape = [values.len()];
        let t = codec::encode(&values, &shape, Bits::RAW, Clip::NAIVE).unwrap();
        prop_assert_eq!(t.data().len(), 4 * values.len());
        let decoded = roundtrip(&t);
        let a: Vec<u32> = values.iter().map(|x| x.to_bits()).collect();
        let b: Vec<u32> = decoded.iter().map(|x| x.to_bits()).collect();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn clipped_values_land_in_range_and_unclipped_obey_the_bound(
        (shape, values) in tensor(), bits in quantized_bits(), shrink in 0.05f32..1.0,
    ) {
        let per = shape[1];
        let ranges: Vec<ClipRange> = (0..shape[0]).map(|s| {
            let v = &values[s * per..(s + 1) * per];
            let lo = v.iter().copied().fold(0f32, f32::min) * shrink;
            let hi = v.iter().copied().fold(0f32, f32::max) * shrink;
            ClipRange::new(lo, hi)
        }).collect();
        let t = codec::encode(&values, &shape, bits, Clip::Ranges(&ranges)).unwrap();
        let decoded = roundtrip(&t);
        for (i, (&x, &y)) in values.iter().zip(&decoded).enumerate() {
            let r = ranges[i / per];
            let scale = t.params()[i / per].scale;
            let eps = bound(scale, r.lo.abs().max(r.hi.abs()));
            prop_assert!(y >= r.lo - eps && y <= r.hi + eps, "y {} outside {:?}", y, r);
            if x >= r.lo && x <= r.hi {
                prop_assert!((x - y).abs() <= eps);
            } else {
                // A clipped value decodes to the nearer end of the range.
                let end = if x < r.lo { r.lo } else { r.hi };
                prop_assert!((y - end).abs() <= eps);
            }
        }
    }

    #[test]
    fn every_method_and_kind_round_trips(
        (shape, values) in tensor(),
        bits in quantized_bits(),
        method in prop::sample::select(ClipMethod::ALL.to_vec()),
        one_sided in any::<bool>(),
    ) {
        let kind = if one_sided { ValueKind::OneSidedPostGelu } else { ValueKind::TwoSided };
        let t = codec::encode(&values, &shape, bits, Clip::Method { method, kind }).unwrap();
        let decoded = roundtrip(&t);
        // Whatever the method, decoded values stay inside each sample's [min, max].
        let per = shape[1];
        for s in 0..shape[0] {
            let v = &values[s * per..(s + 1) * per];
            let (lo, hi) = v.iter().fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
            let eps = 8.0 * f32::EPSILON * lo.abs().max(hi.abs());
            for &y in &decoded[s * per..(s + 1) * per] {
                prop_assert!(y >= lo - eps && y <= hi + eps);
            }
        }
    }
}

#[test]
fn constant_samples_decode_exactly_at_every_bitwidth() {
    let values = [3.7f32, 3.7, 3.7, -0.25, -0.25, -0.25, 0.0, 0.0, 0.0];
    for bits in Bits::all() {
        for method in ClipMethod::ALL {
            let clip = Clip::Method {
                method,
                kind: ValueKind::TwoSided,
            };
            let t = codec::encode(&values, &[3, 3], bits, clip).unwrap();
            if !bits.is_raw() {
                assert!(t.params().iter().all(|p| p.scale == 0.0));
            }
            assert_eq!(roundtrip(&t), values, "{bits} bits {method}");
        }
    }
}

#[test]
fn non_finite_values_are_rejected_with_their_position() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut values = vec![1.0f32; 24];
        values[17] = bad;
        let ranges = [ClipRange::new(0.0, 2.0); 2];
        for clip in [
            Clip::NAIVE,
            Clip::Method {
                method: ClipMethod::Aciq,
                kind: ValueKind::TwoSided,
            },
            Clip::Method {
                method: ClipMethod::DsAciq,
                kind: ValueKind::OneSidedPostGelu,
            },
            Clip::Ranges(&ranges),
        ] {
            match codec::encode(&values, &[2, 12], Bits::new(4).unwrap(), clip) {
                Err(EncodeError::NonFinite {
                    index: 17,
                    sample: 1,
                    value,
                }) => {
                    assert_eq!(value.to_bits(), bad.to_bits())
                }
                other => panic!("{clip:?}: expected NonFinite at 17, got {other:?}"),
            }
        }
    }
}

#[test]
fn encode_rejects_bad_shapes_and_ranges() {
    let values = [0.0f32; 6];
    let four = Bits::new(4).unwrap();
    assert!(matches!(
        codec::encode(&values, &[4, 2], four, Clip::NAIVE),
        Err(EncodeError::ShapeMismatch {
            expected: 8,
            found: 6,
            ..
        })
    ));
    assert!(matches!(
        codec::encode(&values, &[usize::MAX, 2], four, Clip::NAIVE),
        Err(EncodeError::ShapeOverflow { .. })
    ));
    let one = [ClipRange::new(0.0, 1.0)];
    assert!(matches!(
        codec::encode(&values, &[2, 3], four, Clip::Ranges(&one)),
        Err(EncodeError::ClipRangeCount {
            expected: 2,
            found: 1
        })
    ));
    let inverted = [ClipRange::new(1.0, 0.0), ClipRange::new(0.0, 1.0)];
    assert!(matches!(
        codec::encode(&values, &[2, 3], four, Clip::Ranges(&inverted)),
        Err(EncodeError::InvalidClipRange { sample: 0, .. })
    ));
    let too_wide = [ClipRange::new(-f32::MAX, f32::MAX); 2];
    assert!(matches!(
        codec::encode(
            &values,
            &[2, 3],
            Bits::new(1).unwrap(),
            Clip::Ranges(&too_wide)
        ),
        Err(EncodeError::InvalidClipRange { sample: 0, .. })
    ));
}

#[test]
fn six_bits_compresses_5_33x_with_small_headers() {
    let shape = [8usize, 197, 768];
    let n: usize = shape.iter().product();
    let values = quantpipe_messages::synth::activations(n, 768, 2);
    let t = codec::encode(&values, &shape, Bits::new(6).unwrap(), Clip::NAIVE).unwrap();
    assert_eq!(t.data().len(), n * 6 / 8);
    let ratio = (4 * n) as f64 / t.data().len() as f64;
    assert!((ratio - 32.0 / 6.0).abs() < 1e-9);
    // Header and per-sample parameters: at most 64 bytes per sample (here about 13).
    let header = t.to_bytes().len() - t.data().len();
    assert!(header <= 64 * 8, "{header}");
    assert_eq!(t.header_len(), header);
    // Even a single-sample rank-4 tensor stays under 64 bytes of header.
    let t = codec::encode(&[1.0; 8], &[1, 2, 2, 2], Bits::new(3).unwrap(), Clip::NAIVE).unwrap();
    assert!(t.header_len() <= 64, "{}", t.header_len());
}

#[test]
fn pair_payload_round_trips_with_independent_bitwidths() {
    let fc1: Vec<f32> = (0..2 * 16)
        .map(|i| (i as f32 * 0.3).sin().max(-0.17))
        .collect();
    let residual: Vec<f32> = (0..2 * 8).map(|i| i as f32 - 8.0).collect();
    let main = codec::encode(
        &fc1,
        &[2, 16],
        Bits::new(3).unwrap(),
        Clip::Method {
            method: ClipMethod::Aciq,
            kind: ValueKind::OneSidedPostGelu,
        },
    )
    .unwrap();
    let skip = codec::encode(&residual, &[2, 8], Bits::RAW, Clip::NAIVE).unwrap();
    let p = BoundaryPayload::pair(main.clone(), skip.clone());
    let limits = DecodeLimits::default();
    let back = BoundaryPayload::from_bytes(&p.to_bytes(), &limits).unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(back.main(), &main);
    assert_eq!(back.skip(), Some(&skip));
    assert_eq!(
        codec::decode(back.skip().unwrap(), &limits).unwrap().values,
        residual
    );
    let single = BoundaryPayload::single(main.clone());
    let back = BoundaryPayload::from_bytes(&single.to_bytes(), &limits).unwrap();
    assert_eq!((back.len(), back.skip()), (1, None));
}
