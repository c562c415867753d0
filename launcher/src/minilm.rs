//! MiniLM workloads of launched fleets: long text items and a uniform profile.

use anyhow::Result;
use std::path::Path;

/// `n` text items of at least `min_words` words each (long enough that a 128-token tokenizer
/// truncates them, so every microbatch has the profiled sequence length).
pub fn long_texts(n: usize, min_words: usize) -> Vec<String> {
    const WORDS: &[&str] = &[
        "the",
        "central",
        "bank",
        "raised",
        "interest",
        "rates",
        "while",
        "a",
        "late",
        "goal",
        "settled",
        "the",
        "cup",
        "final",
        "and",
        "parliament",
        "debated",
        "the",
        "budget",
        "shares",
        "fell",
        "after",
        "a",
        "profit",
        "warning",
        "researchers",
        "released",
        "a",
        "speech",
        "model",
    ];
    (0..n)
        .map(|i| {
            let mut s = format!("item {i}");
            for k in 0..min_words {
                s.push(' ');
                s.push_str(WORDS[(i * 7 + k * 3) % WORDS.len()]);
            }
            s
        })
        .collect()
}

/// Writes a MiniLM profile (`device.profile_file`) in which all 24 units cost the same, so the
/// nodes skip measuring and the planner, when it is used, spreads units evenly by count.
pub fn write_uniform_profile(path: &Path, ubatch: usize) -> Result<()> {
    crate::uniform_profile::write_uniform_profile(path, "minilm", 24, ubatch, 128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_have_the_requested_words() {
        let t = long_texts(3, 150);
        assert_eq!(t.len(), 3);
        assert!(t.iter().all(|s| s.split(' ').count() == 152));
        assert_ne!(t[0], t[1]);
    }
}
