//! MessagePack primitives of the wire: writing values in the compact form (structs as arrays),
//! and reading the few things a receiver looks at before parsing anything: the top-level array's
//! length, an unsigned integer, a string, and the extent of a value.
//!
//! The readers work on borrowed bytes, neither recurse nor allocate, and report truncation and
//! foreign markers as typed [`DecodeError`]s, so they are safe on hostile input of any length.

use serde::Serialize;

use crate::error::DecodeError;

/// Serialises `value` as MessagePack with structs as arrays (the compact form).
pub(crate) fn to_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    // Writing to a Vec cannot fail and our types have no fallible Serialize impls.
    rmp_serde::to_vec(value).expect("serialising a wire type into a Vec cannot fail")
}

/// Appends `value`'s MessagePack form to `out` (one field of a struct written piecewise).
pub(crate) fn write_value<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    rmp_serde::encode::write(out, value).expect("serialising a wire type into a Vec cannot fail");
}

/// Length of `value`'s MessagePack form, computed without materialising it.
pub(crate) fn serialized_len<T: Serialize>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    rmp_serde::encode::write(&mut count, value).expect("counting writer cannot fail");
    count.0
}

pub(crate) fn map_rmp_error(e: rmp_serde::decode::Error) -> DecodeError {
    use rmp_serde::decode::Error as E;
    match &e {
        E::InvalidMarkerRead(io) | E::InvalidDataRead(io)
            if io.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            DecodeError::Truncated(e.to_string())
        }
        _ => DecodeError::Malformed(e.to_string()),
    }
}

fn truncated(what: &str, at: usize) -> DecodeError {
    DecodeError::Truncated(format!("{what} at byte {at}"))
}

/// Reads `n` (1, 2, 4 or 8) big-endian bytes at `*pos` as an unsigned integer.
fn read_be(buf: &[u8], pos: &mut usize, n: usize) -> Result<u64, DecodeError> {
    let bytes = buf
        .get(*pos..pos.saturating_add(n))
        .ok_or_else(|| truncated("length or integer field", *pos))?;
    *pos += n;
    Ok(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// The length of the array starting at `*pos`; moves `*pos` to its first element.
pub(crate) fn read_array_len(buf: &[u8], pos: &mut usize) -> Result<u64, DecodeError> {
    let at = *pos;
    let marker = *buf.get(at).ok_or_else(|| truncated("empty message", at))?;
    *pos += 1;
    match marker {
        0x90..=0x9f => Ok(u64::from(marker & 0x0f)),
        0xdc => read_be(buf, pos, 2),
        0xdd => read_be(buf, pos, 4),
        other => Err(DecodeError::Malformed(format!(
            "expected a MessagePack array at byte {at}, found marker {other:#04x}"
        ))),
    }
}

/// The unsigned integer at `*pos` (`what` names it in errors); moves `*pos` past it.
pub(crate) fn read_uint(buf: &[u8], pos: &mut usize, what: &str) -> Result<u64, DecodeError> {
    let at = *pos;
    let marker = *buf.get(at).ok_or_else(|| truncated(what, at))?;
    *pos += 1;
    match marker {
        0x00..=0x7f => Ok(u64::from(marker)),
        0xcc => read_be(buf, pos, 1),
        0xcd => read_be(buf, pos, 2),
        0xce => read_be(buf, pos, 4),
        0xcf => read_be(buf, pos, 8),
        other => Err(DecodeError::Malformed(format!(
            "{what} at byte {at} is not an unsigned integer (marker {other:#04x})"
        ))),
    }
}

/// The UTF-8 string at `*pos` (`what` names it in errors), borrowed; moves `*pos` past it.
pub(crate) fn read_str<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    what: &str,
) -> Result<&'a str, DecodeError> {
    let at = *pos;
    let marker = *buf.get(at).ok_or_else(|| truncated(what, at))?;
    *pos += 1;
    let len = match marker {
        0xa0..=0xbf => u64::from(marker & 0x1f),
        0xd9 => read_be(buf, pos, 1)?,
        0xda => read_be(buf, pos, 2)?,
        0xdb => read_be(buf, pos, 4)?,
        other => {
            return Err(DecodeError::Malformed(format!(
                "{what} at byte {at} is not a string (marker {other:#04x})"
            )))
        }
    };
    let start = *pos;
    let bytes = usize::try_from(len)
        .ok()
        .and_then(|len| buf.get(start..start.checked_add(len)?))
        .ok_or_else(|| truncated(what, at))?;
    *pos = start + bytes.len();
    std::str::from_utf8(bytes)
        .map_err(|e| DecodeError::Malformed(format!("{what} at byte {at} is not UTF-8: {e}")))
}

