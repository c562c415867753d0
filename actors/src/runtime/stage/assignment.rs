//! The leader's assignments and releases, as the StageActor takes them: each is checked by
//! [`rules`](super::rules), put into effect by the node's other actors (shard, policy, link
//! watch, subscriptions) while no microbatch is handled, and answered on its query.

use super::expected_input;
use super::rules::{self, Outdated};
use super::{StageActor, ACK_TIMEOUT, LINK_CREDITS};
use crate::runtime::forward_worker::{Load, Unload};
use crate::runtime::link_credits::LinkCredits;
use crate::runtime::probe::{Watch, WatchLink};
use crate::runtime::quantizer::{link_policy, SetPolicy};
use crate::runtime::transport::{Received, Subscribe, UnsubscribeOthers};
use actix::prelude::*;
use anyhow::{anyhow, Result};
use quantpipe_adaptive::link_policy::LinkPolicy;
use quantpipe_messages::admission::Expected;
use quantpipe_messages::Bits;
use quantpipe_messages::{envelope, Assignment, NextHop, Release};
use zenoh::query::Query;

/// An assignment from the leader, with the query to answer once it is in effect.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AssignQuery {
    pub bytes: Vec<u8>,
    pub query: Query,
}

/// A release from the leader ([`Release`]), with the query to answer once it is in effect.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReleaseQuery {
    pub bytes: Vec<u8>,
    pub query: Query,
}

/// What the node's other actors are told when an assignment takes effect.
struct Setup {
    load: Load,
    policy: Option<LinkPolicy>,
    watch: Option<Watch>,
    /// The keys the stage subscribes to: its input and, unless it is the last stage, the
    /// acknowledgements of its output.
    keys: Vec<String>,
    /// What the stage takes in.
    expected: Expected,
}

impl StageActor {
    /// The leader's `what` (an assignment or a release) in `bytes`; when it cannot be read, it is
    /// counted as malformed and the answer to send back says why.
    fn read_order<T: serde::de::DeserializeOwned>(
        &mut self,
        bytes: &[u8],
        what: &str,
    ) -> Result<T, String> {
        envelope::decode(bytes, &self.keys.fleet).map_err(|e| {
            tracing::warn!("dropping the {what}: {e}");
            self.stats.dropped_malformed += 1;
            format!("bad {what}: {e}")
        })
    }

    /// Refuses an outdated assignment or release, naming the newest epoch this node knows.
    fn refuse_outdated(&mut self, query: Query, what: &str, o: Outdated) {
        self.stats.dropped_stale_epoch += 1;
        let err = format!("{what} of epoch {} after epoch {}", o.found, o.known);
        self.ack(query, o.known, Some(err));
    }

    /// What taking `a` asks of the node's actors, or why it cannot be taken.
    fn setup_for(&self, a: &Assignment) -> Result<Setup> {
        let plan_bits = Bits::new(a.out_bits).map_err(|e| anyhow!("out_bits: {e}"))?;
        let model_dir = self
            .model_dir
            .as_ref()
            .ok_or_else(|| anyhow!("this node has no model folder to check its input against"))?;
        let expected = expected_input::expected_in(model_dir, a.l)?;
        let last = a.next == NextHop::Client;
        let policy = match last {
            true => None,
            false => Some(link_policy(
                &self.quantizer,
                plan_bits,
                a.target_items_per_s,
            )?),
        };
        let watch = match a.next {
            NextHop::Stage(next) => Some(Watch {
                key: self.keys.stage_in(next),
                stage: a.stage,
                epoch: a.epoch,
                window_s: self.quantizer.window_s,
                target_items_per_s: self.link_target(a),
            }),
            NextHop::Client => None,
        };
        let mut keys = vec![self.keys.stage_input(a.stage)];
        if !last {
            keys.push(self.keys.link_ack(a.stage));
        }
        let load = Load {
            epoch: a.epoch,
            model: a.model.clone(),
            l: a.l,
            r: a.r,
        };
        Ok(Setup {
            load,
            policy,
            watch,
            keys,
            expected,
        })
    }

    /// The assignment is in effect: the stage runs it from now on, with fresh link state.
    fn assigned(&mut self, a: Assignment, expected: Expected) {
        self.expected = Some(expected);
        self.stats.epoch = a.epoch;
        self.stats.stage = Some(a.stage);
        self.link_live = false;
        self.out_link = None;
        // Microbatches of an older plan still waiting to send give up now (dropped as stale);
        // the same plan assigned again keeps its microbatches going.
        if self.current.as_ref().map(|c| c.epoch) != Some(a.epoch) {
            self.credits.close();
        }
        self.credits = LinkCredits::new(LINK_CREDITS, ACK_TIMEOUT);
        self.current = Some(a);
    }

