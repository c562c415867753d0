//! Encode f32 tensors to [`EncodedTensor`]s and decode them back: per-sample clipping, uniform
//! quantization and dense bit packing, or raw f32 passthrough at 32 bits.
//!
//! # Non-finite values
//! Quantized encodings (1..=16 bits) reject NaN and ±inf with [`EncodeError::NonFinite`], naming
//! the first offending index. A code has no way to say "NaN", and clamping it to a finite value
//! would silently turn a diverged model into plausible-looking activations; a stage that gets
//! this error should fail the microbatch loudly. Raw 32-bit encoding copies values bit-exactly,
//! NaN and infinities included, because "no quantization" must mean "exactly what was computed".
//!
//! # Constant samples
//! A sample whose clip range is a single point gets scale 0; all its codes are 0 and decode to
//! exactly the offset, i.e. the constant (no division by zero, no NaN).
//!
//! # Speed
//! This is on the hot path of every pipeline hop. Values are processed in blocks of
//! [`BLOCK`] elements: a quantize loop writes codes into an L1-resident scratch buffer, then the
//! packer turns each 8 codes into `b` bytes (see [`crate::pack`]); decoding mirrors it. Both loops
//! are branch-free per value, and NaN detection is an accumulated `x * 0` (0 unless x is not
//! finite) rather than a per-value test. On x86-64 the same loops are also compiled for AVX2 and
//! picked at run time, since the workspace builds for baseline x86-64 (SSE2).

use crate::bits::Bits;
use crate::clipping::{self, ClipMethod, ClipRange, DsAciqConfig, SampleStats, ValueKind};
use crate::error::{DecodeError, EncodeError};
use crate::limits::DecodeLimits;
use crate::msgpack;
use crate::pack;
use crate::quant::QuantParams;
use crate::tensor::{Dtype, EncodedTensor, OutlierChannel, SampleParams, FORMAT_VERSION};

/// Values per block of the quantize/pack pipeline: a multiple of 8 (so blocks start on byte
/// boundaries of the packed stream at any bitwidth) whose u16 code scratch (8 KiB) and f32
/// input (16 KiB) stay in L1.
pub const BLOCK: usize = 4096;

/// Values per sample from which ACIQ and DS-ACIQ estimate the mean and Laplace scale b
/// ([`SampleStats::estimate`]; min and max are always exact).
pub const STATS_SAMPLE_VALUES: usize = 65_536;

/// How the clipping range of each sample is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Clip<'a> {
    /// Compute it per sample with `method`; `kind` comes from the cut position (the main tensor
    /// after u2 is [`ValueKind::OneSidedPostGelu`], everything else is two-sided).
    Method { method: ClipMethod, kind: ValueKind },
    /// DS-ACIQ with a non-default search configuration.
    DsAciq {
        kind: ValueKind,
        config: DsAciqConfig,
    },
    /// Explicit ranges, one per sample (index of the outer dimension).
    Ranges(&'a [ClipRange]),
}

impl Clip<'_> {
    /// Min-max (nothing clipped).
    pub const NAIVE: Clip<'static> = Clip::Method {
        method: ClipMethod::Naive,
        kind: ValueKind::TwoSided,
    };

    /// The value kind and search configuration if this is DS-ACIQ, which plans the whole tensor
    /// at once (outlier channels span samples).
    pub(crate) fn ds_aciq(&self) -> Option<(ValueKind, DsAciqConfig)> {
        match *self {
            Clip::Method {
                method: ClipMethod::DsAciq,
                kind,
            } => Some((kind, DsAciqConfig::default())),
            Clip::DsAciq { kind, config } => Some((kind, config)),
            _ => None,
        }
    }
}

/// A decoded tensor: row-major values and their shape.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Encodes `values` (row-major, of `shape`; `shape[0]` is the sample dimension) at `bits`.
pub fn encode(
    values: &[f32],
    shape: &[usize],
    bits: Bits,
    clip: Clip<'_>,
) -> Result<EncodedTensor, EncodeError> {
    let mut out = EncodedTensor::default();
    encode_into(values, shape, bits, clip, &mut out)?;
    Ok(out)
}

