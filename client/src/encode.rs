//! A microbatch of prepared items as stage 0 takes it: token ids padded to the longest item
//! with their attention mask (as `TextTokenizer::encode_batch` pads), or pixels stacked into
//! one `[B, C, H, W]` raw f32 payload (as `bench pipeline` builds pixel microbatches).

use crate::prepare::Input;
use anyhow::{bail, Result};
use quantpipe_actors::runtime::client::Encoded;
use quantpipe_messages::clipping::{ClipMethod, ValueKind};
use quantpipe_messages::codec::{self, Clip};
use quantpipe_messages::{Bits, Body, BoundaryPayload, Mask, Tokens};

/// Encodes `items` (one model's: all tokens or all pixels of `pixel_shape`).
pub(crate) fn encode(items: &[&Input], pixel_shape: Option<[usize; 3]>) -> Result<Encoded> {
    match (items.first(), pixel_shape) {
        (None, _) => bail!("a microbatch of no item"),
        (Some(Input::Tokens(_)), _) => tokens(items),
        (Some(Input::Pixels(_)), Some(shape)) => pixels(items, shape),
        (Some(Input::Pixels(_)), None) => bail!("pixels for a model that takes text"),
    }
}

fn tokens(items: &[&Input]) -> Result<Encoded> {
    let rows: Vec<&[i64]> = items
        .iter()
        .map(|i| match i {
            Input::Tokens(ids) => Ok(ids.as_slice()),
            Input::Pixels(_) => bail!("pixels in a microbatch of tokens"),
        })
        .collect::<Result<_>>()?;
    let t = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(rows.len() * t);
    let mut mask = Vec::with_capacity(rows.len() * t);
    for r in &rows {
        let pad = t - r.len();
        ids.extend(r.iter().copied().chain(std::iter::repeat_n(0, pad)));
        mask.extend(std::iter::repeat_n(1u8, r.len()).chain(std::iter::repeat_n(0, pad)));
    }
    let shape = [rows.len() as u64, t as u64];
    Ok(Encoded {
        body: Body::Tokens(Tokens { shape, ids }),
        mask: Some(Mask {
            shape,
            values: mask,
        }),
        payload: Vec::new(),
    })
}

fn pixels(items: &[&Input], [c, h, w]: [usize; 3]) -> Result<Encoded> {
    let per_item = c * h * w;
    let mut values = Vec::with_capacity(items.len() * per_item);
    for i in items {
        match i {
            Input::Pixels(p) if p.len() == per_item => values.extend_from_slice(p),
            Input::Pixels(p) => bail!("{} pixel values for an item of {per_item}", p.len()),
            Input::Tokens(_) => bail!("token ids in a microbatch of pixels"),
        }
    }
    // Pixels into unit 1 travel as raw f32 (32 bits: no clipping applies).
    let clip = Clip::Method {
        method: ClipMethod::Naive,
        kind: ValueKind::TwoSided,
    };
    let encoded = codec::encode(&values, &[items.len(), c, h, w], Bits::RAW, clip)?;
    Ok(Encoded {
        body: Body::Payload,
        mask: None,
        payload: BoundaryPayload::single(encoded).to_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantpipe_messages::{BoundaryPayloadRef, DecodeLimits};

    #[test]
    fn token_rows_are_padded_to_the_longest_with_a_mask() {
        let a = Input::Tokens(vec![101, 7, 102]);
        let b = Input::Tokens(vec![101, 102]);
        let e = encode(&[&a, &b], None).unwrap();
        let Body::Tokens(t) = e.body else {
            panic!("tokens expected")
        };
        assert_eq!(t.shape, [2, 3]);
        assert_eq!(t.ids, vec![101, 7, 102, 101, 102, 0]);
        assert_eq!(e.mask.unwrap().values, vec![1, 1, 1, 1, 1, 0]);
    }

    #[test]
    fn pixels_are_stacked_into_one_raw_payload() {
        let a = Input::Pixels(vec![1.0, 2.0]);
        let b = Input::Pixels(vec![3.0, 4.0]);
        let e = encode(&[&a, &b], Some([1, 1, 2])).unwrap();
        assert_eq!(e.body, Body::Payload);
        let limits = DecodeLimits::default();
        let p = BoundaryPayloadRef::borrow_from(&e.payload, &limits).unwrap();
        let t = p.tensors().next().unwrap();
        assert_eq!(t.shape(), &[2, 1, 1, 2]);
        let mut back = vec![0.0; 4];
        codec::decode_into(t, &limits, &mut back).unwrap();
        assert_eq!(back, vec![1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn a_pixel_item_of_the_wrong_size_is_an_error() {
        let a = Input::Pixels(vec![1.0]);
        assert!(encode(&[&a], Some([1, 1, 2])).is_err());
        assert!(encode(&[], None).is_err());
    }
}
