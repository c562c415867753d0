//! What the bench streams: one seeded microbatch of pixels, encoded once and sent again and again.

use anyhow::{bail, Result};
use quantpipe_actors::runtime::client::{Encoded, Inputs};
use quantpipe_messages::clipping::{ClipMethod, ValueKind};
use quantpipe_messages::codec::{self, Clip};
use quantpipe_messages::{Bits, Body, BoundaryPayload};

/// `count` copies of one encoded microbatch of `ubatch` items: what the bench streams.
pub struct Repeated<'a> {
    pub payload: &'a [u8],
    pub ubatch: usize,
    pub count: usize,
}

impl Inputs for Repeated<'_> {
    fn items(&self) -> usize {
        self.ubatch * self.count
    }

    fn cut(&mut self, ubatch: usize) -> Result<usize> {
        if ubatch != self.ubatch {
            bail!(
                "the plan's microbatches hold {ubatch} items, the bench's {}",
                self.ubatch
            );
        }
        Ok(self.count)
    }

    fn items_in(&self, _seq: usize) -> usize {
        self.ubatch
    }

    fn encode(&self, _seq: usize) -> Result<Encoded> {
        Ok(Encoded {
            body: Body::Payload,
            mask: None,
            payload: self.payload.to_vec(),
        })
    }
}

/// The payload of one microbatch of `ubatch` seeded random 224x224 images.
pub fn pixel_payload(ubatch: usize) -> Result<Vec<u8>> {
    tch::manual_seed(7);
    // Pixels into unit 1 travel as raw f32 (32 bits: no clipping applies).
    let shape = [ubatch, 3, 224, 224];
    let pixels = tch::Tensor::randn(shape.map(|d| d as i64), tch::kind::FLOAT_CPU);
    let values = Vec::<f32>::try_from(&pixels.view(-1))?;
    let clip = Clip::Method {
        method: ClipMethod::Naive,
        kind: ValueKind::TwoSided,
    };
    let encoded = codec::encode(&values, &shape, Bits::new(32)?, clip)?;
    Ok(BoundaryPayload::single(encoded).to_bytes())
}
