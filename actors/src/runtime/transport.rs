//! The TransportActor: a node's zenoh I/O that may block (puts under `CongestionControl::Block`,
//! declarations, query replies), on its own SyncArbiter thread so that neither an actix arbiter
//! nor a zenoh callback ever waits on the network.
//!
//! zenoh's synchronous calls refuse to run inside a current-thread tokio runtime (which is what an
//! actix arbiter is), so every such call of a node goes through this actor.

use crate::runtime::declarations::{Declarations, Declared, Kind};
use crate::runtime::link_pacing::LinkPacer;
use crate::runtime::probe::{BandwidthProbeActor, Sent};
use actix::prelude::*;
use anyhow::{anyhow, Result};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use zenoh::bytes::ZBytes;
use zenoh::handlers::FifoChannelHandler;
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::qos::{CongestionControl, Priority};
use zenoh::query::Query;
use zenoh::{Session, Wait};

/// Raw bytes received on a subscribed key, with the receiver's clock.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Received {
    /// The key subscribed to.
    pub key: String,
    /// The key the message was put on (under `key`: stage 0's tells which client sent it).
    pub sent_on: String,
    pub bytes: Vec<u8>,
    pub received_unix_ns: u64,
}

/// Nanoseconds since the Unix epoch.
pub fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub struct TransportActor {
    session: Session,
    probe: Addr<BandwidthProbeActor>,
    publishers: HashMap<String, Publisher<'static>>,
    /// Each with its guard in the node's [`Declarations`].
    subscribers: HashMap<String, (Subscriber<()>, Declared)>,
    /// How long a first put on a key waits for a subscriber to be known (declarations propagate
    /// asynchronously; a put with no known subscriber is dropped by zenoh).
    pub match_wait: Duration,
    /// An emulated link the data puts follow (`[emulation] link_trace`); control puts never wait.
    pacer: Option<LinkPacer>,
}

impl TransportActor {
    pub fn new(session: Session, probe: Addr<BandwidthProbeActor>) -> Self {
        TransportActor {
            session,
            probe,
            publishers: HashMap::new(),
            subscribers: HashMap::new(),
            match_wait: Duration::from_secs(30),
            pacer: None,
        }
    }

    /// Data puts are held as an emulated link following `pacer`'s trace would carry them.
    pub fn with_pacer(mut self, pacer: Option<LinkPacer>) -> Self {
        self.pacer = pacer;
        self
    }
}

impl Actor for TransportActor {
    type Context = SyncContext<Self>;
}

/// Publish `bytes` on `key`: reliable, `CongestionControl::Block`; tensors at data priority,
/// control traffic above it. Answers the seconds `put` took.
#[derive(Message)]
#[rtype(result = "Result<f64>")]
pub struct Put {
    pub key: String,
    pub bytes: ZBytes,
    pub control: bool,
}

/// The first answer to a query sent to `node` about its `what` (device info, stats, an
/// assignment...), parsed as a wire message of `fleet`; an error names the node and what was
/// asked when none came, when it answered an error, or when the answer does not parse.
pub fn first_answer<T: serde::de::DeserializeOwned>(
    replies: &FifoChannelHandler<zenoh::query::Reply>,
    node: &str,
    what: &str,
    fleet: &str,
) -> Result<T> {
    let reply = replies
        .recv()
        .map_err(|_| anyhow!("node {node} did not answer its {what} in time"))?;
    let sample = reply
        .result()
        .map_err(|e| anyhow!("node {node} answered its {what} with an error: {e:?}"))?;
    quantpipe_messages::envelope::decode(&sample.payload().to_bytes(), fleet)
        .map_err(|e| anyhow!("node {node}'s answer to its {what}: {e}"))
}

/// One zenoh payload: `header`, then `body` (itself possibly several slices), without copying.
pub fn zbytes_with_header(header: Vec<u8>, body: ZBytes) -> ZBytes {
    let mut writer = ZBytes::writer();
    writer.append(ZBytes::from(header));
    writer.append(body);
    writer.finish()
}

/// One zenoh payload over the parts of a message, in order, without copying them together.
pub fn zbytes_of(parts: impl IntoIterator<Item = Vec<u8>>) -> ZBytes {
    let mut writer = ZBytes::writer();
    for part in parts {
        writer.append(ZBytes::from(part));
    }
    writer.finish()
}

/// Subscribe to `key`, delivering samples to `to`; a key already subscribed keeps its
/// subscription (re-declaring it would briefly deliver samples twice, or not at all).
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct Subscribe {
    pub key: String,
    pub to: Recipient<Received>,
}

