//! Image items, preprocessed with the model folder's `preprocessor_config.json` (ViT's defaults
//! when it has none, as `quantpipe infer` does) and sent to unit 1 as raw f32 pixels.
//!
//! Items are kept as they were given (a file, encoded bytes, raw grey pixels) and preprocessed
//! microbatch by microbatch as they are sent: a run of ten thousand 224x224 images would
//! otherwise hold 6 GB of pixels.

use super::{microbatch, Encoded, Inputs};
use anyhow::{bail, Context as _, Result};
use quantpipe_messages::clipping::{ClipMethod, ValueKind};
use quantpipe_messages::codec::{self, Clip};
use quantpipe_messages::{Bits, Body, BoundaryPayload};
use quantpipe_model_shards::preprocess::ImagePreprocessor;
use quantpipe_model_shards::{Family, ModelConfig};
use std::path::{Path, PathBuf};
use tch::Tensor;

/// One image as the caller has it.
#[derive(Debug, Clone)]
pub enum ImageItem {
    /// A PNG or JPEG file.
    File(PathBuf),
    /// PNG or JPEG bytes.
    Encoded(Vec<u8>),
    /// 8-bit grey pixels, row by row (data sets stored as arrays, such as Fashion-MNIST).
    Grey {
        width: u32,
        height: u32,
        pixels: Vec<u8>,
    },
}

impl ImageItem {
    /// Where the item came from, for errors.
    fn describe(&self, index: usize) -> String {
        match self {
            ImageItem::File(path) => format!("image {index} ({})", path.display()),
            _ => format!("image {index}"),
        }
    }
}

/// Image items of an image model (ViT, DeiT), cut into the plan's microbatches.
pub struct ImageInputs {
    items: Vec<ImageItem>,
    config: ModelConfig,
    preprocessor: ImagePreprocessor,
    ubatch: usize,
}

impl ImageInputs {
    /// `items` for the model in `model_dir` (its `config.json` and, when there is one, its
    /// `preprocessor_config.json`); fails when the model does not take images.
    pub fn new(items: Vec<ImageItem>, model_dir: &Path) -> Result<Self> {
        let path = model_dir.join("config.json");
        let config = ModelConfig::from_file(&path, None)
            .with_context(|| format!("the model of the image inputs, {}", model_dir.display()))?;
        if config.family == Family::Bert {
            bail!(
                "{} is a text model ({}): it takes texts, not images",
                model_dir.display(),
                config.architecture
            );
        }
        let preprocessor = ImagePreprocessor::for_model(&config, Some(model_dir))?;
        Ok(ImageInputs {
            items,
            config,
            preprocessor,
            ubatch: 1,
        })
    }

    /// `[C, H, W]`: what unit 1 takes of one item.
    fn item_shape(&self) -> [i64; 3] {
        let c = &self.config;
        [c.num_channels, c.image_size, c.image_size]
    }

    /// Item `index` preprocessed: `[C, H, W]` f32, or an error naming the item.
    fn pixels(&self, index: usize) -> Result<Tensor> {
        let item = &self.items[index];
        let pre = &self.preprocessor;
        let t = match item {
            ImageItem::File(path) => pre.load_file(path, &self.config),
            ImageItem::Encoded(bytes) => pre.load_encoded(bytes, &self.config),
            ImageItem::Grey {
                width,
                height,
                pixels,
            } => pre.load_grey(pixels.clone(), *width, *height, &self.config),
        }
        .with_context(|| item.describe(index))?;
        if t.size() != self.item_shape() {
            bail!(
                "{}: preprocessed to {:?}, but {} takes {:?} (check preprocessor_config.json's \
                 size and crop_size)",
                item.describe(index),
                t.size(),
                self.config.architecture,
                self.item_shape()
            );
        }
        Ok(t)
    }
}

impl Inputs for ImageInputs {
    fn items(&self) -> usize {
        self.items.len()
    }

    fn cut(&mut self, ubatch: usize) -> Result<usize> {
        if ubatch == 0 {
            bail!("microbatches of 0 items");
        }
        self.ubatch = ubatch;
        Ok(self.items.len().div_ceil(ubatch))
    }

    fn items_in(&self, seq: usize) -> usize {
        microbatch(self.items.len(), self.ubatch, seq).len()
    }

