//! The decisions of fetching and serving weights, as plain functions: what a node lacks, the
//! byte ranges it asks for, which peer it asks next, and whether a request may be answered.

use quantpipe_messages::control::MAX_CHUNK_BYTES;
use quantpipe_messages::{ShardWeights, TensorEntry, WeightRequest};
use std::collections::BTreeSet;
use std::ops::Range;

/// The model file the queryable serves and the fetcher asks for.
pub const MODEL_FILE: &str = "model.safetensors";

/// The small files a node needs beside its tensors to build and run its shard: the model's
/// configuration, and the sentence-transformers pooling and normalisation a text model's last
/// unit applies. Tokenizer files are not among them: clients tokenise, stages take ids.
pub const SMALL_FILES: [&str; 3] = ["config.json", "1_Pooling/config.json", "modules.json"];

/// Whether `file` is one the queryable serves: the model file or one of [`SMALL_FILES`];
/// nothing else of the folder is ever read for a peer.
pub fn is_served(file: &str) -> bool {
    file == MODEL_FILE || SMALL_FILES.contains(&file)
}

/// The byte range of a file of `file_len` bytes that `req` may be answered with, or why not:
/// a file that is served, an empty or over-long request, a range past the end.
pub fn check_request(req: &WeightRequest, file_len: u64) -> Result<Range<u64>, String> {
    if !is_served(&req.file) {
        return Err(format!("{:?} is not a file this node serves", req.file));
    }
    if req.len == 0 || req.len > MAX_CHUNK_BYTES {
        return Err(format!(
            "{} bytes asked (1..={MAX_CHUNK_BYTES} per request)",
            req.len
        ));
    }
    match req.offset.checked_add(req.len) {
        Some(end) if end <= file_len => Ok(req.offset..end),
        _ => Err(format!(
            "bytes {}+{} past the end of {} ({file_len} bytes)",
            req.offset, req.len, req.file
        )),
    }
}

/// The tensors of `weights` a node lacks, by `holds` (whether its cache has a digest's bytes).
pub fn missing_tensors(
    weights: &ShardWeights,
    holds: impl Fn(&TensorEntry) -> bool,
) -> Vec<&TensorEntry> {
    let mut seen = BTreeSet::new();
    weights
        .tensors
        .iter()
        // Two names with the same bytes are one fetch.
        .filter(|t| !holds(t) && seen.insert(t.sha256.as_str()))
        .collect()
}

/// `[offset, offset + len)` cut into requests of at most `chunk` bytes, in order.
pub fn chunks(offset: u64, len: u64, chunk: u64) -> Vec<(u64, u64)> {
    let chunk = chunk.max(1);
    let mut out = Vec::new();
    let mut at = 0;
    while at < len {
        let n = chunk.min(len - at);
        out.push((offset + at, n));
        at += n;
    }
    out
}

/// The peers to ask, in order: the alive nodes but `me` and those already refused (a peer that
/// served bytes not matching their digest is not asked again during this fetch), by name so
/// that every node asks in the same, reproducible order.
pub fn peers_to_ask(alive: &BTreeSet<String>, me: &str, refused: &BTreeSet<String>) -> Vec<String> {
    alive
        .iter()
        .filter(|p| p.as_str() != me && !refused.contains(*p))
        .cloned()
        .collect()
}

/// The bytes a peer whose `[faults]` tamper with weights serves instead of `bytes`: every
/// byte flipped, so no digest can still match.
pub fn tampered(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.iter_mut().for_each(|b| *b = !*b);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(file: &str, offset: u64, len: u64) -> WeightRequest {
        WeightRequest {
            file: file.into(),
            offset,
            len,
        }
    }

    fn entry(name: &str, sha: char) -> TensorEntry {
        TensorEntry {
            name: name.into(),
            dtype: "F32".into(),
            shape: vec![2],
            offset: 0,
            len: 8,
            sha256: sha.to_string().repeat(64),
        }
    }

    #[test]
    fn a_range_inside_a_served_file_is_answered() {
        assert_eq!(check_request(&req(MODEL_FILE, 10, 5), 15), Ok(10..15));
        assert_eq!(check_request(&req("config.json", 0, 1), 1), Ok(0..1));
    }

    #[test]
    fn out_of_range_requests_are_refused_naming_the_range() {
        let e = check_request(&req(MODEL_FILE, 10, 6), 15).unwrap_err();
        assert!(e.contains("10+6 past the end"), "{e}");
        let e = check_request(&req(MODEL_FILE, u64::MAX, 2), 15).unwrap_err();
        assert!(e.contains("past the end"), "{e}");
        let e = check_request(&req(MODEL_FILE, 0, 0), 15).unwrap_err();
        assert!(e.contains("0 bytes asked"), "{e}");
        let e = check_request(&req(MODEL_FILE, 0, MAX_CHUNK_BYTES + 1), u64::MAX).unwrap_err();
        assert!(e.contains("per request"), "{e}");
    }

    #[test]
    fn files_other_than_the_model_and_its_small_files_are_never_served() {
        for file in [
            "../model.safetensors",
            "/etc/passwd",
            "tokenizer.json",
            "members.toml",
            "",
        ] {
            let e = check_request(&req(file, 0, 1), 100).unwrap_err();
            assert!(e.contains("not a file this node serves"), "{e}");
        }
    }

    #[test]
    fn only_tensors_not_held_are_missing_and_shared_bytes_are_fetched_once() {
        let w = ShardWeights {
            file: MODEL_FILE.into(),
            file_len: 100,
            tensors: vec![
                entry("a", 'a'),
                entry("b", 'b'),
                entry("c", 'a'),
                entry("d", 'd'),
            ],
            files: vec![],
        };
        let missing = missing_tensors(&w, |t| t.name == "b");
        let names: Vec<&str> = missing.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "d"]);
        assert!(missing_tensors(&w, |_| true).is_empty());
    }

    #[test]
    fn chunks_cover_the_range_exactly_in_bounded_pieces() {
        assert_eq!(chunks(100, 10, 4), [(100, 4), (104, 4), (108, 2)]);
        assert_eq!(chunks(7, 4, 4), [(7, 4)]);
        assert!(chunks(7, 0, 4).is_empty());
        let c = chunks(3, 10_000_019, MAX_CHUNK_BYTES);
        assert_eq!(c.iter().map(|(_, n)| n).sum::<u64>(), 10_000_019);
        assert!(c.iter().all(|(_, n)| *n <= MAX_CHUNK_BYTES));
        assert!(c.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
    }

    #[test]
    fn a_refused_peer_is_not_asked_again_and_nobody_asks_itself() {
        let alive: BTreeSet<String> = ["leader", "a", "b"].map(String::from).into();
        assert_eq!(peers_to_ask(&alive, "b", &BTreeSet::new()), ["a", "leader"]);
        let refused: BTreeSet<String> = ["a".to_owned()].into();
        assert_eq!(peers_to_ask(&alive, "b", &refused), ["leader"]);
        let all: BTreeSet<String> = ["a", "leader"].map(String::from).into();
        assert!(peers_to_ask(&alive, "b", &all).is_empty());
    }

    #[test]
    fn tampered_bytes_differ_everywhere() {
        let bytes = vec![0u8, 1, 255, 128];
        let t = tampered(bytes.clone());
        assert!(bytes.iter().zip(&t).all(|(a, b)| a != b));
    }
}
