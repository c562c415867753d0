//! The QuantizerActor and the conversions it wraps: a stage's output [`Boundary`] to
//! [`BoundaryPayload`] bytes at the link's bitwidth (encode on send), and received bytes back to
//! tensors (decode on receive).
//!
//! The bitwidth of each message is the node's `quantizer.policy` ([`LinkPolicy`]): `fixed` sends
//! at the bitwidth the plan gave the stage's output cut; `heuristic` and `controller` adapt to
//! the outgoing link's measured bandwidth (fed by the BandwidthProbeActor through the
//! StageActor), at most the plan's bitwidth and at least `quantizer.min_bits`. Each payload
//! names its bitwidth, so receivers need no control message. The `main` tensor after a u2 cut
//! (post-GELU) is clipped as one-sided, everything else as two-sided; 32 bits is raw f32,
//! bit-exact.

use crate::runtime::config::QuantizerSettings;
use crate::runtime::wire::{Mask, Tokens};
use actix::prelude::*;
use anyhow::{anyhow, bail, Result};
use quantpipe_adaptive::link_policy::LinkPolicy;
use quantpipe_adaptive::policy::{
    PolicyConfig, PolicyKind, TransferRate, WindowChoice, WindowObservation,
};
use quantpipe_messages::clipping::{ClipMethod, ValueKind};
use quantpipe_messages::codec::{self, Clip};
use quantpipe_messages::payload::{payload_pieces, PayloadPiece, TensorToEncode};
use quantpipe_messages::{Bits, BoundaryPayloadRef, DecodeLimits};
use quantpipe_model_shards::units::is_post_gelu_cut;
use std::time::Instant;
use tch::{Device, Kind, Tensor};
use zenoh::bytes::ZBytes;

/// Parses a clipping method name (`naive`, `aciq`, `ds-aciq`).
pub fn parse_clip(name: &str) -> Result<ClipMethod> {
    name.parse::<ClipMethod>()
        .map_err(|e| anyhow!("quantizer.clip: {e}"))
}

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

/// The policy of a stage's outgoing link under `settings`, for an assignment whose output cut
/// is at `plan_bits` with predicted throughput `plan_items_per_s` (0 when forced).
pub fn link_policy(
    settings: &QuantizerSettings,
    plan_bits: Bits,
    plan_items_per_s: f64,
) -> Result<LinkPolicy> {
    let kind = settings.policy_kind()?;
    let target = if settings.target_items_per_s > 0.0 {
        settings.target_items_per_s
    } else {
        plan_items_per_s
    };
    if kind != PolicyKind::Fixed && !(target > 0.0 && target.is_finite()) {
        bail!(
            "quantizer.policy `{kind}` needs a target rate: the plan was forced (no predicted \
             throughput), so set quantizer.target_items_per_s"
        );
    }
    let cfg = PolicyConfig {
        kind,
        max_bits: plan_bits,
        min_bits: Bits::new(settings.min_bits).map_err(|e| anyhow!("quantizer.min_bits: {e}"))?,
        // Fixed never looks at the rate; the others replace items per message per message.
        target_items_per_s: if target > 0.0 { target } else { 1.0 },
        items_per_message: 1.0,
        window_s: settings.window_s,
    };
    LinkPolicy::new(cfg).map_err(|e| anyhow!("quantizer policy `{kind}`: {e}"))
}

/// Encodes and decodes activations for its node, off the actix arbiter (one SyncArbiter thread:
/// the link policy's state lives here, so there must be exactly one).
pub struct QuantizerActor {
    pub method: ClipMethod,
    pub limits: DecodeLimits,
    /// The outgoing link's policy; `None` before an assignment and on the last stage.
    pub policy: Option<LinkPolicy>,
}

impl QuantizerActor {
    pub fn new(method: ClipMethod, limits: DecodeLimits) -> Self {
        QuantizerActor {
            method,
            limits,
            policy: None,
        }
    }
}

impl Actor for QuantizerActor {
    type Context = SyncContext<Self>;
}

/// The outgoing link's policy from now on (a new assignment).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPolicy(pub Option<LinkPolicy>);

/// One message's transfer rate on the outgoing link, Mbit/s.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TransferObserved(pub TransferRate);

/// A closed window of the outgoing link; answers the policy's choice for the next one.
#[derive(Message)]
#[rtype(result = "Option<WindowChoice>")]
pub struct WindowObserved(pub WindowObservation);

/// Encode a stage's output at the bitwidth the link's policy chooses; answers the payload (see
/// [`encode_boundary`]), the seconds it took, and the bitwidth.
#[derive(Message)]
#[rtype(result = "Result<(ZBytes, f64, Bits)>")]
pub struct Encode {
    pub tensors: Vec<Tensor>,
    pub cut: usize,
}

/// Decode the payload of a received message (`message[body_at..]`, decoded where it lies rather
/// than copied out first); answers the tensors and the seconds it took.
#[derive(Message)]
#[rtype(result = "Result<(Vec<Tensor>, f64)>")]
pub struct Decode {
    pub message: Vec<u8>,
    pub body_at: usize,
}

