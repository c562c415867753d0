//! The QuantizerActor and the conversions it wraps: a stage's output [`Boundary`] to
//! [`BoundaryPayload`] bytes at the link's bitwidth (encode on send), and received bytes back to
//! tensors (decode on receive).
//!
//! The bitwidth policy is fixed per plan: the leader gives each stage the bitwidth of its output
//! cut. The `main` tensor after a u2 cut (post-GELU) is clipped as one-sided, everything else as
//! two-sided; 32 bits is raw f32, bit-exact.

use crate::runtime::wire::{Mask, Tokens};
use actix::prelude::*;
use anyhow::{anyhow, bail, Context, Result};
use quantpipe_messages::clipping::{ClipMethod, ValueKind};
use quantpipe_messages::codec::{self, Clip};
use quantpipe_messages::{Bits, BoundaryPayload, DecodeLimits, EncodedTensor};
use quantpipe_model_shards::units::is_post_gelu_cut;
use std::time::Instant;
use tch::{Kind, Tensor};

/// Parses a clipping method name (`naive`, `aciq`, `ds-aciq`).
pub fn parse_clip(name: &str) -> Result<ClipMethod> {
    name.parse::<ClipMethod>()
        .map_err(|e| anyhow!("quantizer.clip: {e}"))
}

fn tensor_values(t: &Tensor) -> Result<(Vec<f32>, Vec<usize>)> {
    if t.kind() != Kind::Float {
        bail!("boundary tensor of kind {:?}, expected f32", t.kind());
    }
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let flat = t.contiguous().view(-1);
    let values = Vec::<f32>::try_from(&flat).context("copying a boundary tensor")?;
    Ok((values, shape))
}

fn encode_one(t: &Tensor, bits: Bits, clip: Clip<'_>) -> Result<EncodedTensor> {
    let (values, shape) = tensor_values(t)?;
    Ok(codec::encode(&values, &shape, bits, clip)?)
}

/// Encodes what leaves unit `cut` (one tensor, or two after u0/u2) at `bits`.
pub fn encode_boundary(
    tensors: &[Tensor],
    cut: usize,
    bits: Bits,
    method: ClipMethod,
) -> Result<Vec<u8>> {
    let main_kind = if is_post_gelu_cut(cut) {
        ValueKind::OneSidedPostGelu
    } else {
        ValueKind::TwoSided
    };
    let main = encode_one(
        &tensors[0],
        bits,
        Clip::Method {
            method,
            kind: main_kind,
        },
    )?;
    let payload = match tensors.len() {
        1 => BoundaryPayload::single(main),
        2 => {
            let skip = encode_one(
                &tensors[1],
                bits,
                Clip::Method {
                    method,
                    kind: ValueKind::TwoSided,
                },
            )?;
            BoundaryPayload::pair(main, skip)
        }
        n => bail!("a cut carries 1 or 2 tensors, this one has {n}"),
    };
    Ok(payload.to_bytes())
}

/// Decodes [`BoundaryPayload`] bytes into f32 tensors (1 or 2).
pub fn decode_payload(bytes: &[u8], limits: &DecodeLimits) -> Result<Vec<Tensor>> {
    let payload = BoundaryPayload::from_bytes(bytes, limits)?;
    payload
        .tensors()
        .map(|t| {
            let d = codec::decode(t, limits)?;
            let shape: Vec<i64> = d.shape.iter().map(|&s| s as i64).collect();
            Ok(Tensor::from_slice(&d.values).view(shape.as_slice()))
        })
        .collect()
}

/// `[B, T]` integer tensor to wire tokens.
pub fn tokens_to_wire(ids: &Tensor) -> Result<Tokens> {
    let size = ids.size();
    if size.len() != 2 {
        bail!("token ids of shape {size:?}, expected [B, T]");
    }
    let ids = Vec::<i64>::try_from(&ids.to_kind(Kind::Int64).contiguous().view(-1))?;
    Ok(Tokens {
        shape: [size[0] as u64, size[1] as u64],
        ids,
    })
}

pub fn tokens_from_wire(t: &Tokens) -> Result<Tensor> {
    let [b, n] = t.shape;
    if b.checked_mul(n) != Some(t.ids.len() as u64) {
        bail!("tokens of shape {:?} with {} ids", t.shape, t.ids.len());
    }
    Ok(Tensor::from_slice(&t.ids).view([b as i64, n as i64]))
}

