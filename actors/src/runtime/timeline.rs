//! The adaptive-quantization timeline of a run (`quantpipe run --report DIR`): per window, the
//! client's throughput against the target, and per inter-stage link its measured bandwidth,
//! mean bitwidth and the accuracy cost of that bitwidth.
//!
//! The client samples every node's [`NodeStats`] (`qp/<fleet>/stats/*`) once per window from a
//! thread of its own ([`TimelineSampler`]); [`rows`] turns one sample into plain rows, and
//! [`AccuracyTable`] reads the accuracy cost from `quantpipe eval-quant --json` output.

use crate::runtime::fleet_answers::answers;
use crate::runtime::metrics::Fixed;
use anyhow::{anyhow, bail, Context as _, Result};
use quantpipe_messages::{Keys, NodeStats};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use zenoh::Session;

/// One link in one window (or, with no inter-stage link, the client's figures alone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    /// End of the window, seconds since the run's first sample, and as Unix time (to line the
    /// timeline up with events outside the client, such as a bandwidth trace).
    pub t_s: f64,
    pub unix_s: f64,
    /// Items the client got back per second in the window.
    pub items_per_s: f64,
    /// The policies' target rate (0: none, e.g. every link `fixed`).
    pub target_items_per_s: f64,
    /// The sending node and its stage; empty when the pipeline has no inter-stage link.
    pub node: String,
    pub stage: Option<u32>,
    /// The link's bandwidth while transmitting, its utilisation, and the mean bitwidth sent.
    pub mbps: f64,
    pub utilisation: f64,
    pub bits_mean: f64,
    /// Accuracy lost to that bitwidth, percentage points (when a table was given).
    pub accuracy_cost_pct: Option<f64>,
}

/// The timeline's CSV columns, in order.
pub const CSV_HEADER: &str =
    "t_s,unix_s,items_per_s,target_items_per_s,node,stage,mbps,utilisation,bits_mean,accuracy_cost_pct";

/// One row in the CSV columns, with the decimals each column has always had.
#[derive(Debug, Serialize)]
struct CsvRecord<'a> {
    t_s: Fixed<3>,
    unix_s: Fixed<3>,
    items_per_s: Fixed<3>,
    target_items_per_s: Fixed<3>,
    node: &'a str,
    stage: Option<u32>,
    mbps: Fixed<3>,
    utilisation: Fixed<3>,
    bits_mean: Fixed<2>,
    accuracy_cost_pct: Option<Fixed<3>>,
}

impl<'a> From<&'a TimelineRow> for CsvRecord<'a> {
    fn from(r: &'a TimelineRow) -> Self {
        CsvRecord {
            t_s: Fixed(r.t_s),
            unix_s: Fixed(r.unix_s),
            items_per_s: Fixed(r.items_per_s),
            target_items_per_s: Fixed(r.target_items_per_s),
            node: &r.node,
            stage: r.stage,
            mbps: Fixed(r.mbps),
            utilisation: Fixed(r.utilisation),
            bits_mean: Fixed(r.bits_mean),
            accuracy_cost_pct: r.accuracy_cost_pct.map(Fixed),
        }
    }
}

/// A CSV writer of timeline rows over `out`, the header written first.
fn csv_writer<W: Write>(mut out: W) -> Result<csv::Writer<W>> {
    writeln!(out, "{CSV_HEADER}")?;
    Ok(csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out))
}

/// Reads rows back from a timeline CSV; a bad row is named by its line and column.
pub fn read_csv(text: &str) -> Result<Vec<TimelineRow>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().context("timeline: reading the header")?;
    if !header.iter().eq(CSV_HEADER.split(',')) {
        bail!("not a timeline CSV (expected the header `{CSV_HEADER}`)");
    }
    reader
        .deserialize()
        .map(|row| row.map_err(|e| anyhow!("timeline {}", where_and_why(&e))))
        .collect()
}

