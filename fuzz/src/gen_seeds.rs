//! `cargo run --manifest-path fuzz/Cargo.toml --bin gen_seeds -- fuzz/corpus/decode fuzz/corpus/control fuzz/corpus/admission`

mod stages;

use quantpipe_messages::admission::{self, Expected, StageInput, TokenCount};
use quantpipe_messages::clipping::{ClipMethod, ValueKind};
use quantpipe_messages::codec::{self, Clip};
use quantpipe_messages::oracle::sample_messages;
use quantpipe_messages::{Activation, Bits, Body, BoundaryPayload, DecodeLimits, Mask, Tokens};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: gen_seeds TENSOR_DIR CONTROL_DIR [ADMISSION_DIR]";
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
    if let Some(dir) = std::env::args().nth(3) {
        admission_seeds(&dir)?;
    }
    Ok(())
}

/// For each stage of `stages.rs` (the first byte picks it): an admissible microbatch of each
/// size and bitwidth, and the refused variants a sender gets wrong most (an id past the
/// vocabulary, a dimension off by one, a missing mask).
fn admission_seeds(dir: &str) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let mut n = 0;
    for (pick, e) in stages::stages().iter().enumerate() {
        for (b, t) in [(1u64, 1u64), (2, 3), (4, 8)] {
            for bits in [32u8, 8, 3] {
                for variant in 0..4 {
                    let Some(message) = microbatch(e, b, t, Bits::new(bits)?, variant)? else {
                        continue;
                    };
                    // The seeds say what they are: variants 0 and 3 admitted, 1 and 2 refused.
                    let limits = DecodeLimits::default();
                    let admitted = admission::decode(&message, stages::FLEET, &limits, Some(e))
                        .and_then(|(act, at)| {
                            admission::check_activation(&act, &message[at..], e, &limits)
                        });
                    if admitted.is_ok() != (variant == 0 || variant == 3) {
                        return Err(format!(
                            "stage {pick}, {b} x {t} at {bits} bits, variant {variant}: {admitted:?}"
                        )
                        .into());
                    }
                    let mut seed = vec![pick as u8];
                    seed.extend(message);
                    std::fs::write(format!("{dir}/stage{pick}-{b}x{t}-{bits}b-{variant}"), seed)?;
                    n += 1;
                }
            }
        }
    }
    println!("wrote {n} seeds to {dir}");
    Ok(())
}

/// A microbatch of `b` items (`t` tokens where the stage lets it vary) for stage `e`;
/// `variant` 0 is admissible, 1 has an id past the vocabulary or a dimension one too large, 2
/// no mask (or a mask where none belongs), 3 is a probe. None where a variant means nothing.
fn microbatch(
    e: &Expected,
    b: u64,
    t: u64,
    bits: Bits,
    variant: u8,
) -> Result<Option<Vec<u8>>, Box<dyn std::error::Error>> {
    let (body, payload, tokens) = match &e.input {
        StageInput::Tokens { vocab, .. } => {
            if bits != Bits::RAW {
                return Ok(None);
            }
            let mut ids: Vec<i64> = (0..b * t).map(|k| (k * 7 % vocab) as i64).collect();
            if variant == 1 {
                ids[0] = *vocab as i64;
            }
            (Body::Tokens(Tokens { shape: [b, t], ids }), vec![], t)
        }
        StageInput::Pixels {
            channels,
            image_size,
        } => {
            let extra = u64::from(variant == 1);
            let shape = [b, *channels, *image_size + extra, *image_size];
            (Body::Payload, payload(&[&shape], bits)?, 0)
        }
        StageInput::Hidden { widths, tokens } => {
            let t = match tokens {
                TokenCount::Exactly(n) => *n,
                TokenCount::UpTo(_) => t,
            };
            let shapes: Vec<[u64; 3]> = widths
                .iter()
                .enumerate()
                .map(|(i, &w)| [b, t, w + u64::from(variant == 1 && i + 1 == widths.len())])
                .collect();
            let refs: Vec<&[u64]> = shapes.iter().map(|s| &s[..]).collect();
            (Body::Payload, payload(&refs, bits)?, t)
        }
    };
    let body = if variant == 3 { Body::Probe } else { body };
    let mask = (e.mask != (variant == 2)).then(|| Mask {
        shape: [b, tokens],
        values: (0..b * tokens).map(|k| u8::from(k % 5 != 4)).collect(),
    });
    let act = Activation {
        run: 0x5eed,
        client: "client".into(),
        seq: b,
        epoch: 1,
        stage: 0,
        sent_unix_ns: 0,
        body,
        body_len: 0,
        mask,
    };
    Ok(Some(act.into_message(stages::FLEET, payload).concat()))
}

/// Payload bytes of tensors of `shapes` at `bits`.
fn payload(shapes: &[&[u64]], bits: Bits) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut tensors = Vec::new();
    for shape in shapes {
        let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|k| ((k * 7919) % 13) as f32 - 6.0).collect();
        tensors.push(codec::encode(&values, &shape, bits, Clip::NAIVE)?);
    }
    let mut tensors = tensors.into_iter();
    let main = tensors.next().ok_or("no tensor")?;
    Ok(match tensors.next() {
        Some(skip) => BoundaryPayload::pair(main, skip),
        None => BoundaryPayload::single(main),
    }
    .to_bytes())
}
