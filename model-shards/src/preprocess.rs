//! Turning user inputs into what unit 1 takes: images per the Hugging Face preprocessor config,
//! text through the model's `tokenizer.json`.

use crate::boundary::Boundary;
use crate::config::ModelConfig;
use crate::error::{Result, ShardError};
use image::imageops::FilterType;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// `preprocessor_config.json` of an image model (the fields ViT and DeiT processors use).
#[derive(Debug, Clone, Deserialize)]
pub struct ImagePreprocessor {
    #[serde(default = "yes")]
    pub do_resize: bool,
    #[serde(default)]
    pub size: Option<SizeSpec>,
    /// PIL resample code: 0 nearest, 2 bilinear, 3 bicubic.
    #[serde(default = "bilinear")]
    pub resample: u32,
    #[serde(default)]
    pub do_center_crop: bool,
    #[serde(default)]
    pub crop_size: Option<SizeSpec>,
    #[serde(default = "yes")]
    pub do_rescale: bool,
    #[serde(default = "inv255")]
    pub rescale_factor: f64,
    #[serde(default = "yes")]
    pub do_normalize: bool,
    #[serde(default)]
    pub image_mean: Option<Vec<f64>>,
    #[serde(default)]
    pub image_std: Option<Vec<f64>>,
}

fn yes() -> bool {
    true
}
fn bilinear() -> u32 {
    2
}
fn inv255() -> f64 {
    1.0 / 255.0
}

/// `{"height": h, "width": w}`, `{"shortest_edge": s}` or a bare number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SizeSpec {
    Square(u32),
    HeightWidth { height: u32, width: u32 },
    ShortestEdge { shortest_edge: u32 },
}

impl ImagePreprocessor {
    /// Reads `preprocessor_config.json` from the model folder, or uses ViT's defaults
    /// (resize to the model's image size, rescale, normalise with mean = std = 0.5).
    pub fn for_model(config: &ModelConfig, dir: Option<&Path>) -> Result<Self> {
        if let Some(path) = dir
            .map(|d| d.join("preprocessor_config.json"))
            .filter(|p| p.exists())
        {
            let text = std::fs::read_to_string(&path).map_err(|e| ShardError::io(&path, e))?;
            return serde_json::from_str(&text).map_err(|e| ShardError::Config {
                path,
                message: e.to_string(),
            });
        }
        let s = config.image_size as u32;
        Ok(ImagePreprocessor {
            do_resize: true,
            size: Some(SizeSpec::HeightWidth {
                height: s,
                width: s,
            }),
            resample: 2,
            do_center_crop: false,
            crop_size: None,
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: None,
            image_std: None,
        })
    }

