//! What a stage takes in, as plain numbers: derived from the model's shape and the first unit of
//! the stage's shard, the same rules the shard checks its input by (token ids or pixels into unit
//! 1; after a cut, the one or two hidden-state tensors that cut carries), plus the bounds a
//! microbatch must stay within.

/// A model's dimensions that decide what its stages take in (from its `config.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelShape {
    pub inputs: ModelInputs,
    pub hidden: u64,
    pub intermediate: u64,
    /// Units of the model: four per block.
    pub units: usize,
}

/// What enters the model's first unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelInputs {
    /// Token ids below `vocab`, at most `max_positions` per item, with an attention mask.
    Text { vocab: u64, max_positions: u64 },
    /// `[channels, image_size, image_size]` pixels per item, `tokens` hidden states per item
    /// after the embeddings; no mask.
    Image {
        channels: u64,
        image_size: u64,
        tokens: u64,
    },
}

/// The tensors a stage takes in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageInput {
    /// `[batch, tokens]` ids in `0..vocab`, `tokens` in `1..=max_positions`.
    Tokens { vocab: u64, max_positions: u64 },
    /// One `[batch, channels, image_size, image_size]` tensor.
    Pixels { channels: u64, image_size: u64 },
    /// One `[batch, tokens, width]` tensor per width (two after an attention or first-MLP unit).
    Hidden {
        widths: Vec<u64>,
        tokens: TokenCount,
    },
}

/// Tokens per item of the hidden states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCount {
    /// Images: always this many.
    Exactly(u64),
    /// Text: as many as the padded sequence, at most the model's positions.
    UpTo(u64),
}

impl TokenCount {
    pub fn admits(self, t: u64) -> bool {
        match self {
            TokenCount::Exactly(n) => t == n,
            TokenCount::UpTo(max) => (1..=max).contains(&t),
        }
    }

    /// The largest count admitted.
    pub fn max(self) -> u64 {
        match self {
            TokenCount::Exactly(n) | TokenCount::UpTo(n) => n,
        }
    }
}

/// Everything a stage checks an incoming microbatch against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub input: StageInput,
    /// Whether an attention mask must come with it (text) or must not (images).
    pub mask: bool,
    /// The most items one microbatch may hold.
    pub max_batch: u64,
}

/// Room in a message for the envelope, the activation header's fields, tensor headers and
/// per-sample parameters beyond the values themselves.
const HEADER_SLACK_BYTES: u64 = 64 << 10;
/// Bytes per token id in MessagePack at most (a marker byte and 8 bytes).
const TOKEN_ID_BYTES: u64 = 9;
/// Bytes per outlier channel at most (channel, scale and offset, with markers).
const OUTLIER_BYTES: u64 = 24;
/// Bytes per sample's (scale, offset) at most.
const SAMPLE_PARAM_BYTES: u64 = 12;

impl Expected {
    /// What enters `unit` (the first unit of a stage's shard) of `model`, for microbatches of at
    /// most `max_batch` items. Errors name a unit outside the model.
    pub fn entering(model: &ModelShape, unit: usize, max_batch: u64) -> Result<Expected, String> {
        if unit == 0 || unit > model.units {
            return Err(format!(
                "unit {unit} outside the model's units 1..={}",
                model.units
            ));
        }
        let text = matches!(model.inputs, ModelInputs::Text { .. });
        let input = match (unit, model.inputs) {
            (
                1,
                ModelInputs::Text {
                    vocab,
                    max_positions,
                },
            ) => StageInput::Tokens {
                vocab,
                max_positions,
            },
            (
                1,
                ModelInputs::Image {
                    channels,
                    image_size,
                    ..
                },
            ) => StageInput::Pixels {
                channels,
                image_size,
            },
            (_, inputs) => StageInput::Hidden {
                widths: widths_after(model, unit - 1),
                tokens: match inputs {
                    ModelInputs::Text { max_positions, .. } => TokenCount::UpTo(max_positions),
                    ModelInputs::Image { tokens, .. } => TokenCount::Exactly(tokens),
                },
            },
        };
        Ok(Expected {
            input,
            mask: text,
            max_batch,
        })
    }

