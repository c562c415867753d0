//! What nodes, the leader and clients say to each other over zenoh, and the key expressions they
//! say it on.
//!
//! Every message is a MessagePack (rmp-serde) struct whose first field is [`WIRE_VERSION`] and whose
//! second is the fleet name, so a receiver rejects other versions and other fleets before looking
//! at the rest. A microbatch travels as an [`Activation`] header followed by its body's bytes
//! ([`quantpipe_messages::BoundaryPayload`] bytes, or a probe's filler): outside the MessagePack
//! value, so that a stage hands tens of megabytes to zenoh without copying them behind the header
//! and a receiver decodes them where they arrived. The attention mask of text models travels in
//! the header, unquantised.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Version of the messages in this module.
pub const WIRE_VERSION: u16 = 3;

/// Key expressions of one fleet.
#[derive(Debug, Clone)]
pub struct Keys {
    pub fleet: String,
}

impl Keys {
    pub fn new(fleet: &str) -> Self {
        Keys {
            fleet: fleet.to_owned(),
        }
    }
    /// Liveliness token of a node (membership).
    pub fn node(&self, name: &str) -> String {
        format!("qp/{}/node/{name}", self.fleet)
    }
    /// Every node's liveliness token.
    pub fn nodes(&self) -> String {
        format!("qp/{}/node/*", self.fleet)
    }
    /// Liveliness token of a node that may be elected leader (role `candidate`).
    pub fn candidate(&self, name: &str) -> String {
        format!("qp/{}/candidate/{name}", self.fleet)
    }
    /// Every candidate's liveliness token.
    pub fn candidates(&self) -> String {
        format!("qp/{}/candidate/*", self.fleet)
    }
    /// Liveliness token of the node acting as leader: a configured leader (role `leader` or
    /// `both`) for its whole life, an elected candidate while it leads.
    pub fn leader(&self, name: &str) -> String {
        format!("qp/{}/leader/{name}", self.fleet)
    }
    /// Every acting leader's liveliness token.
    pub fn leaders(&self) -> String {
        format!("qp/{}/leader/*", self.fleet)
    }
    /// The name in a token key of this fleet, `qp/<fleet>/<kind>/<name>`.
    pub fn token_name<'a>(&self, kind: &str, key: &'a str) -> Option<&'a str> {
        key.strip_prefix("qp/")?
            .strip_prefix(self.fleet.as_str())?
            .strip_prefix('/')?
            .strip_prefix(kind)?
            .strip_prefix('/')
    }
    /// Queryable answering a node's [`DeviceInfo`].
    pub fn device(&self, name: &str) -> String {
        format!("qp/{}/device/{name}", self.fleet)
    }
    /// Queryable taking an [`Assignment`] and answering an [`AssignAck`] once the shard is loaded.
    pub fn assign(&self, name: &str) -> String {
        format!("qp/{}/ctl/{name}/assign", self.fleet)
    }
    /// Queryable taking a [`Release`] and answering an [`AssignAck`] once the node holds no
    /// shard and listens on no stage key.
    pub fn release(&self, name: &str) -> String {
        format!("qp/{}/ctl/{name}/release", self.fleet)
    }
    /// Queryable of the leader answering the current [`PlanInfo`].
    pub fn plan(&self) -> String {
        format!("qp/{}/plan", self.fleet)
    }
    /// Where the leader announces every new [`PlanInfo`] (control priority): clients move to
    /// its epoch and send again what the old plan had not answered.
    pub fn plan_changed(&self) -> String {
        format!("qp/{}/plan/changed", self.fleet)
    }
    /// Input of pipeline stage `i` (0 is where clients send).
    pub fn stage_in(&self, stage: u32) -> String {
        format!("qp/{}/stage/{stage}/in", self.fleet)
    }
    /// Where stage `i + 1` acknowledges each message it accepted from stage `i` ([`LinkAck`],
    /// control priority): how stage `i` measures its outgoing link.
    pub fn link_ack(&self, stage: u32) -> String {
        format!("qp/{}/stage/{stage}/ack", self.fleet)
    }
    /// Where the last stage sends a client's results.
    pub fn result(&self, client: &str) -> String {
        format!("qp/{}/result/{client}", self.fleet)
    }
    /// Queryable answering a node's [`NodeStats`].
    pub fn stats(&self, name: &str) -> String {
        format!("qp/{}/stats/{name}", self.fleet)
    }
}

/// Why a received message was refused.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("malformed message ({len} bytes): {reason}")]
    Malformed { len: usize, reason: String },
    #[error("wire version {found}, this node speaks {WIRE_VERSION}")]
    Version { found: u16 },
    #[error("message of fleet `{found}` on fleet `{expected}`'s topic")]
    ForeignFleet { expected: String, found: String },
}