/// Like [`encode`], reusing `out`'s buffers (no allocation once they are large enough).
/// On error `out` is left in an unspecified but valid state.
pub fn encode_into(
    values: &[f32],
    shape: &[usize],
    bits: Bits,
    clip: Clip<'_>,
    out: &mut EncodedTensor,
) -> Result<(), EncodeError> {
    let plan = EncodePlan::new(values, shape, bits, clip)?;
    out.version = FORMAT_VERSION;
    out.shape.clear();
    out.shape.extend(shape.iter().map(|&d| d as u64));
    out.dtype = Dtype::F32;
    out.bits = bits;
    out.params.clear();
    out.params.extend(plan.params());
    out.outliers.clear();
    out.outliers.extend(plan.outlier_channels());
    out.data.clear();
    plan.append_data(values, &mut out.data)
}

/// Appends the wire (MessagePack) form of `values` encoded at `bits` to `out`: the same bytes as
/// `encode(values, shape, bits, clip)?.to_bytes()`, with the codes written straight into `out`
/// rather than into an [`EncodedTensor`] that is then copied. This is how a stage encodes what
/// crosses its output cut (see [`crate::payload::write_payload`]). On error `out` keeps what
/// it held before.
pub fn encode_to_wire(
    values: &[f32],
    shape: &[usize],
    bits: Bits,
    clip: Clip<'_>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let before = out.len();
    let plan = write_wire_header(values, shape, bits, clip, out)?;
    plan.append_data(values, out)
        .inspect_err(|_| out.truncate(before))
}

/// Appends the wire form of a raw (32-bit) tensor up to its payload: what precedes `values`'
/// bytes, which on a little-endian host are the payload as they lie in memory (see
/// [`crate::payload::payload_pieces`]).
pub(crate) fn write_raw_header(
    values: &[f32],
    shape: &[usize],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    write_wire_header(values, shape, Bits::RAW, Clip::NAIVE, out).map(|_| ())
}

/// Appends the wire form of a tensor up to and including the length of its payload; answers the
/// plan that writes the payload. On error nothing was written.
fn write_wire_header(
    values: &[f32],
    shape: &[usize],
    bits: Bits,
    clip: Clip<'_>,
    out: &mut Vec<u8>,
) -> Result<EncodePlan, EncodeError> {
    let plan = EncodePlan::new(values, shape, bits, clip)?;
    let bin_len = u32::try_from(plan.payload_len).map_err(|_| EncodeError::ShapeOverflow {
        shape: shape.to_vec(),
    })?;
    // The fields in declaration order, as serde writes the struct (an array); the payload as a
    // `bin` whose length is known before a single code is computed.
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let params: Vec<SampleParams> = plan.params().collect();
    let outliers: Vec<OutlierChannel> = plan.outlier_channels().collect();
    rmp::encode::write_array_len(out, 7).expect(VEC_WRITE);
    msgpack::write_value(out, &FORMAT_VERSION);
    msgpack::write_value(out, &shape);
    msgpack::write_value(out, &Dtype::F32);
    msgpack::write_value(out, &bits);
    msgpack::write_value(out, &params);
    msgpack::write_value(out, &outliers);
    rmp::encode::write_bin_len(out, bin_len).expect(VEC_WRITE);
    Ok(plan)
}

const VEC_WRITE: &str = "writing MessagePack into a Vec cannot fail";

/// What encoding one tensor needs before the first code is written: its size, per sample the
/// clipping range turned into quantization parameters (empty when raw), and the outlier
/// channels with theirs (DS-ACIQ only).
struct EncodePlan {
    per: usize,
    payload_len: usize,
    bits: Bits,
    quant: Vec<QuantParams>,
    outliers: Outliers,
}

/// Outlier channels of a tensor: indices of its last dimension (`channels` wide) whose values
/// are quantized with their own parameters.
#[derive(Default)]
struct Outliers {
    channels: usize,
    quant: Vec<(usize, QuantParams)>,
}

