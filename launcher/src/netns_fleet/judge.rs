//! The judge of a chaos run: plain functions over what the processes left behind (the client's
//! report and log, the leader's log, the outputs and the single-process reference).
//!
//! A run passes when every item was answered exactly once (each microbatch answered once in
//! the client's log, as many items in the report as were sent) and its outputs equal
//! single-process inference bitwise (32 bits). Its figures: the time from the fault to the
//! leader's log line that the node left (detection), to the leader's first plan at a newer
//! epoch (re-plan), the microbatches the client sent again, and how many plans the leader made
//! after its first.

use serde::Deserialize;
use std::collections::BTreeMap;

/// What a client run's `--json` report says (the fields a judgement needs).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RunFacts {
    pub items: usize,
    pub microbatches: usize,
    /// Microbatches sent again under a new epoch.
    pub resent: u64,
    /// Microbatches sent again after a retryable failure.
    #[serde(default)]
    pub resent_after_failure: u64,
    pub epochs: Vec<u64>,
    #[serde(default)]
    pub dropped_duplicates: u64,
    #[serde(default)]
    pub dropped_stale_epoch: u64,
}

impl RunFacts {
    /// The report printed by `quantpipe run --json`.
    pub fn from_report(json: &str) -> Result<RunFacts, String> {
        serde_json::from_str(json.trim()).map_err(|e| format!("a run report: {e}: {json}"))
    }
}

/// `line` without terminal colour codes (`ESC [ ... m`): logs written to files keep them.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip to the sequence's final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Unix seconds of a log line's leading RFC 3339 timestamp (`2026-11-30T00:08:53.742840Z ...`).
pub fn log_unix_s(line: &str) -> Option<f64> {
    let plain = strip_ansi(line);
    let stamp = plain.split_whitespace().next()?;
    let t = humantime::parse_rfc3339(stamp).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64())
}

/// The leader saw `nodes` leave and re-planned from one epoch to the next.
#[derive(Debug, Clone, PartialEq)]
pub struct Departure {
    pub unix_s: f64,
    pub nodes: Vec<String>,
    pub from_epoch: u64,
    pub to_epoch: u64,
}

/// Every `["b"] left: re-planning from epoch 1 to 2 over [...]` line of a leader's log.
pub fn departures(leader_log: &str) -> Vec<Departure> {
    leader_log
        .lines()
        .filter_map(|line| {
            let plain = strip_ansi(line);
            let (head, rest) = plain.split_once("] left: re-planning from epoch ")?;
            let nodes = head
                .rsplit_once('[')?
                .1
                .split(',')
                .map(|n| n.trim().trim_matches('"').to_owned())
                .filter(|n| !n.is_empty())
                .collect();
            let mut words = rest.split_whitespace();
            let from_epoch = words.next()?.parse().ok()?;
            let to_epoch = words.nth(1)?.parse().ok()?;
            Some(Departure {
                unix_s: log_unix_s(line)?,
                nodes,
                from_epoch,
                to_epoch,
            })
        })
        .collect()
}

/// A plan the leader published, as its log shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedPlan {
    /// When its stage 0 line was logged (right after the announcement).
    pub unix_s: f64,
    pub epoch: u64,
    /// Stage nodes in order.
    pub stages: Vec<String>,
}

/// Every plan in a leader's log (`plan epoch 2: stage 0 = a units 1..12 ...`), in order.
pub fn plans(leader_log: &str) -> Vec<LoggedPlan> {
    let mut out: Vec<LoggedPlan> = Vec::new();
    for line in leader_log.lines() {
        let plain = strip_ansi(line);
        let Some(rest) = plain.split_once("plan epoch ").map(|p| p.1) else {
            continue;
        };
        let Some((epoch, rest)) = rest.split_once(": stage ") else {
            continue;
        };
        let Some((index, rest)) = rest.split_once(" = ") else {
            continue;
        };
        let (Ok(epoch), Ok(index)) = (epoch.parse::<u64>(), index.parse::<usize>()) else {
            continue;
        };
        let Some(node) = rest.split_whitespace().next() else {
            continue;
        };
        if index == 0 {
            let Some(unix_s) = log_unix_s(line) else {
                continue;
            };
            out.push(LoggedPlan {
                unix_s,
                epoch,
                stages: Vec::new(),
            });
        }
        if let Some(p) = out.last_mut().filter(|p| p.epoch == epoch) {
            p.stages.push(node.to_owned());
        }
    }
    out
}

