//! The BandwidthProbeActor: per-link estimates from the node's own traffic.
//!
//! Send side: bytes and the time `put` took per destination key. Under
//! `CongestionControl::Block` a put returns once zenoh has queued the message, so while queues
//! are not full this over-estimates the link; it converges to the link's rate when the link is the
//! bottleneck (puts then block). Receive side: the receiver's clock minus the sender's stamp
//! in each activation, meaningful where clocks agree (loopback, or synchronised hosts).

use crate::runtime::wire::LinkStats;
use actix::prelude::*;
use std::collections::BTreeMap;

#[derive(Default)]
pub struct BandwidthProbeActor {
    sent: BTreeMap<String, LinkStats>,
    /// Per source key: (messages, summed transfer seconds).
    received: BTreeMap<String, (u64, f64)>,
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
        l.mbps = if l.put_s > 0.0 {
            l.bytes as f64 * 8.0 / l.put_s / 1e6
        } else {
            0.0
        };
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

impl Handler<Links> for BandwidthProbeActor {
    type Result = MessageResult<Links>;
    fn handle(&mut self, _: Links, _: &mut Context<Self>) -> Self::Result {
        let mut out: Vec<LinkStats> = self.sent.values().cloned().collect();
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

    #[actix_rt::test]
    async fn estimates_accumulate_per_link() {
        let probe = BandwidthProbeActor::default().start();
        probe.do_send(Sent {
            to: "a".into(),
            bytes: 1_000_000,
            put_s: 0.5,
        });
        probe.do_send(Sent {
            to: "a".into(),
            bytes: 1_000_000,
            put_s: 0.5,
        });
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
        assert!((a.mbps - 16.0).abs() < 1e-9, "{}", a.mbps);
        let r = links.iter().find(|l| l.to == "in").unwrap();
        assert!((r.transfer_s_mean - 0.3).abs() < 1e-9);
    }
}