impl EncodePlan {
    fn new(
        values: &[f32],
        shape: &[usize],
        bits: Bits,
        clip: Clip<'_>,
    ) -> Result<EncodePlan, EncodeError> {
        let n = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| EncodeError::ShapeOverflow {
                shape: shape.to_vec(),
            })?;
        if n != values.len() {
            return Err(EncodeError::ShapeMismatch {
                shape: shape.to_vec(),
                expected: n,
                found: values.len(),
            });
        }
        let samples = shape.first().copied().unwrap_or(1);
        let per = n.checked_div(samples).unwrap_or(0);
        let payload_len = bits
            .payload_len(n)
            .ok_or_else(|| EncodeError::ShapeOverflow {
                shape: shape.to_vec(),
            })?;
        let mut plan = EncodePlan {
            per,
            payload_len,
            bits,
            quant: Vec::new(),
            outliers: Outliers::default(),
        };
        if bits.is_raw() {
            return Ok(plan);
        }
        if let Some((kind, config)) = clip.ds_aciq() {
            plan.plan_ds_aciq(values, shape, kind, &config)?;
            return Ok(plan);
        }
        if let Clip::Ranges(ranges) = clip {
            if ranges.len() != samples {
                return Err(EncodeError::ClipRangeCount {
                    expected: samples,
                    found: ranges.len(),
                });
            }
        }
        plan.quant.reserve(samples);
        for s in 0..samples {
            let sample = &values[s * per..(s + 1) * per];
            let range = sample_range(sample, s, per, bits, clip)?;
            let q = QuantParams::new(range, bits).ok_or(EncodeError::InvalidClipRange {
                sample: s,
                lo: range.lo,
                hi: range.hi,
            })?;
            plan.quant.push(q);
        }
        Ok(plan)
    }

    /// DS-ACIQ over the whole tensor: per-sample ranges, and outlier channels of the last
    /// dimension within the wire budget ([`clipping::ds_aciq_with_outliers`]).
    fn plan_ds_aciq(
        &mut self,
        values: &[f32],
        shape: &[usize],
        kind: ValueKind,
        config: &DsAciqConfig,
    ) -> Result<(), EncodeError> {
        let samples = shape.first().copied().unwrap_or(1);
        // A rank-0 or rank-1 tensor has no channels: each sample is one row.
        let channels = match shape {
            [_, .., last] => *last,
            _ => self.per,
        };
        let budget = clipping::outlier_budget(self.payload_len);
        let found = clipping::ds_aciq_with_outliers(
            values, samples, channels, self.bits, kind, config, budget,
        )
        .map_err(|e| EncodeError::NonFinite {
            index: e.index,
            sample: e.index / self.per.max(1),
            value: e.value,
        })?;
        for (s, range) in found.sample_ranges.into_iter().enumerate() {
            let q = QuantParams::new(range, self.bits).ok_or(EncodeError::InvalidClipRange {
                sample: s,
                lo: range.lo,
                hi: range.hi,
            })?;
            self.quant.push(q);
        }
        self.outliers.channels = channels;
        // The search only keeps channels whose range quantizes.
        self.outliers.quant = found
            .outliers
            .into_iter()
            .filter_map(|(c, r)| Some((c as usize, QuantParams::new(r, self.bits)?)))
            .collect();
        Ok(())
    }

    /// The per-sample parameters as the wire carries them.
    fn params(&self) -> impl Iterator<Item = SampleParams> + '_ {
        self.quant.iter().map(|q| SampleParams {
            scale: q.scale,
            offset: q.lo,
        })
    }

    /// The outlier channels as the wire carries them.
    fn outlier_channels(&self) -> impl Iterator<Item = OutlierChannel> + '_ {
        self.outliers.quant.iter().map(|&(c, q)| OutlierChannel {
            channel: c as u32,
            scale: q.scale,
            offset: q.lo,
        })
    }

    /// Appends the payload (`payload_len` bytes) to `out`.
    fn append_data(&self, values: &[f32], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if self.bits.is_raw() {
            append_f32_le(values, out);
            return Ok(());
        }
        let start = out.len();
        out.resize(start + self.payload_len, 0);
        quantize_and_pack(
            values,
            self.per,
            &self.quant,
            &self.outliers,
            self.bits.get(),
            &mut out[start..],
        )
        .map_err(|index| EncodeError::NonFinite {
            index,
            sample: index / self.per.max(1),
            value: values[index],
        })
    }
}