/// How often the client's log says each microbatch was answered (`microbatch 3 answered at
/// plan epoch 2`, logged at debug level).
pub fn answers(client_log: &str) -> BTreeMap<u64, u32> {
    let mut out = BTreeMap::new();
    for line in client_log.lines() {
        let plain = strip_ansi(line);
        let Some((head, _)) = plain.split_once(" answered at plan epoch ") else {
            continue;
        };
        if let Some(seq) = head
            .rsplit_once("microbatch ")
            .and_then(|p| p.1.parse::<u64>().ok())
        {
            *out.entry(seq).or_insert(0) += 1;
        }
    }
    out
}

/// Rows of `pipeline` that differ from `single` in any bit (or in length), and a row count
/// that differs as an extra entry `usize::MAX`.
pub fn differing_rows(pipeline: &[Vec<f32>], single: &[Vec<f32>]) -> Vec<usize> {
    let mut out: Vec<usize> = pipeline
        .iter()
        .zip(single)
        .enumerate()
        .filter(|(_, (p, s))| {
            p.len() != s.len()
                || p.iter()
                    .zip(s.iter())
                    .any(|(a, b)| a.to_bits() != b.to_bits())
        })
        .map(|(i, _)| i)
        .collect();
    if pipeline.len() != single.len() {
        out.push(usize::MAX);
    }
    out
}

/// The figures of one chaos run.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Seconds from the fault to the leader's line that the victim left.
    pub detect_s: Option<f64>,
    /// Seconds from the fault to the first plan the leader published after it.
    pub replan_s: Option<f64>,
    /// Microbatches the client sent again (new epoch, or after a retryable failure).
    pub resent: u64,
    /// Plans the leader made after its first.
    pub replans: usize,
}

impl Figures {
    /// The figures of a run whose fault hit `victim` (when one node was the target) at
    /// `fault_unix_s`.
    pub fn of(
        fault_unix_s: f64,
        victim: Option<&str>,
        leader_log: &str,
        facts: &RunFacts,
    ) -> Figures {
        let detect_s = victim.and_then(|v| {
            departures(leader_log)
                .into_iter()
                .find(|d| d.unix_s >= fault_unix_s && d.nodes.iter().any(|n| n == v))
                .map(|d| d.unix_s - fault_unix_s)
        });
        let logged = plans(leader_log);
        let replan_s = logged
            .iter()
            .find(|p| p.unix_s >= fault_unix_s)
            .map(|p| p.unix_s - fault_unix_s);
        Figures {
            detect_s,
            replan_s,
            resent: facts.resent + facts.resent_after_failure,
            replans: logged.len().saturating_sub(1),
        }
    }

    /// One line for the test's output and the README's table.
    pub fn line(&self, scenario: &str, facts: &RunFacts) -> String {
        let secs = |s: Option<f64>| s.map_or("-".to_owned(), |s| format!("{s:.2} s"));
        format!(
            "FIGURES {scenario}: detected {} after the fault, re-planned {} after it, \
             {} microbatch(es) resent, {} re-plan(s), epochs {:?}; {} items in {} microbatches \
             answered once, bitwise equal to single-process inference",
            secs(self.detect_s),
            secs(self.replan_s),
            self.resent,
            self.replans,
            facts.epochs,
            facts.items,
            facts.microbatches,
        )
    }
}

