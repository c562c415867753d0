//! Dense bit packing of quantized codes: exactly `b` bits per value, no padding between values.
//!
//! Layout: value `k` occupies bits `[k*b, (k+1)*b)` of the payload, counted LSB-first within
//! little-endian bytes. Eight values of `b` bits are exactly `b` bytes, so the packer works on
//! groups of 8 codes -> `b` bytes: each group is assembled in one 64-bit (b <= 8) or 128-bit
//! (b <= 16) register with constant shifts and stored with one copy. Every group is independent,
//! which is what lets LLVM unroll and vectorise the loop; per-value branching or a running bit
//! cursor (the classic bit writer) would serialise it. Only the final partial group (n % 8
//! values) is padded with zero bits, so the payload is exactly `ceil(n*b/8)` bytes.
//!
//! The PipeEdge reference packs into 32-bit words, which wastes bits whenever b does not divide
//! 32 (6 bits gives 5x instead of 5.33x); this layout never does.
//!
//! Bitwidths are const generics so each of the 16 variants is compiled with its own constant
//! shifts; [`pack`] and [`unpack`] dispatch at run time.

/// Packs `codes` (each `< 2^bits`) into `out`, which must be exactly `ceil(codes.len()*bits/8)`
/// bytes. `bits` must be in 1..=16. Bits above `bits` in a code are masked off.
#[inline(always)]
pub(crate) fn pack(bits: u8, codes: &[u16], out: &mut [u8]) {
    dispatch!(bits, pack_const, codes, out)
}

/// Unpacks `codes.len()` codes of `bits` bits from `packed` (the inverse of [`pack`]).
/// `packed` must be exactly `ceil(codes.len()*bits/8)` bytes. `bits` must be in 1..=16.
#[inline(always)]
pub(crate) fn unpack(bits: u8, packed: &[u8], codes: &mut [u16]) {
    dispatch!(bits, unpack_const, packed, codes)
}

/// The code of value `index` in `packed` (the layout [`pack`] writes) at `bits` (1..=16), read
/// on its own: what the decoder uses for the few outlier-channel values. Bytes past the end of
/// `packed` read as zero bits, so a short buffer gives a wrong code rather than a panic.
pub(crate) fn code_at(bits: u8, packed: &[u8], index: usize) -> u16 {
    let b = usize::from(bits);
    let bit = index * b;
    let byte = bit / 8;
    // A code starts at bit offset <= 7 of its first byte and spans at most 16 bits: 3 bytes.
    let word = (0..3).fold(0u32, |w, i| {
        w | u32::from(packed.get(byte + i).copied().unwrap_or(0)) << (8 * i)
    });
    ((word >> (bit % 8)) & ((1u32 << b) - 1)) as u16
}

/// Calls `$f::<B>($args)` for the runtime bitwidth `$bits` in 1..=16.
macro_rules! dispatch {
    ($bits:expr, $f:ident, $($arg:expr),*) => {
        match $bits {
            1 => $f::<1>($($arg),*),
            2 => $f::<2>($($arg),*),
            3 => $f::<3>($($arg),*),
            4 => $f::<4>($($arg),*),
            5 => $f::<5>($($arg),*),
            6 => $f::<6>($($arg),*),
            7 => $f::<7>($($arg),*),
            8 => $f::<8>($($arg),*),
            9 => $f::<9>($($arg),*),
            10 => $f::<10>($($arg),*),
            11 => $f::<11>($($arg),*),
            12 => $f::<12>($($arg),*),
            13 => $f::<13>($($arg),*),
            14 => $f::<14>($($arg),*),
            15 => $f::<15>($($arg),*),
            16 => $f::<16>($($arg),*),
            other => panic!("pack/unpack called with {other} bits; callers validate Bits first"),
        }
    };
}
use dispatch;

/// Assembles 8 codes of `B` bits into the low `8*B` bits of a u128 (value i at bit i*B).
#[inline(always)]
fn group_word<const B: usize>(codes: &[u16; 8]) -> u128 {
    let mask = (1u32 << B) - 1;
    if B <= 8 {
        // 64 bits suffice; u64 arithmetic is cheaper and vectorises better than u128.
        let mut w = 0u64;
        for (i, &c) in codes.iter().enumerate() {
            w |= u64::from(u32::from(c) & mask) << (i * B);
        }
        u128::from(w)
    } else {
        let mut w = 0u128;
        for (i, &c) in codes.iter().enumerate() {
            w |= u128::from(u32::from(c) & mask) << (i * B);
        }
        w
    }
}

