//! Codec throughput measurement behind `quantpipe bench codec --json`.
//!
//! [`codec_report`] times, on one thread and in the same run: a memcpy of the f32 input (the
//! yardstick), encode (naive clipping, buffers reused as a QuantizerActor would), decode into a
//! preallocated buffer, the DS-ACIQ range search alone and a full DS-ACIQ encode, and the exact
//! bytes on the wire. Inputs are deterministic synthetic activations ([`crate::synth`]), so runs
//! are comparable across machines. Each timing is the median of repeated runs lasting at least
//! `min_secs` (median rather than best, so the figure is what a busy shared machine delivers).
//!
//! Throughput is GB/s of f32 input (`4 n` bytes / time, 1 GB = 1e9 B) for every operation,
//! including decode, so the numbers add up: `roundtrip_gbps = 4n / (t_encode + t_decode)`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::bits::Bits;
use crate::clipping::{ds_aciq, ClipMethod, DsAciqConfig, SampleStats, ValueKind};
use crate::codec::{self, Clip};
use crate::limits::DecodeLimits;
use crate::tensor::EncodedTensor;

/// What to measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodecBenchConfig {
    /// Tensor shapes; the first dimension is the sample (microbatch) dimension.
    pub shapes: Vec<Vec<usize>>,
    /// Bitwidths (1..=16 or 32).
    pub bits: Vec<u8>,
    /// Minimum measuring time per figure, in seconds.
    pub min_secs: f64,
    /// Seed of the synthetic activations.
    pub seed: u64,
}

impl Default for CodecBenchConfig {
    /// ViT-Base boundary tensors at microbatch 8 (hidden 768, and the fc1 output of width 3072)
    /// at 2, 4, 6, 8 and 16 bits.
    fn default() -> Self {
        CodecBenchConfig {
            shapes: vec![vec![8, 197, 768], vec![8, 197, 3072]],
            bits: vec![2, 4, 6, 8, 16],
            min_secs: 0.3,
            seed: 1,
        }
    }
}

/// All measured rows plus the context needed to read them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodecReport {
    pub config: CodecBenchConfig,
    /// Always 1: every figure is single-threaded.
    pub threads: usize,
    /// Whether the AVX2 kernels were used (x86-64 only).
    pub avx2: bool,
    pub rows: Vec<CodecRow>,
}

/// One (shape, bitwidth) measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodecRow {
    pub shape: Vec<usize>,
    pub bits: u8,
    pub elements: usize,
    /// 4 * elements.
    pub input_bytes: usize,
    pub memcpy_gbps: f64,
    /// Naive (min-max) encode, including the per-sample min/max pass.
    pub encode_gbps: f64,
    pub decode_gbps: f64,
    /// 4n / (t_encode + t_decode).
    pub roundtrip_gbps: f64,
    /// roundtrip_gbps / memcpy_gbps (goal: >= 0.30).
    pub roundtrip_vs_memcpy: f64,
    pub encode_ms: f64,
    pub decode_ms: f64,
    /// Statistics (as the codec estimates them) + DS-ACIQ search for every sample, without
    /// encoding.
    pub ds_aciq_search_ms: f64,
    /// A full encode with DS-ACIQ clipping.
    pub encode_ds_aciq_ms: f64,
    /// (encode_ds_aciq_ms - encode_ms) / encode_ms: what DS-ACIQ adds (goal: <= 1.0).
    pub ds_aciq_added_vs_encode: f64,
    /// Payload bytes, and ceil(n * b / 8) (4n at 32 bits): equal by construction.
    pub payload_bytes: usize,
    pub dense_payload_bytes: usize,
    /// Serialised EncodedTensor length, and what it adds beyond the payload.
    pub wire_bytes: usize,
    pub header_bytes: usize,
    /// header_bytes / samples (goal: <= 64).
    pub header_bytes_per_sample: f64,
    /// input_bytes / wire_bytes.
    pub compression_ratio: f64,
}

