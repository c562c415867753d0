//! Per-window stage metrics: items/s, per-link bytes/s and bitwidth, queue depth and busy time.
//!
//! [`WindowAccumulator`] is plain data: the StageActor feeds it events (a microbatch accepted,
//! bytes received or sent on a link, a microbatch finished with its busy seconds) and closes a
//! window every `metrics.window_s` seconds, getting a [`MetricsRow`] back. [`MetricsWriter`]
//! appends rows to a file chosen by its extension: `.csv` (a header, then one line per window)
//! or `.jsonl` (one JSON object per line). Rows are flushed as they are written, so a reader sees
//! every closed window of a node that is still running.
//!
//! Busy time is credited to the window in which its microbatch finishes; a pass that straddles
//! two windows can therefore make one window look busier than its length, so the busy fraction
//! is clamped to 1.

use anyhow::{anyhow, bail, Context as _, Result};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Which way a link's bytes went, seen from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

/// One link's traffic in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkWindow {
    /// The key expression the bytes travelled on.
    pub key: String,
    pub direction: Direction,
    pub messages: u64,
    pub bytes: u64,
    pub bytes_per_s: f64,
    /// Bitwidth of the last message sent on an outgoing link (32 = raw f32); 0 on incoming links
    /// (the receiver reads the bitwidth from the payload; the sender chose it).
    pub bits: u8,
}

/// One closed window of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    pub node: String,
    /// Stage index in the current plan, when the node has an assignment.
    pub stage: Option<u32>,
    pub epoch: u64,
    /// Start of the window, seconds since the Unix epoch (rows of different nodes line up).
    pub start_unix_s: f64,
    /// Length of the window, seconds.
    pub window_s: f64,
    pub microbatches: u64,
    pub items: u64,
    pub items_per_s: f64,
    /// Forward-pass seconds (emulated slowdown included) and codec seconds finished in the window.
    pub busy_forward_s: f64,
    pub busy_codec_s: f64,
    /// (forward + codec) / window, clamped to [0, 1].
    pub busy_fraction: f64,
    /// Microbatches accepted by the stage and not yet sent on, at the window's end and at most
    /// during it (those waiting for the codec or the forward worker, and the one in progress).
    pub in_flight_end: u64,
    pub in_flight_max: u64,
    /// Messages dropped (malformed, foreign fleet, stale epoch, wrong stage) or failed.
    pub dropped: u64,
    pub links: Vec<LinkWindow>,
    /// The outgoing link as last measured (the quantizer's window, see `quantizer.window_s`).
    #[serde(default)]
    pub out_link: Option<OutLinkWindow>,
}

/// The outgoing link's latest measurement and what the policy made of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct OutLinkWindow {
    /// Bandwidth while transmitting, Mbit/s (0: nothing acknowledged in the window).
    pub mbps: f64,
    pub utilisation: f64,
    /// Items acknowledged by the next stage per second.
    pub items_per_s: f64,
    /// Mean bitwidth of the messages sent in the window, and the policy's target rate.
    pub bits_mean: f64,
    pub target_items_per_s: f64,
}

/// Accumulates one node's events between window boundaries.
#[derive(Debug, Clone, Default)]
pub struct WindowAccumulator {
    start_unix_s: f64,
    microbatches: u64,
    items: u64,
    forward_s: f64,
    codec_s: f64,
    in_flight: u64,
    in_flight_max: u64,
    /// The node's cumulative drop counter when the window started.
    dropped_before: u64,
    links: BTreeMap<(String, Direction), LinkCount>,
}

/// One link's counters within a window.
#[derive(Debug, Default, Clone, Copy)]
struct LinkCount {
    messages: u64,
    bytes: u64,
    bits: u8,
}

impl WindowAccumulator {
    /// A first window starting at `now_unix_s`.
    pub fn new(now_unix_s: f64) -> Self {
        WindowAccumulator {
            start_unix_s: now_unix_s,
            ..Default::default()
        }
    }

    /// A message of `bytes` arrived on `key` and was accepted for this stage.
    pub fn accepted(&mut self, key: &str, bytes: u64) {
        self.in_flight += 1;
        self.in_flight_max = self.in_flight_max.max(self.in_flight);
        let l = self
            .links
            .entry((key.to_owned(), Direction::In))
            .or_default();
        l.messages += 1;
        l.bytes += bytes;
    }