    /// Decodes and preprocesses one image file into `[C, S, S]` f32.
    pub fn load_file(&self, path: &Path, config: &ModelConfig) -> Result<Tensor> {
        let img = image::ImageReader::open(path)
            .map_err(|e| ShardError::io(path, e))?
            .with_guessed_format()
            .map_err(|e| ShardError::io(path, e))?
            .decode()
            .map_err(|e| ShardError::Image {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        Ok(self.apply(&img, config))
    }

    /// Decodes PNG or JPEG bytes (an image that came over the network) and preprocesses them
    /// into `[C, S, S]` f32. Bytes of any other format, or that do not decode, are an input
    /// error naming what was wrong; the decoder's limits bound what a hostile image can make
    /// it allocate.
    pub fn load_encoded(&self, bytes: &[u8], config: &ModelConfig) -> Result<Tensor> {
        Ok(self.apply(&decode_encoded(bytes)?, config))
    }

    /// Preprocesses `width` x `height` 8-bit grey pixels, row by row (data sets stored as
    /// arrays, such as Fashion-MNIST's IDX files), into `[C, S, S]` f32 exactly as the same
    /// pixels read from a PNG file.
    pub fn load_grey(
        &self,
        pixels: Vec<u8>,
        width: u32,
        height: u32,
        config: &ModelConfig,
    ) -> Result<Tensor> {
        let given = pixels.len();
        let img =
            image::GrayImage::from_raw(width, height, pixels).ok_or_else(|| ShardError::Input {
                unit: 1,
                message: format!("{given} grey pixels for a {width}x{height} image"),
            })?;
        Ok(self.apply(&image::DynamicImage::ImageLuma8(img), config))
    }

    /// Preprocesses a decoded image into `[C, S, S]` f32.
    pub fn apply(&self, img: &image::DynamicImage, config: &ModelConfig) -> Tensor {
        let img = self.resize_and_crop(img, config);
        let channels = config.num_channels;
        let (w, h) = (img.width() as i64, img.height() as i64);
        let raw: Vec<u8> = if channels == 1 {
            img.to_luma8().into_raw()
        } else {
            img.to_rgb8().into_raw()
        };
        let t = Tensor::from_slice(&raw)
            .view([h, w, channels])
            .permute([2, 0, 1])
            .to_kind(Kind::Float);
        self.rescale_and_normalise(t, channels)
    }

    /// The resize, then the centre crop, each where the preprocessor asks for it.
    fn resize_and_crop(
        &self,
        img: &image::DynamicImage,
        config: &ModelConfig,
    ) -> image::DynamicImage {
        let filter = match self.resample {
            0 => FilterType::Nearest,
            3 => FilterType::CatmullRom,
            _ => FilterType::Triangle,
        };
        let mut img = img.clone();
        if self.do_resize {
            let (w, h) = match &self.size {
                Some(SizeSpec::Square(s)) => (*s, *s),
                Some(SizeSpec::HeightWidth { height, width }) => (*width, *height),
                Some(SizeSpec::ShortestEdge { shortest_edge }) => {
                    let (w, h) = (img.width() as f64, img.height() as f64);
                    let scale = *shortest_edge as f64 / w.min(h);
                    ((w * scale).round() as u32, (h * scale).round() as u32)
                }
                None => (config.image_size as u32, config.image_size as u32),
            };
            img = img.resize_exact(w, h, filter);
        }
        if self.do_center_crop {
            let (cw, ch) = match &self.crop_size {
                Some(SizeSpec::Square(s)) => (*s, *s),
                Some(SizeSpec::HeightWidth { height, width }) => (*width, *height),
                _ => (config.image_size as u32, config.image_size as u32),
            };
            let x = img.width().saturating_sub(cw) / 2;
            let y = img.height().saturating_sub(ch) / 2;
            img = img.crop_imm(x, y, cw, ch);
        }
        img
    }

    /// `[C, H, W]` pixel values (0..=255) rescaled, then normalised per channel, where the
    /// preprocessor asks for it.
    fn rescale_and_normalise(&self, mut t: Tensor, channels: i64) -> Tensor {
        if self.do_rescale {
            t *= self.rescale_factor;
        }
        if self.do_normalize {
            let per_channel = |values: &Option<Vec<f64>>| {
                let values = values
                    .clone()
                    .unwrap_or_else(|| vec![0.5; channels as usize]);
                Tensor::from_slice(&values)
                    .to_kind(Kind::Float)
                    .view([channels, 1, 1])
            };
            t = (t - per_channel(&self.image_mean)) / per_channel(&self.image_std);
        }
        t
    }
}

/// The most pixels along either side of an encoded image, and the most bytes its decoding may
/// allocate: far above any model's input, far below what would exhaust a node's memory.
const MAX_IMAGE_SIDE: u32 = 16_384;
const MAX_DECODE_BYTES: u64 = 256 << 20;

/// PNG or JPEG bytes decoded, within the limits above.
fn decode_encoded(bytes: &[u8]) -> Result<image::DynamicImage> {
    let bad = |message: String| ShardError::Input { unit: 1, message };
    let format = image::guess_format(bytes).map_err(|_| {
        let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
        bad(format!(
            "{} bytes that are not an image (they start {}); expected PNG or JPEG",
            bytes.len(),
            if head.is_empty() {
                "with nothing".to_owned()
            } else {
                head.join(" ")
            }
        ))
    })?;
    if !matches!(format, image::ImageFormat::Png | image::ImageFormat::Jpeg) {
        return Err(bad(format!("a {format:?} image; expected PNG or JPEG")));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    reader.limits(limits);
    reader.decode().map_err(|e| {
        bad(format!(
            "undecodable {format:?} image ({} bytes): {e}",
            bytes.len()
        ))
    })
}

/// Image files named by `path`: the file itself, or the PNG/JPEG files of a folder, sorted.
pub fn image_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| ShardError::io(path, e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension()
                    .and_then(|e| e.to_str())
                    .map(|e| e.to_ascii_lowercase())
                    .as_deref(),
                Some("png" | "jpg" | "jpeg")
            )
        })
        .collect();
    files.sort();
    Ok(files)
}

