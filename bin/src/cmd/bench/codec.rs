//! `quantpipe bench codec`: encode/decode throughput beside memcpy, DS-ACIQ cost, wire size.

use super::print;
use anyhow::{anyhow, Result};
use quantpipe_messages::bench::{codec_report, CodecBenchConfig};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Bitwidths to measure.
    #[arg(long, value_delimiter = ',', default_values_t = [2u8, 4, 6, 8, 16])]
    bits: Vec<u8>,
    /// Tensor shapes, dimensions joined by `x` (default: ViT-Base's boundary tensors at
    /// microbatch 8, 8x197x768 and 8x197x3072).
    #[arg(long, value_delimiter = ',', value_parser = parse_shape)]
    shapes: Vec<Vec<usize>>,
    /// Minimum measuring time per figure, seconds.
    #[arg(long, default_value_t = 0.5)]
    min_secs: f64,
    #[arg(long)]
    json: bool,
}

/// `8x128x384` -> [8, 128, 384].
fn parse_shape(s: &str) -> Result<Vec<usize>, String> {
    s.split('x')
        .map(|d| d.trim().parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .ok()
        .filter(|dims| !dims.is_empty() && dims.iter().all(|&d| d > 0))
        .ok_or_else(|| format!("bad shape {s:?}: expected dimensions joined by x, e.g. 8x128x384"))
}

pub fn run(args: Args) -> Result<()> {
    let defaults = CodecBenchConfig::default();
    let config = CodecBenchConfig {
        bits: args.bits,
        min_secs: args.min_secs,
        shapes: if args.shapes.is_empty() {
            defaults.shapes.clone()
        } else {
            args.shapes
        },
        ..defaults
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

#[cfg(test)]
mod tests {
    use super::parse_shape;

    #[test]
    fn shapes_are_dimensions_joined_by_x() {
        assert_eq!(parse_shape("8x128x384").unwrap(), [8, 128, 384]);
        assert_eq!(parse_shape("17").unwrap(), [17]);
        for bad in ["", "8x", "8x0", "8,128"] {
            assert!(parse_shape(bad).unwrap_err().contains("bad shape"), "{bad}");
        }
    }
}