    /// An accepted microbatch went through: `items` items, its busy seconds, and what was sent
    /// (`bytes` on `key` at `bits`).
    pub fn finished(
        &mut self,
        items: u64,
        forward_s: f64,
        codec_s: f64,
        key: &str,
        bytes: u64,
        bits: u8,
    ) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.microbatches += 1;
        self.items += items;
        self.forward_s += forward_s.max(0.0);
        self.codec_s += codec_s.max(0.0);
        let l = self
            .links
            .entry((key.to_owned(), Direction::Out))
            .or_default();
        l.messages += 1;
        l.bytes += bytes;
        l.bits = bits;
    }

    /// An accepted microbatch failed or turned out malformed (the node counts it as dropped).
    pub fn abandoned(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Closes the window at `now_unix_s` and starts the next one there; `dropped_total` is the
    /// node's cumulative count of dropped and failed messages. Microbatches still in flight
    /// carry over.
    pub fn close(
        &mut self,
        now_unix_s: f64,
        node: &str,
        stage: Option<u32>,
        epoch: u64,
        dropped_total: u64,
    ) -> MetricsRow {
        let window_s = (now_unix_s - self.start_unix_s).max(0.0);
        let rate = |n: f64| if window_s > 0.0 { n / window_s } else { 0.0 };
        let busy = self.forward_s + self.codec_s;
        let links = self
            .links
            .iter()
            .map(|((key, direction), c)| LinkWindow {
                key: key.clone(),
                direction: *direction,
                messages: c.messages,
                bytes: c.bytes,
                bytes_per_s: rate(c.bytes as f64),
                bits: c.bits,
            })
            .collect();
        let row = MetricsRow {
            node: node.to_owned(),
            stage,
            epoch,
            start_unix_s: self.start_unix_s,
            window_s,
            microbatches: self.microbatches,
            items: self.items,
            items_per_s: rate(self.items as f64),
            busy_forward_s: self.forward_s,
            busy_codec_s: self.codec_s,
            busy_fraction: rate(busy).clamp(0.0, 1.0),
            in_flight_end: self.in_flight,
            in_flight_max: self.in_flight_max,
            dropped: dropped_total.saturating_sub(self.dropped_before),
            links,
            out_link: None,
        };
        *self = WindowAccumulator {
            start_unix_s: now_unix_s,
            in_flight: self.in_flight,
            in_flight_max: self.in_flight,
            dropped_before: dropped_total.max(self.dropped_before),
            ..Default::default()
        };
        row
    }
}

/// The file format of a metrics file, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsFormat {
    Csv,
    Jsonl,
}

impl MetricsFormat {
    pub fn of(path: &Path) -> Result<MetricsFormat> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => Ok(MetricsFormat::Csv),
            Some("jsonl") => Ok(MetricsFormat::Jsonl),
            _ => bail!(
                "metrics.file {}: the name must end in .csv or .jsonl",
                path.display()
            ),
        }
    }
}

/// The CSV columns, in order. Per-link figures go in `links` as
/// `in|out:key:bytes_per_s:bits` entries separated by spaces.
pub const CSV_HEADER: &str =
    "node,stage,epoch,start_unix_s,window_s,microbatches,items,items_per_s,\
busy_forward_s,busy_codec_s,busy_fraction,in_flight_end,in_flight_max,dropped,\
in_bytes_per_s,out_bytes_per_s,out_bits,links,\
out_mbps,out_utilisation,out_bits_mean,target_items_per_s";

/// A figure written with `D` decimals, as the CSV columns have always been (a reader diffing two
/// runs sees the same digits; `f64`'s shortest form would not line up).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fixed<const D: usize>(pub f64);

impl<const D: usize> Serialize for Fixed<D> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:.*}", D, self.0))
    }
}

/// One row in the CSV columns of [`CSV_HEADER`]: per-direction sums, the last outgoing bitwidth
/// and every link folded into `links`.
#[derive(Debug, Serialize)]
struct CsvRecord<'a> {
    node: &'a str,
    stage: Option<u32>,
    epoch: u64,
    start_unix_s: Fixed<3>,
    window_s: Fixed<3>,
    microbatches: u64,
    items: u64,
    items_per_s: Fixed<3>,
    busy_forward_s: Fixed<6>,
    busy_codec_s: Fixed<6>,
    busy_fraction: Fixed<4>,
    in_flight_end: u64,
    in_flight_max: u64,
    dropped: u64,
    in_bytes_per_s: Fixed<1>,
    out_bytes_per_s: Fixed<1>,
    out_bits: Option<u8>,
    links: String,
    out_mbps: Fixed<3>,
    out_utilisation: Fixed<3>,
    out_bits_mean: Fixed<2>,
    target_items_per_s: Fixed<3>,
}

