//! Fashion-MNIST in its original IDX format (`*-ubyte.gz`, as the Debian package
//! `dataset-fashion-mnist` installs it under `/usr/share/datasets/fashion-mnist`).

use anyhow::{bail, Context, Result};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// Where the Debian package puts the files.
pub const DEFAULT_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The ten class names, by label.
pub const CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Which half of the data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// 60,000 training images.
    Train,
    /// 10,000 test images.
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// Images as `[N, 1, 28, 28]` u8 and labels as `[N]` i64.
pub struct Images {
    pub pixels: Tensor,
    pub labels: Tensor,
}

impl Images {
    pub fn len(&self) -> i64 {
        self.labels.size()[0]
    }
}

/// The two file paths of a split inside `dir`.
pub fn files(dir: &Path, split: Split) -> (PathBuf, PathBuf) {
    let p = split.prefix();
    (
        dir.join(format!("{p}-images-idx3-ubyte.gz")),
        dir.join(format!("{p}-labels-idx1-ubyte.gz")),
    )
}

/// Reads one split, checking magic numbers, sizes and that labels are 0..=9.
pub fn load(dir: &Path, split: Split) -> Result<Images> {
    let (images_path, labels_path) = files(dir, split);
    let raw = read_files(&images_path, &labels_path)?;
    let labels: Vec<i64> = raw.labels.iter().map(|&l| i64::from(l)).collect();
    let (n, h, w) = (raw.len() as i64, raw.height as i64, raw.width as i64);
    Ok(Images {
        pixels: Tensor::from_slice(&raw.pixels).view([n, 1, h, w]),
        labels: Tensor::from_slice(&labels),
    })
}

/// Grey images as the IDX files store them, row by row, one after another, with their labels.
pub struct RawImages {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
}

impl RawImages {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let size = self.width as usize * self.height as usize;
        &self.pixels[i * size..(i + 1) * size]
    }
}

/// The images file and labels file `input` names: the images IDX file itself (its labels file
/// beside it, named as the data set names it), or a folder holding the test split. None when
/// `input` is neither.
pub fn input_files(input: &Path) -> Option<(PathBuf, PathBuf)> {
    if input.is_dir() {
        let (images, labels) = files(input, Split::Test);
        return images.is_file().then_some((images, labels));
    }
    let name = input.file_name()?.to_str()?;
    let labels = name.replace("-images-idx3-ubyte", "-labels-idx1-ubyte");
    (labels != name).then(|| (input.to_owned(), input.with_file_name(labels)))
}

/// Reads an images file and its labels file, checking magic numbers, sizes and that labels
/// are 0..=9.
pub fn read_files(images_path: &Path, labels_path: &Path) -> Result<RawImages> {
    let (dims, pixels) = read_idx(images_path, 0x0803)?;
    let (label_dims, labels) = read_idx(labels_path, 0x0801)?;
    let [n, h, w] = dims[..] else {
        bail!(
            "{}: expected 3 dimensions, found {dims:?}",
            images_path.display()
        );
    };
    if label_dims[0] != n {
        bail!(
            "{} has {n} images but {} has {} labels",
            images_path.display(),
            labels_path.display(),
            label_dims[0]
        );
    }
    if let Some(bad) = labels.iter().find(|&&l| l >= 10) {
        bail!("{}: label {bad} outside 0..=9", labels_path.display());
    }
    let side =
        |d: usize| u32::try_from(d).with_context(|| format!("{}: side {d}", images_path.display()));
    Ok(RawImages {
        width: side(w)?,
        height: side(h)?,
        pixels,
        labels,
    })
}