/// `line N, column NAME: why` for a row the reader refused.
fn where_and_why(e: &csv::Error) -> String {
    let line = e.position().map_or(0, |p| p.line());
    match e.kind() {
        csv::ErrorKind::Deserialize { err, .. } => {
            let column = err
                .field()
                .and_then(|k| CSV_HEADER.split(',').nth(k as usize))
                .unwrap_or("?");
            format!("line {line}, column {column}: {}", err.kind())
        }
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("line {line}: {len} fields, expected {expected_len}"),
        _ => format!("line {line}: {e}"),
    }
}

/// The rows of one window: the client's rate over `window_s`, and each node's outgoing
/// inter-stage link (links to a client are not inter-stage and not shown).
pub fn rows(
    t_s: f64,
    unix_s: f64,
    items_per_s: f64,
    stats: &[NodeStats],
    accuracy: Option<&AccuracyTable>,
) -> Vec<TimelineRow> {
    let mut out: Vec<TimelineRow> = stats
        .iter()
        .flat_map(|s| {
            s.links
                .iter()
                .filter(|l| {
                    s.stage
                        .is_some_and(|st| l.to.ends_with(&format!("/stage/{}/in", st + 1)))
                })
                .map(move |l| (s, l))
        })
        .map(|(s, l)| TimelineRow {
            t_s,
            unix_s,
            items_per_s,
            target_items_per_s: l.target_items_per_s,
            node: s.node.clone(),
            stage: s.stage,
            mbps: l.mbps,
            utilisation: l.utilisation,
            bits_mean: l.bits_mean,
            accuracy_cost_pct: accuracy
                .filter(|_| l.bits_mean > 0.0)
                .map(|a| a.cost_pct(l.bits_mean)),
        })
        .collect();
    out.sort_by_key(|r| r.stage);
    let target = out.iter().map(|r| r.target_items_per_s).fold(0.0, f64::max);
    if out.is_empty() {
        out.push(TimelineRow {
            t_s,
            unix_s,
            items_per_s,
            target_items_per_s: target,
            node: String::new(),
            stage: None,
            mbps: 0.0,
            utilisation: 0.0,
            bits_mean: 0.0,
            accuracy_cost_pct: None,
        });
    }
    out
}

/// Accuracy against bitwidth for one clipping method at one cut: rows of
/// `quantpipe eval-quant --json`.
#[derive(Debug, Clone, PartialEq)]
pub struct AccuracyTable {
    fp32: f64,
    /// (bits, accuracy), by bits.
    points: Vec<(f64, f64)>,
}

#[derive(Deserialize)]
struct EvalRow {
    clip: String,
    bits: Option<u8>,
    cut: String,
    accuracy: f64,
}

impl AccuracyTable {
    /// The rows of `clip` whose cut is named `cut` (e.g. `mid`), and the fp32 row.
    pub fn from_eval_quant_json(text: &str, clip: &str, cut: &str) -> Result<Self> {
        let rows: Vec<EvalRow> = serde_json::from_str(text)
            .context("accuracy table: expected `quantpipe eval-quant --json` output")?;
        let fp32 = rows
            .iter()
            .find(|r| r.clip == "fp32")
            .map(|r| r.accuracy)
            .ok_or_else(|| anyhow!("accuracy table: no fp32 row"))?;
        let mut points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.clip == clip && r.cut == cut)
            .filter_map(|r| r.bits.map(|b| (f64::from(b), r.accuracy)))
            .collect();
        if points.is_empty() {
            bail!("accuracy table: no row of clip `{clip}` at cut `{cut}`");
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(AccuracyTable { fp32, points })
    }

