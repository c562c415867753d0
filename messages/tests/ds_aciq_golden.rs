//! DS-ACIQ's encoded bytes are pinned: seeded tensors with and without outlier channels, at every
//! bitwidth, hash to the values recorded when the outlier-channel search was first written. A
//! faster search must choose exactly the same ranges and channels, so these never change unless
//! the search's results are deliberately changed.
//!
//! `cargo test -p quantpipe-messages --test ds_aciq_golden -- --nocapture` prints every hash.

use quantpipe_messages::clipping::{ClipMethod, ValueKind};
use quantpipe_messages::codec::{self, Clip};
use quantpipe_messages::synth::{activations, laplace, Rng};
use quantpipe_messages::Bits;

const BITS: [u8; 6] = [2, 3, 4, 6, 8, 16];

/// FNV-1a, 64 bits: enough to tell any changed byte apart, with no dependency.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Activations of `shape` (`synth::activations`, seeded by `seed`) with every channel c where
/// c % `every` == 5 moved to a constant of its own (30-36) plus noise: more outlier channels than
/// any budget allows when `every` is small, a few when it is large.
fn with_outliers(shape: &[usize], seed: u64, every: usize) -> Vec<f32> {
    let hidden = *shape.last().unwrap();
    let n: usize = shape.iter().product();
    let mut rng = Rng::new(seed + 100);
    activations(n, hidden, seed)
        .into_iter()
        .enumerate()
        .map(|(i, x)| match i % hidden {
            c if c % every == 5 => x + 30.0 + (c % 7) as f32 + rng.uniform() as f32,
            _ => x,
        })
        .collect()
}

/// Post-GELU-like values: Laplace magnitudes above GELU's minimum, two channels far above.
fn post_gelu(shape: &[usize], seed: u64) -> Vec<f32> {
    let hidden = *shape.last().unwrap();
    let n: usize = shape.iter().product();
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let x = laplace(&mut rng, 0.0, 0.5).abs() - 0.17;
            match i % hidden {
                3 => x * 20.0,
                17 => x + 12.0,
                _ => x,
            }
        })
        .collect()
}

/// (name, shape, value kind, values) of every pinned tensor.
fn cases() -> Vec<(&'static str, Vec<usize>, ValueKind, Vec<f32>)> {
    let two = ValueKind::TwoSided;
    vec![
        (
            "minilm_many",
            vec![8, 128, 384],
            two,
            with_outliers(&[8, 128, 384], 1, 12),
        ),
        (
            "minilm_few",
            vec![8, 128, 384],
            two,
            with_outliers(&[8, 128, 384], 2, 150),
        ),
        (
            "minilm_plain",
            vec![8, 128, 384],
            two,
            activations(8 * 128 * 384, 384, 3),
        ),
        (
            "fc1_few",
            vec![4, 64, 1536],
            two,
            with_outliers(&[4, 64, 1536], 4, 400),
        ),
        (
            "vit_many",
            vec![8, 17, 64],
            two,
            with_outliers(&[8, 17, 64], 5, 12),
        ),
        (
            "vit_fc1",
            vec![8, 17, 128],
            two,
            with_outliers(&[8, 17, 128], 6, 40),
        ),
        (
            "vit_big_ub",
            vec![100, 17, 64],
            two,
            with_outliers(&[100, 17, 64], 7, 30),
        ),
        (
            "gelu",
            vec![8, 32, 256],
            ValueKind::OneSidedPostGelu,
            post_gelu(&[8, 32, 256], 8),
        ),
        ("rank1", vec![3000], two, activations(3000, 3000, 9)),
        (
            "ragged_rank2",
            vec![5, 77],
            two,
            with_outliers(&[5, 77], 10, 12),
        ),
    ]
}

fn hashes() -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for (name, shape, kind, values) in cases() {
        for b in BITS {
            let clip = Clip::Method {
                method: ClipMethod::DsAciq,
                kind,
            };
            let bits = Bits::new(b).unwrap();
            let t = codec::encode(&values, &shape, bits, clip).unwrap();
            out.push((format!("{name}_{b}"), fnv1a(&t.to_bytes())));
        }
    }
    out
}

