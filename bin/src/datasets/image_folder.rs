//! A folder of PNG/JPEG images: the images themselves, or one subfolder per class whose name is
//! the class (the layout torchvision's `ImageFolder` and most labelled image sets use).

use anyhow::{bail, Context, Result};
use quantpipe_model_shards::preprocess::image_files;
use std::path::{Path, PathBuf};

/// The images of a folder, and each one's class folder name when they sit in class subfolders.
#[derive(Debug, PartialEq)]
pub struct ImageFiles {
    /// Sorted by class folder, then by file name.
    pub files: Vec<PathBuf>,
    /// Per file, the name of its class folder; None for a folder of images without classes.
    pub classes: Option<Vec<String>>,
}

/// Lists `dir`: its own images, or the images of its subfolders (one per class). Subfolders
/// without images are skipped; images both directly in `dir` and in subfolders are an error,
/// since which of them carry a class would be a guess.
pub fn list(dir: &Path) -> Result<ImageFiles> {
    let direct = image_files(dir)?;
    let mut subfolders: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    subfolders.sort();
    let mut files = Vec::new();
    let mut classes = Vec::new();
    for sub in subfolders {
        let images = image_files(&sub)?;
        let Some(class) = sub.file_name().and_then(|n| n.to_str()) else {
            bail!(
                "class folder {} has a name that is not UTF-8",
                sub.display()
            );
        };
        classes.extend(std::iter::repeat_n(class.to_owned(), images.len()));
        files.extend(images);
    }
    match (direct.is_empty(), files.is_empty()) {
        (_, true) => Ok(ImageFiles {
            files: direct,
            classes: None,
        }),
        (true, false) => Ok(ImageFiles {
            files,
            classes: Some(classes),
        }),
        (false, false) => bail!(
            "{} holds images both directly and in subfolders: put every image in a class \
             subfolder (its name the class), or none",
            dir.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"").unwrap();
    }

    #[test]
    fn class_subfolders_give_each_image_its_folder_name_in_sorted_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in [
            "Trouser/b.png",
            "Trouser/a.JPG",
            "0/z.jpeg",
            "empty/notes.txt",
        ] {
            touch(&d.join(f));
        }
        let listed = list(d).unwrap();
        assert_eq!(
            listed.files,
            [
                d.join("0/z.jpeg"),
                d.join("Trouser/a.JPG"),
                d.join("Trouser/b.png")
            ]
        );
        assert_eq!(
            listed.classes.unwrap(),
            ["0", "Trouser", "Trouser"].map(String::from)
        );
    }

    #[test]
    fn a_flat_folder_has_no_classes_and_a_mixed_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        touch(&d.join("b.png"));
        touch(&d.join("a.png"));
        touch(&d.join("texts/x.txt"));
        let flat = list(d).unwrap();
        assert_eq!(flat.files, [d.join("a.png"), d.join("b.png")]);
        assert_eq!(flat.classes, None);
        touch(&d.join("Bag/c.png"));
        let err = list(d).unwrap_err().to_string();
        assert!(err.contains("both directly and in subfolders"), "{err}");
    }
}