/// The first two fields every message starts with.
#[derive(Deserialize)]
struct Header {
    version: u16,
    fleet: String,
}

/// Serialises a message (struct as a MessagePack array).
pub fn to_bytes<T: Serialize>(msg: &T) -> Vec<u8> {
    rmp_serde::to_vec(msg).expect("wire messages always serialise")
}

/// Parses a message of `fleet`, checking the version and fleet before the rest; bytes after the
/// message are refused.
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8], fleet: &str) -> Result<T, WireError> {
    let (msg, len) = from_prefix(bytes, fleet)?;
    if len != bytes.len() {
        return Err(WireError::Malformed {
            len: bytes.len(),
            reason: format!("{} bytes after the message", bytes.len() - len),
        });
    }
    Ok(msg)
}

/// Parses a message of `fleet` at the start of `bytes`; answers it and its length.
fn from_prefix<T: DeserializeOwned>(bytes: &[u8], fleet: &str) -> Result<(T, usize), WireError> {
    let malformed = |e: rmp_serde::decode::Error| WireError::Malformed {
        len: bytes.len(),
        reason: e.to_string(),
    };
    // A header-only parse of an array reads its first two elements and ignores the rest.
    let header: (u16, String) = {
        let mut de = rmp_serde::Deserializer::new(bytes);
        let h: HeaderPrefix = serde::Deserialize::deserialize(&mut de).map_err(malformed)?;
        (h.0.version, h.0.fleet)
    };
    if header.0 != WIRE_VERSION {
        return Err(WireError::Version { found: header.0 });
    }
    if header.1 != fleet {
        return Err(WireError::ForeignFleet {
            expected: fleet.to_owned(),
            found: header.1,
        });
    }
    let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(bytes));
    let msg = T::deserialize(&mut de).map_err(malformed)?;
    Ok((msg, de.position() as usize))
}

/// Reads the header of a MessagePack array of any length.
struct HeaderPrefix(Header);

impl<'de> Deserialize<'de> for HeaderPrefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = HeaderPrefix;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a message array starting with version and fleet")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<HeaderPrefix, A::Error> {
                let version = seq
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::custom("no version"))?;
                let fleet = seq
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::custom("no fleet"))?;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(HeaderPrefix(Header { version, fleet }))
            }
        }
        d.deserialize_seq(V)
    }
}

/// One node's description, answered on [`Keys::device`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeviceInfo {
    pub version: u16,
    pub fleet: String,
    pub name: String,
    /// Profile key: nodes of one type share a compute profile in the planner.
    pub device_type: String,
    /// Memory the node offers to the model, bytes.
    pub mem_bytes: u64,
    /// libtorch intra-op threads of its forward passes.
    pub threads: i32,
    /// Emulated slowdown (1 = none): each forward pass is padded to `slowdown x` its profiled
    /// time, so the node behaves like a device that much slower.
    pub slowdown: f64,
    /// Nominal link bandwidth, Mbit/s.
    pub bw_mbps: f64,
    /// The profile, already scaled by `slowdown`.
    pub profile: UnitTimes,
}

/// A node's per-unit profile of its local model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UnitTimes {
    pub model: String,
    pub ubatch: usize,
    pub input_elements: u64,
    /// Seconds per microbatch of `ubatch` items, per unit (index u - 1).
    pub time_s: Vec<f64>,
    pub weight_bytes: Vec<u64>,
    /// Elements per item leaving each unit.
    pub output_elements: Vec<u64>,
}

/// Where a stage sends its output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum NextHop {
    /// The input of stage `i`.
    Stage(u32),
    /// The result topic of the client named in each activation.
    Client,
}

/// The leader's order to one node: run units `[l, r]` as stage `stage` of plan `epoch`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Assignment {
    pub version: u16,
    pub fleet: String,
    pub epoch: u64,
    pub model: String,
    pub stage: u32,
    pub stages: u32,
    pub l: usize,
    pub r: usize,
    pub next: NextHop,
    /// Bitwidth of this stage's output (32 = raw f32); ignored by the last stage. The node
    /// clips quantized outputs with its own `quantizer.clip` method. Under an adaptive
    /// `quantizer.policy` it is the highest bitwidth the stage sends at.
    pub out_bits: u8,
    /// The plan's predicted throughput, items/s (0 when the plan was forced): the target rate
    /// of adaptive bitwidth policies unless the node sets its own.
    pub target_items_per_s: f64,
}

