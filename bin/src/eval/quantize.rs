//! One hop of the wire path: encode what crosses a cut, serialise it, parse it and decode it.

use anyhow::{Context, Result};
use quantpipe_messages::clipping::{ClipMethod, ValueKind};
use quantpipe_messages::codec::{self, Clip};
use quantpipe_messages::{Bits, BoundaryPayload, DecodeLimits};
use quantpipe_model_shards::units::is_post_gelu_cut;
use quantpipe_model_shards::Boundary;
use tch::Tensor;

/// Sends `boundary` (what leaves unit `cut`) through the codec at `bits` with clipping `method`
/// and returns what the next stage would decode. The first tensor after a u2 cut is the post-GELU
/// activation and is clipped one-sided; every other tensor two-sided. The attention mask is not
/// an activation and passes unchanged.
pub fn through_wire(
    boundary: &Boundary,
    cut: usize,
    bits: Bits,
    method: ClipMethod,
) -> Result<Boundary> {
    let mut encoded = Vec::with_capacity(boundary.tensors.len());
    for (i, t) in boundary.tensors.iter().enumerate() {
        let kind = if i == 0 && is_post_gelu_cut(cut) {
            ValueKind::OneSidedPostGelu
        } else {
            ValueKind::TwoSided
        };
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let values =
            Vec::<f32>::try_from(t.contiguous().view(-1)).context("boundary tensor is not f32")?;
        let clip = Clip::Method { method, kind };
        let t = codec::encode(&values, &shape, bits, clip)
            .with_context(|| format!("encoding tensor {i} after unit {cut}"))?;
        // What the outlier channels add to the wire (the rest is what a plain b-bit tensor sends).
        tracing::debug!(
            cut,
            tensor = i,
            %bits,
            %method,
            ?shape,
            outlier_channels = t.outliers().len(),
            wire_bytes = t.header_len() + t.data().len(),
            "encoded"
        );
        encoded.push(t);
    }
    let mut parts = encoded.into_iter();
    let main = parts.next().context("empty boundary")?;
    let payload = match parts.next() {
        Some(skip) => BoundaryPayload::pair(main, skip),
        None => BoundaryPayload::single(main),
    };
    let bytes = payload.to_bytes();
    let limits = DecodeLimits::default();
    let received = BoundaryPayload::from_bytes(&bytes, &limits)
        .with_context(|| format!("parsing the payload after unit {cut}"))?;
    let tensors = received
        .tensors()
        .map(|t| {
            let d = codec::decode(t, &limits)?;
            let shape: Vec<i64> = d.shape.iter().map(|&s| s as i64).collect();
            Ok(Tensor::from_slice(&d.values).view(shape.as_slice()))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Boundary::new(
        tensors,
        boundary.mask.as_ref().map(|m| m.shallow_clone()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn pair() -> Boundary {
        tch::manual_seed(3);
        let opts = (Kind::Float, Device::Cpu);
        Boundary::new(
            vec![
                Tensor::randn([2, 5, 16], opts).gelu("none"),
                Tensor::randn([2, 5, 8], opts),
            ],
            Some(Tensor::ones([2, 5], (Kind::Int64, Device::Cpu))),
        )
    }

    #[test]
    fn raw_bits_are_exact_and_few_bits_are_not() {
        let b = pair();
        let raw = through_wire(&b, 3, Bits::RAW, ClipMethod::DsAciq).unwrap();
        for (x, y) in b.tensors.iter().zip(&raw.tensors) {
            assert!(x.equal(y));
        }
        assert!(raw.mask.unwrap().equal(b.mask.as_ref().unwrap()));

        let err = |bits: u8| -> f64 {
            let q = through_wire(&b, 3, Bits::new(bits).unwrap(), ClipMethod::Naive).unwrap();
            (&q.tensors[1] - &b.tensors[1])
                .abs()
                .max()
                .double_value(&[])
        };
        let (e2, e8) = (err(2), err(8));
        assert!(e2 > 0.1 && e8 < 0.05 && e8 > 0.0, "{e2} {e8}");
    }

    #[test]
    fn each_item_gets_its_own_range() {
        // Item 1 is 1000x larger; per-item scales keep item 0 precise at 8 bits.
        let opts = (Kind::Float, Device::Cpu);
        let small = Tensor::randn([1, 4, 8], opts);
        let x = Tensor::cat(&[small.shallow_clone(), &small * 1000.0], 0);
        let q = through_wire(
            &Boundary::new(vec![x], None),
            2,
            Bits::new(8).unwrap(),
            ClipMethod::Naive,
        )
        .unwrap();
        let e = (q.tensors[0].get(0) - small.get(0))
            .abs()
            .max()
            .double_value(&[]);
        assert!(e < 0.05, "{e}");
    }
}