    /// The largest message that can carry an admissible microbatch: every value raw (32 bits),
    /// the largest batch and sequence, plus room for headers. A stage refuses anything larger
    /// before parsing it.
    pub fn max_message_bytes(&self) -> u64 {
        let b = self.max_batch;
        let (values, tokens) = match &self.input {
            StageInput::Tokens { max_positions, .. } => {
                let t = *max_positions;
                (b.saturating_mul(t).saturating_mul(TOKEN_ID_BYTES), t)
            }
            StageInput::Pixels {
                channels,
                image_size,
            } => (
                b.saturating_mul(*channels)
                    .saturating_mul(image_size.saturating_mul(*image_size))
                    .saturating_mul(4),
                0,
            ),
            StageInput::Hidden { widths, tokens } => {
                let t = tokens.max();
                let per_token: u64 = widths.iter().fold(0u64, |a, w| a.saturating_add(*w));
                let outliers = per_token.saturating_mul(OUTLIER_BYTES);
                (
                    b.saturating_mul(t)
                        .saturating_mul(per_token)
                        .saturating_mul(4)
                        .saturating_add(outliers),
                    t,
                )
            }
        };
        let mask = if self.mask {
            b.saturating_mul(tokens)
        } else {
            0
        };
        values
            .saturating_add(mask)
            .saturating_add(b.saturating_mul(2 * SAMPLE_PARAM_BYTES))
            .saturating_add(HEADER_SLACK_BYTES)
    }
}

/// Widths of the tensors crossing the cut after unit `k`: (context, residual) after an attention
/// unit, (intermediate, residual) after the first MLP layer, the hidden state otherwise.
fn widths_after(model: &ModelShape, k: usize) -> Vec<u64> {
    match (k - 1) % 4 {
        0 => vec![model.hidden, model.hidden],
        2 => vec![model.intermediate, model.hidden],
        _ => vec![model.hidden],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn minilm() -> ModelShape {
        ModelShape {
            inputs: ModelInputs::Text {
                vocab: 30522,
                max_positions: 512,
            },
            hidden: 384,
            intermediate: 1536,
            units: 24,
        }
    }

    fn vit() -> ModelShape {
        ModelShape {
            inputs: ModelInputs::Image {
                channels: 3,
                image_size: 224,
                tokens: 197,
            },
            hidden: 768,
            intermediate: 3072,
            units: 48,
        }
    }

    #[test]
    fn the_first_unit_takes_token_ids_or_pixels() {
        let e = Expected::entering(&minilm(), 1, 8).unwrap();
        assert_eq!(
            e.input,
            StageInput::Tokens {
                vocab: 30522,
                max_positions: 512
            }
        );
        assert!(e.mask);
        let e = Expected::entering(&vit(), 1, 8).unwrap();
        assert_eq!(
            e.input,
            StageInput::Pixels {
                channels: 3,
                image_size: 224
            }
        );
        assert!(!e.mask);
    }

    #[test]
    fn a_cut_after_attention_or_the_first_mlp_layer_carries_two_tensors() {
        let widths = |unit| match Expected::entering(&minilm(), unit, 8).unwrap().input {
            StageInput::Hidden { widths, .. } => widths,
            other => panic!("{other:?}"),
        };
        assert_eq!(widths(2), [384, 384]);
        assert_eq!(widths(3), [384]);
        assert_eq!(widths(4), [1536, 384]);
        assert_eq!(widths(5), [384]);
        assert_eq!(widths(24), [1536, 384]);
    }

    #[test]
    fn image_hidden_states_have_exactly_the_image_tokens_and_text_up_to_the_positions() {
        let e = Expected::entering(&vit(), 9, 8).unwrap();
        assert_eq!(
            e.input,
            StageInput::Hidden {
                widths: vec![768],
                tokens: TokenCount::Exactly(197)
            }
        );
        let StageInput::Hidden { tokens, .. } = Expected::entering(&minilm(), 9, 8).unwrap().input
        else {
            panic!("hidden states")
        };
        assert!(tokens.admits(1) && tokens.admits(512));
        assert!(!tokens.admits(0) && !tokens.admits(513));
    }

    #[test]
    fn units_outside_the_model_are_named() {
        let err = Expected::entering(&minilm(), 25, 8).unwrap_err();
        assert!(err.contains("unit 25") && err.contains("1..=24"), "{err}");
        assert!(Expected::entering(&minilm(), 0, 8).is_err());
    }

    #[test]
    fn the_message_bound_holds_the_largest_raw_microbatch_and_no_more() {
        // After u1 of MiniLM: 8 items x 512 tokens x (384 + 384) raw values, 4 bytes each.
        let e = Expected::entering(&minilm(), 2, 8).unwrap();
        let values = 8 * 512 * 768 * 4;
        assert!(e.max_message_bytes() >= values + 8 * 512);
        assert!(e.max_message_bytes() < values + (1 << 20));
        // Token ids are small messages: a megabyte is far more than 8 items can need.
        let e = Expected::entering(&minilm(), 1, 8).unwrap();
        assert!(e.max_message_bytes() < 1 << 20);
    }
}