/// `[B, T]` 0/1 mask to wire bytes.
pub fn mask_to_wire(mask: &Tensor) -> Result<Mask> {
    let size = mask.size();
    if size.len() != 2 {
        bail!("mask of shape {size:?}, expected [B, T]");
    }
    let values = Vec::<u8>::try_from(&mask.to_kind(Kind::Uint8).contiguous().view(-1))?;
    Ok(Mask {
        shape: [size[0] as u64, size[1] as u64],
        values,
    })
}

pub fn mask_from_wire(m: &Mask) -> Result<Tensor> {
    let [b, n] = m.shape;
    if b.checked_mul(n) != Some(m.values.len() as u64) {
        bail!("mask of shape {:?} with {} values", m.shape, m.values.len());
    }
    if m.values.iter().any(|&v| v > 1) {
        bail!("mask values must be 0 or 1");
    }
    Ok(Tensor::from_slice(&m.values)
        .to_kind(Kind::Int64)
        .view([b as i64, n as i64]))
}

/// Encodes and decodes activations for its node, off the actix arbiter (a SyncArbiter thread).
pub struct QuantizerActor {
    pub method: ClipMethod,
    pub limits: DecodeLimits,
}

impl Actor for QuantizerActor {
    type Context = SyncContext<Self>;
}

/// Encode a stage's output at `bits`; answers the payload bytes and the seconds it took.
#[derive(Message)]
#[rtype(result = "Result<(Vec<u8>, f64)>")]
pub struct Encode {
    pub tensors: Vec<Tensor>,
    pub cut: usize,
    pub bits: Bits,
}

/// Decode received payload bytes; answers the tensors and the seconds it took.
#[derive(Message)]
#[rtype(result = "Result<(Vec<Tensor>, f64)>")]
pub struct Decode {
    pub bytes: Vec<u8>,
}

impl Handler<Encode> for QuantizerActor {
    type Result = Result<(Vec<u8>, f64)>;
    fn handle(&mut self, msg: Encode, _: &mut SyncContext<Self>) -> Self::Result {
        let start = Instant::now();
        let bytes = encode_boundary(&msg.tensors, msg.cut, msg.bits, self.method)?;
        Ok((bytes, start.elapsed().as_secs_f64()))
    }
}

impl Handler<Decode> for QuantizerActor {
    type Result = Result<(Vec<Tensor>, f64)>;
    fn handle(&mut self, msg: Decode, _: &mut SyncContext<Self>) -> Self::Result {
        let start = Instant::now();
        let t = decode_payload(&msg.bytes, &self.limits)?;
        Ok((t, start.elapsed().as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_pairs_round_trip_bitwise_and_quantized_stay_close() {
        tch::manual_seed(1);
        let a = Tensor::randn([2, 5, 8], (Kind::Float, tch::Device::Cpu));
        let b = Tensor::randn([2, 5, 8], (Kind::Float, tch::Device::Cpu));
        let limits = DecodeLimits::default();
        let bytes = encode_boundary(
            &[a.shallow_clone(), b.shallow_clone()],
            1,
            Bits::RAW,
            ClipMethod::Aciq,
        )
        .unwrap();
        let back = decode_payload(&bytes, &limits).unwrap();
        assert_eq!(back.len(), 2);
        assert!(back[0].equal(&a) && back[1].equal(&b));
        let bytes = encode_boundary(
            &[a.shallow_clone()],
            4,
            Bits::new(8).unwrap(),
            ClipMethod::Naive,
        )
        .unwrap();
        let back = decode_payload(&bytes, &limits).unwrap();
        let err = (&back[0] - &a).abs().max().double_value(&[]);
        let range = (a.max() - a.min()).double_value(&[]);
        assert!(
            err <= range / 255.0 * 0.5 + 1e-5,
            "8-bit error {err} over range {range}"
        );
    }

    #[test]
    fn tokens_and_masks_round_trip_and_reject_inconsistent_shapes() {
        let ids = Tensor::from_slice(&[101i64, 7592, 102, 101, 2088, 0]).view([2, 3]);
        let back = tokens_from_wire(&tokens_to_wire(&ids).unwrap()).unwrap();
        assert!(back.equal(&ids));
        let mask = Tensor::from_slice(&[1i64, 1, 1, 1, 1, 0]).view([2, 3]);
        let back = mask_from_wire(&mask_to_wire(&mask).unwrap()).unwrap();
        assert!(back.equal(&mask));
        let bad = Tokens {
            shape: [2, 3],
            ids: vec![1; 5],
        };
        assert!(tokens_from_wire(&bad)
            .unwrap_err()
            .to_string()
            .contains("5 ids"));
        let bad = Mask {
            shape: [1, 2],
            values: vec![1, 2],
        };
        assert!(mask_from_wire(&bad).is_err());
    }
}