/// Drop every subscription except those on the keys in `keep`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UnsubscribeOthers {
    pub keep: Vec<String>,
}

/// Answer a query (replies travel at the query's priority: control queries ask at
/// `InteractiveHigh`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reply {
    pub query: Query,
    pub bytes: Vec<u8>,
}

impl Handler<Put> for TransportActor {
    type Result = Result<f64>;
    fn handle(&mut self, msg: Put, _: &mut SyncContext<Self>) -> Result<f64> {
        if !self.publishers.contains_key(&msg.key) {
            let publisher = self
                .session
                .declare_publisher(msg.key.clone())
                .congestion_control(CongestionControl::Block)
                .priority(if msg.control {
                    Priority::InteractiveHigh
                } else {
                    Priority::Data
                })
                .wait()
                .map_err(|e| anyhow!("declaring a publisher on {}: {e}", msg.key))?;
            wait_for_subscriber(&publisher, &msg.key, self.match_wait)?;
            self.publishers.insert(msg.key.clone(), publisher);
        }
        let publisher = &self.publishers[&msg.key];
        let len = msg.bytes.len() as u64;
        if let (Some(pacer), false) = (&mut self.pacer, msg.control) {
            // Held here, on the transport's own thread, so that the sender's stamp (taken when
            // the message was encoded) and the receiver's arrival span the emulated transfer.
            std::thread::sleep(pacer.hold(len));
        }
        let start = Instant::now();
        publisher
            .put(msg.bytes)
            .wait()
            .map_err(|e| anyhow!("put on {}: {e}", msg.key))?;
        let secs = start.elapsed().as_secs_f64();
        self.probe.do_send(Sent {
            to: msg.key,
            bytes: len,
            put_s: secs,
        });
        Ok(secs)
    }
}

/// Blocks until `publisher` has a subscriber (a put with none known is dropped by zenoh), or
/// fails after `wait`. A matching listener reports the status at its declaration and then each
/// change, so nothing is polled.
fn wait_for_subscriber(publisher: &Publisher<'static>, key: &str, wait: Duration) -> Result<()> {
    let listener = publisher
        .matching_listener()
        .wait()
        .map_err(|e| anyhow!("listening for subscribers of {key}: {e}"))?;
    let deadline = Instant::now() + wait;
    loop {
        match listener.recv_deadline(deadline) {
            Ok(Some(status)) if status.matching() => return Ok(()),
            Ok(Some(_)) => continue,
            Ok(None) => {
                return Err(anyhow!(
                "nobody subscribes to {key} after {wait:?}: is the next stage (or the client) up?"
            ))
            }
            Err(e) => return Err(anyhow!("listening for subscribers of {key}: {e}")),
        }
    }
}

impl Handler<Subscribe> for TransportActor {
    type Result = Result<()>;
    fn handle(&mut self, msg: Subscribe, _: &mut SyncContext<Self>) -> Result<()> {
        if self.subscribers.contains_key(&msg.key) {
            return Ok(());
        }
        let to = msg.to;
        let key = msg.key.clone();
        let sub = self
            .session
            .declare_subscriber(msg.key.clone())
            .callback(move |sample| {
                // Never block a zenoh callback: hand the bytes to the actor and return.
                to.do_send(Received {
                    key: key.clone(),
                    sent_on: sample.key_expr().as_str().to_owned(),
                    bytes: sample.payload().to_bytes().into_owned(),
                    received_unix_ns: unix_ns(),
                });
            })
            .wait()
            .map_err(|e| anyhow!("subscribing to {}: {e}", msg.key))?;
        let declared = Declarations::node().declared(Kind::Subscriber);
        self.subscribers.insert(msg.key, (sub, declared));
        Ok(())
    }
}

impl Handler<UnsubscribeOthers> for TransportActor {
    type Result = ();
    fn handle(&mut self, msg: UnsubscribeOthers, _: &mut SyncContext<Self>) {
        self.subscribers.retain(|k, _| msg.keep.contains(k));
    }
}

impl Handler<Reply> for TransportActor {
    type Result = ();
    fn handle(&mut self, msg: Reply, _: &mut SyncContext<Self>) {
        let key = msg.query.key_expr().clone();
        if let Err(e) = msg.query.reply(key.clone(), msg.bytes).wait() {
            tracing::warn!("replying to a query on {key}: {e}");
        }
    }
}
