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
            let clip = Clip::Method { method, kind: ValueKind::TwoSided };
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
    println!("wrote {} seeds to {dir}", 2 * i);
    std::fs::create_dir_all(&control_dir)?;
    let messages = sample_messages();
    for (k, bytes) in messages.iter().enumerate() {
        std::fs::write(format!("{control_dir}/message-{k}"), bytes)?;
    }
    println!("wrote {} seeds to {control_dir}", messages.len());
    Ok(())
}
