//! `quantpipe bench codec`: encode/decode throughput beside memcpy, DS-ACIQ cost, wire size.

use super::print;
use anyhow::{anyhow, Result};
use quantpipe_messages::bench::{codec_report, CodecBenchConfig};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Bitwidths to measure.
    #[arg(long, value_delimiter = ',', default_values_t = [2u8, 4, 6, 8, 16])]
    bits: Vec<u8>,
    /// Minimum measuring time per figure, seconds.
    #[arg(long, default_value_t = 0.5)]
    min_secs: f64,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let config = CodecBenchConfig {
        bits: args.bits,
        min_secs: args.min_secs,
        ..CodecBenchConfig::default()
    };
    let report = codec_report(&config).map_err(|e| anyhow!("codec bench: {e}"))?;
    print(&report, args.json, |r| {
        let mut s = String::from(
            "shape            bits  memcpy GB/s  enc GB/s  dec GB/s  enc+dec/memcpy  DS-ACIQ adds  header B/sample\n",
        );
        for row in &r.rows {
            s += &format!(
                "{:<16} {:>4}  {:>11.2}  {:>8.2}  {:>8.2}  {:>14.2}  {:>11.2}x  {:>15.1}\n",
                format!("{:?}", row.shape),
                row.bits,
                row.memcpy_gbps,
                row.encode_gbps,
                row.decode_gbps,
                row.roundtrip_vs_memcpy,
                row.ds_aciq_added_vs_encode,
                row.header_bytes_per_sample
            );
        }
        s
    })
}
