//! One microbatch travelling the pipeline: an [`Activation`] header in its [`Envelope`], then the
//! body's bytes ([`crate::BoundaryPayload`] bytes, or a probe's filler) outside the MessagePack
//! value. A stage hands tens of megabytes to zenoh as a second slice, without copying them behind
//! the header, and a receiver decodes them where they arrived. The attention mask of text models
//! travels in the header, unquantised.

use serde::{Deserialize, Serialize};

use crate::envelope::{self, Envelope};
use crate::error::WireError;
use crate::limits::DecodeLimits;

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
    /// Encoded tensors follow the header ([`crate::BoundaryPayload`] bytes): pixels into unit 1,
    /// or what crosses a cut.
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
    /// The message of `fleet`: this header, declaring `body`'s length, then `body`, as two
    /// buffers so that the body reaches the transport without being copied behind the header.
    pub fn into_message(self, fleet: &str, body: Vec<u8>) -> [Vec<u8>; 2] {
        Envelope::new(fleet, self).into_message(body)
    }

    /// The header of a message of `fleet` whose body, `body_len` bytes, the caller sends right
    /// after it.
    pub fn header_for(self, fleet: &str, body_len: usize) -> Vec<u8> {
        Envelope::new(fleet, self).header_for(body_len)
    }

    /// Parses a message of `fleet` under the default [`DecodeLimits`] (which bound the whole
    /// message, body included): the header (size, version and fleet checked before the rest)
    /// and the offset of its body, whose length must be the one the header declares. The body
    /// is not read.
    pub fn from_message(bytes: &[u8], fleet: &str) -> Result<(Activation, usize), WireError> {
        Self::from_message_with(bytes, fleet, &DecodeLimits::default())
    }

    /// [`Activation::from_message`] under `limits`.
    pub fn from_message_with(
        bytes: &[u8],
        fleet: &str,
        limits: &DecodeLimits,
    ) -> Result<(Activation, usize), WireError> {
        let (act, header_len): (Activation, usize) = envelope::decode_prefix(bytes, fleet, limits)?;
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

impl Envelope<Activation> {
    /// [`Activation::into_message`] with this envelope's version and fleet.
    pub fn into_message(self, body: Vec<u8>) -> [Vec<u8>; 2] {
        let header = self.header_for(body.len());
        [header, body]
    }

    /// [`Activation::header_for`] with this envelope's version and fleet.
    pub fn header_for(mut self, body_len: usize) -> Vec<u8> {
        self.body.body_len = body_len as u64;
        self.to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::PlanInfo;
    use crate::envelope::WIRE_VERSION;

    fn sample() -> Activation {
        Activation {
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
        a.into_message("f", body).concat()
    }

    fn sample_plan() -> PlanInfo {
        PlanInfo {
            epoch: 1,
            model: "m".into(),
            ubatch: 1,
            source: "forced".into(),
            stages: vec![],
            predicted_items_per_s: 0.0,
        }
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
    fn the_header_is_the_message_without_its_body() {
        let [header, body] = sample().into_message("f", vec![9; 5]);
        assert_eq!(header, sample().header_for("f", 5));
        assert_eq!(body, vec![9; 5]);
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
        let mut info = envelope::encode("f", &sample_plan());
        info.push(0);
        let err = envelope::decode::<PlanInfo>(&info, "f").unwrap_err();
        assert!(
            err.to_string().contains("1 bytes after the message"),
            "{err}"
        );
    }

    #[test]
    fn foreign_fleet_and_version_are_refused_by_the_header() {
        let a = sample();
        let err = Activation::from_message(&a.clone().into_message("g", vec![]).concat(), "f")
            .unwrap_err();
        assert!(matches!(err, WireError::ForeignFleet { .. }), "{err}");
        let old = Envelope {
            version: 99,
            fleet: "f".into(),
            body: a,
        };
        let err = Activation::from_message(&old.into_message(vec![]).concat(), "f").unwrap_err();
        assert!(matches!(err, WireError::Version { found: 99, .. }), "{err}");
        // A header of the right fleet over a different message is malformed, not accepted.
        let err =
            Activation::from_message(&envelope::encode("f", &sample_plan()), "f").unwrap_err();
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
    fn the_whole_message_is_bounded_by_the_limits() {
        let bytes = message(sample(), vec![0; 100]);
        let limits = DecodeLimits {
            max_message_bytes: 100,
            ..DecodeLimits::default()
        };
        let err = Activation::from_message_with(&bytes, "f", &limits).unwrap_err();
        assert!(matches!(err, WireError::TooLarge { max: 100, .. }), "{err}");
        assert_eq!(WIRE_VERSION, 6);
    }
}
