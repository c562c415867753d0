//! The StageActor's side of its outgoing link: acknowledging what it accepts to the stage before
//! it, taking acknowledgements of its own messages to the BandwidthProbeActor, and closing the
//! probe's window into the QuantizerActor's policy (with a probe message when the link idled).

use super::{StageActor, PROBE_RUN};
use crate::runtime::metrics::OutLinkWindow;
use crate::runtime::probe::{Acked, CloseWindow};
use crate::runtime::quantizer::{TransferObserved, WindowObserved};
use crate::runtime::transport::{unix_ns, zbytes_of, Put, Received};
use actix::prelude::*;
use quantpipe_adaptive::link_monitor::LinkWindow;
use quantpipe_adaptive::policy::WindowChoice;
use quantpipe_messages::{envelope, Activation, Assignment, Body, LinkAck, NextHop};

impl StageActor {
    /// Closes the outgoing link's window: the probe's observation goes to the policy; an idle
    /// link gets a probe message so that its estimate is current when traffic resumes.
    pub(super) fn close_link_window(&mut self, ctx: &mut Context<Self>) {
        let probe = self.probe.send(CloseWindow);
        let quant = self.quant.clone();
        let fut = async move {
            let w: Option<LinkWindow> = probe.await.ok().flatten();
            let choice = match &w {
                Some(w) => quant
                    .send(WindowObserved(w.observation))
                    .await
                    .ok()
                    .flatten(),
                None => None,
            };
            (w, choice)
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(|(w, choice), act, _| act.on_link_window(w, choice)),
        );
    }

    /// Records the closed window for the metrics rows, and probes an idle link.
    fn on_link_window(&mut self, w: Option<LinkWindow>, choice: Option<WindowChoice>) {
        let (Some(w), Some(a)) = (w, self.current.clone()) else {
            self.out_link = None;
            return;
        };
        let o = &w.observation;
        self.out_link = Some(OutLinkWindow {
            mbps: o.mbps.unwrap_or(0.0),
            utilisation: o.utilisation,
            items_per_s: o.items_per_s,
            bits_mean: choice.map_or(f64::from(a.out_bits), |c| c.mean_bits()),
            target_items_per_s: self.link_target(&a),
        });
        if let Some(c) = choice {
            tracing::debug!(
                "{}: link {:.2} Mbit/s ({:.0}% busy), {:.1} items/s: next window {}/{} bits ({:.0}% at {})",
                self.name,
                o.mbps.unwrap_or(0.0),
                100.0 * o.utilisation,
                o.items_per_s,
                c.lo.get(),
                c.hi.get(),
                100.0 * c.hi_share,
                c.hi.get()
            );
        }
        if w.idle() && self.link_live && self.quantizer.probe_bytes > 0 {
            self.send_probe(&a);
        }
    }

    /// A filler message to the next stage, acknowledged like a payload and discarded there.
    fn send_probe(&mut self, a: &Assignment) {
        let NextHop::Stage(next) = a.next else {
            return;
        };
        self.probes_sent += 1;
        let msg = Activation {
            run: PROBE_RUN,
            client: self.name.clone(),
            seq: self.probes_sent,
            epoch: a.epoch,
            stage: next,
            sent_unix_ns: unix_ns(),
            body: Body::Probe,
            body_len: 0,
            mask: None,
        };
        self.transport.do_send(Put {
            key: self.keys.stage_in(next),
            bytes: zbytes_of(
                msg.into_message(&self.keys.fleet, vec![0; self.quantizer.probe_bytes]),
            ),
            control: false,
        });
    }

    /// Acknowledges an accepted message to the stage that sent it.
    pub(super) fn acknowledge(&self, act: &Activation, bytes: u64, arrived_unix_ns: u64) {
        let Some(sender) = act.stage.checked_sub(1) else {
            return;
        };
        let ack = LinkAck {
            epoch: act.epoch,
            stage: sender,
            run: act.run,
            seq: act.seq,
            bytes,
            sent_unix_ns: act.sent_unix_ns,
            arrived_unix_ns,
        };
        self.control.do_send(Put {
            key: self.keys.link_ack(sender),
            bytes: envelope::encode(&self.keys.fleet, &ack).into(),
            control: true,
        });
    }

    /// An acknowledgement of one of this stage's messages: to the probe, and the message's
    /// transfer rate on to the policy.
    pub(super) fn on_link_ack(&mut self, msg: Received, ctx: &mut Context<Self>) {
        let ack: LinkAck = match envelope::decode(&msg.bytes, &self.keys.fleet) {
            Ok(a) => a,
            Err(e) => return self.drop_undecodable(&msg.key, e.into()),
        };
        if self.admit(ack.epoch, ack.stage).is_err() {
            self.stats.dropped_stale_epoch += 1;
            tracing::debug!(
                "{}: ignored an ack of stage {} epoch {}",
                self.name,
                ack.stage,
                ack.epoch
            );
            return;
        }
        self.link_live = true;
        self.credits.acknowledged((ack.run, ack.seq));
        // A probe is small: over a token-bucket shaper it can pass within the bucket's burst
        // and read far above the link's rate, so it feeds the window's estimate only, never
        // the policy's per-message fast path.
        let is_probe = ack.run == PROBE_RUN;
        let probe = self.probe.send(Acked(ack));
        let quant = self.quant.clone();
        ctx.spawn(
            async move {
                if let (Ok(Some(t)), false) = (probe.await, is_probe) {
                    quant.do_send(TransferObserved(t));
                }
            }
            .into_actor(self),
        );
    }
}