/// The leader's order to a node that plan `epoch` leaves out: drop the shard and stop listening
/// on the old stage's keys. A subscription left behind would receive every microbatch sent to
/// the stage's new holder, so the sending stage's link would carry each one twice.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Release {
    pub version: u16,
    pub fleet: String,
    pub epoch: u64,
}

/// A node's answer to an [`Assignment`] or a [`Release`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AssignAck {
    pub version: u16,
    pub fleet: String,
    pub node: String,
    /// The assignment's epoch; when the stage refused it as older than the plan it runs, the
    /// epoch it runs (so a new leader can plan above it).
    pub epoch: u64,
    /// `None` when the shard is loaded and the stage listens; else why not.
    pub error: Option<String>,
}

/// One stage of a plan as the leader publishes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlanStage {
    pub node: String,
    pub l: usize,
    pub r: usize,
    pub out_bits: u8,
    /// Predicted seconds per microbatch (compute, and sending the output).
    pub compute_s: f64,
    pub transfer_s: f64,
}

/// The leader's current plan, answered on [`Keys::plan`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlanInfo {
    pub version: u16,
    pub fleet: String,
    pub epoch: u64,
    pub model: String,
    pub ubatch: usize,
    /// `planner` (planned from the devices' profiles) or `forced` (given in the leader's config).
    pub source: String,
    pub stages: Vec<PlanStage>,
    /// The planner's predicted throughput, items/s (0 when forced).
    pub predicted_items_per_s: f64,
}

/// Integer tokens of a text model's first unit, `[B, T]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tokens {
    pub shape: [u64; 2],
    pub ids: Vec<i64>,
}

/// The `[B, T]` 0/1 padding mask of text models.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Mask {
    pub shape: [u64; 2],
    #[serde(with = "serde_bytes")]
    pub values: Vec<u8>,
}

/// What an activation message carries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Body {
    /// Token ids into unit 1 (text models); nothing follows the header.
    Tokens(Tokens),
    /// Encoded tensors follow the header ([`quantpipe_messages::BoundaryPayload`] bytes):
    /// pixels into unit 1, or what crosses a cut.
    Payload,
    /// Filler follows the header: a stage sends it on an idle outgoing link so that the link's
    /// bandwidth estimate stays current; the receiver acknowledges it like a payload and
    /// discards it.
    Probe,
}

/// The header of one microbatch travelling the pipeline; the body's bytes follow it in the
/// message ([`Activation::into_message`], [`Activation::from_message`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Activation {
    pub version: u16,
    pub fleet: String,
    /// The client's run (random per run), with the client's name: where results go.
    pub run: u64,
    pub client: String,
    pub seq: u64,
    pub epoch: u64,
    /// The stage this message is for.
    pub stage: u32,
    /// Sender's wall clock, ns since the Unix epoch (transfer time where clocks agree).
    pub sent_unix_ns: u64,
    pub body: Body,
    /// Bytes of the body after the header (0 with tokens); [`Activation::into_message`] sets it.
    pub body_len: u64,
    pub mask: Option<Mask>,
}

impl Activation {
    /// The message: this header, declaring `body`'s length, then `body`, as two buffers so that
    /// the body reaches the transport without being copied behind the header.
    pub fn into_message(self, body: Vec<u8>) -> [Vec<u8>; 2] {
        let header = self.header_for(body.len());
        [header, body]
    }

    /// The header of a message whose body, `body_len` bytes, the caller sends right after it.
    pub fn header_for(mut self, body_len: usize) -> Vec<u8> {
        self.body_len = body_len as u64;
        to_bytes(&self)
    }

    /// Parses a message of `fleet`: the header (version and fleet checked before the rest) and
    /// the offset of its body, whose length must be the one the header declares.
    pub fn from_message(bytes: &[u8], fleet: &str) -> Result<(Activation, usize), WireError> {
        let (act, header_len): (Activation, usize) = from_prefix(bytes, fleet)?;
        let body_len = bytes.len() - header_len;
        let malformed = |reason: String| WireError::Malformed {
            len: bytes.len(),
            reason,
        };
        if act.body_len != body_len as u64 {
            return Err(malformed(format!(
                "the header declares a body of {} bytes, {body_len} follow it",
                act.body_len
            )));
        }
        if matches!(act.body, Body::Tokens(_)) && body_len != 0 {
            return Err(malformed(format!(
                "{body_len} bytes follow a tokens header"
            )));
        }
        Ok((act, header_len))
    }
}

