//! Class labels as people write them (a class folder's name, a line of a labels file) turned
//! into the class index a classifier's logits are compared with, using the model's `id2label`.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// A classifier's class names in index order: `id2label` of `config.json` in `model_dir`;
/// empty when the model has none (its classes are then known by index only).
pub fn id2label(model_dir: &Path) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default)]
        id2label: BTreeMap<String, String>,
    }
    let path = model_dir.join("config.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let config: Config =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    in_index_order(config.id2label).with_context(|| format!("{} id2label", path.display()))
}

/// `id2label`'s names ordered by their keys, which must be exactly 0..N.
fn in_index_order(id2label: BTreeMap<String, String>) -> Result<Vec<String>> {
    let mut by_index: Vec<(usize, String)> = id2label
        .into_iter()
        .map(|(k, v)| {
            k.parse()
                .map(|i| (i, v))
                .with_context(|| format!("key `{k}` is not a class index"))
        })
        .collect::<Result<_>>()?;
    by_index.sort();
    if let Some((i, _)) = by_index.iter().enumerate().find(|(i, (k, _))| i != k) {
        bail!("the keys are not 0..{}: {i} is missing", by_index.len());
    }
    Ok(by_index.into_iter().map(|(_, v)| v).collect())
}

/// The class index `label` stands for among `names` (id2label in index order): a name itself;
/// else the one name equal to it in letters and digits, ignoring case (`T-shirt/top` cannot be
/// a folder name, `t-shirt_top` can); else a class index (below `names.len()` when names are
/// known).
pub fn class_index(label: &str, names: &[String]) -> Result<usize> {
    let label = label.trim();
    if let Some(i) = names.iter().position(|n| n == label) {
        return Ok(i);
    }
    let key = letters_and_digits(label);
    let loose: Vec<usize> = (0..names.len())
        .filter(|&i| !key.is_empty() && letters_and_digits(&names[i]) == key)
        .collect();
    if let [i] = loose[..] {
        return Ok(i);
    }
    match label.parse::<usize>() {
        Ok(i) if names.is_empty() || i < names.len() => Ok(i),
        Ok(i) => bail!(
            "class index {i} is out of range: the model has {} classes",
            names.len()
        ),
        Err(_) if names.is_empty() => bail!("`{label}` is not a class index"),
        Err(_) => bail!(
            "`{label}` is neither a class index nor one of the model's labels ({})",
            list(names)
        ),
    }
}

fn letters_and_digits(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The first few names, for an error.
fn list(names: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut text = names[..names.len().min(SHOWN)].join(", ");
    if names.len() > SHOWN {
        text += &format!(", ... ({} in all)", names.len());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["T-shirt/top", "Trouser", "Ankle boot"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn a_label_is_a_name_a_name_written_loosely_or_an_index() {
        assert_eq!(class_index("Trouser", &names()).unwrap(), 1);
        assert_eq!(class_index("t-shirt_top", &names()).unwrap(), 0);
        assert_eq!(class_index("ankle_boot ", &names()).unwrap(), 2);
        assert_eq!(class_index("2", &names()).unwrap(), 2);
        assert_eq!(class_index("917", &[]).unwrap(), 917);
    }

    #[test]
    fn unknown_labels_and_indices_out_of_range_are_named() {
        let err = class_index("Sock", &names()).unwrap_err().to_string();
        assert_eq!(
            err,
            "`Sock` is neither a class index nor one of the model's labels \
             (T-shirt/top, Trouser, Ankle boot)"
        );
        let err = class_index("3", &names()).unwrap_err().to_string();
        assert_eq!(
            err,
            "class index 3 is out of range: the model has 3 classes"
        );
        let err = class_index("sport", &[]).unwrap_err().to_string();
        assert_eq!(err, "`sport` is not a class index");
    }

    #[test]
    fn id2label_is_read_in_index_order_and_gaps_are_refused() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        // "10" sorts before "2" as a string: the order is by index.
        let many: Vec<(String, String)> =
            (0..11).map(|i| (i.to_string(), format!("c{i}"))).collect();
        let many: BTreeMap<String, String> = many.into_iter().collect();
        assert_eq!(in_index_order(many).unwrap()[10], "c10");
        let gap = in_index_order(map(&[("0", "a"), ("2", "c")])).unwrap_err();
        assert_eq!(gap.to_string(), "the keys are not 0..2: 1 is missing");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), r#"{"hidden_size":4}"#).unwrap();
        assert!(id2label(dir.path()).unwrap().is_empty());
    }
}
