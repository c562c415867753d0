//! What a bench run covers when the command line does not say: which traces, which policies,
//! how long a trace's last rate is held.

use anyhow::{bail, Context, Result};
use quantpipe_adaptive::policy::PolicyKind;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Where the traces that come with the project are (relative to the repository root).
pub const TRACES_DIR: &str = "config/traces";

/// The trace a fleet runs when none is given: every one of its steps is a plateau to judge,
/// and one fleet run per policy takes minutes, not the hour all of them would.
pub const FLEET_TRACE: &str = "step-200-20-5-200.csv";

/// Every policy, in the order the report shows them: the project's controller, the peer's,
/// then the simpler ones. A name the adaptive crate does not know (yet) is left out.
pub const POLICY_ORDER: [&str; 4] = ["controller", "kalman-integral", "heuristic", "fixed"];

pub fn every_policy() -> Vec<PolicyKind> {
    POLICY_ORDER
        .iter()
        .filter_map(|name| PolicyKind::from_str(name).ok())
        .collect()
}

/// The traces to run: the given ones, or else every `.csv` in `dir` (sorted by name) for the
/// simulation and [`FLEET_TRACE`] in `dir` for a fleet.
pub fn trace_paths(given: &[PathBuf], simulate: bool, dir: &Path) -> Result<Vec<PathBuf>> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    if !simulate {
        return Ok(vec![dir.join(FLEET_TRACE)]);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing the traces in {} (give --trace)", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    if found.is_empty() {
        bail!("no .csv trace in {}: give --trace", dir.display());
    }
    found.sort();
    Ok(found)
}

/// How long the trace's last rate is held: `--hold-s`, or else the length of the first step.
pub fn hold_s(given: Option<f64>, steps: &[(f64, f64)]) -> Result<f64> {
    match (given, steps.get(1)) {
        (Some(h), _) if h > 0.0 && h.is_finite() => Ok(h),
        (Some(h), _) => bail!("--hold-s must be > 0 seconds, got {h}"),
        (None, Some(s)) => Ok(s.0),
        (None, None) => bail!("a one-step trace needs --hold-s"),
    }
}

/// The short name of a trace, for file names and headings: its file stem.
pub fn trace_name(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "trace".to_owned(), |s| s.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hold_is_the_given_one_or_the_first_step_s_length() {
        assert_eq!(hold_s(Some(4.0), &[(0.0, 200.0)]).unwrap(), 4.0);
        assert_eq!(hold_s(None, &[(0.0, 200.0), (30.0, 20.0)]).unwrap(), 30.0);
        assert!(hold_s(None, &[(0.0, 200.0)]).is_err());
        assert!(hold_s(Some(0.0), &[(0.0, 200.0)]).is_err());
    }

    #[test]
    fn every_policy_lists_the_known_ones_in_report_order() {
        let names: Vec<String> = every_policy().iter().map(|k| k.to_string()).collect();
        let known: Vec<&str> = POLICY_ORDER
            .into_iter()
            .filter(|n| PolicyKind::from_str(n).is_ok())
            .collect();
        assert_eq!(names, known);
        for name in ["controller", "heuristic", "fixed"] {
            assert!(names.iter().any(|n| n == name), "{names:?}");
        }
    }

    #[test]
    fn without_a_trace_the_simulation_takes_every_csv_and_a_fleet_the_step_trace() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.csv", "a.csv", "README.md"] {
            std::fs::write(dir.path().join(f), "0, 10\n").unwrap();
        }
        let all = trace_paths(&[], true, dir.path()).unwrap();
        assert_eq!(all, [dir.path().join("a.csv"), dir.path().join("b.csv")]);
        let fleet = trace_paths(&[], false, dir.path()).unwrap();
        assert_eq!(fleet, [dir.path().join(FLEET_TRACE)]);
        let given = [PathBuf::from("x.csv")];
        assert_eq!(trace_paths(&given, true, dir.path()).unwrap(), given);
        let empty = tempfile::tempdir().unwrap();
        assert!(trace_paths(&[], true, empty.path()).is_err());
    }

    #[test]
    fn a_trace_is_named_by_its_file_stem() {
        assert_eq!(
            trace_name(Path::new("config/traces/norway_car_3-x10.csv")),
            "norway_car_3-x10"
        );
    }
}
