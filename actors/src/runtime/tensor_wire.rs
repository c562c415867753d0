//! Tensors to and from their wire form: a stage's output tensors to
//! [`BoundaryPayload`](quantpipe_messages::BoundaryPayload) bytes (encoded from the tensors'
//! memory, raw values sent from it), received payload bytes back to tensors, and token ids and
//! attention masks to and from the activation header. The codec itself is
//! [`quantpipe_messages::codec`]; this is its meeting point with libtorch.

use anyhow::{anyhow, bail, Result};
use quantpipe_messages::clipping::{ClipMethod, ValueKind};
use quantpipe_messages::codec::{self, Clip};
use quantpipe_messages::payload::{payload_pieces, PayloadPiece, TensorToEncode};
use quantpipe_messages::{Bits, BoundaryPayloadRef, DecodeLimits};
use quantpipe_messages::{Mask, Tokens};
use quantpipe_model_shards::units::is_post_gelu_cut;
use tch::{Device, Kind, Tensor};
use zenoh::bytes::ZBytes;

/// A contiguous CPU f32 tensor, whose memory can be read as values or bytes in place.
struct F32Tensor(Tensor);

impl F32Tensor {
    /// Checks the kind and device; makes a contiguous copy only of a tensor that is not.
    fn new(t: &Tensor) -> Result<F32Tensor> {
        if t.kind() != Kind::Float {
            bail!("boundary tensor of kind {:?}, expected f32", t.kind());
        }
        if t.device() != Device::Cpu {
            bail!("boundary tensor on {:?}, expected the CPU", t.device());
        }
        Ok(F32Tensor(t.contiguous()))
    }

    fn shape(&self) -> Vec<usize> {
        self.0.size().iter().map(|&d| d as usize).collect()
    }

    fn values(&self) -> &[f32] {
        let n = self.0.numel();
        if n == 0 {
            return &[];
        }
        // SAFETY: a contiguous CPU f32 tensor (checked by `new`): `data_ptr` (which includes the
        // storage offset) points at `n` initialised, aligned f32 values, alive as long as `self`.
        // Nobody writes to them meanwhile: a stage's output tensors are handed over by the
        // forward worker, which keeps no reference to them.
        unsafe { std::slice::from_raw_parts(self.0.data_ptr() as *const f32, n) }
    }
}

impl AsRef<[u8]> for F32Tensor {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(self.values())
    }
}

/// Encodes what leaves unit `cut` (one tensor, or two after u0/u2) at `bits`: the
/// [`BoundaryPayload`](quantpipe_messages::BoundaryPayload) bytes as one zenoh payload whose
/// quantized codes are encoded from the tensors' memory, and whose raw (32-bit) values are the
/// tensors' memory itself (kept alive until zenoh has sent them): no copy of an activation is
/// made before the transport's own.
pub fn encode_boundary(
    tensors: &[Tensor],
    cut: usize,
    bits: Bits,
    method: ClipMethod,
) -> Result<ZBytes> {
    if !(1..=2).contains(&tensors.len()) {
        bail!(
            "a cut carries 1 or 2 tensors, this one has {}",
            tensors.len()
        );
    }
    let main_kind = if is_post_gelu_cut(cut) {
        ValueKind::OneSidedPostGelu
    } else {
        ValueKind::TwoSided
    };
    let tensors: Vec<F32Tensor> = tensors.iter().map(F32Tensor::new).collect::<Result<_>>()?;
    let shapes: Vec<Vec<usize>> = tensors.iter().map(F32Tensor::shape).collect();
    let to_encode = |i: usize, kind| TensorToEncode {
        values: tensors[i].values(),
        shape: &shapes[i],
        bits,
        clip: Clip::Method { method, kind },
    };
    let skip = (tensors.len() == 2).then(|| to_encode(1, ValueKind::TwoSided));
    let pieces = payload_pieces(to_encode(0, main_kind), skip)?;
    let mut in_place: Vec<Option<F32Tensor>> = tensors.into_iter().map(Some).collect();
    let mut body = ZBytes::writer();
    for piece in pieces {
        body.append(match piece {
            PayloadPiece::Written(bytes) => ZBytes::from(bytes),
            PayloadPiece::Values(i) => {
                let t = in_place[i]
                    .take()
                    .ok_or_else(|| anyhow!("tensor {i} placed twice in one payload"))?;
                ZBytes::from(bytes::Bytes::from_owner(t))
            }
        });
    }
    Ok(body.finish())
}

