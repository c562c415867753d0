//! The envelope of every message between nodes, leaders and clients: one MessagePack array
//! `[version, fleet, body]`, so version and fleet are written once, here, rather than in each
//! message.
//!
//! A receiver checks, in this order and each before any work that could be expensive (see
//! [`crate::framing`]): the size against [`DecodeLimits`], the version ([`WIRE_VERSION`]) and the
//! fleet (read together as the header, the fleet borrowed), the extent of the whole value, and
//! only then parses the body. Every refusal is a [`WireError`] naming which of these failed; no input panics.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::WireError;
use crate::framing;
use crate::limits::DecodeLimits;
use crate::msgpack;

/// Version of the envelope and of the messages it carries. Bump on any change of their bytes.
///
/// 4: version and fleet moved out of each message into the envelope (`[4, fleet, [fields]]`).
/// 5: encoded tensors carry outlier channels (tensor format 2).
/// 6: an assignment carries the digests of its shard's weights (`Assignment::weights`), so that
///    a node fetches missing tensors from its peers; a node of version 5 would read an
///    assignment without them and load a shard it may not hold.
pub const WIRE_VERSION: u16 = 6;

/// Elements of the envelope array: version, fleet, body.
const ENVELOPE_ELEMENTS: u64 = 3;

/// One message of a fleet as it travels. Build it with [`Envelope::new`] (the current version);
/// a test may set another `version` to see it refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub version: u16,
    pub fleet: String,
    pub body: T,
}

impl<T> Envelope<T> {
    /// `body` as a message of `fleet` at [`WIRE_VERSION`].
    pub fn new(fleet: &str, body: T) -> Self {
        Envelope {
            version: WIRE_VERSION,
            fleet: fleet.to_owned(),
            body,
        }
    }
}

impl<T: Serialize> Envelope<T> {
    /// The message's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        write(self.version, &self.fleet, &self.body)
    }
}

/// The bytes of `body` as a message of `fleet` at [`WIRE_VERSION`], without copying `body` into
/// an [`Envelope`] first.
pub fn encode<T: Serialize>(fleet: &str, body: &T) -> Vec<u8> {
    write(WIRE_VERSION, fleet, body)
}

fn write<T: Serialize>(version: u16, fleet: &str, body: &T) -> Vec<u8> {
    let mut out = Vec::new();
    rmp::encode::write_array_len(&mut out, ENVELOPE_ELEMENTS as u32)
        .expect("writing MessagePack into a Vec cannot fail");
    msgpack::write_value(&mut out, &version);
    msgpack::write_value(&mut out, fleet);
    msgpack::write_value(&mut out, body);
    out
}

/// Parses a message of `fleet` that `bytes` hold entirely, under the default [`DecodeLimits`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8], fleet: &str) -> Result<T, WireError> {
    decode_with(bytes, fleet, &DecodeLimits::default())
}

/// [`decode`] under `limits`.
pub fn decode_with<T: DeserializeOwned>(
    bytes: &[u8],
    fleet: &str,
    limits: &DecodeLimits,
) -> Result<T, WireError> {
    let (body, end) = decode_prefix(bytes, fleet, limits)?;
    if end != bytes.len() {
        return Err(WireError::Malformed {
            len: bytes.len(),
            reason: format!("{} bytes after the message", bytes.len() - end),
        });
    }
    Ok(body)
}

/// Parses the message of `fleet` at the start of `bytes` (the whole buffer counted against
/// `limits`); answers its body and the offset where the bytes after it begin.
pub(crate) fn decode_prefix<T: DeserializeOwned>(
    bytes: &[u8],
    fleet: &str,
    limits: &DecodeLimits,
) -> Result<(T, usize), WireError> {
    let refused = |e| WireError::from_framing(e, bytes.len());
    framing::check_size(bytes, limits).map_err(refused)?;
    // Version and fleet are read before either is judged, as one header: a buffer too short
    // to hold both is malformed, whatever its first number.
    let opened = framing::open(bytes).map_err(refused)?;
    let mut body_at = opened.after_version;
    let found = msgpack::read_str(bytes, &mut body_at, "fleet field").map_err(refused)?;
    opened.expect_version(WIRE_VERSION).map_err(refused)?;
    if found != fleet {
        return Err(WireError::ForeignFleet {
            expected: fleet.to_owned(),
            found: found.to_owned(),
        });
    }
    if opened.elements != ENVELOPE_ELEMENTS {
        return Err(WireError::Malformed {
            len: bytes.len(),
            reason: format!(
                "an envelope has {ENVELOPE_ELEMENTS} elements (version, fleet, body), this one {}",
                opened.elements
            ),
        });
    }
    let end = msgpack::value_len(bytes).map_err(refused)?;
    let body = rmp_serde::from_slice(&bytes[body_at..end])
        .map_err(|e| refused(msgpack::map_rmp_error(e)))?;
    Ok((body, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_is_its_serde_form() {
        let e = Envelope::new("f", (7u64, "x".to_owned()));
        assert_eq!(e.to_bytes(), rmp_serde::to_vec(&e).unwrap());
        assert_eq!(encode("f", &e.body), e.to_bytes());
        assert_eq!(decode::<(u64, String)>(&e.to_bytes(), "f").unwrap(), e.body);
    }

    #[test]
    fn version_is_refused_before_the_fleet_and_the_fleet_before_the_body() {
        let old = Envelope {
            version: WIRE_VERSION + 1,
            fleet: "g".into(),
            body: (),
        };
        assert_eq!(
            decode::<u64>(&old.to_bytes(), "f").unwrap_err(),
            WireError::Version {
                found: u64::from(WIRE_VERSION) + 1,
                supported: WIRE_VERSION
            }
        );
        // A body `u64` would not parse: the fleet is refused first.
        let foreign = encode("g", &"not a number");
        assert_eq!(
            decode::<u64>(&foreign, "f").unwrap_err(),
            WireError::ForeignFleet {
                expected: "f".into(),
                found: "g".into()
            }
        );
    }

    #[test]
    fn oversize_is_refused_before_parsing() {
        let bytes = encode("f", &vec![0u8; 100]);
        let limits = DecodeLimits {
            max_message_bytes: 50,
            ..DecodeLimits::default()
        };
        assert_eq!(
            decode_with::<Vec<u8>>(&bytes, "f", &limits).unwrap_err(),
            WireError::TooLarge {
                len: bytes.len(),
                max: 50
            }
        );
    }

    #[test]
    fn other_arrays_and_cut_messages_are_malformed() {
        let two = msgpack::to_bytes(&(WIRE_VERSION, "f"));
        let err = decode::<()>(&two, "f").unwrap_err();
        assert!(err.to_string().contains("3 elements"), "{err}");
        let bytes = encode("f", &(1u64, 2u64));
        for cut in 0..bytes.len() {
            let err = decode::<(u64, u64)>(&bytes[..cut], "f").unwrap_err();
            assert!(
                matches!(err, WireError::Malformed { .. }),
                "cut {cut}: {err}"
            );
        }
    }
}
