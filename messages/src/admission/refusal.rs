//! Why a stage refused a message: a reason from a short, fixed list (the key under which the
//! node counts it, [`crate::NodeStats::refused`]) and a message for people naming what was wrong.

use thiserror::Error;

use crate::error::WireError;

/// The reason a message was refused. [`Reason::as_str`] is its stable name in the node's stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Larger than the stage takes, refused before it was parsed.
    TooLarge,
    /// Not a well-formed message (garbage, truncated, a body other than the header declares).
    Malformed,
    /// Written by another wire version.
    WrongVersion,
    /// A message of another fleet.
    ForeignFleet,
    /// Token ids where tensors are expected, or the other way round.
    WrongKind,
    /// Tensor count, rank or dimensions other than the stage's input.
    WrongShape,
    /// More items than a microbatch may hold.
    BatchTooLarge,
    /// More tokens per item than the model has positions.
    SequenceTooLong,
    /// A token id outside the model's vocabulary.
    TokenOutOfRange,
    /// An attention mask missing, of another shape, or with values other than 0 and 1; or a
    /// mask sent to an image model.
    BadMask,
    /// A client name that is not one chunk of a key expression (results could not be sent).
    BadClient,
    /// A microbatch put on one client's stage-0 key whose header names another client: its
    /// results would go to someone who did not send it.
    ClientMismatch,
}

impl Reason {
    /// Every reason, in order.
    pub const ALL: [Reason; 12] = [
        Reason::TooLarge,
        Reason::Malformed,
        Reason::WrongVersion,
        Reason::ForeignFleet,
        Reason::WrongKind,
        Reason::WrongShape,
        Reason::BatchTooLarge,
        Reason::SequenceTooLong,
        Reason::TokenOutOfRange,
        Reason::BadMask,
        Reason::BadClient,
        Reason::ClientMismatch,
    ];

    /// The reason's stable name: the key of [`crate::NodeStats::refused`].
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::TooLarge => "too-large",
            Reason::Malformed => "malformed",
            Reason::WrongVersion => "wrong-version",
            Reason::ForeignFleet => "foreign-fleet",
            Reason::WrongKind => "wrong-kind",
            Reason::WrongShape => "wrong-shape",
            Reason::BatchTooLarge => "batch-too-large",
            Reason::SequenceTooLong => "sequence-too-long",
            Reason::TokenOutOfRange => "token-out-of-range",
            Reason::BadMask => "bad-mask",
            Reason::BadClient => "bad-client",
            Reason::ClientMismatch => "client-mismatch",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused message: why (for the counters) and what exactly was wrong (for the log and the
/// client's error result).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{reason}: {message}")]
pub struct Refusal {
    pub reason: Reason,
    pub message: String,
}

impl Refusal {
    pub fn new(reason: Reason, message: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            message: message.into(),
        }
    }
}

impl From<WireError> for Refusal {
    fn from(e: WireError) -> Refusal {
        let reason = match &e {
            WireError::TooLarge { .. } => Reason::TooLarge,
            WireError::Version { .. } => Reason::WrongVersion,
            WireError::ForeignFleet { expected, found } => {
                return Refusal::new(
                    Reason::ForeignFleet,
                    format!("message of fleet `{found}` (this is fleet `{expected}`)"),
                )
            }
            WireError::Malformed { .. } => Reason::Malformed,
        };
        Refusal::new(reason, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_names_are_distinct_kebab_case_words() {
        let names: std::collections::BTreeSet<&str> =
            Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Reason::ALL.len());
        for n in names {
            assert!(n.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{n}");
        }
    }

    #[test]
    fn wire_errors_keep_their_class_and_their_words() {
        let r = Refusal::from(WireError::TooLarge { len: 10, max: 5 });
        assert_eq!(r.reason, Reason::TooLarge);
        assert!(
            r.to_string().starts_with("too-large: message of 10 bytes"),
            "{r}"
        );
        let r = Refusal::from(WireError::ForeignFleet {
            expected: "a".into(),
            found: "b".into(),
        });
        assert_eq!(r.reason, Reason::ForeignFleet);
        assert_eq!(r.message, "message of fleet `b` (this is fleet `a`)");
    }
}