impl<'a> From<&'a MetricsRow> for CsvRecord<'a> {
    fn from(r: &'a MetricsRow) -> Self {
        let sum = |d: Direction| -> f64 {
            r.links
                .iter()
                .filter(|l| l.direction == d)
                .map(|l| l.bytes_per_s)
                .sum()
        };
        let links: Vec<String> = r
            .links
            .iter()
            .map(|l| {
                let d = match l.direction {
                    Direction::In => "in",
                    Direction::Out => "out",
                };
                format!("{d}:{}:{:.1}:{}", l.key, l.bytes_per_s, l.bits)
            })
            .collect();
        let o = r.out_link.unwrap_or_default();
        CsvRecord {
            node: &r.node,
            stage: r.stage,
            epoch: r.epoch,
            start_unix_s: Fixed(r.start_unix_s),
            window_s: Fixed(r.window_s),
            microbatches: r.microbatches,
            items: r.items,
            items_per_s: Fixed(r.items_per_s),
            busy_forward_s: Fixed(r.busy_forward_s),
            busy_codec_s: Fixed(r.busy_codec_s),
            busy_fraction: Fixed(r.busy_fraction),
            in_flight_end: r.in_flight_end,
            in_flight_max: r.in_flight_max,
            dropped: r.dropped,
            in_bytes_per_s: Fixed(sum(Direction::In)),
            out_bytes_per_s: Fixed(sum(Direction::Out)),
            out_bits: r
                .links
                .iter()
                .rev()
                .find(|l| l.direction == Direction::Out)
                .map(|l| l.bits),
            links: links.join(" "),
            out_mbps: Fixed(o.mbps),
            out_utilisation: Fixed(o.utilisation),
            out_bits_mean: Fixed(o.bits_mean),
            target_items_per_s: Fixed(o.target_items_per_s),
        }
    }
}

/// One row as a CSV line, newline included (fields holding a comma, quote or newline quoted).
pub fn csv_line(r: &MetricsRow) -> Result<Vec<u8>> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    w.serialize(CsvRecord::from(r))?;
    w.into_inner()
        .map_err(|e| anyhow!("writing a metrics row: {}", e.error()))
}

/// Appends rows to a metrics file.
pub struct MetricsWriter {
    path: PathBuf,
    format: MetricsFormat,
    file: File,
}

