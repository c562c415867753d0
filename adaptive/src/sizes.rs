//! The exact wire size of a cut's payload at every bitwidth.
//!
//! The encoded size of a tensor depends only on its shape and bitwidth (codes are packed densely,
//! each sample carries fixed-width f32 parameters), never on its values. So the table is built by
//! encoding zeros of the cut's shapes through the codec itself and measuring the bytes: exact by
//! construction, and it follows the format if the format changes.

use quantpipe_messages::codec::{self, Clip};
use quantpipe_messages::{Bits, BoundaryPayload};

/// Payload bytes of one message per bitwidth, in increasing bitwidth.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeTable {
    entries: Vec<(Bits, u64)>,
}

/// The bitwidths a policy may choose: `min_bits..=16`, and raw 32 when `max` is 32.
pub fn allowed_bits(min: Bits, max: Bits) -> Vec<Bits> {
    Bits::all()
        .filter(|b| b.get() >= min.get() && b.get() <= max.get())
        .collect()
}

impl SizeTable {
    /// From explicit (bitwidth, bytes) pairs: bitwidths strictly increasing, sizes positive and
    /// not decreasing.
    pub fn new(entries: Vec<(Bits, u64)>) -> Result<Self, String> {
        if entries.is_empty() {
            return Err("a size table needs at least one bitwidth".into());
        }
        for w in entries.windows(2) {
            if w[0].0.get() >= w[1].0.get() {
                return Err(format!(
                    "bitwidths must increase: {} then {}",
                    w[0].0.get(),
                    w[1].0.get()
                ));
            }
            if w[0].1 > w[1].1 {
                return Err(format!(
                    "sizes must not decrease with bits: {} bits = {} B, {} bits = {} B",
                    w[0].0.get(),
                    w[0].1,
                    w[1].0.get(),
                    w[1].1
                ));
            }
        }
        if entries.iter().any(|e| e.1 == 0) {
            return Err("a payload size of 0 bytes".into());
        }
        Ok(SizeTable { entries })
    }

    /// The codec's size of a payload of tensors of `shapes` (1 or 2, first dimension = samples)
    /// at each of `bits`.
    pub fn from_shapes(shapes: &[Vec<usize>], bits: &[Bits]) -> Result<Self, String> {
        if shapes.is_empty() || shapes.len() > 2 {
            return Err(format!(
                "a cut carries 1 or 2 tensors, got {}",
                shapes.len()
            ));
        }
        let zeros: Vec<Vec<f32>> = shapes
            .iter()
            .map(|s| vec![0.0; s.iter().product()])
            .collect();
        let mut entries = Vec::with_capacity(bits.len());
        for &b in bits {
            let mut enc = Vec::with_capacity(2);
            for (v, s) in zeros.iter().zip(shapes) {
                enc.push(
                    codec::encode(v, s, b, Clip::NAIVE)
                        .map_err(|e| format!("shape {s:?} at {} bits: {e}", b.get()))?,
                );
            }
            let mut it = enc.into_iter();
            let main = it.next().expect("one tensor at least");
            let payload = match it.next() {
                Some(skip) => BoundaryPayload::pair(main, skip),
                None => BoundaryPayload::single(main),
            };
            entries.push((b, payload.to_bytes().len() as u64));
        }
        SizeTable::new(entries)
    }

    pub fn entries(&self) -> &[(Bits, u64)] {
        &self.entries
    }

    pub fn lowest(&self) -> (Bits, u64) {
        self.entries[0]
    }

    pub fn highest(&self) -> (Bits, u64) {
        *self.entries.last().expect("never empty")
    }

    /// Bytes at `bits`, when it is in the table.
    pub fn bytes(&self, bits: Bits) -> Option<u64> {
        self.entries.iter().find(|e| e.0 == bits).map(|e| e.1)
    }

    /// The largest bitwidth whose payload fits `bytes` (the lowest when none does).
    pub fn largest_fitting(&self, bytes: f64) -> (Bits, u64) {
        self.entries
            .iter()
            .rev()
            .find(|e| e.1 as f64 <= bytes)
            .copied()
            .unwrap_or(self.entries[0])
    }

    /// The adjacent pair (lo, hi) with `size(lo) <= bytes < size(hi)`, or `None` when `bytes`
    /// is below the lowest or at/above the highest size.
    pub fn bracket(&self, bytes: f64) -> Option<((Bits, u64), (Bits, u64))> {
        self.entries
            .windows(2)
            .find(|w| w[0].1 as f64 <= bytes && bytes < w[1].1 as f64)
            .map(|w| (w[0], w[1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantpipe_messages::clipping::{ClipMethod, ValueKind};

    fn b(n: u8) -> Bits {
        Bits::new(n).unwrap()
    }

    #[test]
    fn sizes_from_shapes_equal_real_payloads_of_any_values() {
        let shapes = vec![vec![2, 5, 7], vec![2, 5, 7]];
        let table = SizeTable::from_shapes(&shapes, &allowed_bits(b(2), Bits::RAW)).unwrap();
        let values: Vec<f32> = (0..70).map(|i| (i as f32 * 0.731).sin() * 3.0).collect();
        for &(bits, bytes) in table.entries() {
            let clip = Clip::Method {
                method: ClipMethod::Aciq,
                kind: ValueKind::TwoSided,
            };
            let t = |v: &[f32]| codec::encode(v, &shapes[0], bits, clip).unwrap();
            let real = BoundaryPayload::pair(
                t(&values),
                t(&values[..].iter().rev().copied().collect::<Vec<_>>()),
            )
            .to_bytes();
            assert_eq!(real.len() as u64, bytes, "{} bits", bits.get());
        }
        assert_eq!(table.entries().len(), 16);
        assert_eq!(table.highest().0, Bits::RAW);
    }

    #[test]
    fn fitting_and_brackets_pick_by_size() {
        let t = SizeTable::new(vec![(b(2), 100), (b(4), 200), (b(8), 400)]).unwrap();
        assert_eq!(t.largest_fitting(399.0).0, b(4));
        assert_eq!(t.largest_fitting(50.0).0, b(2));
        assert_eq!(t.largest_fitting(1e9).0, b(8));
        assert_eq!(
            t.bracket(250.0).map(|p| (p.0 .0, p.1 .0)),
            Some((b(4), b(8)))
        );
        assert!(t.bracket(400.0).is_none() && t.bracket(99.0).is_none());
    }

    #[test]
    fn inconsistent_tables_are_refused() {
        assert!(SizeTable::new(vec![]).is_err());
        let err = SizeTable::new(vec![(b(4), 200), (b(2), 100)]).unwrap_err();
        assert!(err.contains("increase"), "{err}");
        let err = SizeTable::new(vec![(b(2), 300), (b(4), 100)]).unwrap_err();
        assert!(err.contains("decrease"), "{err}");
        let err = SizeTable::from_shapes(&[], &[b(2)]).unwrap_err();
        assert!(err.contains("1 or 2"), "{err}");
    }
}