/// An IDX file of unsigned bytes: big-endian magic, dimension sizes, then the values.
fn read_idx(path: &Path, magic: u32) -> Result<(Vec<usize>, Vec<u8>)> {
    let file = std::fs::File::open(path).with_context(|| {
        format!(
            "cannot open {} (Fashion-MNIST: install the Debian package dataset-fashion-mnist \
             or pass the folder holding the *-ubyte.gz files)",
            path.display()
        )
    })?;
    let mut bytes = Vec::new();
    GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .with_context(|| format!("{}: not a valid gzip file", path.display()))?;
    let word = |i: usize| -> Result<u32> {
        bytes
            .get(4 * i..4 * i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .with_context(|| format!("{}: truncated IDX header", path.display()))
    };
    let found = word(0)?;
    if found != magic {
        bail!(
            "{}: IDX magic {found:#010x}, expected {magic:#010x}",
            path.display()
        );
    }
    let rank = (magic & 0xff) as usize;
    let dims = (1..=rank)
        .map(|i| word(i).map(|d| d as usize))
        .collect::<Result<Vec<_>>>()?;
    let start = 4 * (rank + 1);
    let count: usize = dims.iter().product();
    if bytes.len() != start + count {
        bail!(
            "{}: header says {dims:?} ({count} values) but the file holds {}",
            path.display(),
            bytes.len().saturating_sub(start)
        );
    }
    bytes.drain(..start);
    Ok((dims, bytes))
}

/// Turns u8 pixels into model input: `x / 255`, then `(x - mean) / std`.
pub fn normalise(pixels: &Tensor, mean: f64, std: f64) -> Tensor {
    (pixels.to_kind(Kind::Float) / 255.0 - mean) / std
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a split in IDX format (tests and tiny synthetic data sets).
    pub fn write(dir: &Path, split: Split, pixels: &[u8], labels: &[u8], side: u32) -> Result<()> {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let (images_path, labels_path) = files(dir, split);
        let n = labels.len() as u32;
        let put = |path: &Path, header: &[u32], data: &[u8]| -> Result<()> {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut gz = GzEncoder::new(file, flate2::Compression::fast());
            for word in header {
                gz.write_all(&word.to_be_bytes())?;
            }
            gz.write_all(data)?;
            gz.finish()?;
            Ok(())
        };
        put(&images_path, &[0x0803, n, side, side], pixels)?;
        put(&labels_path, &[0x0801, n], labels)?;
        Ok(())
    }

    #[test]
    fn written_split_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let pixels: Vec<u8> = (0..2 * 16).map(|i| i as u8).collect();
        write(dir.path(), Split::Test, &pixels, &[3, 9], 4).unwrap();
        let images = load(dir.path(), Split::Test).unwrap();
        assert_eq!(images.pixels.size(), [2, 1, 4, 4]);
        assert_eq!(Vec::<i64>::try_from(&images.labels).unwrap(), [3, 9]);
        assert_eq!(images.pixels.int64_value(&[1, 0, 0, 1]), 17);
    }

    #[test]
    fn the_input_names_the_images_file_or_the_folder_of_the_test_split() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = files(dir.path(), Split::Test);
        assert_eq!(input_files(dir.path()), None);
        write(dir.path(), Split::Test, &[0; 16], &[1], 4).unwrap();
        assert_eq!(
            input_files(dir.path()),
            Some((images.clone(), labels.clone()))
        );
        assert_eq!(input_files(&images), Some((images, labels)));
        let train = dir.path().join("train-images-idx3-ubyte.gz");
        let train_labels = dir.path().join("train-labels-idx1-ubyte.gz");
        assert_eq!(input_files(&train), Some((train, train_labels)));
        assert_eq!(input_files(&dir.path().join("notes.txt")), None);
    }

    #[test]
    fn raw_images_are_cut_image_by_image() {
        let dir = tempfile::tempdir().unwrap();
        let pixels: Vec<u8> = (0..2 * 6).map(|i| i as u8).collect();
        write(dir.path(), Split::Test, &pixels, &[3, 9], 3).unwrap();
        let (images, labels) = files(dir.path(), Split::Test);
        // The header promises 2 x 3 x 3 values but the file holds 12: refused.
        let err = read_files(&images, &labels).err().unwrap().to_string();
        assert!(err.contains("holds 12"), "{err}");
        write(
            dir.path(),
            Split::Test,
            &(0..18).collect::<Vec<u8>>(),
            &[3, 9],
            3,
        )
        .unwrap();
        let raw = read_files(&images, &labels).unwrap();
        assert_eq!((raw.len(), raw.width, raw.height), (2, 3, 3));
        assert_eq!(raw.image(1), &[9, 10, 11, 12, 13, 14, 15, 16, 17]);
        assert_eq!(raw.labels, [3, 9]);
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(dir.path(), Split::Train).err().unwrap().to_string();
        assert!(err.contains("train-images-idx3-ubyte.gz"), "{err}");
        write(dir.path(), Split::Train, &[0; 16], &[12], 4).unwrap();
        let err = load(dir.path(), Split::Train).err().unwrap().to_string();
        assert!(err.contains("label 12"), "{err}");
    }
}