impl MetricsWriter {
    /// Opens `path` for appending (creating it and its folder); a new or empty CSV file gets the
    /// header first.
    pub fn open(path: &Path) -> Result<MetricsWriter> {
        let format = MetricsFormat::of(path)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating the metrics folder {}", parent.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening the metrics file {}", path.display()))?;
        let empty = file.metadata().map(|m| m.len() == 0).unwrap_or(true);
        if format == MetricsFormat::Csv && empty {
            writeln!(file, "{CSV_HEADER}")
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(MetricsWriter {
            path: path.to_owned(),
            format,
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one row (one line, written with a single call so readers never see half a row).
    pub fn write(&mut self, row: &MetricsRow) -> Result<()> {
        let line = match self.format {
            MetricsFormat::Csv => csv_line(row)?,
            MetricsFormat::Jsonl => {
                let mut line = serde_json::to_vec(row)?;
                line.push(b'\n');
                line
            }
        };
        self.file
            .write_all(&line)
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// Reads the rows of a `.jsonl` metrics file (blank lines skipped; a bad line is named).
pub fn read_jsonl(path: &Path) -> Result<Vec<MetricsRow>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading metrics {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {}: not a metrics row", path.display(), i + 1))
        })
        .collect()
}

/// Seconds since the Unix epoch.
pub fn unix_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_without_traffic_has_zero_rates() {
        let mut acc = WindowAccumulator::new(100.0);
        let row = acc.close(101.0, "a", None, 0, 0);
        assert_eq!(row.window_s, 1.0);
        assert_eq!((row.items, row.microbatches), (0, 0));
        assert_eq!(row.items_per_s, 0.0);
        assert_eq!(row.busy_fraction, 0.0);
        assert!(row.links.is_empty());
    }

    #[test]
    fn rates_are_per_second_and_bytes_split_by_link() {
        let mut acc = WindowAccumulator::new(10.0);
        acc.accepted("qp/f/stage/1/in", 1000);
        acc.accepted("qp/f/stage/1/in", 1000);
        acc.finished(8, 0.3, 0.05, "qp/f/stage/2/in", 400, 4);
        acc.finished(8, 0.3, 0.05, "qp/f/stage/2/in", 400, 4);
        let row = acc.close(12.0, "b", Some(1), 3, 0);
        assert_eq!((row.items, row.microbatches, row.epoch), (16, 2, 3));
        assert_eq!(row.items_per_s, 8.0);
        assert!((row.busy_fraction - 0.35).abs() < 1e-12);
        assert_eq!(row.links.len(), 2);
        let inn = row
            .links
            .iter()
            .find(|l| l.direction == Direction::In)
            .unwrap();
        let out = row
            .links
            .iter()
            .find(|l| l.direction == Direction::Out)
            .unwrap();
        assert_eq!(
            (inn.key.as_str(), inn.bytes, inn.bytes_per_s),
            ("qp/f/stage/1/in", 2000, 1000.0)
        );
        assert_eq!(
            (out.key.as_str(), out.bytes, out.bytes_per_s, out.bits),
            ("qp/f/stage/2/in", 800, 400.0, 4)
        );
    }

    #[test]
    fn busy_fraction_clamps_to_one() {
        let mut acc = WindowAccumulator::new(0.0);
        acc.accepted("in", 1);
        acc.finished(1, 2.5, 0.0, "out", 1, 32);
        let row = acc.close(1.0, "a", Some(0), 1, 0);
        assert_eq!(row.busy_forward_s, 2.5);
        assert_eq!(row.busy_fraction, 1.0);
    }

    #[test]
    fn in_flight_microbatches_carry_over_to_the_next_window() {
        let mut acc = WindowAccumulator::new(0.0);
        acc.accepted("in", 1);
        acc.accepted("in", 1);
        acc.accepted("in", 1);
        acc.finished(1, 0.1, 0.0, "out", 1, 8);
        let first = acc.close(1.0, "a", Some(0), 1, 4);
        assert_eq!(
            (first.in_flight_end, first.in_flight_max, first.dropped),
            (2, 3, 4)
        );
        acc.finished(1, 0.1, 0.0, "out", 1, 8);
        acc.abandoned();
        let second = acc.close(2.0, "a", Some(0), 1, 5);
        assert_eq!((second.in_flight_end, second.in_flight_max), (0, 2));
        assert_eq!((second.microbatches, second.dropped), (1, 1));
        // Counters restart: the first window's items and drops are not counted again.
        assert_eq!(second.items, 1);
        assert_eq!(second.start_unix_s, 1.0);
    }

    #[test]
    fn extension_picks_the_format_and_others_are_refused() {
        assert_eq!(
            MetricsFormat::of(Path::new("m.csv")).unwrap(),
            MetricsFormat::Csv
        );
        assert_eq!(
            MetricsFormat::of(Path::new("a/m.jsonl")).unwrap(),
            MetricsFormat::Jsonl
        );
        let err = MetricsFormat::of(Path::new("m.txt"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("m.txt") && err.contains(".csv"), "{err}");
    }

    fn sample_row() -> MetricsRow {
        let mut acc = WindowAccumulator::new(5.0);
        acc.accepted("qp/f/stage/0/in", 300);
        acc.finished(8, 0.25, 0.125, "qp/f/stage/1/in", 500, 6);
        let mut row = acc.close(6.0, "board,a", Some(0), 2, 0);
        row.out_link = Some(OutLinkWindow {
            mbps: 19.5,
            utilisation: 0.9,
            items_per_s: 40.0,
            bits_mean: 6.5,
            target_items_per_s: 42.0,
        });
        row
    }

    #[test]
    fn csv_file_gets_one_header_and_a_line_per_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/m.csv");
        let mut w = MetricsWriter::open(&path).unwrap();
        w.write(&sample_row()).unwrap();
        drop(w);
        // Reopening appends without a second header.
        let mut w = MetricsWriter::open(&path).unwrap();
        w.write(&sample_row()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], CSV_HEADER);
        let columns = CSV_HEADER.split(',').count();
        // The node name holds a comma, so it is quoted; the rest split cleanly.
        assert!(
            lines[1].starts_with("\"board,a\",0,2,5.000,1.000,1,8,8.000,"),
            "{}",
            lines[1]
        );
        let rest = lines[1].split_once("\",").unwrap().1;
        assert_eq!(rest.split(',').count(), columns - 1, "{}", lines[1]);
        assert!(
            lines[1].ends_with(
                ",300.0,500.0,6,in:qp/f/stage/0/in:300.0:0 out:qp/f/stage/1/in:500.0:6,\
19.500,0.900,6.50,42.000"
            ),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn the_header_names_the_record_fields_in_order() {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(CsvRecord::from(&sample_row())).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().next(), Some(CSV_HEADER));
    }

    #[test]
    fn a_row_reads_back_through_a_csv_reader() {
        let line = csv_line(&sample_row()).unwrap();
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(&line[..]);
        let record = r.records().next().unwrap().unwrap();
        assert_eq!(record.len(), CSV_HEADER.split(',').count());
        assert_eq!((&record[0], &record[1], &record[16]), ("board,a", "0", "6"));
    }

    #[test]
    fn jsonl_rows_read_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let mut w = MetricsWriter::open(&path).unwrap();
        let row = sample_row();
        w.write(&row).unwrap();
        w.write(&row).unwrap();
        let back = read_jsonl(&path).unwrap();
        assert_eq!(back, vec![row.clone(), row]);
        std::fs::write(&path, "{\"node\": 1}\n").unwrap();
        let err = format!("{:#}", read_jsonl(&path).unwrap_err());
        assert!(err.contains("line 1"), "{err}");
    }
}
