//! The one framing of every message: a MessagePack array whose first element is the version of
//! the format that wrote it, parsed under [`DecodeLimits`].
//!
//! Order of checks, each before any work that could be expensive:
//! 1. the buffer length against the configured limit ([`check_size`]), before a byte is read;
//! 2. the version, read from the first array element without parsing the rest
//!    ([`open`]), so a message from an incompatible writer is reported as such rather
//!    than as "malformed";
//! 3. the extent of the top-level value, found by [`msgpack::value_len`] (an iterative walk that
//!    neither recurses nor allocates), so truncation and trailing bytes are named precisely;
//! 4. the serde parse, from a borrowed slice: rmp-serde then never allocates more than the
//!    bytes present, and serde caps container pre-allocation.
//!
//! The encoded-tensor format ([`crate::tensor`], [`crate::payload`]) is framed by
//! [`decode_versioned`] directly; the messages between nodes add the fleet as the second
//! element ([`crate::envelope`]).

use serde::Deserialize;

use crate::error::DecodeError;
use crate::limits::DecodeLimits;
use crate::msgpack;

/// Refuses a buffer larger than `limits` allow, before anything of it is read.
pub(crate) fn check_size(buf: &[u8], limits: &DecodeLimits) -> Result<(), DecodeError> {
    if buf.len() > limits.max_message_bytes {
        return Err(DecodeError::MessageTooLarge {
            len: buf.len(),
            max: limits.max_message_bytes,
        });
    }
    Ok(())
}

/// The start of a version-first array: its length (elements, the version included), the version,
/// and the offset of the element after the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Opened {
    pub elements: u64,
    pub version: u64,
    pub after_version: usize,
}

/// Reads the array header and the version, nothing else.
pub(crate) fn open(buf: &[u8]) -> Result<Opened, DecodeError> {
    let mut pos = 0;
    let elements = msgpack::read_array_len(buf, &mut pos)?;
    if elements == 0 {
        return Err(DecodeError::Malformed(
            "empty top-level array: no version field".into(),
        ));
    }
    let version = msgpack::read_uint(buf, &mut pos, "version field")?;
    Ok(Opened {
        elements,
        version,
        after_version: pos,
    })
}

impl Opened {
    /// Refuses any version but `version`.
    pub fn expect_version(self, version: u16) -> Result<Opened, DecodeError> {
        if self.version != u64::from(version) {
            return Err(DecodeError::UnsupportedVersion {
                found: self.version,
                supported: version,
            });
        }
        Ok(self)
    }
}

/// Parses the one MessagePack value that `buf` must hold entirely.
pub(crate) fn parse_whole<'a, T: Deserialize<'a>>(buf: &'a [u8]) -> Result<T, DecodeError> {
    let len = msgpack::value_len(buf)?;
    if len != buf.len() {
        return Err(DecodeError::TrailingBytes {
            len,
            count: buf.len() - len,
        });
    }
    rmp_serde::from_slice(buf).map_err(msgpack::map_rmp_error)
}

/// Parses a message of format `version` into `T` under `limits` (see the module docs).
pub(crate) fn decode_versioned<'a, T: Deserialize<'a>>(
    buf: &'a [u8],
    limits: &DecodeLimits,
    version: u16,
) -> Result<T, DecodeError> {
    check_size(buf, limits)?;
    open(buf)?.expect_version(version)?;
    parse_whole(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: DecodeLimits = DecodeLimits {
        max_message_bytes: 64,
        max_elements: 64,
    };

    #[test]
    fn size_is_refused_before_the_bytes_are_read() {
        // Not even MessagePack: only the length can have refused it.
        let err = decode_versioned::<(u16,)>(&[0xc1; 65], &LIMITS, 1).unwrap_err();
        assert_eq!(err, DecodeError::MessageTooLarge { len: 65, max: 64 });
    }

    #[test]
    fn version_is_checked_before_the_rest() {
        // Version 2, then a reserved marker that no parse would accept.
        let err = decode_versioned::<(u16, u8)>(&[0x92, 0x02, 0xc1], &LIMITS, 1).unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnsupportedVersion {
                found: 2,
                supported: 1
            }
        );
    }

    #[test]
    fn a_well_framed_value_parses_and_trailing_bytes_are_named() {
        let bytes = msgpack::to_bytes(&(1u16, "x"));
        assert_eq!(
            decode_versioned::<(u16, String)>(&bytes, &LIMITS, 1).unwrap(),
            (1, "x".to_owned())
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            decode_versioned::<(u16, String)>(&longer, &LIMITS, 1).unwrap_err(),
            DecodeError::TrailingBytes {
                len: bytes.len(),
                count: 1
            }
        );
    }

    #[test]
    fn an_empty_array_has_no_version() {
        let err = decode_versioned::<()>(&[0x90], &LIMITS, 1).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed(m) if m.contains("no version")));
    }
}
