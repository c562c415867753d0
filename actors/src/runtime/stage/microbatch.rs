//! One microbatch through a stage: decoded and checked by [`admission`] (refusals are counted
//! by reason and answered to the client), admitted by [`rules::admit`], acknowledged to the sender,
//! then decoded (QuantizerActor), run (ForwardWorker), encoded at the link's bitwidth
//! (QuantizerActor) and sent (TransportActor), all off the node's arbiter; its outcome is counted
//! when it comes back, a loss classified by [`rules::classify_loss`].

use super::rules::{self, Loss, Refusal};
use super::StageActor;
use crate::runtime::forward_worker::{Forward, ForwardTime, ForwardWorker};
use crate::runtime::link_credits::LinkCredits;
use crate::runtime::probe::{Arrived, BandwidthProbeActor, Outgoing};
use crate::runtime::quantizer::{Decode, Encode, QuantizerActor};
use crate::runtime::supervision::{reply_for, FailureReply};
use crate::runtime::tensor_wire::{mask_from_wire, mask_to_wire, tokens_from_wire};
use crate::runtime::transport::{unix_ns, zbytes_with_header, Put, Received, TransportActor};
use actix::prelude::*;
use anyhow::anyhow;
use quantpipe_messages::admission;
use quantpipe_messages::{envelope, Activation, Assignment, Body, Keys, NextHop, Output};
use quantpipe_model_shards::Boundary;
use std::sync::Arc;
use tch::Tensor;
use tokio::sync::Semaphore;
use zenoh::bytes::ZBytes;

/// The refusal reason of a client microbatch that found the first stage's queue full.
const OVERLOADED: &str = "overloaded";

/// What went wrong with one microbatch: its input (`malformed`) or the stage.
struct Lost {
    malformed: bool,
    error: anyhow::Error,
}

fn malformed(error: anyhow::Error) -> Lost {
    Lost {
        malformed: true,
        error,
    }
}

fn failed(error: anyhow::Error) -> Lost {
    Lost {
        malformed: false,
        error,
    }
}

/// A microbatch that made it through the stage.
struct Done {
    items: u64,
    forward: ForwardTime,
    codec_s: f64,
    /// Where it went and how many bytes.
    key: String,
    bytes: u64,
    bits: u8,
    /// Messages on the outgoing link unacknowledged once this one was let onto it (0 from
    /// the last stage, which sends to the client without credits).
    link_in_flight: u64,
}

/// Who a microbatch meets on its way through the stage, under which assignment.
#[derive(Clone)]
struct Route {
    keys: Keys,
    assignment: Assignment,
    quant: Addr<QuantizerActor>,
    forward: Addr<ForwardWorker>,
    transport: Addr<TransportActor>,
    probe: Addr<BandwidthProbeActor>,
    send_slot: Arc<Semaphore>,
    credits: LinkCredits,
}

