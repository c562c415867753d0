//! DS-ACIQ over whole tensors: outlier channels cost at most 2% of the plain payload on the wire,
//! decode with their own parameters, and the codec's error is never above naive's or ACIQ's.
//!
//! `cargo test -p quantpipe-messages --test outlier_channels -- --nocapture` prints the wire cost
//! of every shape and bitwidth.

use quantpipe_messages::clipping::{ClipMethod, ValueKind};
use quantpipe_messages::codec::{self, Clip};
use quantpipe_messages::synth::{activations, Rng};
use quantpipe_messages::{Bits, DecodeLimits, EncodedTensor};

/// Boundary shapes at microbatch 8: MiniLM-L6's residual and post-GELU tensors (hidden 384,
/// fc1 1536, 128 tokens) and the Fashion-MNIST ViT's (hidden 64, fc1 128, 17 tokens); the ViT's
/// at the eval's microbatch of 500 too.
const SHAPES: [[usize; 3]; 6] = [
    [8, 128, 384],
    [8, 128, 1536],
    [8, 17, 64],
    [8, 17, 128],
    [500, 17, 64],
    [500, 17, 128],
];

const BITS: [u8; 6] = [2, 3, 4, 6, 8, 16];

/// Activations of `shape` with one channel in 12 stuck far from the rest (more outlier channels
/// than any budget allows, so the search takes as many as it may).
fn with_many_outliers(shape: &[usize]) -> Vec<f32> {
    let hidden = *shape.last().unwrap();
    let n: usize = shape.iter().product();
    let mut rng = Rng::new(5);
    activations(n, hidden, 3)
        .into_iter()
        .enumerate()
        .map(|(i, x)| match i % hidden {
            c if c % 12 == 5 => x + 30.0 + (c % 7) as f32 + rng.uniform() as f32,
            _ => x,
        })
        .collect()
}

fn ds_aciq() -> Clip<'static> {
    Clip::Method {
        method: ClipMethod::DsAciq,
        kind: ValueKind::TwoSided,
    }
}

fn sse(values: &[f32], t: &EncodedTensor) -> f64 {
    let limits = DecodeLimits::default();
    let back = EncodedTensor::from_bytes(&t.to_bytes(), &limits).unwrap();
    assert_eq!(&back, t);
    let d = codec::decode(&back, &limits).unwrap();
    values
        .iter()
        .zip(&d.values)
        .map(|(&x, &y)| f64::from(x - y).powi(2))
        .sum()
}

#[test]
fn wire_cost_stays_within_two_percent_of_the_plain_payload() {
    println!("| shape | bits | plain wire bytes | DS-ACIQ wire bytes | outlier channels | extra |");
    println!("|---|---|---|---|---|---|");
    for shape in SHAPES {
        let values = with_many_outliers(&shape);
        for b in BITS {
            let bits = Bits::new(b).unwrap();
            let plain = codec::encode(&values, &shape, bits, Clip::NAIVE)
                .unwrap()
                .to_bytes()
                .len();
            let t = codec::encode(&values, &shape, bits, ds_aciq()).unwrap();
            let wire = t.to_bytes().len();
            let extra = (wire - plain) as f64 / plain as f64;
            println!(
                "| {shape:?} | {b} | {plain} | {wire} | {} | {:.2}% |",
                t.outliers().len(),
                extra * 100.0
            );
            assert!(extra <= 0.02, "{shape:?} at {b} bits: {wire} vs {plain}");
        }
    }
}

#[test]
fn outlier_channels_are_used_and_never_raise_the_error() {
    for shape in [[8, 128, 384], [4, 17, 128]] {
        let values = with_many_outliers(&shape);
        let mut used = 0;
        for b in BITS {
            let bits = Bits::new(b).unwrap();
            let t = codec::encode(&values, &shape, bits, ds_aciq()).unwrap();
            let ds = sse(&values, &t);
            let naive = sse(
                &values,
                &codec::encode(&values, &shape, bits, Clip::NAIVE).unwrap(),
            );
            let aciq = Clip::Method {
                method: ClipMethod::Aciq,
                kind: ValueKind::TwoSided,
            };
            let aciq = sse(
                &values,
                &codec::encode(&values, &shape, bits, aciq).unwrap(),
            );
            used += usize::from(!t.outliers().is_empty());
            assert!(
                ds <= naive && ds <= aciq,
                "{shape:?} {b} bits: ds-aciq {ds}, naive {naive}, aciq {aciq}"
            );
        }
        assert!(
            used >= 4,
            "{shape:?}: outlier channels at only {used} bitwidths"
        );
    }
}

#[test]
fn encode_to_wire_writes_the_outlier_channels_as_encode_does() {
    let shape = [8, 128, 384];
    let values = with_many_outliers(&shape);
    let bits = Bits::new(3).unwrap();
    let t = codec::encode(&values, &shape, bits, ds_aciq()).unwrap();
    let mut wire = Vec::new();
    codec::encode_to_wire(&values, &shape, bits, ds_aciq(), &mut wire).unwrap();
    assert_eq!(wire, t.to_bytes());
    assert!(!t.outliers().is_empty());
}
