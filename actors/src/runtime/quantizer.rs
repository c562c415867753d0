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
//!
//! A panic in the codec is caught: the link policy, which the panic may have left half-updated,
//! is replaced by the one the assignment gave, and the message in hand is answered with
//! [`WorkerPanicked`] (see [`crate::runtime::supervision`]); past its [`RestartBudget`] the
//! actor reports to the node's [`WorkerHealth`] that it cannot restart.

use crate::runtime::config::QuantizerSettings;
use crate::runtime::faults::{forced_at, FaultSettings};
use crate::runtime::supervision::{
    catch_panic, PanicHistory, RestartBudget, WorkerHealth, WorkerPanicked,
};
use crate::runtime::tensor_wire::{decode_payload, encode_boundary};
use actix::prelude::*;
use anyhow::{anyhow, bail, Result};
use quantpipe_adaptive::link_policy::LinkPolicy;
use quantpipe_adaptive::policy::{
    PolicyConfig, PolicyKind, TransferRate, WindowChoice, WindowObservation,
};
use quantpipe_messages::clipping::ClipMethod;
use quantpipe_messages::{Bits, DecodeLimits};
use std::sync::Arc;
use std::time::Instant;
use tch::Tensor;
use zenoh::bytes::ZBytes;

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
    /// The policy as the assignment gave it: what a restart starts again from.
    assigned: Option<LinkPolicy>,
    faults: FaultSettings,
    health: Arc<WorkerHealth>,
    panics: PanicHistory,
    /// Encodes asked for so far (forced faults count them).
    encodes: u64,
    /// Why the actor could not restart, once it could not: it then refuses every message.
    broken: Option<String>,
}

impl QuantizerActor {
    pub fn new(method: ClipMethod, limits: DecodeLimits) -> Self {
        QuantizerActor {
            method,
            limits,
            policy: None,
            assigned: None,
            faults: FaultSettings::default(),
            health: Arc::default(),
            panics: PanicHistory::new(RestartBudget::default()),
            encodes: 0,
            broken: None,
        }
    }

    /// Reports restarts to `health` (the node's), and forces the faults of `faults`.
    pub fn with_supervision(mut self, faults: FaultSettings, health: Arc<WorkerHealth>) -> Self {
        self.faults = faults;
        self.health = health;
        self
    }

    /// Runs `f` on the actor; a panic in it restarts the codec (see [`Self::restart_after_panic`]).
    fn shielded<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if let Some(why) = &self.broken {
            return Err(WorkerPanicked {
                worker: "codec",
                message: why.clone(),
                restarted: false,
            }
            .into());
        }
        match catch_panic(|| f(self)) {
            Ok(r) => r,
            Err(message) => Err(self.restart_after_panic(message).into()),
        }
    }

    /// After a panic: the link policy starts again from the assignment's, if the restart
    /// budget allows; answers the error the message in hand gets.
    fn restart_after_panic(&mut self, message: String) -> WorkerPanicked {
        tracing::error!("codec worker panicked: {message}; resetting its link policy");
        self.policy = self.assigned.clone();
        let restarted = if !self.panics.panicked(Instant::now()) {
            let b = self.panics.budget();
            self.gave_up(format!(
                "it panicked more than {} times in {:?}",
                b.max_panics, b.within
            ))
        } else if self.faults.fail_restart {
            self.gave_up("forced by [faults] fail_restart".into())
        } else {
            self.health.restarted();
            tracing::warn!(
                "codec worker restarted ({} restart(s))",
                self.health.restarts()
            );
            true
        };
        WorkerPanicked {
            worker: "codec",
            message,
            restarted,
        }
    }

    fn gave_up(&mut self, why: String) -> bool {
        let why = format!("the codec worker cannot restart: {why}");
        tracing::error!("{why}");
        self.health.cannot_restart(why.clone());
        self.broken = Some(why);
        false
    }

    fn encode(&mut self, msg: Encode) -> Result<(ZBytes, f64, Bits)> {
        let start = Instant::now();
        self.encodes += 1;
        if forced_at(&self.faults.panic_encode_at, self.encodes) {
            panic!(
                "forced by [faults] panic_encode_at: encode {}",
                self.encodes
            );
        }
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

    fn decode(&self, msg: Decode) -> Result<(Vec<Tensor>, f64)> {
        let start = Instant::now();
        let body = msg
            .message
            .get(msg.body_at..)
            .ok_or_else(|| anyhow!("payload offset {} past the message", msg.body_at))?;
        let t = decode_payload(body, &self.limits)?;
        Ok((t, start.elapsed().as_secs_f64()))
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
        self.shielded(|q| q.encode(msg))
    }
}

