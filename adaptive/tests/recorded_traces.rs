//! The policies on the recorded 3G traces of `config/traces/`, in the link simulation on
//! MiniLM's cut: the project's controller against the QuantPipe paper's released one.

use quantpipe_adaptive::compare::{compare, LinkSetup, PolicyRun};
use quantpipe_adaptive::policy::PolicyKind;
use quantpipe_adaptive::trace::Trace;
use std::path::Path;

const TRACES: [&str; 4] = [
    "norway_car_3-x10.csv",
    "norway_metro_2-x10.csv",
    "norway_tram_19-x10.csv",
    "step-200-20-5-200.csv",
];

fn runs(file: &str) -> Vec<PolicyRun> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/traces")
        .join(file);
    let trace = Trace::read(&path).unwrap();
    compare(
        &trace,
        18.0,
        &LinkSetup::minilm_cut(),
        &[PolicyKind::Controller, PolicyKind::KalmanIntegral],
    )
    .unwrap()
}

#[test]
fn controller_holds_more_windows_than_the_released_controller_on_every_trace() {
    for file in TRACES {
        let r = runs(file);
        let (ours, theirs) = (&r[0].judgement, &r[1].judgement);
        println!("{file}: controller {ours:?}\n  kalman-integral {theirs:?}");
        assert!(
            ours.held_share.unwrap() > theirs.held_share.unwrap() + 0.2,
            "{file}: {ours:?} vs {theirs:?}"
        );
        assert!(ours.held_share.unwrap() >= 0.7, "{file}: {ours:?}");
    }
}

#[test]
fn controller_stays_within_a_bit_of_the_oracle_on_every_trace() {
    for file in TRACES {
        let r = runs(file);
        let (ours, theirs) = (&r[0].judgement, &r[1].judgement);
        let o = ours.bits_over_oracle.unwrap();
        assert!(o.abs() <= 1.0, "{file}: {o} bits over the oracle");
        // The released controller steers to the target itself, so it sits above the oracle
        // (and misses the target about half the time); the controller sits below it.
        assert!(theirs.bits_over_oracle.unwrap() > 0.0 && o < 0.0, "{file}");
    }
}
