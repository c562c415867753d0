//! The stages the `admission` target checks messages against: every kind of input a stage
//! takes (token ids, pixels, hidden states after one- and two-tensor cuts, text and image), at
//! small dimensions so that valid messages stay small. The first byte of a fuzz input picks one.

use quantpipe_messages::admission::{Expected, ModelInputs, ModelShape};

/// The fleet of every message the target reads (others are refused as foreign).
pub const FLEET: &str = "fuzz";

pub fn text() -> ModelShape {
    ModelShape {
        inputs: ModelInputs::Text {
            vocab: 30,
            max_positions: 8,
        },
        hidden: 6,
        intermediate: 10,
        units: 8,
    }
}

pub fn image() -> ModelShape {
    ModelShape {
        inputs: ModelInputs::Image {
            channels: 3,
            image_size: 4,
            tokens: 5,
        },
        hidden: 6,
        intermediate: 10,
        units: 8,
    }
}

/// Stages starting at units 1 to 5 of each model: tokens or pixels, then a two-tensor cut
/// (after attention), one tensor, two tensors (after the first MLP layer), one tensor.
pub fn stages() -> Vec<Expected> {
    let mut out = Vec::new();
    for model in [text(), image()] {
        for unit in 1..=5 {
            out.push(Expected::entering(&model, unit, 4).expect("a unit of the model"));
        }
    }
    out
}