    pub fn read(path: &Path, clip: &str, cut: &str) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the accuracy table {}", path.display()))?;
        Self::from_eval_quant_json(&text, clip, cut)
            .with_context(|| format!("accuracy table {}", path.display()))
    }

    /// Percentage points of accuracy lost at a mean bitwidth of `bits` (linear between the
    /// table's bitwidths, clamped to its ends; never below 0).
    pub fn cost_pct(&self, bits: f64) -> f64 {
        let p = &self.points;
        let acc = if bits <= p[0].0 {
            p[0].1
        } else if bits >= p[p.len() - 1].0 {
            p[p.len() - 1].1
        } else {
            let i = p
                .iter()
                .position(|q| q.0 >= bits)
                .expect("inside the range");
            let (a, b) = (p[i - 1], p[i]);
            a.1 + (b.1 - a.1) * (bits - a.0) / (b.0 - a.0)
        };
        (100.0 * (self.fp32 - acc)).max(0.0)
    }
}

/// Every node's stats, asked on `qp/<fleet>/stats/*` (answers of other fleets or versions are
/// skipped).
pub fn query_stats(session: &Session, keys: &Keys, timeout: Duration) -> Vec<NodeStats> {
    let mut out = answers::<NodeStats>(session, keys, &keys.stats("*"), timeout);
    out.sort_by(|a, b| a.node.cmp(&b.node));
    out
}

/// Samples the fleet once per window on its own thread, appending rows to a CSV file as it goes
/// (a reader sees the run's timeline while it runs).
pub struct TimelineSampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Result<Vec<TimelineRow>>>,
}

