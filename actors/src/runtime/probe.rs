//! The BandwidthProbeActor: per-link estimates from the node's own traffic.
//!
//! Outgoing link (to the next stage): the receiver acknowledges every message it accepts with
//! the sender's stamp and its own arrival stamp ([`LinkAck`]); a [`LinkMonitor`] turns those into
//! the link's bandwidth while transmitting, its utilisation and the items it carried, per window.
//! The StageActor routes what comes out to the QuantizerActor's policy; idle gaps and a busy
//! receiver do not read as a slow link (see [`quantpipe_adaptive::estimator`]).
//!
//! Also kept, for stats: bytes and `put` seconds per destination key (under
//! `CongestionControl::Block` a put returns once zenoh has queued the message, so these say
//! little about the link), and per source key the mean of receiver clock minus sender stamp.

use actix::prelude::*;
use quantpipe_adaptive::link_monitor::{Ack, LinkMonitor, LinkWindow};
use quantpipe_adaptive::policy::TransferRate;
use quantpipe_messages::{LinkAck, LinkStats};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct BandwidthProbeActor {
    sent: BTreeMap<String, LinkStats>,
    /// Per source key: (messages, summed transfer seconds).
    received: BTreeMap<String, (u64, f64)>,
    out: Option<OutLink>,
}

/// The monitored outgoing link.
struct OutLink {
    key: String,
    stage: u32,
    epoch: u64,
    target_items_per_s: f64,
    monitor: LinkMonitor,
    /// Bits of the messages sent in the current window: sum and count.
    bits: (f64, u64),
    last: Option<(LinkWindow, f64)>,
}

impl Actor for BandwidthProbeActor {
    type Context = Context<Self>;
}

/// One put of this node.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Sent {
    pub to: String,
    pub bytes: u64,
    pub put_s: f64,
}

/// One activation received on `on`, `transfer_s` after its sender stamped it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Arrived {
    pub on: String,
    pub transfer_s: f64,
}

/// From now on, monitor the link to `key` of stage `stage` under plan `epoch` (`None`: this stage
/// sends to no other stage).
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct WatchLink(pub Option<Watch>);

pub struct Watch {
    pub key: String,
    pub stage: u32,
    pub epoch: u64,
    pub window_s: f64,
    /// Shown in stats (0 under `fixed`).
    pub target_items_per_s: f64,
}

/// A message of `items` items at `bits` is about to go out on the monitored link.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Outgoing {
    pub run: u64,
    pub seq: u64,
    pub items: u64,
    pub bits: u8,
}

/// The next stage's acknowledgement; answers that message's transfer when known.
/// Acknowledgements of another stage or plan are ignored.
#[derive(Message)]
#[rtype(result = "Option<TransferRate>")]
pub struct Acked(pub LinkAck);

/// Closes the monitored link's window; answers it, or `None` without a monitored link.
#[derive(Message)]
#[rtype(result = "Option<LinkWindow>")]
pub struct CloseWindow;

/// The current estimates, per link.
#[derive(Message)]
#[rtype(result = "Vec<LinkStats>")]
pub struct Links;

impl Handler<Sent> for BandwidthProbeActor {
    type Result = ();
    fn handle(&mut self, msg: Sent, _: &mut Context<Self>) {
        let l = self.sent.entry(msg.to.clone()).or_default();
        l.to = msg.to;
        l.messages += 1;
        l.bytes += msg.bytes;
        l.put_s += msg.put_s;
    }
}

impl Handler<Arrived> for BandwidthProbeActor {
    type Result = ();
    fn handle(&mut self, msg: Arrived, _: &mut Context<Self>) {
        let e = self.received.entry(msg.on).or_default();
        e.0 += 1;
        e.1 += msg.transfer_s.max(0.0);
    }
}

impl Handler<WatchLink> for BandwidthProbeActor {
    type Result = Result<(), String>;
    fn handle(&mut self, msg: WatchLink, _: &mut Context<Self>) -> Self::Result {
        self.out = match msg.0 {
            None => None,
            Some(w) => Some(OutLink {
                monitor: LinkMonitor::new(w.window_s)?,
                key: w.key,
                stage: w.stage,
                epoch: w.epoch,
                target_items_per_s: w.target_items_per_s,
                bits: (0.0, 0),
                last: None,
            }),
        };
        Ok(())
    }
}

impl Handler<Outgoing> for BandwidthProbeActor {
    type Result = ();
    fn handle(&mut self, msg: Outgoing, _: &mut Context<Self>) {
        if let Some(o) = &mut self.out {
            o.monitor.on_send(msg.run, msg.seq, msg.items);
            o.bits.0 += f64::from(msg.bits);
            o.bits.1 += 1;
        }
    }
}

impl Handler<Acked> for BandwidthProbeActor {
    type Result = Option<TransferRate>;
    fn handle(&mut self, msg: Acked, _: &mut Context<Self>) -> Option<TransferRate> {
        let o = self.out.as_mut()?;
        let a = msg.0;
        if a.stage != o.stage || a.epoch != o.epoch {
            return None;
        }
        o.monitor.on_ack(Ack {
            run: a.run,
            seq: a.seq,
            bytes: a.bytes,
            sent_s: a.sent_unix_ns as f64 / 1e9,
            arrived_s: a.arrived_unix_ns as f64 / 1e9,
        })
    }
}