/// Length in bytes of the first complete MessagePack value in `buf`.
///
/// Iterative: it keeps a count of values still to skip instead of recursing, so deeply nested
/// hostile input cannot overflow the stack, and each step consumes at least one byte, so it runs
/// in O(buf.len()).
pub(crate) fn value_len(buf: &[u8]) -> Result<usize, DecodeError> {
    let mut pos = 0usize;
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        let at = pos;
        let marker = *buf.get(pos).ok_or_else(|| truncated("value", pos))?;
        pos += 1;
        // (bytes to skip after the marker and any length field, child values to visit)
        let (skip, children): (u64, u64) = match marker {
            // positive/negative fixint, nil, false, true
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * u64::from(marker & 0x0f)),
            0x90..=0x9f => (0, u64::from(marker & 0x0f)),
            0xa0..=0xbf => (u64::from(marker & 0x1f), 0),
            0xc1 => {
                return Err(DecodeError::Malformed(format!(
                    "reserved MessagePack marker 0xc1 at byte {at}"
                )))
            }
            0xc4 | 0xd9 => (read_be(buf, &mut pos, 1)?, 0),
            0xc5 | 0xda => (read_be(buf, &mut pos, 2)?, 0),
            0xc6 | 0xdb => (read_be(buf, &mut pos, 4)?, 0),
            // ext 8/16/32: length, then a type byte, then the data
            0xc7 => (read_be(buf, &mut pos, 1)? + 1, 0),
            0xc8 => (read_be(buf, &mut pos, 2)? + 1, 0),
            0xc9 => (read_be(buf, &mut pos, 4)? + 1, 0),
            0xca => (4, 0),
            0xcb => (8, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xce | 0xd2 => (4, 0),
            0xcf | 0xd3 => (8, 0),
            // fixext 1/2/4/8/16: type byte + data
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (0, read_be(buf, &mut pos, 2)?),
            0xdd => (0, read_be(buf, &mut pos, 4)?),
            0xde => (0, 2 * read_be(buf, &mut pos, 2)?),
            0xdf => (0, 2 * read_be(buf, &mut pos, 4)?),
        };
        let end = (pos as u64).saturating_add(skip);
        if end > buf.len() as u64 {
            return Err(truncated(
                &format!("{skip}-byte field of the value starting"),
                at,
            ));
        }
        pos = end as usize;
        pending += children;
        // Every pending value needs at least one byte: fail fast on impossible counts.
        if pending > (buf.len() - pos) as u64 {
            return Err(truncated(
                &format!(
                    "{pending} values declared but {} bytes left; container",
                    buf.len() - pos
                ),
                at,
            ));
        }
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_len_matches_serialised_lengths() {
        let v = (
            1u16,
            vec![1u64, 300, 70000, u64::MAX],
            "text",
            serde_bytes::ByteBuf::from(vec![7u8; 300]),
            -5i32,
            1.5f32,
            2.5f64,
            std::collections::BTreeMap::from([(1u8, 2u8), (3, 4)]),
        );
        let bytes = rmp_serde::to_vec(&v).unwrap();
        assert_eq!(value_len(&bytes).unwrap(), bytes.len());
        for cut in 0..bytes.len() {
            assert!(
                matches!(value_len(&bytes[..cut]), Err(DecodeError::Truncated(_))),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn huge_declared_container_fails_fast() {
        // array32 declaring 2^32-1 elements, followed by 3 bytes.
        let buf = [0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        assert!(matches!(value_len(&buf), Err(DecodeError::Truncated(_))));
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let mut buf = vec![0x91u8; 1_000_000];
        buf.push(0xc0);
        assert_eq!(value_len(&buf).unwrap(), buf.len());
    }
}