impl Handler<Encode> for QuantizerActor {
    type Result = Result<(ZBytes, f64, Bits)>;
    fn handle(&mut self, msg: Encode, _: &mut SyncContext<Self>) -> Self::Result {
        let start = Instant::now();
        let policy = self
            .policy
            .as_mut()
            .ok_or_else(|| anyhow!("no output policy: the stage has no assignment"))?;
        let shapes: Vec<Vec<usize>> = msg
            .tensors
            .iter()
            .map(|t| t.size().iter().map(|&d| d.max(0) as usize).collect())
            .collect();
        let bits = policy.bits_for(&shapes).map_err(|e| anyhow!(e))?;
        let bytes = encode_boundary(&msg.tensors, msg.cut, bits, self.method)?;
        Ok((bytes, start.elapsed().as_secs_f64(), bits))
    }
}

impl Handler<SetPolicy> for QuantizerActor {
    type Result = ();
    fn handle(&mut self, msg: SetPolicy, _: &mut SyncContext<Self>) {
        self.policy = msg.0;
    }
}

impl Handler<TransferObserved> for QuantizerActor {
    type Result = ();
    fn handle(&mut self, msg: TransferObserved, _: &mut SyncContext<Self>) {
        if let Some(p) = &mut self.policy {
            p.on_transfer(msg.0);
        }
    }
}

impl Handler<WindowObserved> for QuantizerActor {
    type Result = Option<WindowChoice>;
    fn handle(&mut self, msg: WindowObserved, _: &mut SyncContext<Self>) -> Self::Result {
        self.policy.as_mut().and_then(|p| p.on_window(msg.0))
    }
}

impl Handler<Decode> for QuantizerActor {
    type Result = Result<(Vec<Tensor>, f64)>;
    fn handle(&mut self, msg: Decode, _: &mut SyncContext<Self>) -> Self::Result {
        let start = Instant::now();
        let body = msg
            .message
            .get(msg.body_at..)
            .ok_or_else(|| anyhow!("payload offset {} past the message", msg.body_at))?;
        let t = decode_payload(body, &self.limits)?;
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

    fn settings(policy: &str, min_bits: u8, target: f64) -> QuantizerSettings {
        QuantizerSettings {
            policy: policy.into(),
            min_bits,
            target_items_per_s: target,
            ..Default::default()
        }
    }

    #[test]
    fn adaptive_policies_take_the_plan_rate_unless_the_node_sets_one() {
        let b8 = Bits::new(8).unwrap();
        // No rate anywhere: a clear error naming the setting.
        let err = link_policy(&settings("controller", 2, 0.0), b8, 0.0).unwrap_err();
        assert!(
            err.to_string().contains("quantizer.target_items_per_s"),
            "{err}"
        );
        assert!(link_policy(&settings("controller", 2, 0.0), b8, 40.0).is_ok());
        assert!(link_policy(&settings("heuristic", 2, 25.0), b8, 0.0).is_ok());
        // Fixed needs no rate; min_bits above the plan's bitwidth is refused only when adapting.
        assert!(link_policy(&settings("fixed", 16, 0.0), b8, 0.0).is_ok());
        let err = link_policy(&settings("heuristic", 16, 10.0), b8, 0.0).unwrap_err();
        assert!(err.to_string().contains("min_bits 16"), "{err}");
    }

    #[test]
    fn encode_uses_the_policy_bitwidth_and_refuses_without_one() {
        let sys = actix::System::new();
        sys.block_on(async {
            let q = SyncArbiter::start(1, || {
                QuantizerActor::new(ClipMethod::Aciq, DecodeLimits::default())
            });
            let t = Tensor::randn([4, 100], (Kind::Float, tch::Device::Cpu));
            let enc = || Encode {
                tensors: vec![t.shallow_clone()],
                cut: 3,
            };
            let err = q.send(enc()).await.unwrap().unwrap_err();
            assert!(err.to_string().contains("no output policy"), "{err}");
            let p = link_policy(&settings("heuristic", 2, 10.0), Bits::RAW, 0.0).unwrap();
            q.send(SetPolicy(Some(p))).await.unwrap();
            // Nothing measured yet: the highest bitwidth.
            let (_, _, bits) = q.send(enc()).await.unwrap().unwrap();
            assert_eq!(bits, Bits::RAW);
            // 0.01 Mbit/s over the 0.4 s budget of 4 items at 10 items/s is 500 B: 4 x 100 raw
            // f32 (1.6 kB) no longer fit; the policy picks a lower bitwidth.
            let choice = q
                .send(WindowObserved(WindowObservation {
                    mbps: Some(0.01),
                    utilisation: 1.0,
                    items_per_s: 10.0,
                    probes_only: false,
                }))
                .await
                .unwrap()
                .unwrap();
            let (bytes, _, bits) = q.send(enc()).await.unwrap().unwrap();
            assert_eq!(bits, choice.lo);
            assert!(bits.get() < 32);
            let back = decode_payload(&bytes.to_bytes(), &DecodeLimits::default()).unwrap();
            assert_eq!(back[0].size(), vec![4, 100]);
        });
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