/// A Hugging Face `tokenizer.json`, with truncation to a maximum length.
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`, truncating to `max_len` tokens.
    ///
    /// The padding and truncation stored in the file are replaced: checkpoints often pad to a
    /// fixed length, which would waste compute on every microbatch; batches are padded to their
    /// longest item instead.
    pub fn from_file(path: &Path, max_len: usize) -> Result<Self> {
        if !path.exists() {
            return Err(ShardError::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            ));
        }
        let mut inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| ShardError::Tokenizer(format!("{}: {e}", path.display())))?;
        inner.with_padding(None);
        inner
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| ShardError::Tokenizer(e.to_string()))?;
        Ok(TextTokenizer { inner })
    }

    /// Tokenises `texts` (with special tokens), padded to the longest: the unit-1 input of a
    /// text model, `[B, T]` ids with their `[B, T]` mask.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Boundary> {
        let mut rows: Vec<(Vec<i64>, Vec<i64>)> = Vec::with_capacity(texts.len());
        for text in texts {
            let enc = self
                .inner
                .encode(*text, true)
                .map_err(|e| ShardError::Tokenizer(e.to_string()))?;
            let ids = enc.get_ids().iter().map(|&i| i as i64).collect();
            let mask = enc.get_attention_mask().iter().map(|&m| m as i64).collect();
            rows.push((ids, mask));
        }
        let t = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let b = rows.len() as i64;
        let mut ids = Vec::with_capacity(rows.len() * t);
        let mut mask = Vec::with_capacity(rows.len() * t);
        for (i, m) in rows {
            let pad = t - i.len();
            ids.extend(i.into_iter().chain(std::iter::repeat_n(0, pad)));
            mask.extend(m.into_iter().chain(std::iter::repeat_n(0, pad)));
        }
        let t = t as i64;
        Ok(Boundary::new(
            vec![Tensor::from_slice(&ids).view([b, t])],
            Some(Tensor::from_slice(&mask).view([b, t])),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_vit(channels: i64) -> ModelConfig {
        ModelConfig::from_json(
            &format!(
                r#"{{"architectures":["ViTForImageClassification"],"hidden_size":8,
                "num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":16,
                "image_size":4,"patch_size":2,"num_channels":{channels}}}"#
            ),
            None,
        )
        .unwrap()
    }

    #[test]
    fn pixels_are_resized_rescaled_and_normalised_per_channel() {
        let config = tiny_vit(3);
        let mut pre = ImagePreprocessor::for_model(&config, None).unwrap();
        pre.image_mean = Some(vec![0.0, 0.5, 1.0]);
        pre.image_std = Some(vec![1.0, 0.5, 0.25]);
        // 8x8 of one colour: resizing to 4x4 keeps it.
        let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
            8,
            8,
            image::Rgb([255, 51, 0]),
        ));
        let t = pre.apply(&img, &config);
        assert_eq!(t.size(), [3, 4, 4]);
        let at = |c: i64| t.double_value(&[c, 2, 1]);
        assert!((at(0) - 1.0).abs() < 1e-6, "{}", at(0));
        assert!((at(1) - (0.2 - 0.5) / 0.5).abs() < 1e-6, "{}", at(1));
        assert!((at(2) - (0.0 - 1.0) / 0.25).abs() < 1e-6, "{}", at(2));
    }

    /// `img` encoded in `format`.
    fn encoded(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut bytes = std::io::Cursor::new(Vec::new());
        img.write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    }

    #[test]
    fn png_bytes_give_the_pixels_of_the_same_png_file() {
        let config = tiny_vit(1);
        let pre = ImagePreprocessor::for_model(&config, None).unwrap();
        let img = image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(6, 6, |x, y| {
            image::Luma([(40 * x + 7 * y) as u8])
        }));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.png");
        img.save(&file).unwrap();
        let from_file = pre.load_file(&file, &config).unwrap();
        let from_bytes = pre
            .load_encoded(&encoded(&img, image::ImageFormat::Png), &config)
            .unwrap();
        assert!(from_file.equal(&from_bytes));
        let jpeg = pre
            .load_encoded(&encoded(&img, image::ImageFormat::Jpeg), &config)
            .unwrap();
        assert_eq!(jpeg.size(), [1, 4, 4]);
    }

    #[test]
    fn grey_pixels_give_the_pixels_of_the_same_png() {
        let config = tiny_vit(1);
        let pre = ImagePreprocessor::for_model(&config, None).unwrap();
        let raw: Vec<u8> = (0..36).map(|i| (i * 7) as u8).collect();
        let img = image::GrayImage::from_raw(6, 6, raw.clone()).unwrap();
        let png = encoded(
            &image::DynamicImage::ImageLuma8(img),
            image::ImageFormat::Png,
        );
        let from_png = pre.load_encoded(&png, &config).unwrap();
        assert!(pre.load_grey(raw, 6, 6, &config).unwrap().equal(&from_png));
        let short = pre.load_grey(vec![0; 35], 6, 6, &config).unwrap_err();
        assert_eq!(
            short.to_string(),
            "bad input to unit 1: 35 grey pixels for a 6x6 image"
        );
    }

    #[test]
    fn bytes_that_are_not_png_or_jpeg_are_refused_naming_why() {
        let config = tiny_vit(3);
        let pre = ImagePreprocessor::for_model(&config, None).unwrap();
        let text = pre.load_encoded(b"hello", &config).unwrap_err().to_string();
        assert_eq!(
            text,
            "bad input to unit 1: 5 bytes that are not an image (they start 68 65 6c 6c 6f); \
             expected PNG or JPEG"
        );
        let empty = pre.load_encoded(b"", &config).unwrap_err().to_string();
        assert!(empty.contains("start with nothing"), "{empty}");
        let img = image::DynamicImage::ImageRgb8(image::RgbImage::new(4, 4));
        let mut png = encoded(&img, image::ImageFormat::Png);
        png.truncate(png.len() / 2);
        let cut = pre.load_encoded(&png, &config).unwrap_err().to_string();
        assert!(
            cut.starts_with("bad input to unit 1: undecodable Png image"),
            "{cut}"
        );
        let gif = pre
            .load_encoded(b"GIF89a\x01\x00", &config)
            .unwrap_err()
            .to_string();
        assert_eq!(
            gif,
            "bad input to unit 1: a Gif image; expected PNG or JPEG"
        );
    }

    #[test]
    fn an_image_larger_than_the_limit_is_refused_before_decoding() {
        let config = tiny_vit(1);
        let pre = ImagePreprocessor::for_model(&config, None).unwrap();
        // A valid PNG one pixel wider than the limit: refused on its dimensions.
        let img = image::DynamicImage::ImageLuma8(image::GrayImage::new(MAX_IMAGE_SIDE + 1, 1));
        let png = encoded(&img, image::ImageFormat::Png);
        let err = pre.load_encoded(&png, &config).unwrap_err().to_string();
        assert!(err.contains("undecodable Png image"), "{err}");
        assert!(err.contains("limit"), "{err}");
    }

    #[test]
    fn centre_crop_keeps_the_middle() {
        let config = tiny_vit(1);
        let mut pre = ImagePreprocessor::for_model(&config, None).unwrap();
        pre.do_resize = false;
        pre.do_center_crop = true;
        pre.do_rescale = false;
        pre.do_normalize = false;
        // A 6x6 grey ramp along x: the 4x4 crop starts at column 1.
        let img = image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(6, 6, |x, _| {
            image::Luma([10 * x as u8])
        }));
        let t = pre.apply(&img, &config);
        assert_eq!(t.size(), [1, 4, 4]);
        assert_eq!(t.double_value(&[0, 0, 0]), 10.0);
        assert_eq!(t.double_value(&[0, 3, 3]), 40.0);
    }
}
