//! `cargo run --manifest-path fuzz/Cargo.toml --bin gen_seeds -- fuzz/corpus/decode fuzz/corpus/control`

use quantpipe_messages::clipping::{ClipMethod, ValueKind};
use quantpipe_messages::codec::{self, Clip};
use quantpipe_messages::oracle::sample_messages;
use quantpipe_messages::{Bits, BoundaryPayload};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: gen_seeds TENSOR_DIR CONTROL_DIR";
    let dir = std::env::args().nth(1).ok_or(usage)?;
    let control_dir = std::env::args().nth(2).ok_or(usage)?;
    std::fs::create_dir_all(&dir)?;
    let shapes: [&[usize]; 4] = [&[2, 3, 4], &[1, 5], &[3], &[2, 0, 3]];
    let mut i = 0;
    for bits in Bits::all() {
        for shape in shapes {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = (0..n).map(|k| ((k * 7919) % 13) as f32 - 6.0).collect();
            let method = ClipMethod::ALL[i % 3];
            let clip = Clip::Method {
                method,
                kind: ValueKind::TwoSided,
            };
            let t = codec::encode(&values, shape, bits, clip)?;
            std::fs::write(format!("{dir}/tensor-{i}"), t.to_bytes())?;
            let skip = codec::encode(&values, shape, Bits::new(8)?, Clip::NAIVE)?;
            let p = if i % 2 == 0 {
                BoundaryPayload::pair(t, skip)
            } else {
                BoundaryPayload::single(t)
            };
            std::fs::write(format!("{dir}/payload-{i}"), p.to_bytes())?;
            i += 1;
        }
    }
    // Tensors with outlier channels: two channels of a [4, 16, 64] tensor far above the rest,
    // which DS-ACIQ gives their own parameters at every bitwidth.
    let shape = [4usize, 16, 64];
    let values: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|k| match k % 64 {
            9 => 40.0 + (k % 5) as f32,
            33 => -25.0 - (k % 3) as f32,
            _ => ((k * 7919) % 13) as f32 * 0.1 - 0.6,
        })
        .collect();
    let mut with_outliers = 0;
    for bits in Bits::all().filter(|b| !b.is_raw()) {
        let clip = Clip::Method {
            method: ClipMethod::DsAciq,
            kind: ValueKind::TwoSided,
        };
        let t = codec::encode(&values, &shape, bits, clip)?;
        with_outliers += usize::from(!t.outliers().is_empty());
        std::fs::write(format!("{dir}/outliers-{bits}"), t.to_bytes())?;
        i += 1;
    }
    println!(
        "wrote {} seeds to {dir} ({with_outliers} with outlier channels)",
        2 * i
    );
    std::fs::create_dir_all(&control_dir)?;
    let messages = sample_messages();
    for (k, bytes) in messages.iter().enumerate() {
        std::fs::write(format!("{control_dir}/message-{k}"), bytes)?;
    }
    println!("wrote {} seeds to {control_dir}", messages.len());
    Ok(())
}
