//! Bandwidth traces: how a link's rate changes over time, in a file users write.
//!
//! A CSV file without a header, one step per line, `at_s, mbit`: from `at_s` seconds after the
//! start the link runs at `mbit` Mbit/s, until the next line. Blank lines and `#` comments (whole
//! lines or line ends) are ignored. The first step is at 0 and steps are in increasing time.
//! Example (the 200 -> 20 -> 5 -> 200 Mbit/s trace):
//! ```text
//! # at_s, mbit
//! 0, 200
//! 5, 20
//! 10, 5
//! 15, 200
//! ```

use serde::Deserialize;
use std::path::Path;

/// A piecewise-constant bandwidth over time.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    steps: Vec<(f64, f64)>,
}

impl Trace {
    /// From `(at_s, mbit)` steps (the first at 0, times increasing, rates > 0).
    pub fn new(steps: Vec<(f64, f64)>) -> Result<Self, String> {
        match steps.first() {
            None => return Err("a trace needs at least one step".into()),
            Some(&(t, _)) if t != 0.0 => {
                return Err(format!("the first step must be at 0 s, not {t}"))
            }
            _ => {}
        }
        for (i, &(t, m)) in steps.iter().enumerate() {
            if !(m > 0.0 && m.is_finite()) {
                return Err(format!(
                    "step {} at {t} s: rate must be > 0 Mbit/s, got {m}",
                    i + 1
                ));
            }
            if i > 0 && !(t > steps[i - 1].0 && t.is_finite()) {
                return Err(format!(
                    "step {} at {t} s is not after the step before it ({} s)",
                    i + 1,
                    steps[i - 1].0
                ));
            }
        }
        Ok(Trace { steps })
    }

    /// Parses the text format (see the module docs); errors name the line and the field.
    pub fn parse(text: &str) -> Result<Self, String> {
        let lines: Vec<&str> = text.lines().collect();
        let uncommented = without_comments(&lines);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(uncommented.as_bytes());
        let mut steps: Vec<(f64, f64)> = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            let more = reader
                .read_record(&mut record)
                .map_err(|e| format!("{}: {e}", line_of(e.position(), &lines)))?;
            if !more {
                break;
            }
            let here = line_of(record.position(), &lines);
            let bad = |why: &str| format!("{here}: {why}");
            if record.len() != 2 {
                return Err(bad("expected `at_s, mbit`"));
            }
            let step: Step = record.deserialize(None).map_err(|e| match e.kind() {
                csv::ErrorKind::Deserialize { err, .. } if err.field() == Some(1) => {
                    bad("the rate is not a number")
                }
                _ => bad("the time is not a number"),
            })?;
            if !(step.at_s >= 0.0 && step.at_s.is_finite()) {
                return Err(bad("the time must be >= 0"));
            }
            if !(step.mbit > 0.0 && step.mbit.is_finite()) {
                return Err(bad("the rate must be > 0 Mbit/s"));
            }
            if let Some(&(prev, _)) = steps.last() {
                if step.at_s <= prev {
                    return Err(bad("times must increase from line to line"));
                }
            }
            steps.push((step.at_s, step.mbit));
        }
        Trace::new(steps)
    }

    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading trace {}: {e}", path.display()))?;
        Trace::parse(&text).map_err(|e| format!("trace {}: {e}", path.display()))
    }

    pub fn steps(&self) -> &[(f64, f64)] {
        &self.steps
    }

    /// Whether the trace has plateaus worth judging one by one: every step lasts at least two
    /// windows (one to recover in, one to hold). A recorded trace, which changes every second
    /// or two, has none.
    pub fn has_plateaus(&self, window_s: f64) -> bool {
        self.steps
            .windows(2)
            .all(|w| w[1].0 - w[0].0 >= 2.0 * window_s)
    }

    /// The rate at time `t` (the first step's before 0).
    pub fn mbps_at(&self, t: f64) -> f64 {
        self.steps
            .iter()
            .rev()
            .find(|s| s.0 <= t)
            .unwrap_or(&self.steps[0])
            .1
    }

    /// Mean rate over `[from, to]`.
    pub fn mean_mbps(&self, from: f64, to: f64) -> f64 {
        if to <= from {
            return self.mbps_at(from);
        }
        let mut bits = 0.0;
        let mut t = from;
        while t < to {
            let next = self.next_change(t).min(to);
            bits += self.mbps_at(t) * (next - t);
            t = next;
        }
        bits / (to - from)
    }

    /// When `bytes` started at `start` have crossed the link.
    pub fn finish_time(&self, start: f64, bytes: u64) -> f64 {
        let mut left = bytes as f64 * 8.0 / 1e6; // megabits
        let mut t = start;
        loop {
            let rate = self.mbps_at(t);
            let next = self.next_change(t);
            let can = rate * (next - t);
            if can >= left {
                return t + left / rate;
            }
            left -= can;
            t = next;
        }
    }

    /// The first step after `t` (infinity after the last).
    fn next_change(&self, t: f64) -> f64 {
        self.steps
            .iter()
            .map(|s| s.0)
            .find(|&s| s > t)
            .unwrap_or(f64::INFINITY)
    }
}