    fn encode(&self, seq: usize) -> Result<Encoded> {
        let range = microbatch(self.items.len(), self.ubatch, seq);
        if range.is_empty() {
            bail!("microbatch {seq} lies past the last item");
        }
        let pixels = range.map(|i| self.pixels(i)).collect::<Result<Vec<_>>>()?;
        Ok(Encoded {
            body: Body::Payload,
            mask: None,
            payload: pixel_payload(&Tensor::stack(&pixels, 0))?,
        })
    }
}

/// `[B, C, H, W]` pixels as the payload unit 1 takes: raw f32 (32 bits, no clipping applies).
fn pixel_payload(pixels: &Tensor) -> Result<Vec<u8>> {
    let shape: Vec<usize> = pixels.size().iter().map(|&d| d as usize).collect();
    let values = Vec::<f32>::try_from(&pixels.contiguous().view(-1))?;
    let clip = Clip::Method {
        method: ClipMethod::Naive,
        kind: ValueKind::TwoSided,
    };
    let encoded = codec::encode(&values, &shape, Bits::new(32)?, clip)?;
    Ok(BoundaryPayload::single(encoded).to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::tensor_wire::decode_payload;
    use quantpipe_messages::DecodeLimits;

    /// A model folder of a 1-channel 4x4 ViT whose preprocessor only rescales.
    fn vit_folder(family_architecture: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            format!(
                r#"{{"architectures":["{family_architecture}"],"hidden_size":8,
                "num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":16,
                "image_size":4,"patch_size":2,"num_channels":1,"vocab_size":10}}"#
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("preprocessor_config.json"),
            r#"{"do_resize":true,"size":{"height":4,"width":4},"do_rescale":true,
            "rescale_factor":0.5,"do_normalize":false}"#,
        )
        .unwrap();
        dir
    }

    fn grey(value: u8) -> ImageItem {
        ImageItem::Grey {
            width: 4,
            height: 4,
            pixels: vec![value; 16],
        }
    }

    #[test]
    fn a_microbatch_carries_its_items_pixels_preprocessed_by_the_model_folder() {
        let dir = vit_folder("ViTForImageClassification");
        let items = vec![grey(2), grey(4), grey(6)];
        let mut inputs = ImageInputs::new(items, dir.path()).unwrap();
        assert_eq!(inputs.cut(2).unwrap(), 2);
        assert_eq!((inputs.items_in(0), inputs.items_in(1)), (2, 1));
        let last = inputs.encode(1).unwrap();
        assert!(matches!(last.body, Body::Payload) && last.mask.is_none());
        let t = decode_payload(&last.payload, &DecodeLimits::default()).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].size(), [1, 1, 4, 4]);
        // rescale_factor 0.5 of the folder's preprocessor, not ViT's default 1/255.
        assert_eq!(t[0].double_value(&[0, 0, 3, 3]), 3.0);
        let first = decode_payload(&inputs.encode(0).unwrap().payload, &DecodeLimits::default());
        assert_eq!(first.unwrap()[0].double_value(&[1, 0, 0, 0]), 2.0);
    }

    #[test]
    fn an_undecodable_item_is_an_error_naming_it() {
        let dir = vit_folder("ViTForImageClassification");
        let items = vec![grey(1), ImageItem::Encoded(b"not an image".to_vec())];
        let mut inputs = ImageInputs::new(items, dir.path()).unwrap();
        inputs.cut(2).unwrap();
        let err = format!("{:#}", inputs.encode(0).err().unwrap());
        assert!(
            err.starts_with("image 1: bad input to unit 1: 12 bytes"),
            "{err}"
        );
    }

    #[test]
    fn a_text_model_refuses_images() {
        let dir = vit_folder("BertModel");
        let err = ImageInputs::new(vec![grey(1)], dir.path()).err().unwrap();
        assert!(
            err.to_string()
                .contains("is a text model (BertModel): it takes texts, not images"),
            "{err}"
        );
    }

    #[test]
    fn microbatches_past_the_end_are_refused() {
        let dir = vit_folder("ViTForImageClassification");
        let mut inputs = ImageInputs::new(vec![grey(1)], dir.path()).unwrap();
        inputs.cut(4).unwrap();
        assert_eq!(inputs.items_in(1), 0);
        assert!(inputs.encode(1).is_err());
    }
}
