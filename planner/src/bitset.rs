//! Fixed-width bitsets over cut positions 0..=n, stored in a flat word arena so the feasibility
//! checks allocate once per check rather than once per state.

/// Words needed for `bits` bits.
pub fn words_for(bits: usize) -> usize {
    bits.div_ceil(64)
}

/// Sets bit `i`.
#[inline]
pub fn set(words: &mut [u64], i: usize) {
    words[i / 64] |= 1u64 << (i % 64);
}

/// Tests bit `i`.
#[inline]
pub fn get(words: &[u64], i: usize) -> bool {
    words[i / 64] >> (i % 64) & 1 == 1
}

/// Calls `f` for each set bit, ascending.
#[inline]
pub fn for_each(words: &[u64], mut f: impl FnMut(usize)) {
    for (w, &word) in words.iter().enumerate() {
        let mut x = word;
        while x != 0 {
            let b = x.trailing_zeros() as usize;
            f(w * 64 + b);
            x &= x - 1;
        }
    }
}

/// Set bits, descending.
pub fn descending(words: &[u64]) -> Vec<usize> {
    let mut v = Vec::new();
    for_each(words, |i| v.push(i));
    v.reverse();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_iterate() {
        let mut w = vec![0u64; words_for(130)];
        for i in [0, 63, 64, 129] {
            set(&mut w, i);
        }
        assert!(get(&w, 64) && !get(&w, 65));
        assert_eq!(descending(&w), vec![129, 64, 63, 0]);
    }
}