/// A receiving stage's acknowledgement of one message from the stage before it, on
/// [`Keys::link_ack`] of the sender: when the message was sent and when it arrived, by the
/// sender's and receiver's clocks (the sender turns them into transfer intervals: see
/// [`quantpipe_adaptive::estimator`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LinkAck {
    pub version: u16,
    pub fleet: String,
    pub epoch: u64,
    /// The stage that sent the acknowledged message.
    pub stage: u32,
    pub run: u64,
    pub seq: u64,
    /// Size of the acknowledged message as received, bytes.
    pub bytes: u64,
    pub sent_unix_ns: u64,
    pub arrived_unix_ns: u64,
}

/// What the last stage returns for one microbatch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Output {
    pub version: u16,
    pub fleet: String,
    pub run: u64,
    pub seq: u64,
    pub epoch: u64,
    /// Output shape (`[B, D]`: logits or embeddings) and row-major values.
    pub shape: Vec<u64>,
    pub values: Vec<f32>,
    /// Why the pipeline could not produce it (the values are then empty).
    pub error: Option<String>,
}

/// A node's counters, answered on [`Keys::stats`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeStats {
    pub version: u16,
    pub fleet: String,
    pub node: String,
    pub epoch: u64,
    pub stage: Option<u32>,
    pub microbatches: u64,
    pub items: u64,
    /// Seconds spent in forward passes (emulated slowdown included) and in the codec.
    pub busy_forward_s: f64,
    pub busy_codec_s: f64,
    /// CPU seconds of the forward passes on the forward worker's thread (the emulated
    /// slowdown's sleep is not CPU; with more than one intra-op thread the others' share is not
    /// counted), and of the whole process when the stats were taken: with one intra-op thread
    /// the difference is what the node spends outside the model (codec, transport, runtime).
    #[serde(default)]
    pub forward_cpu_s: f64,
    #[serde(default)]
    pub process_cpu_s: f64,
    pub dropped_malformed: u64,
    pub dropped_foreign_fleet: u64,
    pub dropped_stale_epoch: u64,
    pub dropped_wrong_stage: u64,
    pub failed: u64,
    /// Per destination key: what was sent and the link's measured bandwidth; per source key:
    /// what arrived.
    pub links: Vec<LinkStats>,
}

