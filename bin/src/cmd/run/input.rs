//! What `quantpipe run --input` holds, and whether the fleet's model takes it: texts for a text
//! model (BERT), images for an image model (ViT, DeiT). A mismatch is refused before the fleet
//! is asked for anything, naming what the model takes.

use crate::datasets::{class_labels, fashion_mnist, image_folder};
use anyhow::{bail, Context, Result};
use quantpipe_actors::runtime::client::ImageItem;
use quantpipe_model_shards::{Family, ModelConfig};
use std::path::{Path, PathBuf};

/// What a model takes, or an input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modality {
    Text,
    Image,
}

/// The shape of an input path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputKind {
    /// A text file (one item a line) or a folder of `.txt` files (one item each).
    Texts,
    /// A PNG/JPEG file, a folder of them, or a folder of class subfolders of them.
    Images,
    /// Fashion-MNIST IDX files: the images file and its labels file.
    FashionMnist { images: PathBuf, labels: PathBuf },
}

impl InputKind {
    /// What `path` holds, by its name and, for a folder, by what is in it.
    pub fn of(path: &Path) -> Result<InputKind> {
        if !path.exists() {
            bail!("input {} does not exist", path.display());
        }
        if let Some((images, labels)) = fashion_mnist::input_files(path) {
            return Ok(InputKind::FashionMnist { images, labels });
        }
        let is_image = if path.is_dir() {
            !image_folder::list(path)?.files.is_empty()
        } else {
            is_image_file(path)
        };
        Ok(if is_image {
            InputKind::Images
        } else {
            InputKind::Texts
        })
    }

    pub fn modality(&self) -> Modality {
        match self {
            InputKind::Texts => Modality::Text,
            InputKind::Images | InputKind::FashionMnist { .. } => Modality::Image,
        }
    }
}