impl StageActor {
    pub(super) fn on_activation(&mut self, msg: Received, ctx: &mut Context<Self>) {
        let expected = self.expected.as_ref();
        let decoded = admission::decode(&msg.bytes, &self.keys.fleet, &self.limits, expected);
        let (act, body_at) = match decoded {
            Ok(a) => a,
            Err(r) => return self.drop_undecodable(&msg.key, r),
        };
        if let Err(refusal) = self.admit(act.epoch, act.stage) {
            return self.refuse(&act, refusal);
        }
        let (Some(assignment), Some(expected)) = (self.current.clone(), self.expected.as_ref())
        else {
            return;
        };
        let body = &msg.bytes[body_at..];
        if let Err(r) = admission::check_activation(&act, body, expected, &self.limits) {
            return self.refuse_input(&msg.key, &act, r);
        }
        if assignment.stage == 0 {
            let sender = self.keys.stage0_sender(&msg.sent_on);
            if let Err(r) = admission::check_sender(&act, sender) {
                return self.refuse_impersonation(&msg.sent_on, &act, r);
            }
        }
        let first = assignment.stage == 0;
        let full = rules::queue_full(first, self.stats.queued, rules::MAX_QUEUED_FROM_CLIENTS);
        if full && !matches!(act.body, Body::Probe) {
            return self.refuse_overloaded(&act);
        }
        if matches!(act.body, Body::Payload | Body::Probe) {
            self.acknowledge(&act, msg.bytes.len() as u64, msg.received_unix_ns);
        }
        if matches!(act.body, Body::Probe) {
            return;
        }
        if let Some(m) = &mut self.metrics {
            m.acc.accepted(&msg.key, msg.bytes.len() as u64);
        }
        self.probe.do_send(Arrived {
            on: msg.key.clone(),
            transfer_s: msg.received_unix_ns.saturating_sub(act.sent_unix_ns) as f64 / 1e9,
        });
        let route = Route {
            keys: self.keys.clone(),
            assignment,
            quant: self.quant.clone(),
            forward: self.forward.clone(),
            transport: self.transport.clone(),
            probe: self.probe.clone(),
            send_slot: self.send_slot.clone(),
            credits: self.credits.clone(),
        };
        let head = (act.run, act.seq, act.epoch, act.client.clone());
        let fut = route.run(act, msg.bytes, body_at);
        self.stats.queued += 1;
        self.stats.queued_high_water = self.stats.queued_high_water.max(self.stats.queued);
        ctx.spawn(fut.into_actor(self).map(move |res, stage, _| {
            stage.stats.queued = stage.stats.queued.saturating_sub(1);
            match res {
                Ok(done) => stage.finished(done),
                Err(lost) => stage.lost(head, lost),
            }
        }));
    }

    /// Counts and logs a microbatch that is not for this stage.
    fn refuse(&mut self, act: &Activation, refusal: Refusal) {
        match refusal {
            Refusal::Unassigned => {
                self.stats.dropped_stale_epoch += 1;
                tracing::warn!(
                    "{}: dropped microbatch {} before any assignment",
                    self.name,
                    act.seq
                );
            }
            Refusal::StaleEpoch { found, running } => {
                self.stats.dropped_stale_epoch += 1;
                tracing::warn!(
                    "{}: dropped microbatch {} of run {:x}: epoch {found} but the plan is at {running}",
                    self.name,
                    act.seq,
                    act.run
                );
            }
            Refusal::WrongStage { found, running } => {
                self.stats.dropped_wrong_stage += 1;
                tracing::warn!(
                    "{}: dropped microbatch {} addressed to stage {found} (this is stage {running})",
                    self.name,
                    act.seq
                );
            }
        }
    }

    /// Counts and logs a client microbatch sent on another client's key than the one it names.
    /// Nobody is answered: an error result to the client it names would be a forged answer
    /// to that client's run, and the key's client is whoever could put there.
    fn refuse_impersonation(&mut self, key: &str, act: &Activation, r: admission::Refusal) {
        self.count_refusal(r.reason);
        tracing::warn!(
            "{}: refused microbatch {} of run {:x} on {key}: {r}",
            self.name,
            act.seq,
            act.run
        );
    }

    /// Counts and logs a microbatch whose content this stage does not take, and tells its
    /// client why (a probe has no client waiting). Nothing of it is acknowledged or forwarded.
    fn refuse_input(&mut self, key: &str, act: &Activation, r: admission::Refusal) {
        self.count_refusal(r.reason);
        tracing::warn!(
            "{}: refused microbatch {} of run {:x} from client {:?} on {key}: {r}",
            self.name,
            act.seq,
            act.run,
            act.client
        );
        if matches!(act.body, Body::Probe) {
            return;
        }
        let out = Output {
            run: act.run,
            seq: act.seq,
            epoch: act.epoch,
            shape: vec![],
            values: vec![],
            error: Some(format!("{}: refused: {r}", self.name)),
            retryable: false,
        };
        self.control.do_send(Put {
            key: self.keys.result(&act.client),
            bytes: envelope::encode(&self.keys.fleet, &out).into(),
            control: true,
        });
    }

