//! The decoders of messages between nodes on hostile input: arbitrary bytes, and valid messages
//! cut, extended or with a byte changed, never panic them, and whatever they accept round-trips
//! (`oracle::check_messages`, the same check the `control` fuzz target runs).

use proptest::prelude::*;
use quantpipe_messages::oracle::{check_messages, sample_messages, FLEET};
use quantpipe_messages::{envelope, Envelope, Release, WireError, WIRE_VERSION};

#[test]
fn valid_messages_of_every_kind_round_trip() {
    for (i, bytes) in sample_messages().iter().enumerate() {
        assert!(check_messages(bytes) >= 1, "message {i} was refused");
    }
}

#[test]
fn a_message_is_refused_for_another_fleet_or_version() {
    let release = Release { epoch: 1 };
    let err = envelope::decode::<Release>(&envelope::encode("g", &release), FLEET).unwrap_err();
    assert!(matches!(err, WireError::ForeignFleet { .. }), "{err}");
    let old = Envelope {
        version: WIRE_VERSION - 1,
        ..Envelope::new(FLEET, release)
    };
    let err = envelope::decode::<Release>(&old.to_bytes(), FLEET).unwrap_err();
    assert!(matches!(err, WireError::Version { .. }), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic_the_control_decoder(
        bytes in proptest::collection::vec(any::<u8>(), 0..256)
    ) {
        check_messages(&bytes);
    }

    #[test]
    fn arbitrary_bodies_in_a_valid_envelope_never_panic_the_control_decoder(
        body in proptest::collection::vec(any::<u8>(), 0..256)
    ) {
        // Past the header: what a peer of the same fleet and version could send.
        let mut bytes = envelope::encode(FLEET, &());
        bytes.pop();
        bytes.extend_from_slice(&body);
        check_messages(&bytes);
    }

    #[test]
    fn damaged_valid_messages_never_panic_the_control_decoder(
        which in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        tail in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let samples = sample_messages();
        let valid = &samples[which.index(samples.len())];
        check_messages(&valid[..cut.index(valid.len() + 1)]);
        let mut changed = valid.clone();
        changed[at.index(valid.len())] = byte;
        check_messages(&changed);
        let mut longer = valid.clone();
        longer.extend_from_slice(&tail);
        check_messages(&longer);
    }
}
