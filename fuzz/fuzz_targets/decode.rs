//! Feeds arbitrary bytes to the wire decoders. Whatever the input, decoding must return Ok or a
//! typed error (never panic, never allocate beyond the limits below), and anything accepted must
//! decode to exactly its element count, re-serialise to the same value, and (when quantized)
//! decode to finite values only, each outlier channel's values within its own range. The
//! borrowed parse (what a stage uses) must accept exactly what
//! the owned parse accepts, and decode to the same values.

#![no_main]

use libfuzzer_sys::fuzz_target;
use quantpipe_messages::{codec, BoundaryPayload, BoundaryPayloadRef, DecodeLimits, EncodedTensor};

/// Small limits so a hostile header cannot make a run slow; the checks are the same at any size.
const LIMITS: DecodeLimits = DecodeLimits {
    max_message_bytes: 1 << 20,
    max_elements: 1 << 22,
};

fn check(t: &EncodedTensor) {
    let decoded = codec::decode(t, &LIMITS).expect("a validated tensor decodes");
    let n = t.element_count().expect("validated") as usize;
    assert_eq!(decoded.values.len(), n);
    assert_eq!(decoded.shape.len(), t.shape().len());
    if !t.bits().is_raw() {
        assert!(decoded.values.iter().all(|v| v.is_finite()));
        let top = t.bits().max_code() as f32;
        for o in t.outliers() {
            let channels = *t
                .shape()
                .last()
                .expect("validated: outliers need a last dimension");
            let channels = channels as usize;
            let (lo, hi) = (o.offset, o.offset + top * o.scale);
            for row in decoded.values.chunks_exact(channels) {
                let v = row[o.channel as usize];
                assert!(
                    lo <= v && v <= hi,
                    "channel {} value {v} outside [{lo}, {hi}]",
                    o.channel
                );
            }
        }
    }
    let bytes = t.to_bytes();
    assert_eq!(
        &EncodedTensor::from_bytes(&bytes, &LIMITS).expect("own bytes"),
        t
    );
}

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = EncodedTensor::from_bytes(data, &LIMITS) {
        check(&t);
    }
    let owned = BoundaryPayload::from_bytes(data, &LIMITS);
    let borrowed = BoundaryPayloadRef::borrow_from(data, &LIMITS);
    assert_eq!(owned.is_ok(), borrowed.is_ok());
    if let (Ok(p), Ok(r)) = (owned, borrowed) {
        p.tensors().for_each(check);
        assert_eq!(r.to_owned(), p);
        for (t, rt) in p.tensors().zip(r.tensors()) {
            let mut values = vec![0f32; t.element_count().expect("validated") as usize];
            codec::decode_into(rt, &LIMITS, &mut values).expect("a validated tensor decodes");
            let expected = codec::decode(t, &LIMITS).expect("validated").values;
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&values), bits(&expected));
        }
        let bytes = p.to_bytes();
        assert_eq!(
            BoundaryPayload::from_bytes(&bytes, &LIMITS).expect("own bytes"),
            p
        );
    }
});