impl Handler<CloseWindow> for BandwidthProbeActor {
    type Result = Option<LinkWindow>;
    fn handle(&mut self, _: CloseWindow, _: &mut Context<Self>) -> Self::Result {
        let o = self.out.as_mut()?;
        let w = o.monitor.close_window(crate::runtime::metrics::unix_s());
        let (sum, n) = std::mem::take(&mut o.bits);
        let bits_mean = if n > 0 { sum / n as f64 } else { 0.0 };
        o.last = Some((w, bits_mean));
        Some(w)
    }
}

impl Handler<Links> for BandwidthProbeActor {
    type Result = MessageResult<Links>;
    fn handle(&mut self, _: Links, _: &mut Context<Self>) -> Self::Result {
        let mut out: Vec<LinkStats> = self.sent.values().cloned().collect();
        if let Some(o) = &self.out {
            let i = match out.iter().position(|l| l.to == o.key) {
                Some(i) => i,
                None => {
                    out.push(LinkStats {
                        to: o.key.clone(),
                        ..Default::default()
                    });
                    out.len() - 1
                }
            };
            let l = &mut out[i];
            l.target_items_per_s = o.target_items_per_s;
            if let Some((w, bits_mean)) = &o.last {
                l.mbps = w.observation.mbps.unwrap_or(0.0);
                l.utilisation = w.observation.utilisation;
                l.items_per_s = w.observation.items_per_s;
                l.bits_mean = *bits_mean;
            }
        }
        for (on, (n, s)) in &self.received {
            out.push(LinkStats {
                to: on.clone(),
                messages: *n,
                transfer_s_mean: if *n > 0 { s / *n as f64 } else { 0.0 },
                ..Default::default()
            });
        }
        MessageResult(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(stage: u32, epoch: u64, seq: u64, sent_s: f64, arrived_s: f64) -> LinkAck {
        LinkAck {
            epoch,
            stage,
            run: 1,
            seq,
            bytes: 125_000,
            sent_unix_ns: (sent_s * 1e9) as u64,
            arrived_unix_ns: (arrived_s * 1e9) as u64,
        }
    }

    #[actix_rt::test]
    async fn acknowledgements_of_the_watched_link_become_its_estimate() {
        let probe = BandwidthProbeActor::default().start();
        probe
            .send(WatchLink(Some(Watch {
                key: "next".into(),
                stage: 0,
                epoch: 5,
                window_s: 2e9,
                target_items_per_s: 40.0,
            })))
            .await
            .unwrap()
            .unwrap();
        probe.do_send(Outgoing {
            run: 1,
            seq: 0,
            items: 8,
            bits: 8,
        });
        // 125 kB in 0.1 s: 10 Mbit/s.
        let t = probe.send(Acked(ack(0, 5, 0, 10.0, 10.1))).await.unwrap();
        assert!((t.unwrap().mbps - 10.0).abs() < 1e-3, "{t:?}");
        // Another stage's or another plan's acknowledgement says nothing about this link.
        assert_eq!(
            probe.send(Acked(ack(1, 5, 1, 11.0, 11.1))).await.unwrap(),
            None
        );
        assert_eq!(
            probe.send(Acked(ack(0, 4, 1, 11.0, 11.1))).await.unwrap(),
            None
        );
        let w = probe.send(CloseWindow).await.unwrap().unwrap();
        assert!((w.observation.mbps.unwrap() - 10.0).abs() < 1e-3);
        let links = probe.send(Links).await.unwrap();
        let l = links.iter().find(|l| l.to == "next").unwrap();
        assert_eq!((l.bits_mean, l.target_items_per_s), (8.0, 40.0));
        assert!((l.mbps - 10.0).abs() < 1e-3);
        // Unwatched: no window, acknowledgements ignored.
        probe.send(WatchLink(None)).await.unwrap().unwrap();
        assert!(probe.send(CloseWindow).await.unwrap().is_none());
    }

    #[actix_rt::test]
    async fn puts_and_arrivals_accumulate_per_key() {
        let probe = BandwidthProbeActor::default().start();
        for _ in 0..2 {
            probe.do_send(Sent {
                to: "a".into(),
                bytes: 1_000_000,
                put_s: 0.5,
            });
        }
        probe.do_send(Arrived {
            on: "in".into(),
            transfer_s: 0.2,
        });
        probe.do_send(Arrived {
            on: "in".into(),
            transfer_s: 0.4,
        });
        let links = probe.send(Links).await.unwrap();
        let a = links.iter().find(|l| l.to == "a").unwrap();
        assert_eq!((a.messages, a.bytes), (2, 2_000_000));
        assert!((a.put_s - 1.0).abs() < 1e-9);
        let r = links.iter().find(|l| l.to == "in").unwrap();
        assert!((r.transfer_s_mean - 0.3).abs() < 1e-9);
    }
}