/// Splits a u128 holding 8 packed codes back into codes.
#[inline(always)]
fn split_word<const B: usize>(w: u128, codes: &mut [u16; 8]) {
    let mask = (1u32 << B) - 1;
    if B <= 8 {
        let w = w as u64;
        for (i, c) in codes.iter_mut().enumerate() {
            *c = ((w >> (i * B)) as u32 & mask) as u16;
        }
    } else {
        for (i, c) in codes.iter_mut().enumerate() {
            *c = ((w >> (i * B)) as u32 & mask) as u16;
        }
    }
}

/// Bitwidths that divide 8 (1, 2, 4, 8): K = 8/B whole codes per byte. One byte per iteration
/// with no cross-byte carries is a simpler loop than the 8-code groups, and LLVM vectorises it.
#[inline(always)]
fn pack_bytewise<const B: usize>(codes: &[u16], out: &mut [u8]) {
    let k = 8 / B;
    let mask = ((1u32 << B) - 1) as u16;
    let chunks = codes.chunks_exact(k);
    let tail = chunks.remainder();
    for (c, o) in chunks.zip(out.iter_mut()) {
        let mut byte = 0u16;
        for (j, &v) in c.iter().enumerate() {
            byte |= (v & mask) << (j * B);
        }
        *o = byte as u8;
    }
    if !tail.is_empty() {
        let mut byte = 0u16;
        for (j, &v) in tail.iter().enumerate() {
            byte |= (v & mask) << (j * B);
        }
        out[out.len() - 1] = byte as u8;
    }
}

#[inline(always)]
fn unpack_bytewise<const B: usize>(packed: &[u8], codes: &mut [u16]) {
    let k = 8 / B;
    let mask = ((1u32 << B) - 1) as u16;
    let mut chunks = codes.chunks_exact_mut(k);
    for (c, &p) in (&mut chunks).zip(packed.iter()) {
        for (j, v) in c.iter_mut().enumerate() {
            *v = (u16::from(p) >> (j * B)) & mask;
        }
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let p = packed[packed.len() - 1];
        for (j, v) in tail.iter_mut().enumerate() {
            *v = (u16::from(p) >> (j * B)) & mask;
        }
    }
}

/// Bitwidths whose codes realign every 3 bytes (6 bits: 4 codes, 12 bits: 2 codes): one u32
/// per 3-byte unit. A stride-3 byte loop is an interleaved access pattern LLVM's vectoriser
/// handles, unlike the generic 8-code groups.
#[inline(always)]
fn pack_units3<const B: usize>(codes: &[u16], out: &mut [u8]) {
    let k = 24 / B;
    let mask = (1u32 << B) - 1;
    let chunks = codes.chunks_exact(k);
    let tail = chunks.remainder();
    let (full, rest) = out.split_at_mut(codes.len() / k * 3);
    for (c, o) in chunks.zip(full.chunks_exact_mut(3)) {
        let mut w = 0u32;
        for (j, &v) in c.iter().enumerate() {
            w |= (u32::from(v) & mask) << (j * B);
        }
        o[0] = w as u8;
        o[1] = (w >> 8) as u8;
        o[2] = (w >> 16) as u8;
    }
    if !tail.is_empty() {
        let mut w = 0u32;
        for (j, &v) in tail.iter().enumerate() {
            w |= (u32::from(v) & mask) << (j * B);
        }
        let n = rest.len();
        rest.copy_from_slice(&w.to_le_bytes()[..n]);
    }
}

#[inline(always)]
fn unpack_units3<const B: usize>(packed: &[u8], codes: &mut [u16]) {
    let k = 24 / B;
    let mask = (1u32 << B) - 1;
    let (full, rest) = packed.split_at(codes.len() / k * 3);
    let mut chunks = codes.chunks_exact_mut(k);
    for (c, p) in (&mut chunks).zip(full.chunks_exact(3)) {
        let w = u32::from(p[0]) | u32::from(p[1]) << 8 | u32::from(p[2]) << 16;
        for (j, v) in c.iter_mut().enumerate() {
            *v = ((w >> (j * B)) & mask) as u16;
        }
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mut bytes = [0u8; 4];
        bytes[..rest.len()].copy_from_slice(rest);
        let w = u32::from_le_bytes(bytes);
        for (j, v) in tail.iter_mut().enumerate() {
            *v = ((w >> (j * B)) & mask) as u16;
        }
    }
}