    /// Counts (under `refused["overloaded"]`) and answers a client microbatch that found the
    /// first stage's queue full: its client sent past its window. The answer is retryable: the
    /// input was not at fault.
    fn refuse_overloaded(&mut self, act: &Activation) {
        *self.stats.refused.entry(OVERLOADED.to_owned()).or_insert(0) += 1;
        tracing::warn!(
            "{}: refused microbatch {} of run {:x} from client {:?}: {} microbatches queued already",
            self.name,
            act.seq,
            act.run,
            act.client,
            self.stats.queued
        );
        let out = Output {
            run: act.run,
            seq: act.seq,
            epoch: act.epoch,
            shape: vec![],
            values: vec![],
            error: Some(format!(
                "{}: {OVERLOADED}: {} microbatches queued; send at most your window",
                self.name, self.stats.queued
            )),
            retryable: true,
        };
        self.control.do_send(Put {
            key: self.keys.result(&act.client),
            bytes: envelope::encode(&self.keys.fleet, &out).into(),
            control: true,
        });
    }

    fn finished(&mut self, d: Done) {
        if let Some(m) = &mut self.metrics {
            m.acc.finished(
                d.items,
                d.forward.busy_s,
                d.codec_s,
                &d.key,
                d.bytes,
                d.bits,
            );
        }
        self.stats.microbatches += 1;
        self.stats.items += d.items;
        self.stats.busy_forward_s += d.forward.busy_s;
        self.stats.forward_cpu_s += d.forward.cpu_s;
        self.stats.busy_codec_s += d.codec_s;
        self.stats.link_in_flight_high_water =
            self.stats.link_in_flight_high_water.max(d.link_in_flight);
    }

    /// Counts a lost microbatch `(run, seq, epoch, client)`; a failure under the running plan is
    /// sent to its client at once rather than left to time out.
    fn lost(&mut self, (run, seq, epoch, client): (u64, u64, u64, String), lost: Lost) {
        if let Some(m) = &mut self.metrics {
            m.acc.abandoned();
        }
        let e = lost.error;
        let running = self.current.as_ref().map(|c| c.epoch);
        match rules::classify_loss(lost.malformed, epoch, running) {
            Loss::Malformed => {
                self.stats.dropped_malformed += 1;
                tracing::warn!(
                    "{}: dropped malformed microbatch {seq} of run {run:x}: {e:#}",
                    self.name
                );
            }
            Loss::Stale => {
                self.stats.dropped_stale_epoch += 1;
                tracing::warn!(
                    "{}: dropped microbatch {seq} of run {run:x}: its plan (epoch {epoch}) was replaced: {e:#}",
                    self.name
                );
            }
            Loss::Failed => {
                self.stats.failed += 1;
                tracing::error!(
                    "{}: microbatch {seq} of run {run:x} failed: {e:#}",
                    self.name
                );
                // A worker that could not restart answers nothing: the node leaves the fleet,
                // and the re-plan has the client send the microbatch to the new pipeline.
                let reply = reply_for(&e);
                if reply == FailureReply::Silent {
                    return;
                }
                let out = Output {
                    run,
                    seq,
                    epoch,
                    shape: vec![],
                    values: vec![],
                    error: Some(format!("{}: {e:#}", self.name)),
                    retryable: reply == FailureReply::Retryable,
                };
                self.control.do_send(Put {
                    key: self.keys.result(&client),
                    bytes: envelope::encode(&self.keys.fleet, &out).into(),
                    control: true,
                });
            }
        }
    }
}