/// Raw 32-bit payload: the values as little-endian f32, bit for bit.
fn append_f32_le(values: &[f32], out: &mut Vec<u8>) {
    if cfg!(target_endian = "little") {
        // In memory the values already are their wire form: one copy.
        out.extend_from_slice(bytemuck::cast_slice(values));
    } else {
        out.reserve(values.len() * 4);
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// The clip range of sample `s` (values `sample`, `per` long) under `clip`.
fn sample_range(
    sample: &[f32],
    s: usize,
    per: usize,
    bits: Bits,
    clip: Clip<'_>,
) -> Result<ClipRange, EncodeError> {
    let non_finite = |e: clipping::NonFiniteValue| EncodeError::NonFinite {
        index: s * per + e.index,
        sample: s,
        value: e.value,
    };
    if let Clip::Ranges(ranges) = clip {
        // The count was checked against the sample count by the caller.
        return ranges.get(s).copied().ok_or(EncodeError::ClipRangeCount {
            expected: s + 1,
            found: ranges.len(),
        });
    }
    if sample.is_empty() {
        return Ok(ClipRange::new(0.0, 0.0));
    }
    Ok(match clip {
        Clip::Method {
            method: ClipMethod::Naive,
            ..
        } => {
            let (lo, hi) = clipping::stats::min_max(sample).map_err(non_finite)?;
            ClipRange::new(lo, hi)
        }
        Clip::Method { method, kind } => {
            let stats = SampleStats::estimate(sample, STATS_SAMPLE_VALUES).map_err(non_finite)?;
            clipping::clip_range(method, kind, sample, &stats, bits)
        }
        // DS-ACIQ is planned over the whole tensor (`EncodePlan::plan_ds_aciq`).
        Clip::DsAciq { .. } | Clip::Ranges(_) => unreachable!("handled by the caller"),
    })
}

/// Decodes a tensor after validating it under `limits`.
pub fn decode<D: AsRef<[u8]>>(
    t: &EncodedTensor<D>,
    limits: &DecodeLimits,
) -> Result<DecodedTensor, DecodeError> {
    let n = t.validate(limits)?;
    // vec![0.0; n] is a zeroed allocation (fresh pages, no memset pass).
    let mut values = vec![0f32; n];
    decode_validated(t, n, &mut values);
    Ok(DecodedTensor {
        shape: t.shape.iter().map(|&d| d as usize).collect(),
        values,
    })
}

/// Decodes into a caller-owned buffer of exactly the tensor's element count (e.g. the storage
/// of the next stage's input tensor), after validating under `limits`.
pub fn decode_into<D: AsRef<[u8]>>(
    t: &EncodedTensor<D>,
    limits: &DecodeLimits,
    out: &mut [f32],
) -> Result<(), DecodeError> {
    let n = t.validate(limits)?;
    if out.len() != n {
        return Err(DecodeError::OutputLength {
            expected: n,
            found: out.len(),
        });
    }
    decode_validated(t, n, out);
    Ok(())
}

fn decode_validated<D: AsRef<[u8]>>(t: &EncodedTensor<D>, n: usize, out: &mut [f32]) {
    let data = t.data();
    if t.bits.is_raw() {
        if cfg!(target_endian = "little") {
            bytemuck::cast_slice_mut::<f32, u8>(out).copy_from_slice(data);
        } else {
            for (o, b) in out.iter_mut().zip(data.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        return;
    }
    let samples = t.sample_count() as usize;
    let per = n.checked_div(samples).unwrap_or(0);
    unpack_and_dequantize(data, per, &t.params, t.bits.get(), out);
    let channels = t.shape().last().map_or(0, |&c| c as usize);
    decode_outliers(data, t.bits.get(), channels, t.outliers(), out);
}

// ---- kernels -------------------------------------------------------------------------------

/// Quantizes all `values` (samples of `per` values with parameters `quant`) and packs them into
/// `data`. Returns the flat index of the first non-finite value, if any.
fn quantize_and_pack(
    values: &[f32],
    per: usize,
    quant: &[QuantParams],
    outliers: &Outliers,
    bits: u8,
    data: &mut [u8],
) -> Result<(), usize> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { quantize_and_pack_avx2(values, per, quant, outliers, bits, data) };
    }
    quantize_and_pack_impl(values, per, quant, outliers, bits, data)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_and_pack_avx2(
    values: &[f32],
    per: usize,
    quant: &[QuantParams],
    outliers: &Outliers,
    bits: u8,
    data: &mut [u8],
) -> Result<(), usize> {
    quantize_and_pack_impl(values, per, quant, outliers, bits, data)
}

#[inline(always)]
fn quantize_and_pack_impl(
    values: &[f32],
    per: usize,
    quant: &[QuantParams],
    outliers: &Outliers,
    bits: u8,
    data: &mut [u8],
) -> Result<(), usize> {
    let b = usize::from(bits);
    let mut codes = [0u16; BLOCK];
    for (block_idx, block) in values.chunks(BLOCK).enumerate() {
        let start = block_idx * BLOCK;
        let end = start + block.len();
        // Walk the samples this block overlaps (usually one).
        let mut pos = start;
        while pos < end {
            let s = pos / per;
            let seg_end = end.min((s + 1) * per);
            let (x, c) = (
                &values[pos..seg_end],
                &mut codes[pos - start..seg_end - start],
            );
            if !quantize_segment(x, c, &quant[s]) {
                let offset = stats_first_non_finite(x);
                return Err(pos + offset);
            }
            pos = seg_end;
        }
        requantize_outliers(
            &values[start..end],
            start,
            outliers,
            &mut codes[..block.len()],
        );
        let byte_start = start / 8 * b;
        let byte_len = (block.len() * b).div_ceil(8);
        pack::pack(
            bits,
            &codes[..block.len()],
            &mut data[byte_start..byte_start + byte_len],
        );
    }
    Ok(())
}

/// Overwrites the codes of the outlier-channel values among `block` (the values from flat
/// index `start` on) with their channel's codes. A few per row: cheap next to the block.
#[inline(always)]
fn requantize_outliers(block: &[f32], start: usize, outliers: &Outliers, codes: &mut [u16]) {
    if outliers.quant.is_empty() || block.is_empty() {
        return;
    }
    let c = outliers.channels;
    let end = start + block.len();
    for row in start / c..=(end - 1) / c {
        for &(channel, q) in &outliers.quant {
            let i = row * c + channel;
            if (start..end).contains(&i) {
                codes[i - start] = q.code(block[i - start]);
            }
        }
    }
}

/// Replaces the decoded values of the outlier channels (`outliers`, over a last dimension of
/// `channels`) with their codes decoded by their own parameters.
fn decode_outliers(
    data: &[u8],
    bits: u8,
    channels: usize,
    outliers: &[OutlierChannel],
    out: &mut [f32],
) {
    if outliers.is_empty() || channels == 0 {
        return;
    }
    for (row, values) in out.chunks_exact_mut(channels).enumerate() {
        for o in outliers {
            // Validation checked every channel is below the last dimension.
            let c = o.channel as usize;
            let code = pack::code_at(bits, data, row * channels + c);
            values[c] = o.offset + f32::from(code) * o.scale;
        }
    }
}

#[cold]
fn stats_first_non_finite(x: &[f32]) -> usize {
    clipping::stats::first_non_finite(x).index
}

/// Codes of `x` into `codes`; false if any value is not finite.
#[inline(always)]
fn quantize_segment(x: &[f32], codes: &mut [u16], q: &QuantParams) -> bool {
    const LANES: usize = 8;
    let mut poison = [0f32; LANES];
    let xs = x.chunks_exact(LANES);
    let tail = xs.remainder();
    let mut cs = codes.chunks_exact_mut(LANES);
    for (xc, cc) in xs.zip(&mut cs) {
        for i in 0..LANES {
            cc[i] = q.code(xc[i]);
            poison[i] += xc[i] * 0.0;
        }
    }
    for ((c, &v), p) in cs.into_remainder().iter_mut().zip(tail).zip(&mut poison) {
        *c = q.code(v);
        *p += v * 0.0;
    }
    poison.iter().all(|&p| p == 0.0)
}

fn unpack_and_dequantize(
    data: &[u8],
    per: usize,
    params: &[SampleParams],
    bits: u8,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { unpack_and_dequantize_avx2(data, per, params, bits, out) };
    }
    unpack_and_dequantize_impl(data, per, params, bits, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn unpack_and_dequantize_avx2(
    data: &[u8],
    per: usize,
    params: &[SampleParams],
    bits: u8,
    out: &mut [f32],
) {
    unpack_and_dequantize_impl(data, per, params, bits, out)
}

#[inline(always)]
fn unpack_and_dequantize_impl(
    data: &[u8],
    per: usize,
    params: &[SampleParams],
    bits: u8,
    out: &mut [f32],
) {
    let b = usize::from(bits);
    let mut codes = [0u16; BLOCK];
    for (block_idx, block) in out.chunks_mut(BLOCK).enumerate() {
        let start = block_idx * BLOCK;
        let len = block.len();
        let byte_start = start / 8 * b;
        let byte_len = (len * b).div_ceil(8);
        pack::unpack(
            bits,
            &data[byte_start..byte_start + byte_len],
            &mut codes[..len],
        );
        let end = start + len;
        let mut pos = start;
        while pos < end {
            let s = pos / per;
            let seg_end = end.min((s + 1) * per);
            let p = params[s];
            let (c, o) = (
                &codes[pos - start..seg_end - start],
                &mut block[pos - start..seg_end - start],
            );
            for (o, &c) in o.iter_mut().zip(c) {
                *o = p.offset + f32::from(c) * p.scale;
            }
            pos = seg_end;
        }
    }
}