impl Handler<SetPolicy> for QuantizerActor {
    type Result = ();
    fn handle(&mut self, msg: SetPolicy, _: &mut SyncContext<Self>) {
        self.assigned = msg.0.clone();
        self.policy = msg.0;
    }
}

impl Handler<TransferObserved> for QuantizerActor {
    type Result = ();
    fn handle(&mut self, msg: TransferObserved, _: &mut SyncContext<Self>) {
        let observed = self.shielded(|q| {
            if let Some(p) = &mut q.policy {
                p.on_transfer(msg.0);
            }
            Ok(())
        });
        if let Err(e) = observed {
            tracing::warn!("link policy: {e:#}");
        }
    }
}

impl Handler<WindowObserved> for QuantizerActor {
    type Result = Option<WindowChoice>;
    fn handle(&mut self, msg: WindowObserved, _: &mut SyncContext<Self>) -> Self::Result {
        self.shielded(|q| Ok(q.policy.as_mut().and_then(|p| p.on_window(msg.0))))
            .unwrap_or_else(|e| {
                tracing::warn!("link policy: {e:#}");
                None
            })
    }
}

impl Handler<Decode> for QuantizerActor {
    type Result = Result<(Vec<Tensor>, f64)>;
    fn handle(&mut self, msg: Decode, _: &mut SyncContext<Self>) -> Self::Result {
        self.shielded(|q| q.decode(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

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
    fn a_panicking_encode_restarts_the_codec_with_the_assignment_policy() {
        let sys = actix::System::new();
        let health = Arc::new(WorkerHealth::default());
        let faults = FaultSettings {
            panic_encode_at: vec![2],
            ..Default::default()
        };
        sys.block_on(async {
            let q = {
                let health = health.clone();
                SyncArbiter::start(1, move || {
                    QuantizerActor::new(ClipMethod::Aciq, DecodeLimits::default())
                        .with_supervision(faults.clone(), health.clone())
                })
            };
            let t = Tensor::randn([4, 100], (Kind::Float, tch::Device::Cpu));
            let enc = || Encode {
                tensors: vec![t.shallow_clone()],
                cut: 3,
            };
            let p = link_policy(&settings("fixed", 2, 0.0), Bits::new(8).unwrap(), 0.0).unwrap();
            q.send(SetPolicy(Some(p))).await.unwrap();
            assert!(q.send(enc()).await.unwrap().is_ok());
            let e = q.send(enc()).await.unwrap().unwrap_err();
            let p = e
                .downcast_ref::<WorkerPanicked>()
                .expect("a WorkerPanicked");
            assert!(p.restarted && p.worker == "codec", "{e}");
            assert_eq!(health.restarts(), 1);
            // The policy the assignment gave is back: the next encode works as before.
            let (_, _, bits) = q.send(enc()).await.unwrap().unwrap();
            assert_eq!(bits.get(), 8);
        });
    }

    #[test]
    fn a_codec_that_cannot_restart_reports_it() {
        let sys = actix::System::new();
        let health = Arc::new(WorkerHealth::default());
        let faults = FaultSettings {
            panic_encode_at: vec![1],
            fail_restart: true,
            ..Default::default()
        };
        sys.block_on(async {
            let q = {
                let health = health.clone();
                SyncArbiter::start(1, move || {
                    QuantizerActor::new(ClipMethod::Aciq, DecodeLimits::default())
                        .with_supervision(faults.clone(), health.clone())
                })
            };
            let t = Tensor::randn([4, 100], (Kind::Float, tch::Device::Cpu));
            let e = q
                .send(Encode {
                    tensors: vec![t],
                    cut: 3,
                })
                .await
                .unwrap()
                .unwrap_err();
            assert!(!e.downcast_ref::<WorkerPanicked>().unwrap().restarted);
            assert!(health
                .broken()
                .unwrap()
                .contains("codec worker cannot restart"));
        });
    }
}
