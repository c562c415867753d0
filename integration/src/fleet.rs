//! Configuration files of test fleets: one TOML per node or client, as `quantpipe node` and
//! `quantpipe run` read them.

use std::path::Path;

/// A node's (or client's) settings file: fleet, name, role, local model folder, zenoh endpoints,
/// then `extra` TOML sections (`[device]`, `[leader]`, `[client]`).
pub fn node_toml(
    fleet: &str,
    name: &str,
    model: &Path,
    role: &str,
    listen: &[String],
    connect: &[String],
    extra: &str,
) -> String {
    let list = |v: &[String]| {
        v.iter()
            .map(|e| format!("\"{e}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "fleet = \"{fleet}\"\nname = \"{name}\"\nrole = \"{role}\"\nmodel_dir = \"{}\"\n\
         [zenoh]\nlisten = [{}]\nconnect = [{}]\n{extra}",
        model.display(),
        list(listen),
        list(connect)
    )
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_toml_lists_endpoints_and_appends_sections() {
        let t = node_toml(
            "f",
            "a",
            Path::new("/m"),
            "device",
            &["tcp/10.0.0.1:7447".into()],
            &[],
            "[device]\nthreads = 1\n",
        );
        assert!(
            t.contains("listen = [\"tcp/10.0.0.1:7447\"]\nconnect = []\n[device]"),
            "{t}"
        );
    }

    #[test]
    fn long_texts_have_the_requested_words() {
        let t = long_texts(3, 150);
        assert_eq!(t.len(), 3);
        assert!(t.iter().all(|s| s.split(' ').count() == 152));
        assert_ne!(t[0], t[1]);
    }
}
