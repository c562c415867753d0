//! Prints the codec benchmark as JSON (the same function `quantpipe bench codec --json` calls).
//!
//! `cargo run -p quantpipe-messages --release --example codec_report [-- MIN_SECS [BITS,..] [SHAPE,..]]`
//! e.g. `-- 0.3 2,4,6,8,16 8x197x768,8x197x3072` (the defaults)

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = quantpipe_messages::bench::CodecBenchConfig::default();
    if let Some(secs) = std::env::args().nth(1) {
        config.min_secs = secs.parse()?;
    }
    if let Some(bits) = std::env::args().nth(2) {
        config.bits = bits.split(',').map(str::parse).collect::<Result<_, _>>()?;
    }
    if let Some(shapes) = std::env::args().nth(3) {
        // e.g. 8x197x768,8x197x3072
        config.shapes = shapes
            .split(',')
            .map(|s| {
                s.split('x')
                    .map(str::parse)
                    .collect::<Result<Vec<usize>, _>>()
            })
            .collect::<Result<_, _>>()?;
    }
    let report = quantpipe_messages::bench::codec_report(&config)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