#[inline(always)]
fn pack_const<const B: usize>(codes: &[u16], out: &mut [u8]) {
    debug_assert_eq!(out.len(), (codes.len() * B).div_ceil(8));
    if B == 1 || B == 2 || B == 4 || B == 8 {
        return pack_bytewise::<B>(codes, out);
    }
    if B == 6 || B == 12 {
        return pack_units3::<B>(codes, out);
    }
    if B == 16 {
        for (c, o) in codes.iter().zip(out.chunks_exact_mut(2)) {
            o.copy_from_slice(&c.to_le_bytes());
        }
        return;
    }
    let groups = codes.chunks_exact(8);
    let tail = groups.remainder();
    // Split by index: the tail's bytes can themselves be B long (e.g. 6 codes of 3 bits), so
    // chunks_exact_mut(B) would mistake them for a full group.
    let (full, rest) = out.split_at_mut(codes.len() / 8 * B);
    for (g, o) in groups.zip(full.chunks_exact_mut(B)) {
        let g: &[u16; 8] = g.try_into().expect("chunks_exact(8)");
        o.copy_from_slice(&group_word::<B>(g).to_le_bytes()[..B]);
    }
    if !tail.is_empty() {
        let mut padded = [0u16; 8];
        padded[..tail.len()].copy_from_slice(tail);
        let bytes = group_word::<B>(&padded).to_le_bytes();
        rest.copy_from_slice(&bytes[..rest.len()]);
    }
}

#[inline(always)]
fn unpack_const<const B: usize>(packed: &[u8], codes: &mut [u16]) {
    debug_assert_eq!(packed.len(), (codes.len() * B).div_ceil(8));
    if B == 1 || B == 2 || B == 4 || B == 8 {
        return unpack_bytewise::<B>(packed, codes);
    }
    if B == 6 || B == 12 {
        return unpack_units3::<B>(packed, codes);
    }
    if B == 16 {
        for (c, p) in codes.iter_mut().zip(packed.chunks_exact(2)) {
            *c = u16::from_le_bytes([p[0], p[1]]);
        }
        return;
    }
    let (full, rest) = packed.split_at(codes.len() / 8 * B);
    let mut groups = codes.chunks_exact_mut(8);
    for (g, i) in (&mut groups).zip(full.chunks_exact(B)) {
        let mut bytes = [0u8; 16];
        bytes[..B].copy_from_slice(i);
        let g: &mut [u16; 8] = g.try_into().expect("chunks_exact_mut(8)");
        split_word::<B>(u128::from_le_bytes(bytes), g);
    }
    let tail = groups.into_remainder();
    if !tail.is_empty() {
        let mut bytes = [0u8; 16];
        bytes[..rest.len()].copy_from_slice(rest);
        let mut padded = [0u16; 8];
        split_word::<B>(u128::from_le_bytes(bytes), &mut padded);
        let n = tail.len();
        tail.copy_from_slice(&padded[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference bit writer: value k at bits [k*b, (k+1)*b), LSB first.
    fn pack_reference(bits: u8, codes: &[u16]) -> Vec<u8> {
        let b = usize::from(bits);
        let mut out = vec![0u8; (codes.len() * b).div_ceil(8)];
        for (k, &c) in codes.iter().enumerate() {
            for j in 0..b {
                if (c >> j) & 1 == 1 {
                    let bit = k * b + j;
                    out[bit / 8] |= 1 << (bit % 8);
                }
            }
        }
        out
    }

    #[test]
    fn matches_reference_layout_for_every_bitwidth_and_tail() {
        for bits in 1..=16u8 {
            for n in 0..40usize {
                let codes: Vec<u16> = (0..n)
                    .map(|k| {
                        ((k as u32).wrapping_mul(2654435761) >> 7) as u16
                            & ((1u32 << bits) - 1) as u16
                    })
                    .collect();
                let mut packed = vec![0u8; (n * usize::from(bits)).div_ceil(8)];
                pack(bits, &codes, &mut packed);
                assert_eq!(packed, pack_reference(bits, &codes), "bits {bits} n {n}");
                let mut back = vec![0u16; n];
                unpack(bits, &packed, &mut back);
                assert_eq!(back, codes, "bits {bits} n {n}");
            }
        }
    }

    #[test]
    fn code_at_reads_what_pack_wrote() {
        for bits in 1..=16u8 {
            let n = 37;
            let codes: Vec<u16> = (0..n)
                .map(|i| ((i as u32 * 40_503 + 17) & ((1u32 << bits) - 1)) as u16)
                .collect();
            let mut packed = vec![0u8; (n * usize::from(bits)).div_ceil(8)];
            pack(bits, &codes, &mut packed);
            for (i, &c) in codes.iter().enumerate() {
                assert_eq!(code_at(bits, &packed, i), c, "bits {bits} index {i}");
            }
        }
    }

    #[test]
    fn six_bits_is_dense() {
        // 4 values of 6 bits: 24 bits = 3 bytes, laid out LSB-first.
        let mut out = [0u8; 3];
        pack(6, &[0b111111, 0, 0b101010, 1], &mut out);
        assert_eq!(out, [0b0011_1111, 0b1010_0000, 0b0000_0110]);
    }

    #[test]
    fn high_bits_are_masked() {
        let mut out = [0u8; 1];
        pack(2, &[0xFFFF, 0, 0, 0], &mut out);
        assert_eq!(out, [0b11]);
    }
}
