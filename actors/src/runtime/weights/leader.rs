//! The digests a leader puts into assignments. Any node whose folder holds the model file may
//! come to lead (configured, or elected), so the node names its folder here at start-up and the
//! digests are computed once, in the background, by the first of the start-up thread or the
//! first assignment that needs them; a leader without the model file sends assignments without
//! weights, as before (its nodes need their own copies).

use super::digests::ModelDigests;
use quantpipe_messages::Assignment;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

static MODEL_DIR: OnceLock<PathBuf> = OnceLock::new();
static DIGESTS: OnceLock<Result<Arc<ModelDigests>, String>> = OnceLock::new();

/// This process's node holds the model file in `dir`: digest it in the background now, so the
/// first plan does not wait for it.
pub fn hold_model(dir: &Path) {
    if MODEL_DIR.set(dir.to_owned()).is_ok() {
        std::thread::Builder::new()
            .name("weight-digests".into())
            .spawn(|| {
                let _ = digests();
            })
            .map(drop)
            .unwrap_or_else(|e| tracing::warn!("cannot digest the model in the background: {e}"));
    }
}

/// The digests of the held model (computed on first use), or why there are none.
pub fn digests() -> Result<Arc<ModelDigests>, String> {
    let dir = MODEL_DIR.get().ok_or("this node holds no model file")?;
    DIGESTS
        .get_or_init(|| {
            let t = std::time::Instant::now();
            match ModelDigests::compute(dir) {
                Ok(d) => {
                    tracing::info!(
                        "digested {} tensors ({} bytes) of {} in {:.2} s",
                        d.tensors.len(),
                        d.file_len,
                        dir.display(),
                        t.elapsed().as_secs_f64()
                    );
                    Ok(Arc::new(d))
                }
                Err(e) => {
                    tracing::warn!("cannot digest the model in {}: {e:#}", dir.display());
                    Err(format!("{e:#}"))
                }
            }
        })
        .clone()
}

/// Puts into `a` the tensors and small files its shard needs, with digests, when this node
/// holds the model; leaves `a` without weights otherwise.
pub fn attach_weights(a: &mut Assignment) {
    let Ok(d) = digests() else { return };
    match d.for_shard(a.l, a.r) {
        Ok(w) => a.weights = Some(w),
        Err(e) => tracing::warn!(
            "assignment of units {}..{} goes without weights: {e:#}",
            a.l,
            a.r
        ),
    }
}