impl Route {
    /// Decode, forward, encode, send.
    async fn run(self, act: Activation, message: Vec<u8>, body_at: usize) -> Result<Done, Lost> {
        let mask = act
            .mask
            .as_ref()
            .map(mask_from_wire)
            .transpose()
            .map_err(malformed)?;
        let (tensors, decode_s) = self.decode(&act, message, body_at).await?;
        let (out, forward) = self
            .forward
            .send(Forward {
                input: Boundary::new(tensors, mask.as_ref().map(|m| m.shallow_clone())),
                epoch: act.epoch,
            })
            .await
            .map_err(|e| failed(anyhow!("forward worker: {e}")))?
            .map_err(failed)?;
        let items = out.batch().max(0) as u64;
        // Held until the put returns (microbatches leave the forward worker in order, and the
        // semaphore is fair, so they keep their order).
        let _sending = self
            .send_slot
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| failed(anyhow!("send slot: {e}")))?;
        let last = self.assignment.next == NextHop::Client;
        let (bytes, encode_s, bits, link_in_flight) = if last {
            (self.output(&act, &out.tensors[0])?, 0.0, 32, 0)
        } else {
            self.credits
                .take((act.run, act.seq))
                .await
                .map_err(|e| failed(anyhow!("link credits: {e}")))?;
            let in_flight = self.credits.in_flight() as u64;
            let (bytes, encode_s, bits) =
                self.encode(&act, out.tensors, mask.as_ref(), items).await?;
            (bytes, encode_s, bits, in_flight)
        };
        let key = match &self.assignment.next {
            NextHop::Client => self.keys.result(&act.client),
            NextHop::Stage(i) => self.keys.stage_in(*i),
        };
        let sent = bytes.len() as u64;
        self.transport
            .send(Put {
                key: key.clone(),
                bytes,
                control: false,
            })
            .await
            .map_err(|e| failed(anyhow!("transport: {e}")))?
            .map_err(failed)?;
        Ok(Done {
            items,
            forward,
            codec_s: decode_s + encode_s,
            key,
            bytes: sent,
            bits,
            link_in_flight,
        })
    }

    /// The microbatch's input tensors, and the seconds spent decoding them.
    async fn decode(
        &self,
        act: &Activation,
        message: Vec<u8>,
        body_at: usize,
    ) -> Result<(Vec<Tensor>, f64), Lost> {
        match &act.body {
            Body::Tokens(t) => Ok((vec![tokens_from_wire(t).map_err(malformed)?], 0.0)),
            Body::Payload => self
                .quant
                .send(Decode { message, body_at })
                .await
                .map_err(|e| failed(anyhow!("quantizer: {e}")))?
                .map_err(malformed),
            Body::Probe => Err(malformed(anyhow!("a probe carries no microbatch"))),
        }
    }

    /// The last stage sends raw f32 rows to the client.
    fn output(&self, act: &Activation, t: &Tensor) -> Result<ZBytes, Lost> {
        let values =
            Vec::<f32>::try_from(&t.contiguous().view(-1)).map_err(|e| failed(e.into()))?;
        let out = Output {
            run: act.run,
            seq: act.seq,
            epoch: act.epoch,
            shape: t.size().iter().map(|&d| d as u64).collect(),
            values,
            error: None,
            retryable: false,
        };
        Ok(envelope::encode(&self.keys.fleet, &out).into())
    }

    /// The next stage's message at the link's bitwidth, the seconds spent encoding, the bits.
    async fn encode(
        &self,
        act: &Activation,
        tensors: Vec<Tensor>,
        mask: Option<&Tensor>,
        items: u64,
    ) -> Result<(ZBytes, f64, u8), Lost> {
        let cut = self.assignment.r;
        let (payload, encode_s, bits) = self
            .quant
            .send(Encode { tensors, cut })
            .await
            .map_err(|e| failed(anyhow!("quantizer: {e}")))?
            .map_err(failed)?;
        self.probe.do_send(Outgoing {
            run: act.run,
            seq: act.seq,
            items,
            bits: bits.get(),
        });
        let header = Activation {
            run: act.run,
            client: act.client.clone(),
            seq: act.seq,
            epoch: act.epoch,
            stage: self.assignment.stage + 1,
            sent_unix_ns: unix_ns(),
            body: Body::Payload,
            body_len: 0,
            mask: mask.map(mask_to_wire).transpose().map_err(failed)?,
        };
        let bytes = zbytes_with_header(header.header_for(&self.keys.fleet, payload.len()), payload);
        Ok((bytes, encode_s, bits.get()))
    }
}
