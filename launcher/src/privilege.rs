//! Tests that need root (network namespaces, `tc`): they run as root, and elsewhere say that
//! they skip and why, unless [`REQUIRE_ROOT_TESTS`] is set (CI runs as root, so a skip there
//! would hide a broken setup): then a skip is a failure.

/// Set to `1`, tests that need root fail instead of skipping without it.
pub const REQUIRE_ROOT_TESTS: &str = "QUANTPIPE_REQUIRE_ROOT_TESTS";

/// What a test that needs root does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Run,
    Skip,
    Fail,
}

/// The decision: run as root; otherwise skip, or fail when root tests are required.
pub fn verdict(is_root: bool, required: bool) -> Verdict {
    match (is_root, required) {
        (true, _) => Verdict::Run,
        (false, false) => Verdict::Skip,
        (false, true) => Verdict::Fail,
    }
}

/// Whether `test` may run: true as root; false after printing that it is skipped and why;
/// panics when [`REQUIRE_ROOT_TESTS`] is `1` and this is not root.
pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let is_root = unsafe { libc::geteuid() } == 0;
    let required = std::env::var(REQUIRE_ROOT_TESTS).is_ok_and(|v| v == "1");
    let why = "it needs root for network namespaces and tc";
    match verdict(is_root, required) {
        Verdict::Run => true,
        Verdict::Skip => {
            // Written to stderr itself, not through `eprintln!`, which the test harness
            // captures and hides for a passing test.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: {why} (set {REQUIRE_ROOT_TESTS}=1 to make this a failure)"
            );
            false
        }
        Verdict::Fail => panic!("{test} cannot run: {why}, and {REQUIRE_ROOT_TESTS}=1 requires it"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_root_a_test_skips_unless_root_tests_are_required() {
        assert_eq!(verdict(true, false), Verdict::Run);
        assert_eq!(verdict(true, true), Verdict::Run);
        assert_eq!(verdict(false, false), Verdict::Skip);
        assert_eq!(verdict(false, true), Verdict::Fail);
    }
}