impl TimelineSampler {
    /// Starts sampling; `answered` is the client's count of items answered so far.
    pub fn start(
        session: Session,
        keys: Keys,
        window_s: f64,
        answered: Arc<AtomicUsize>,
        csv: &Path,
        accuracy: Option<AccuracyTable>,
    ) -> Result<Self> {
        if !(window_s > 0.0 && window_s.is_finite()) {
            bail!("report window must be > 0 seconds, got {window_s}");
        }
        let mut file = std::fs::File::create(csv)
            .map_err(anyhow::Error::from)
            .and_then(csv_writer)
            .with_context(|| format!("creating the timeline {}", csv.display()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let handle = std::thread::spawn(move || -> Result<Vec<TimelineRow>> {
            let window = Duration::from_secs_f64(window_s);
            let start = Instant::now();
            let mut all = Vec::new();
            let mut next = start + window;
            let mut before = answered.load(Ordering::Relaxed);
            while !stopping.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now < next {
                    std::thread::sleep((next - now).min(Duration::from_millis(50)));
                    continue;
                }
                next += window;
                let done = answered.load(Ordering::Relaxed);
                let rate = (done - before) as f64 / window_s;
                before = done;
                let t_s = start.elapsed().as_secs_f64();
                let stats = query_stats(&session, &keys, window.min(Duration::from_secs(2)));
                let unix_s = crate::runtime::metrics::unix_s();
                for r in rows(t_s, unix_s, rate, &stats, accuracy.as_ref()) {
                    file.serialize(CsvRecord::from(&r))?;
                    all.push(r);
                }
                file.flush()?;
            }
            Ok(all)
        });
        Ok(TimelineSampler { stop, handle })
    }

    /// Stops sampling; answers every row written.
    pub fn finish(self) -> Result<Vec<TimelineRow>> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .join()
            .map_err(|_| anyhow!("the timeline sampler panicked"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantpipe_messages::LinkStats;

    fn stats(node: &str, stage: u32, to: &str, bits: f64) -> NodeStats {
        NodeStats {
            node: node.into(),
            stage: Some(stage),
            links: vec![
                LinkStats {
                    to: to.into(),
                    mbps: 19.0,
                    utilisation: 0.9,
                    bits_mean: bits,
                    target_items_per_s: 20.0,
                    ..Default::default()
                },
                // What arrived is not an outgoing link.
                LinkStats {
                    to: format!("qp/f/stage/{stage}/in"),
                    messages: 3,
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    const TABLE: &str = r#"[
      {"model":"m","dataset":"d","cut":"","cuts":[],"clip":"fp32","bits":null,"items":10,"accuracy":0.94,"agreement":1.0},
      {"model":"m","dataset":"d","cut":"mid","cuts":[11],"clip":"aciq","bits":4,"items":10,"accuracy":0.90,"agreement":0.9},
      {"model":"m","dataset":"d","cut":"mid","cuts":[11],"clip":"aciq","bits":8,"items":10,"accuracy":0.94,"agreement":1.0},
      {"model":"m","dataset":"d","cut":"all","cuts":[6,12,18],"clip":"aciq","bits":4,"items":10,"accuracy":0.50,"agreement":0.5}
    ]"#;

    #[test]
    fn accuracy_cost_interpolates_between_bitwidths_of_the_chosen_cut() {
        let t = AccuracyTable::from_eval_quant_json(TABLE, "aciq", "mid").unwrap();
        assert!((t.cost_pct(4.0) - 4.0).abs() < 1e-9);
        assert!((t.cost_pct(6.0) - 2.0).abs() < 1e-9);
        assert_eq!(t.cost_pct(32.0), 0.0);
        assert!((t.cost_pct(2.0) - 4.0).abs() < 1e-9, "clamped to the table");
        let err = AccuracyTable::from_eval_quant_json(TABLE, "naive", "mid").unwrap_err();
        assert!(err.to_string().contains("clip `naive`"), "{err}");
        assert!(AccuracyTable::from_eval_quant_json("{}", "aciq", "mid").is_err());
    }

    #[test]
    fn rows_show_inter_stage_links_in_stage_order_and_read_back() {
        let t = AccuracyTable::from_eval_quant_json(TABLE, "aciq", "mid").unwrap();
        let s = [
            stats("b", 1, "qp/f/stage/2/in", 6.0),
            stats("a", 0, "qp/f/stage/1/in", 8.0),
            stats("c", 2, "qp/f/result/client", 0.0),
        ];
        let r = rows(3.0, 1e9, 19.5, &s, Some(&t));
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!((r[0].node.as_str(), r[1].node.as_str()), ("a", "b"));
        assert!((r[1].accuracy_cost_pct.unwrap() - 2.0).abs() < 1e-9);
        let mut w = csv_writer(Vec::new()).unwrap();
        for row in &r {
            w.serialize(CsvRecord::from(row)).unwrap();
        }
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        let back = read_csv(&text).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].stage, Some(1));
        assert!((back[1].bits_mean - 6.0).abs() < 1e-9);
        assert!(read_csv("a,b\n").is_err());
    }

    #[test]
    fn a_bad_row_is_named_by_line_and_column() {
        let good = "1.000,2.000,3.000,4.000,a,0,5.000,0.500,8.00,";
        let text = format!("{CSV_HEADER}\n{good}\n1.000,2.000,fast,4.000,a,0,5.000,0.500,8.00,\n");
        let err = read_csv(&text).unwrap_err().to_string();
        assert!(err.contains("line 3, column items_per_s"), "{err}");
        let err = read_csv(&format!("{CSV_HEADER}\n{good}\n1,2\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3: 2 fields, expected 10"), "{err}");
    }

    #[test]
    fn a_node_name_with_a_comma_survives_the_round_trip() {
        let mut row = rows(1.0, 1e9, 7.0, &[], None).remove(0);
        row.node = "board,a".into();
        row.stage = Some(2);
        let mut w = csv_writer(Vec::new()).unwrap();
        w.serialize(CsvRecord::from(&row)).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(
            text.lines().nth(1),
            Some("1.000,1000000000.000,7.000,0.000,\"board,a\",2,0.000,0.000,0.00,")
        );
        assert_eq!(read_csv(&text).unwrap(), vec![row]);
    }

    #[test]
    fn a_single_stage_pipeline_still_gets_the_client_rate() {
        let r = rows(1.0, 1e9, 7.0, &[], None);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].items_per_s, r[0].stage), (7.0, None));
    }
}