fn is_image_file(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str());
    matches!(
        ext.map(str::to_ascii_lowercase).as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

/// The model of a client's `model_dir`: its architecture and what it takes, from `config.json`;
/// None for a folder without one (a text client needs only `tokenizer.json`).
pub fn model_of(model_dir: &Path) -> Result<Option<(String, Modality)>> {
    let path = model_dir.join("config.json");
    if !path.exists() {
        return Ok(None);
    }
    let config = ModelConfig::from_file(&path, None)?;
    let takes = match config.family {
        Family::Bert => Modality::Text,
        Family::Vit | Family::Deit => Modality::Image,
    };
    Ok(Some((config.architecture, takes)))
}

/// Refuses an input the model does not take. A model of unknown kind takes texts, as every
/// client did before image inputs.
pub fn check(input: Modality, model: Option<(&str, Modality)>) -> Result<()> {
    let (architecture, takes) = model.unwrap_or(("a model without config.json", Modality::Text));
    if input == takes {
        return Ok(());
    }
    match takes {
        Modality::Text => bail!(
            "the fleet's model ({architecture}) takes texts (a text file, one item a line, or a \
             folder of .txt files), but the input holds images"
        ),
        Modality::Image => bail!(
            "the fleet's model ({architecture}) takes images (a PNG/JPEG file, a folder of \
             them, class subfolders of them, or Fashion-MNIST IDX files), but the input holds \
             texts"
        ),
    }
}

/// The items of a run.
pub enum Items {
    Texts(Vec<String>),
    Images(Vec<ImageItem>),
}

/// A run's items and, when the input says them, their class indices.
pub struct RunInput {
    pub items: Items,
    pub labels: Option<Vec<usize>>,
}

impl RunInput {
    /// Reads `path` as `kind` says; class folder names are matched against the labels of the
    /// model in `model_dir`.
    pub fn read(path: &Path, kind: &InputKind, model_dir: &Path) -> Result<RunInput> {
        match kind {
            InputKind::Texts => Ok(RunInput {
                items: Items::Texts(read_texts(path)?),
                labels: None,
            }),
            InputKind::Images if path.is_file() => Ok(RunInput {
                items: Items::Images(vec![ImageItem::File(path.to_owned())]),
                labels: None,
            }),
            InputKind::Images => read_image_folder(path, model_dir),
            InputKind::FashionMnist { images, labels } => {
                let raw = fashion_mnist::read_files(images, labels)?;
                let items = (0..raw.len())
                    .map(|i| ImageItem::Grey {
                        width: raw.width,
                        height: raw.height,
                        pixels: raw.image(i).to_vec(),
                    })
                    .collect();
                Ok(RunInput {
                    items: Items::Images(items),
                    labels: Some(raw.labels.iter().map(|&l| l as usize).collect()),
                })
            }
        }
    }

    pub fn len(&self) -> usize {
        match &self.items {
            Items::Texts(t) => t.len(),
            Items::Images(i) => i.len(),
        }
    }

    /// Keeps the first `n` items (and their labels).
    pub fn truncate(&mut self, n: usize) {
        match &mut self.items {
            Items::Texts(t) => t.truncate(n),
            Items::Images(i) => i.truncate(n),
        }
        if let Some(labels) = &mut self.labels {
            labels.truncate(n);
        }
    }
}

/// The images of a folder; with class subfolders, each labelled by its folder's name.
fn read_image_folder(dir: &Path, model_dir: &Path) -> Result<RunInput> {
    let listed = image_folder::list(dir)?;
    let labels = match &listed.classes {
        None => None,
        Some(classes) => {
            let names = class_labels::id2label(model_dir)?;
            let labels = classes
                .iter()
                .map(|c| {
                    class_labels::class_index(c, &names)
                        .with_context(|| format!("class folder {}", dir.join(c).display()))
                })
                .collect::<Result<_>>()?;
            Some(labels)
        }
    };
    Ok(RunInput {
        items: Items::Images(listed.files.into_iter().map(ImageItem::File).collect()),
        labels,
    })
}

/// Items of a text file (non-empty lines) or a folder of `.txt` files (sorted by name).
pub fn read_texts(path: &Path) -> Result<Vec<String>> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("listing {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display())))
            .collect()
    } else {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading input {}", path.display()))?;
        Ok(text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_model_refuses_images_and_an_image_model_texts() {
        let err = check(Modality::Image, Some(("BertModel", Modality::Text))).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the fleet's model (BertModel) takes texts"),
            "{err}"
        );
        let vit = Some(("ViTForImageClassification", Modality::Image));
        let err = check(Modality::Text, vit).unwrap_err().to_string();
        assert!(
            err.starts_with("the fleet's model (ViTForImageClassification) takes images")
                && err.ends_with("but the input holds texts"),
            "{err}"
        );
        check(Modality::Image, vit).unwrap();
        // A client folder with only tokenizer.json runs texts, as before.
        check(Modality::Text, None).unwrap();
        assert!(check(Modality::Image, None).is_err());
    }

    #[test]
    fn the_kind_of_an_input_follows_its_names_and_contents() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.txt"), "one\ntwo\n").unwrap();
        assert_eq!(InputKind::of(&d.join("a.txt")).unwrap(), InputKind::Texts);
        assert_eq!(InputKind::of(d).unwrap(), InputKind::Texts);
        std::fs::create_dir(d.join("Bag")).unwrap();
        std::fs::write(d.join("Bag/x.PNG"), b"").unwrap();
        assert_eq!(InputKind::of(d).unwrap(), InputKind::Images);
        assert_eq!(
            InputKind::of(&d.join("Bag/x.PNG")).unwrap(),
            InputKind::Images
        );
        let idx = d.join("t10k-images-idx3-ubyte.gz");
        std::fs::write(&idx, b"").unwrap();
        assert_eq!(
            InputKind::of(&idx).unwrap(),
            InputKind::FashionMnist {
                images: idx.clone(),
                labels: d.join("t10k-labels-idx1-ubyte.gz")
            }
        );
        assert_eq!(InputKind::of(d).unwrap().modality(), Modality::Image);
        let err = InputKind::of(&d.join("missing")).unwrap_err().to_string();
        assert!(err.ends_with("missing does not exist"), "{err}");
    }

    #[test]
    fn class_folders_are_labelled_by_the_model_s_names_and_the_limit_keeps_labels_aligned() {
        let dir = tempfile::tempdir().unwrap();
        let (model, images) = (dir.path().join("model"), dir.path().join("images"));
        std::fs::create_dir_all(&model).unwrap();
        std::fs::write(
            model.join("config.json"),
            r#"{"id2label":{"0":"T-shirt/top","1":"Trouser"}}"#,
        )
        .unwrap();
        for f in ["Trouser/a.png", "Trouser/b.png", "t-shirt_top/c.png"] {
            let path = images.join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"").unwrap();
        }
        let mut input = RunInput::read(&images, &InputKind::Images, &model).unwrap();
        assert_eq!(input.labels.as_deref(), Some(&[1, 1, 0][..]));
        input.truncate(2);
        assert_eq!((input.len(), input.labels.unwrap().len()), (2, 2));
        std::fs::create_dir_all(images.join("Sock")).unwrap();
        std::fs::write(images.join("Sock/d.png"), b"").unwrap();
        let err = RunInput::read(&images, &InputKind::Images, &model)
            .err()
            .unwrap();
        let err = format!("{err:#}");
        assert!(
            err.contains("Sock: `Sock` is neither a class index"),
            "{err}"
        );
    }
}
