//! Criterion view of the codec hot path: encode (naive clipping) and decode of a ViT-Base
//! boundary tensor [8, 197, 768] at 2-16 bits, with memcpy of the same buffer as the yardstick.
//! Throughput is bytes of f32 input. `cargo bench -p quantpipe-messages --bench codec`
//! (`quantpipe bench codec --json` / `bench::codec_report` gives the same figures as JSON).
//!
//! `codec_ds_aciq` puts DS-ACIQ's encode (with its outlier-channel search) beside naive's on the
//! boundary shapes of MiniLM, ViT-Base and the Fashion-MNIST ViT at microbatch 8:
//! `cargo bench -p quantpipe-messages --bench codec -- codec_ds_aciq`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quantpipe_messages::clipping::{ClipMethod, ValueKind};
use quantpipe_messages::codec::{self, Clip};
use quantpipe_messages::{synth, Bits, DecodeLimits, EncodedTensor};

fn codec_benches(c: &mut Criterion) {
    let shape = [8usize, 197, 768];
    let n: usize = shape.iter().product();
    let values = synth::activations(n, 768, 1);
    let mut out = vec![0f32; n];
    let mut group = c.benchmark_group("codec_8x197x768");
    group.throughput(Throughput::Bytes((4 * n) as u64));
    group.bench_function("memcpy", |b| {
        b.iter(|| out.copy_from_slice(black_box(&values)))
    });
    for bits in [2u8, 4, 6, 8, 16] {
        let bits = Bits::new(bits).expect("valid");
        let mut enc = EncodedTensor::default();
        group.bench_function(format!("encode_{bits}b"), |b| {
            b.iter(|| codec::encode_into(black_box(&values), &shape, bits, Clip::NAIVE, &mut enc))
        });
        let limits = DecodeLimits::default();
        group.bench_function(format!("decode_{bits}b"), |b| {
            b.iter(|| codec::decode_into(black_box(&enc), &limits, &mut out))
        });
    }
    group.finish();
}

/// MiniLM [8,128,384] and fc1 [8,128,1536], ViT-Base [8,197,768], the Fashion-MNIST ViT's
/// [8,17,64] and fc1 [8,17,128].
const DS_ACIQ_SHAPES: [[usize; 3]; 5] = [
    [8, 128, 384],
    [8, 128, 1536],
    [8, 197, 768],
    [8, 17, 64],
    [8, 17, 128],
];

fn ds_aciq_benches(c: &mut Criterion) {
    let ds_aciq = Clip::Method {
        method: ClipMethod::DsAciq,
        kind: ValueKind::TwoSided,
    };
    let mut group = c.benchmark_group("codec_ds_aciq");
    group
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    for shape in DS_ACIQ_SHAPES {
        let n: usize = shape.iter().product();
        let values = synth::activations(n, shape[2], 1);
        let name = format!("{}x{}x{}", shape[0], shape[1], shape[2]);
        for bits in [2u8, 4, 8] {
            let bits = Bits::new(bits).expect("valid");
            let mut enc = EncodedTensor::default();
            for (method, clip) in [("naive", Clip::NAIVE), ("ds-aciq", ds_aciq)] {
                group.bench_function(format!("{name}/{bits}b/{method}"), |b| {
                    b.iter(|| codec::encode_into(black_box(&values), &shape, bits, clip, &mut enc))
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, codec_benches, ds_aciq_benches);
criterion_main!(benches);
