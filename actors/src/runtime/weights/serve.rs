//! The weights queryable: a node holding the model file answers a [`WeightRequest`] on
//! [`Keys::weights`] with the bytes asked for, at most [`MAX_CHUNK_BYTES`] of the model file or
//! of one of its small files. A request it cannot answer (malformed, another file, a range past
//! the end) gets an error reply naming why; nothing a peer sends can make it read elsewhere.

use super::decide::{check_request, is_served, tampered, MODEL_FILE};
use crate::runtime::declarations::{Counted, Kind};
use anyhow::{anyhow, Result};
#[cfg(doc)]
use quantpipe_messages::control::MAX_CHUNK_BYTES;
use quantpipe_messages::{envelope, Keys, WeightRequest};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use zenoh::Wait;

/// Reads the bytes `req` asks for from the model folder `dir`, or says why not.
pub fn read_request(dir: &Path, req: &WeightRequest) -> Result<Vec<u8>, String> {
    // Checked before the path is built: only listed files are ever opened.
    if !is_served(&req.file) {
        return check_request(req, 0).map(|_| Vec::new());
    }
    let path = dir.join(&req.file);
    let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", req.file))?;
    let len = file
        .metadata()
        .map_err(|e| format!("{}: {e}", req.file))?
        .len();
    let range = check_request(req, len)?;
    let mut bytes = vec![0u8; (range.end - range.start) as usize];
    file.read_exact_at(&mut bytes, range.start)
        .map_err(|e| format!("reading {}: {e}", req.file))?;
    Ok(bytes)
}

/// The answer to one query's payload: the bytes, or an error naming what was wrong.
fn answer(dir: &Path, fleet: &str, payload: &[u8], tamper: bool) -> Result<Vec<u8>, String> {
    let req: WeightRequest =
        envelope::decode(payload, fleet).map_err(|e| format!("bad weight request: {e}"))?;
    let bytes = read_request(dir, &req)?;
    Ok(match tamper {
        true => tampered(bytes),
        false => bytes,
    })
}

/// Declares the weights queryable of node `name` when `dir` holds the model file; `tamper`
/// (a `[faults]` setting) serves every byte flipped.
pub fn declare_if_held(
    session: &zenoh::Session,
    keys: &Keys,
    name: &str,
    dir: &Path,
    tamper: bool,
) -> Result<Option<Counted<zenoh::query::Queryable<()>>>> {
    if !dir.join(MODEL_FILE).is_file() {
        return Ok(None);
    }
    let (dir, fleet): (PathBuf, String) = (dir.to_owned(), keys.fleet.clone());
    let key = keys.weights(name);
    session
        .declare_queryable(key.clone())
        .callback(move |query| {
            let payload = query
                .payload()
                .map(|p| p.to_bytes().into_owned())
                .unwrap_or_default();
            let sent = match answer(&dir, &fleet, &payload, tamper) {
                Ok(bytes) => query.reply(query.key_expr().clone(), bytes).wait(),
                Err(why) => {
                    tracing::warn!("refusing a weight request: {why}");
                    query.reply_err(why).wait()
                }
            };
            if let Err(e) = sent {
                tracing::warn!("answering a weight request: {e}");
            }
        })
        .wait()
        .map(|q| Some(Counted::node(q, Kind::Queryable)))
        .map_err(|e| anyhow!("declaring the queryable {key}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MODEL_FILE), (0u8..100).collect::<Vec<_>>()).unwrap();
        std::fs::write(dir.path().join("secret.txt"), b"no").unwrap();
        dir
    }

    fn req(file: &str, offset: u64, len: u64) -> Vec<u8> {
        let r = WeightRequest {
            file: file.into(),
            offset,
            len,
        };
        envelope::encode("f", &r)
    }

    #[test]
    fn a_range_is_answered_with_exactly_its_bytes() {
        let dir = folder();
        let got = answer(dir.path(), "f", &req(MODEL_FILE, 10, 5), false).unwrap();
        assert_eq!(got, [10, 11, 12, 13, 14]);
        let flipped = answer(dir.path(), "f", &req(MODEL_FILE, 10, 5), true).unwrap();
        assert_eq!(flipped, [!10, !11, !12, !13, !14]);
    }

    #[test]
    fn bad_requests_get_errors_naming_what_was_wrong() {
        let dir = folder();
        let e = answer(dir.path(), "f", &req(MODEL_FILE, 95, 6), false).unwrap_err();
        assert!(e.contains("past the end"), "{e}");
        let e = answer(dir.path(), "f", &req("secret.txt", 0, 2), false).unwrap_err();
        assert!(e.contains("not a file this node serves"), "{e}");
        let e = answer(dir.path(), "f", &req("config.json", 0, 2), false).unwrap_err();
        assert!(e.contains("config.json"), "{e}");
        let e = answer(dir.path(), "f", b"\x93garbage", false).unwrap_err();
        assert!(e.contains("bad weight request"), "{e}");
        let e = answer(dir.path(), "g", &req(MODEL_FILE, 0, 1), false).unwrap_err();
        assert!(e.contains("bad weight request"), "{e}");
        assert!(answer(dir.path(), "f", &[], false).is_err());
    }
}