    /// The node is in no stage of plan `epoch` or older.
    fn released(&mut self, epoch: u64) {
        self.current = None;
        self.expected = None;
        self.released_at = self.released_at.max(epoch);
        self.stats.epoch = self.released_at;
        self.stats.stage = None;
        self.link_live = false;
        self.out_link = None;
        self.credits.close();
    }
}

impl Handler<AssignQuery> for StageActor {
    type Result = ();
    fn handle(&mut self, msg: AssignQuery, ctx: &mut Context<Self>) {
        let a: Assignment = match self.read_order(&msg.bytes, "assignment") {
            Ok(a) => a,
            Err(why) => return self.ack(msg.query, 0, Some(why)),
        };
        let running = self.current.as_ref().map(|c| c.epoch);
        if let Err(o) = rules::accept_assignment(running, self.released_at, a.epoch) {
            return self.refuse_outdated(msg.query, "assignment", o);
        }
        let setup = match self.setup_for(&a) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("{}: refusing the assignment: {e:#}", self.name);
                return self.ack(msg.query, a.epoch, Some(format!("{e:#}")));
            }
        };
        tracing::info!(
            "{}: assigned stage {} of {}, units {}..{}, epoch {}, output at {} bits",
            self.name,
            a.stage,
            a.stages,
            a.l,
            a.r,
            a.epoch,
            a.out_bits
        );
        let expected = setup.expected.clone();
        let fut = self.apply(setup, ctx.address().recipient());
        let query = msg.query;
        // Wait: no microbatch is handled while the assignment changes.
        ctx.wait(fut.into_actor(self).map(move |res, act, _| {
            let epoch = a.epoch;
            match res {
                Ok(()) => {
                    act.assigned(a, expected);
                    act.ack(query, epoch, None);
                }
                Err(e) => {
                    tracing::error!("{}: assignment failed: {e:#}", act.name);
                    act.ack(query, epoch, Some(format!("{e:#}")));
                }
            }
        }));
    }
}

impl StageActor {
    /// Puts `setup` into effect: shard, policy, link watch, then subscriptions (dropping those
    /// of an earlier assignment) delivering to `me`.
    fn apply(
        &self,
        setup: Setup,
        me: Recipient<Received>,
    ) -> impl std::future::Future<Output = Result<()>> + 'static {
        let load = self.forward.send(setup.load);
        let (transport, quant, probe) = (
            self.transport.clone(),
            self.quant.clone(),
            self.probe.clone(),
        );
        async move {
            load.await.map_err(|e| anyhow!("forward worker: {e}"))??;
            quant
                .send(SetPolicy(setup.policy))
                .await
                .map_err(|e| anyhow!("quantizer: {e}"))?;
            probe
                .send(WatchLink(setup.watch))
                .await
                .map_err(|e| anyhow!("probe: {e}"))?
                .map_err(|e| anyhow!("quantizer.window_s: {e}"))?;
            let keep = setup.keys.clone();
            transport
                .send(UnsubscribeOthers { keep })
                .await
                .map_err(|e| anyhow!("transport: {e}"))?;
            for key in setup.keys {
                let to = me.clone();
                transport
                    .send(Subscribe { key, to })
                    .await
                    .map_err(|e| anyhow!("transport: {e}"))??;
            }
            Ok(())
        }
    }
}

impl Handler<ReleaseQuery> for StageActor {
    type Result = ();
    fn handle(&mut self, msg: ReleaseQuery, ctx: &mut Context<Self>) {
        let r: Release = match self.read_order(&msg.bytes, "release") {
            Ok(r) => r,
            Err(why) => return self.ack(msg.query, 0, Some(why)),
        };
        let running = self.current.as_ref().map(|c| c.epoch);
        if let Err(o) = rules::accept_release(running, r.epoch) {
            // A plan this node runs, or an older one, cannot leave it out.
            self.stats.dropped_stale_epoch += 1;
            let err = format!(
                "release of epoch {} while running epoch {}",
                o.found, o.known
            );
            return self.ack(msg.query, o.known, Some(err));
        }
        tracing::info!(
            "{}: left out of plan epoch {}: dropping the shard",
            self.name,
            r.epoch
        );
        let (forward, quant, probe) =
            (self.forward.clone(), self.quant.clone(), self.probe.clone());
        let transport = self.transport.clone();
        let fut = async move {
            forward.send(Unload).await?;
            quant.send(SetPolicy(None)).await?;
            // Unwatching cannot fail: only a window length is checked.
            let _ = probe.send(WatchLink(None)).await?;
            transport.send(UnsubscribeOthers { keep: vec![] }).await
        };
        let query = msg.query;
        ctx.wait(fut.into_actor(self).map(move |res, act, _| match res {
            Ok(()) => {
                act.released(r.epoch);
                act.ack(query, r.epoch, None);
            }
            Err(e) => act.ack(query, r.epoch, Some(format!("releasing: {e}"))),
        }));
    }
}
