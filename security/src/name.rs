//! Member names: they become certificate common names, access-control subjects and one chunk
//! of key expressions (`qp/<fleet>/result/<name>`), so they must be a plain key chunk.

use crate::Error;

/// Whether `name` may name a fleet or a member: letters, digits, `-`, `_`, `.` (the names a
/// node's settings accept). That excludes every character zenoh gives a meaning in a key
/// expression (`/`, `*`, `$`, `?`, `#`), so a name is always exactly one literal key chunk.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// `name`, or an error saying what `what` may contain.
pub fn check_name(what: &str, name: &str) -> Result<(), Error> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(Error::BadName {
            what: what.to_owned(),
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_one_literal_key_chunk_are_refused() {
        for bad in ["", "a/b", "*", "a*", "**", "$x", "a?b", "a#b", "a b", "é"] {
            assert!(!is_valid_name(bad), "{bad:?} accepted");
        }
        for good in ["a", "node-1", "edge_b.lan", "C0"] {
            assert!(is_valid_name(good), "{good:?} refused");
        }
    }
}