/// One line of a trace file, in column order.
#[derive(Deserialize)]
struct Step {
    at_s: f64,
    mbit: f64,
}

/// The text with every `#` comment blanked, line for line (the CSV reader knows only comments
/// that fill a whole line, and skips the lines left empty).
fn without_comments(lines: &[&str]) -> String {
    lines
        .iter()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `line N: `text`` for the reader's position, so an error shows what the user wrote.
fn line_of(position: Option<&csv::Position>, lines: &[&str]) -> String {
    match position.map(csv::Position::line) {
        Some(n) => {
            let raw = lines.get(n as usize - 1).copied().unwrap_or("").trim();
            format!("line {n}: `{raw}`")
        }
        None => "a line".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_steps_with_comments_and_blank_lines() {
        let t = Trace::parse("# at_s, mbit\n0, 200\n\n5.5,20 # drop\n10 , 5\n").unwrap();
        assert_eq!(t.steps(), &[(0.0, 200.0), (5.5, 20.0), (10.0, 5.0)]);
        assert_eq!(t.mbps_at(7.0), 20.0);
        assert_eq!(t.mbps_at(100.0), 5.0);
    }

    #[test]
    fn bad_lines_are_named_with_their_number() {
        for (text, want) in [
            ("0, 200\n5 20\n", "line 2: `5 20`: expected"),
            ("0, fast\n", "line 1: `0, fast`: the rate is not"),
            ("0, 200\n5, -1\n", "line 2: `5, -1`: the rate must be > 0"),
            (
                "0, 200\n5, 20\n3, 10\n",
                "line 3: `3, 10`: times must increase",
            ),
            ("x, 1\n", "the time is not a number"),
            ("2, 10\n", "first step must be at 0"),
            ("# nothing\n", "at least one step"),
        ] {
            let err = Trace::parse(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_trailing_comment_does_not_hide_the_bad_field() {
        let err = Trace::parse("0, 200 # start\n5, x # drop\n").unwrap_err();
        assert_eq!(err, "line 2: `5, x # drop`: the rate is not a number");
    }

    #[test]
    fn quoted_fields_read_as_spreadsheets_write_them() {
        let t = Trace::parse("\"0\",\"7.5\"\n\"2\",\"1\"\n").unwrap();
        assert_eq!(t.steps(), &[(0.0, 7.5), (2.0, 1.0)]);
    }

    #[test]
    fn the_example_trace_in_config_parses() {
        let t = Trace::parse(include_str!("../../config/traces/step-200-20-5-200.csv")).unwrap();
        assert_eq!(
            t.steps(),
            &[(0.0, 200.0), (18.0, 20.0), (36.0, 5.0), (54.0, 200.0)]
        );
    }

    #[test]
    fn only_traces_whose_steps_last_two_windows_have_plateaus() {
        let step = Trace::new(vec![(0.0, 200.0), (18.0, 20.0), (36.0, 5.0)]).unwrap();
        assert!(step.has_plateaus(3.0));
        assert!(!step.has_plateaus(10.0));
        let recorded = Trace::new(vec![(0.0, 14.8), (0.99, 21.7), (1.75, 16.1)]).unwrap();
        assert!(!recorded.has_plateaus(3.0));
        assert!(Trace::new(vec![(0.0, 10.0)]).unwrap().has_plateaus(3.0));
    }

    #[test]
    fn transfers_cross_rate_changes() {
        let t = Trace::new(vec![(0.0, 8.0), (1.0, 1.0)]).unwrap();
        // 1 MB = 8 Mbit: 1 s at 8 Mbit/s.
        assert!((t.finish_time(0.0, 1_000_000) - 1.0).abs() < 1e-12);
        // From 0.5 s: 4 Mbit before the drop, 4 more at 1 Mbit/s.
        assert!((t.finish_time(0.5, 1_000_000) - 5.0).abs() < 1e-12);
        assert!((t.mean_mbps(0.0, 2.0) - 4.5).abs() < 1e-12);
    }
}