impl NodeStats {
    /// The counters accumulated since `earlier` (the same node's stats, taken before): what a
    /// measured run added. Links are this snapshot's.
    pub fn since(&self, earlier: &NodeStats) -> NodeStats {
        NodeStats {
            microbatches: self.microbatches.saturating_sub(earlier.microbatches),
            items: self.items.saturating_sub(earlier.items),
            busy_forward_s: self.busy_forward_s - earlier.busy_forward_s,
            busy_codec_s: self.busy_codec_s - earlier.busy_codec_s,
            forward_cpu_s: self.forward_cpu_s - earlier.forward_cpu_s,
            process_cpu_s: self.process_cpu_s - earlier.process_cpu_s,
            dropped_malformed: self
                .dropped_malformed
                .saturating_sub(earlier.dropped_malformed),
            dropped_foreign_fleet: self
                .dropped_foreign_fleet
                .saturating_sub(earlier.dropped_foreign_fleet),
            dropped_stale_epoch: self
                .dropped_stale_epoch
                .saturating_sub(earlier.dropped_stale_epoch),
            dropped_wrong_stage: self
                .dropped_wrong_stage
                .saturating_sub(earlier.dropped_wrong_stage),
            failed: self.failed.saturating_sub(earlier.failed),
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LinkStats {
    pub to: String,
    pub messages: u64,
    pub bytes: u64,
    pub put_s: f64,
    /// The link's bandwidth while transmitting over the last window, from the receiver's
    /// acknowledgements, Mbit/s (0 before any).
    pub mbps: f64,
    /// Share of the last window the link was transmitting.
    pub utilisation: f64,
    /// Items acknowledged per second over the last window.
    pub items_per_s: f64,
    /// Mean bitwidth of the messages sent in the last window, and the policy's target rate
    /// (0 under `fixed`).
    pub bits_mean: f64,
    pub target_items_per_s: f64,
    /// Mean of receiver clock minus sender clock over received messages on this link (only
    /// meaningful where the clocks agree, e.g. loopback), seconds.
    pub transfer_s_mean: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Activation {
        Activation {
            version: WIRE_VERSION,
            fleet: "f".into(),
            run: 7,
            client: "c".into(),
            seq: 3,
            epoch: 1,
            stage: 0,
            sent_unix_ns: 5,
            body: Body::Payload,
            body_len: 0,
            mask: Some(Mask {
                shape: [1, 3],
                values: vec![1, 1, 0],
            }),
        }
    }

    fn message(a: Activation, body: Vec<u8>) -> Vec<u8> {
        a.into_message(body).concat()
    }

    #[test]
    fn token_names_are_read_back_from_their_keys() {
        let k = Keys::new("f");
        assert_eq!(k.token_name("candidate", &k.candidate("b")), Some("b"));
        assert_eq!(k.token_name("leader", &k.leader("a")), Some("a"));
        assert_eq!(k.token_name("leader", &k.candidate("a")), None);
        assert_eq!(k.token_name("node", "qp/ff/node/a"), None);
    }

    #[test]
    fn activations_round_trip_with_their_body_after_the_header() {
        let bytes = message(sample(), vec![1, 2, 3]);
        let (back, at) = Activation::from_message(&bytes, "f").unwrap();
        assert_eq!(&bytes[at..], &[1, 2, 3]);
        assert_eq!(
            back,
            Activation {
                body_len: 3,
                ..sample()
            }
        );
        let tokens = Activation {
            body: Body::Tokens(Tokens {
                shape: [1, 2],
                ids: vec![101, 102],
            }),
            ..sample()
        };
        let bytes = message(tokens.clone(), vec![]);
        assert_eq!(
            Activation::from_message(&bytes, "f").unwrap(),
            (tokens, bytes.len())
        );
    }

    #[test]
    fn a_body_other_than_the_declared_one_is_malformed() {
        let bytes = message(sample(), vec![1, 2, 3]);
        for cut in [bytes.len() - 1, bytes.len() - 3] {
            let err = Activation::from_message(&bytes[..cut], "f").unwrap_err();
            assert!(
                err.to_string().contains("declares a body of 3 bytes"),
                "{err}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Activation::from_message(&longer, "f").is_err());
        let tokens = Activation {
            body: Body::Tokens(Tokens {
                shape: [1, 1],
                ids: vec![1],
            }),
            ..sample()
        };
        let err = Activation::from_message(&message(tokens, vec![9]), "f").unwrap_err();
        assert!(err.to_string().contains("follow a tokens header"), "{err}");
        // Other messages refuse bytes after them.
        let mut info = to_bytes(&sample_plan());
        info.push(0);
        let err = from_bytes::<PlanInfo>(&info, "f").unwrap_err();
        assert!(
            err.to_string().contains("1 bytes after the message"),
            "{err}"
        );
    }

    fn sample_plan() -> PlanInfo {
        PlanInfo {
            version: WIRE_VERSION,
            fleet: "f".into(),
            epoch: 1,
            model: "m".into(),
            ubatch: 1,
            source: "forced".into(),
            stages: vec![],
            predicted_items_per_s: 0.0,
        }
    }

    #[test]
    fn foreign_fleet_and_version_are_refused_by_the_header() {
        let a = sample();
        let err = Activation::from_message(&message(a.clone(), vec![]), "g").unwrap_err();
        assert!(matches!(err, WireError::ForeignFleet { .. }), "{err}");
        let mut old = a.clone();
        old.version = 99;
        let err = Activation::from_message(&message(old, vec![]), "f").unwrap_err();
        assert!(matches!(err, WireError::Version { found: 99 }), "{err}");
        // A header of the right fleet over a different message is malformed, not accepted.
        let err = Activation::from_message(&to_bytes(&sample_plan()), "f").unwrap_err();
        assert!(matches!(err, WireError::Malformed { .. }), "{err}");
    }

    #[test]
    fn garbage_is_malformed() {
        for bytes in [&[][..], &[0xff, 0x00], &[0x93, 0x01]] {
            let err = Activation::from_message(bytes, "f").unwrap_err();
            assert!(matches!(err, WireError::Malformed { .. }), "{err}");
        }
    }

    #[test]
    fn stats_since_an_earlier_snapshot_hold_what_was_added_in_between() {
        let earlier = NodeStats {
            node: "n1".into(),
            microbatches: 2,
            busy_forward_s: 1.0,
            forward_cpu_s: 0.9,
            process_cpu_s: 5.0,
            failed: 1,
            ..Default::default()
        };
        let later = NodeStats {
            microbatches: 12,
            busy_forward_s: 6.0,
            forward_cpu_s: 5.4,
            process_cpu_s: 10.5,
            failed: 1,
            ..earlier.clone()
        };
        let d = later.since(&earlier);
        assert_eq!((d.node.as_str(), d.microbatches, d.failed), ("n1", 10, 0));
        assert!((d.busy_forward_s - 5.0).abs() < 1e-12);
        assert!((d.forward_cpu_s - 4.5).abs() < 1e-12);
        assert!((d.process_cpu_s - 5.5).abs() < 1e-12);
    }
}
