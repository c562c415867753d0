//! Criterion view of the codec hot path: encode (naive clipping) and decode of a ViT-Base
//! boundary tensor [8, 197, 768] at 2-16 bits, with memcpy of the same buffer as the yardstick.
//! Throughput is bytes of f32 input. `cargo bench -p quantpipe-messages --bench codec`
//! (`quantpipe bench codec --json` / `bench::codec_report` gives the same figures as JSON).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
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

criterion_group!(benches, codec_benches);
criterion_main!(benches);