/// FNV-1a of `to_bytes()` for every case and bitwidth, recorded from the first search.
const EXPECTED: [(&str, u64); 60] = [
    ("minilm_many_2", 0xe89340ff778f27e7),
    ("minilm_many_3", 0xe6d8a9764416993b),
    ("minilm_many_4", 0xcbae4c21823cceee),
    ("minilm_many_6", 0x5444a0202fe505e0),
    ("minilm_many_8", 0x2746260e37de6721),
    ("minilm_many_16", 0xeae13a561b37e7cc),
    ("minilm_few_2", 0x40a15e1904b0cc5e),
    ("minilm_few_3", 0x90207eb12bbd66a7),
    ("minilm_few_4", 0xcb20d2c229dbed23),
    ("minilm_few_6", 0xafcf2748191d8243),
    ("minilm_few_8", 0xaa00be6f55a2ca9f),
    ("minilm_few_16", 0xf22b3b68c21358f1),
    ("minilm_plain_2", 0xcc9307e8c1514bdf),
    ("minilm_plain_3", 0xa9c9c29e8d6d6896),
    ("minilm_plain_4", 0xa00c9946f2562981),
    ("minilm_plain_6", 0xb2d7c5de0f311389),
    ("minilm_plain_8", 0xc0161c666c9a925e),
    ("minilm_plain_16", 0x8d5189943f3641fe),
    ("fc1_few_2", 0xbbcce8f4ac445b49),
    ("fc1_few_3", 0x5bdcb444036ed752),
    ("fc1_few_4", 0x7d016e0d832de5e3),
    ("fc1_few_6", 0x93c56af35161ed30),
    ("fc1_few_8", 0x8d649d0d4f69872b),
    ("fc1_few_16", 0x439ce369283c2901),
    ("vit_many_2", 0x64cb4694fe404fa0),
    ("vit_many_3", 0x37aa5568817d46ef),
    ("vit_many_4", 0x2f7e7bad0b9ed449),
    ("vit_many_6", 0x0562a807f16e8abb),
    ("vit_many_8", 0xc2bf40602b259c7f),
    ("vit_many_16", 0x468f81f029102115),
    ("vit_fc1_2", 0xdb76201cc49b060e),
    ("vit_fc1_3", 0x2348b37247ad6ec8),
    ("vit_fc1_4", 0x71a79d4fc2b96a30),
    ("vit_fc1_6", 0x0571e5c2e3238da9),
    ("vit_fc1_8", 0xf3c135d9c31a7cc7),
    ("vit_fc1_16", 0x7db242bd4bb9a9aa),
    ("vit_big_ub_2", 0x38eed2b90101cb84),
    ("vit_big_ub_3", 0x17e202d07568ffcc),
    ("vit_big_ub_4", 0x7a2f9961579d27fe),
    ("vit_big_ub_6", 0xf89c11305f758004),
    ("vit_big_ub_8", 0x86b6b98f1245a492),
    ("vit_big_ub_16", 0x395f5abb14869d26),
    ("gelu_2", 0x225d7fa0d0a04959),
    ("gelu_3", 0x4cd2959c96e43c1c),
    ("gelu_4", 0x61e996b2323adc4c),
    ("gelu_6", 0xb879a23268bd534e),
    ("gelu_8", 0x71dcf7ab1ae9a3be),
    ("gelu_16", 0xac0901a9e7ca9948),
    ("rank1_2", 0x9b2f8752d161a5a5),
    ("rank1_3", 0x18490f027c798641),
    ("rank1_4", 0x4e74b471a9509c62),
    ("rank1_6", 0x8b84c9dafe3985f7),
    ("rank1_8", 0x41a1953af2177fec),
    ("rank1_16", 0x9a3c52b578a73190),
    ("ragged_rank2_2", 0xa786f99800d813cc),
    ("ragged_rank2_3", 0xd802359340fd3f88),
    ("ragged_rank2_4", 0xb5786deb6744164c),
    ("ragged_rank2_6", 0x9520594c7a8de830),
    ("ragged_rank2_8", 0xce9f1d6d2f23b202),
    ("ragged_rank2_16", 0x3bdc410710b6c554),
];

#[test]
fn ds_aciq_bytes_are_unchanged() {
    let got = hashes();
    for (name, h) in &got {
        println!("(\"{name}\", {h:#018x}),");
    }
    assert_eq!(got.len(), EXPECTED.len());
    let changed: Vec<&str> = got
        .iter()
        .zip(EXPECTED)
        .filter(|((name, h), (want_name, want))| name != want_name || h != want)
        .map(|((name, _), _)| name.as_str())
        .collect();
    assert!(changed.is_empty(), "encoded bytes changed: {changed:?}");
}

#[test]
fn pinned_cases_split_off_outlier_channels() {
    // The pins cover the outlier-channel search, not only the per-sample one.
    let (_, shape, kind, values) = cases().swap_remove(0);
    let clip = Clip::Method {
        method: ClipMethod::DsAciq,
        kind,
    };
    let t = codec::encode(&values, &shape, Bits::new(4).unwrap(), clip).unwrap();
    assert!(!t.outliers().is_empty());
}