/// Median seconds of `f` over repeated runs lasting at least `min_secs` (and >= 5 runs).
fn time_median(min_secs: f64, mut f: impl FnMut()) -> f64 {
    f(); // warm caches and fault in buffers
    let mut times = Vec::new();
    let begin = Instant::now();
    while times.len() < 5 || begin.elapsed() < Duration::from_secs_f64(min_secs) {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Runs the codec benchmark described in the module docs.
///
/// # Errors
/// An invalid bitwidth or shape in `config`, or (never expected) a codec error.
pub fn codec_report(config: &CodecBenchConfig) -> Result<CodecReport, Box<dyn std::error::Error>> {
    let mut rows = Vec::new();
    for shape in &config.shapes {
        let n: usize = shape.iter().product();
        let hidden = shape.last().copied().unwrap_or(1);
        let values = crate::synth::activations(n, hidden, config.seed);
        let samples = shape.first().copied().unwrap_or(1);
        let per = n / samples.max(1);
        let mut dst = vec![0f32; n];
        let memcpy_s = time_median(config.min_secs, || {
            dst.copy_from_slice(black_box(&values));
            black_box(&mut dst);
        });
        for &b in &config.bits {
            let bits = Bits::new(b)?;
            let mut enc = EncodedTensor::default();
            let encode_s = time_median(config.min_secs, || {
                codec::encode_into(black_box(&values), shape, bits, Clip::NAIVE, &mut enc)
                    .expect("synthetic activations are finite");
            });
            let limits = DecodeLimits::default();
            let decode_s = time_median(config.min_secs, || {
                codec::decode_into(black_box(&enc), &limits, &mut dst).expect("own encoding");
                black_box(&mut dst);
            });
            let cfg = DsAciqConfig::default();
            let search_s = time_median(config.min_secs, || {
                for s in 0..samples {
                    let v = &values[s * per..(s + 1) * per];
                    let stats = SampleStats::estimate(v, cfg.max_sample_values).expect("finite");
                    black_box(ds_aciq(v, &stats, bits, ValueKind::TwoSided, &cfg));
                }
            });
            let mut enc_ds = EncodedTensor::default();
            let ds_clip = Clip::Method {
                method: ClipMethod::DsAciq,
                kind: ValueKind::TwoSided,
            };
            let encode_ds_s = time_median(config.min_secs, || {
                codec::encode_into(black_box(&values), shape, bits, ds_clip, &mut enc_ds)
                    .expect("synthetic activations are finite");
            });
            let gbps = |secs: f64| (4 * n) as f64 / secs / 1e9;
            let wire_bytes = enc.to_bytes().len();
            let payload_bytes = enc.data().len();
            let header_bytes = wire_bytes - payload_bytes;
            let roundtrip_gbps = gbps(encode_s + decode_s);
            rows.push(CodecRow {
                shape: shape.clone(),
                bits: b,
                elements: n,
                input_bytes: 4 * n,
                memcpy_gbps: gbps(memcpy_s),
                encode_gbps: gbps(encode_s),
                decode_gbps: gbps(decode_s),
                roundtrip_gbps,
                roundtrip_vs_memcpy: roundtrip_gbps / gbps(memcpy_s),
                encode_ms: encode_s * 1e3,
                decode_ms: decode_s * 1e3,
                ds_aciq_search_ms: search_s * 1e3,
                encode_ds_aciq_ms: encode_ds_s * 1e3,
                ds_aciq_added_vs_encode: (encode_ds_s - encode_s) / encode_s,
                payload_bytes,
                dense_payload_bytes: bits.payload_len(n).unwrap_or(usize::MAX),
                wire_bytes,
                header_bytes,
                header_bytes_per_sample: header_bytes as f64 / samples.max(1) as f64,
                compression_ratio: (4 * n) as f64 / wire_bytes as f64,
            });
        }
    }
    Ok(CodecReport {
        config: config.clone(),
        threads: 1,
        avx2: avx2_available(),
        rows,
    })
}

fn avx2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_report_is_consistent() {
        let cfg = CodecBenchConfig {
            shapes: vec![vec![2, 5, 24]],
            bits: vec![3, 32],
            min_secs: 0.0,
            seed: 3,
        };
        let r = codec_report(&cfg).unwrap();
        assert_eq!(r.rows.len(), 2);
        for row in &r.rows {
            assert_eq!(row.payload_bytes, row.dense_payload_bytes);
            assert!(row.header_bytes_per_sample <= 64.0, "{row:?}");
            assert!(row.encode_gbps > 0.0 && row.decode_gbps > 0.0 && row.memcpy_gbps > 0.0);
        }
        assert_eq!(r.rows[0].payload_bytes, 240 * 3 / 8);
        assert!(serde_json::to_string(&r)
            .unwrap()
            .contains("roundtrip_vs_memcpy"));
    }
}