/// Decodes [`BoundaryPayload`](quantpipe_messages::BoundaryPayload) bytes into f32 tensors (1
/// or 2), each decoded straight into the new tensor's memory.
pub fn decode_payload(bytes: &[u8], limits: &DecodeLimits) -> Result<Vec<Tensor>> {
    let payload = BoundaryPayloadRef::borrow_from(bytes, limits)?;
    payload
        .tensors()
        .map(|t| {
            // Validated by `borrow_from`: the element count is within `limits`, so every
            // dimension fits an i64 and the allocation is bounded.
            let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
            let out = Tensor::empty(shape.as_slice(), (Kind::Float, Device::Cpu));
            let n = out.numel();
            if n > 0 {
                // SAFETY: a fresh contiguous CPU f32 tensor of `n` elements that nothing else
                // references yet; the slice is gone before the tensor is returned.
                let values =
                    unsafe { std::slice::from_raw_parts_mut(out.data_ptr() as *mut f32, n) };
                codec::decode_into(t, limits, values)?;
            }
            Ok(out)
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
        let back = decode_payload(&bytes.to_bytes(), &limits).unwrap();
        assert_eq!(back.len(), 2);
        assert!(back[0].equal(&a) && back[1].equal(&b));
        let bytes = encode_boundary(
            &[a.shallow_clone()],
            4,
            Bits::new(8).unwrap(),
            ClipMethod::Naive,
        )
        .unwrap();
        let back = decode_payload(&bytes.to_bytes(), &limits).unwrap();
        let err = (&back[0] - &a).abs().max().double_value(&[]);
        let range = (a.max() - a.min()).double_value(&[]);
        assert!(
            err <= range / 255.0 * 0.5 + 1e-5,
            "8-bit error {err} over range {range}"
        );
    }

    #[test]
    fn views_encode_their_own_values_not_their_storage() {
        tch::manual_seed(2);
        let base = Tensor::randn([4, 6, 8], (Kind::Float, tch::Device::Cpu));
        // A transposed view (not contiguous) and a narrowed one (storage offset 48 values).
        let views = [base.transpose(1, 2), base.narrow(0, 1, 2)];
        let limits = DecodeLimits::default();
        for view in views {
            let bytes =
                encode_boundary(&[view.shallow_clone()], 3, Bits::RAW, ClipMethod::Aciq).unwrap();
            let back = decode_payload(&bytes.to_bytes(), &limits).unwrap();
            assert_eq!(back[0].size(), view.size());
            assert!(back[0].equal(&view));
        }
        let ints = Tensor::from_slice(&[1i64, 2, 3]).view([1, 3]);
        let err = encode_boundary(&[ints], 3, Bits::RAW, ClipMethod::Aciq).unwrap_err();
        assert!(err.to_string().contains("expected f32"), "{err}");
    }

    #[test]
    fn raw_payloads_are_sent_from_the_tensors_memory_and_outlive_the_callers_handles() {
        let a = Tensor::randn([2, 3, 4], (Kind::Float, tch::Device::Cpu));
        let b = Tensor::randn([2, 3, 4], (Kind::Float, tch::Device::Cpu));
        let expected = (a.copy(), b.copy());
        let ptrs = [a.data_ptr() as usize, b.data_ptr() as usize];
        let body = encode_boundary(&[a, b], 1, Bits::RAW, ClipMethod::Aciq).unwrap();
        if cfg!(target_endian = "little") {
            // Headers, main values, the skip's header, skip values: the values are the
            // tensors' own memory (the stage's handles are gone, the payload keeps it alive).
            let slices: Vec<usize> = body.slices().map(|s| s.as_ptr() as usize).collect();
            assert_eq!(slices.len(), 4);
            assert_eq!([slices[1], slices[3]], ptrs);
        }
        let back = decode_payload(&body.to_bytes(), &DecodeLimits::default()).unwrap();
        assert!(back[0].equal(&expected.0) && back[1].equal(&expected.1));
    }

    #[test]
    fn hostile_payloads_are_refused_before_any_tensor_is_allocated() {
        // A valid header claiming 2^40 elements: refused by the limits, not an allocation abort.
        let limits = DecodeLimits::default();
        let t = Tensor::zeros([1, 4], (Kind::Float, tch::Device::Cpu));
        let mut bytes = encode_boundary(&[t], 3, Bits::RAW, ClipMethod::Naive)
            .unwrap()
            .to_bytes()
            .into_owned();
        // [version, [version, shape=[1, 4], ...]]: the shape's second dimension is the byte
        // after the fixint 1; make it a u64 of 2^40 by rewriting the tensor.
        let pos = bytes
            .windows(3)
            .position(|w| w == [0x92, 0x01, 0x04])
            .expect("shape [1, 4] in the payload");
        bytes.splice(
            pos..pos + 3,
            [0x92, 0x01, 0xcf, 0, 0, 1, 0, 0, 0, 0, 0].iter().copied(),
        );
        let err = decode_payload(&bytes, &limits).unwrap_err();
        assert!(err.to_string().contains("elements"), "{err}");
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