/// What is wrong with a run that was sent `expected_items` items: none when every item was
/// answered exactly once and every output row equals `reference` bitwise.
pub fn problems(
    expected_items: usize,
    facts: &RunFacts,
    client_log: &str,
    outputs: &[Vec<f32>],
    reference: &[Vec<f32>],
) -> Vec<String> {
    let mut out = Vec::new();
    if facts.items != expected_items {
        out.push(format!(
            "the report counts {} items, {expected_items} were sent",
            facts.items
        ));
    }
    if outputs.len() != expected_items {
        out.push(format!(
            "{} output rows for {expected_items} items",
            outputs.len()
        ));
    }
    let answered = answers(client_log);
    let twice: Vec<u64> = answered
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(s, _)| *s)
        .collect();
    if !twice.is_empty() {
        out.push(format!("microbatches answered more than once: {twice:?}"));
    }
    if answered.len() != facts.microbatches {
        out.push(format!(
            "the client's log shows {} microbatches answered, the run had {} (is the client \
             logging quantpipe_actors::runtime::client at debug?)",
            answered.len(),
            facts.microbatches
        ));
    }
    let differ = differing_rows(outputs, reference);
    if !differ.is_empty() {
        out.push(format!(
            "{} row(s) differ from single-process inference (first: {:?})",
            differ.len(),
            &differ[..differ.len().min(5)]
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEADER: &str = "\u{1b}[2m2026-11-30T00:00:01.000000Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m planner: plan epoch 1: stage 0 = a units 1..8 (out 32 bits, predicted compute 1.0 ms)\n\
        2026-11-30T00:00:01.000100Z  INFO planner: plan epoch 1: stage 1 = b units 9..16 (out 32 bits, predicted compute 1.0 ms)\n\
        2026-11-30T00:00:01.000200Z  INFO planner: plan epoch 1: stage 2 = c units 17..24 (out 32 bits, predicted compute 1.0 ms)\n\
        2026-11-30T00:00:12.500000Z  WARN planner: [\"b\"] left: re-planning from epoch 1 to 2 over [\"a\", \"c\"]\n\
        2026-11-30T00:00:13.250000Z  INFO planner: plan epoch 2: stage 0 = a units 1..12 (out 32 bits, predicted compute 1.0 ms)\n\
        2026-11-30T00:00:13.250100Z  INFO planner: plan epoch 2: stage 1 = c units 13..24 (out 32 bits, predicted compute 1.0 ms)\n";

    fn at(s: f64) -> f64 {
        // 2026-11-30T00:00:00Z
        1_795_996_800.0 + s
    }

    #[test]
    fn timestamps_are_read_through_colour_codes() {
        let t = log_unix_s(LEADER.lines().next().unwrap()).unwrap();
        assert!((t - at(1.0)).abs() < 1e-6, "{t}");
        assert_eq!(log_unix_s("no time here"), None);
    }

    #[test]
    fn plans_and_departures_are_read_from_the_leader_log() {
        let p = plans(LEADER);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].epoch, p[0].stages.clone()),
            (1, vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(
            (p[1].epoch, p[1].stages.clone()),
            (2, vec!["a".into(), "c".into()])
        );
        let d = departures(LEADER);
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].nodes.clone(), d[0].from_epoch, d[0].to_epoch),
            (vec!["b".into()], 1, 2)
        );
        assert!((d[0].unix_s - at(12.5)).abs() < 1e-6);
    }

    #[test]
    fn detection_and_replan_are_timed_from_the_fault() {
        let facts = RunFacts {
            resent: 3,
            ..RunFacts::default()
        };
        let f = Figures::of(at(10.0), Some("b"), LEADER, &facts);
        assert!((f.detect_s.unwrap() - 2.5).abs() < 1e-6, "{f:?}");
        assert!((f.replan_s.unwrap() - 3.25).abs() < 1e-6, "{f:?}");
        assert_eq!((f.resent, f.replans), (3, 1));
        // Another node's departure is not this victim's detection.
        assert_eq!(
            Figures::of(at(10.0), Some("c"), LEADER, &facts).detect_s,
            None
        );
        // A fault after every event: nothing detected, nothing re-planned.
        let late = Figures::of(at(20.0), Some("b"), LEADER, &facts);
        assert_eq!((late.detect_s, late.replan_s), (None, None));
    }

    fn client_log(seqs: &[u64]) -> String {
        seqs.iter()
            .map(|s| {
                format!(
                    "2026-11-30T00:00:01Z DEBUG client: microbatch {s} answered at plan epoch 1\n"
                )
            })
            .collect()
    }

    #[test]
    fn a_run_answered_once_and_exact_has_no_problem() {
        let facts = RunFacts {
            items: 4,
            microbatches: 2,
            epochs: vec![1],
            ..RunFacts::default()
        };
        let rows = vec![vec![1.0, 2.0]; 4];
        assert!(problems(4, &facts, &client_log(&[0, 1]), &rows, &rows).is_empty());
    }

    #[test]
    fn a_microbatch_answered_twice_or_missing_is_a_problem() {
        let facts = RunFacts {
            items: 4,
            microbatches: 2,
            ..RunFacts::default()
        };
        let rows = vec![vec![1.0]; 4];
        let twice = problems(4, &facts, &client_log(&[0, 1, 1]), &rows, &rows);
        assert!(
            twice.iter().any(|p| p.contains("more than once: [1]")),
            "{twice:?}"
        );
        let missing = problems(4, &facts, &client_log(&[0]), &rows, &rows);
        assert!(
            missing
                .iter()
                .any(|p| p.contains("1 microbatches answered")),
            "{missing:?}"
        );
        let short = problems(5, &facts, &client_log(&[0, 1]), &rows, &rows);
        assert!(
            short.iter().any(|p| p.contains("counts 4 items, 5")),
            "{short:?}"
        );
    }

    #[test]
    fn one_bit_off_is_a_differing_row() {
        let single = vec![vec![1.0, 0.0], vec![2.0]];
        let pipeline = vec![vec![1.0, -0.0], vec![2.0]];
        assert_eq!(differing_rows(&pipeline, &single), vec![0]);
        assert_eq!(differing_rows(&single[..1], &single), vec![usize::MAX]);
        let facts = RunFacts {
            items: 2,
            microbatches: 1,
            ..RunFacts::default()
        };
        let p = problems(2, &facts, &client_log(&[0]), &pipeline, &single);
        assert!(p.iter().any(|p| p.contains("1 row(s) differ")), "{p:?}");
    }
}
