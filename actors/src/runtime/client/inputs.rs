//! What a run streams: the items, cut into the plan's microbatches, each encoded as the
//! message body stage 0 takes. Texts are tokenized here, images preprocessed in [`images`];
//! other inputs (already-encoded tensors) implement [`Inputs`] themselves.

use crate::runtime::tensor_wire::{mask_to_wire, tokens_to_wire};
use anyhow::{bail, Context as _, Result};
use quantpipe_messages::{Body, Mask};
use quantpipe_model_shards::preprocess::TextTokenizer;
use std::path::Path;

mod images;
pub use images::{ImageInputs, ImageItem};

/// One microbatch as the client sends it: the header's body and mask, and the bytes after the
/// header (empty for tokens).
pub struct Encoded {
    pub body: Body,
    pub mask: Option<Mask>,
    pub payload: Vec<u8>,
}

/// A run's input, microbatch by microbatch.
pub trait Inputs {
    /// Items in all.
    fn items(&self) -> usize;
    /// Cuts the items into microbatches of `ubatch` (the plan's) and answers how many there
    /// are; fails when these inputs cannot be cut so.
    fn cut(&mut self, ubatch: usize) -> Result<usize>;
    /// Items in microbatch `seq` (what its result must hold).
    fn items_in(&self, seq: usize) -> usize;
    /// Microbatch `seq`, ready to send.
    fn encode(&self, seq: usize) -> Result<Encoded>;
}

/// The items of microbatch `seq` when `items` are cut in microbatches of `ubatch`: the last
/// one holds the remainder, past the end is empty.
fn microbatch(items: usize, ubatch: usize, seq: usize) -> std::ops::Range<usize> {
    let from = seq.saturating_mul(ubatch).min(items);
    from..from.saturating_add(ubatch).min(items)
}

/// Text items, tokenized with the model folder's tokenizer as they are sent.
pub struct TextInputs<'a> {
    texts: &'a [String],
    tokenizer: TextTokenizer,
    ubatch: usize,
}

impl<'a> TextInputs<'a> {
    /// `texts` with the tokenizer of `model_dir` (`tokenizer.json`), at most `max_len` tokens.
    pub fn new(texts: &'a [String], model_dir: &Path, max_len: usize) -> Result<Self> {
        let path = model_dir.join("tokenizer.json");
        let tokenizer = TextTokenizer::from_file(&path, max_len)
            .with_context(|| format!("client tokenizer {}", path.display()))?;
        Ok(TextInputs {
            texts,
            tokenizer,
            ubatch: 1,
        })
    }

    fn batch(&self, seq: usize) -> &[String] {
        &self.texts[microbatch(self.texts.len(), self.ubatch, seq)]
    }
}

impl Inputs for TextInputs<'_> {
    fn items(&self) -> usize {
        self.texts.len()
    }

    fn cut(&mut self, ubatch: usize) -> Result<usize> {
        if ubatch == 0 {
            bail!("microbatches of 0 items");
        }
        self.ubatch = ubatch;
        Ok(self.texts.len().div_ceil(ubatch))
    }

    fn items_in(&self, seq: usize) -> usize {
        self.batch(seq).len()
    }

    fn encode(&self, seq: usize) -> Result<Encoded> {
        let refs: Vec<&str> = self.batch(seq).iter().map(String::as_str).collect();
        let b = self.tokenizer.encode_batch(&refs)?;
        Ok(Encoded {
            body: Body::Tokens(tokens_to_wire(&b.tensors[0])?),
            mask: b.mask.as_ref().map(mask_to_wire).transpose()?,
            payload: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::microbatch;

    #[test]
    fn the_last_microbatch_holds_the_remainder_and_none_lies_past_the_end() {
        assert_eq!(microbatch(10, 4, 0), 0..4);
        assert_eq!(microbatch(10, 4, 2), 8..10);
        assert!(microbatch(10, 4, 3).is_empty());
        assert!(microbatch(10, 4, usize::MAX).is_empty());
    }
}
