//! The fetching node: before an assignment takes effect, it gets the small files and tensors
//! its shard needs and its folder lacks, from peers holding the model, in chunks; it keeps only
//! bytes whose SHA-256 matches the digest the leader's assignment carries. A peer that served
//! other bytes is logged (naming the peer and the tensor), not asked again during this fetch,
//! and the bytes are fetched from the next peer. Verified tensors go into the folder's
//! [`TensorCache`], so a restart or a later assignment fetches only what is still missing.

use super::decide::{chunks, missing_tensors, peers_to_ask, MODEL_FILE};
use super::digests::hex;
use anyhow::{anyhow, bail, Context as _, Result};
use quantpipe_messages::{envelope, Keys, ShardWeights, WeightRequest};
use quantpipe_model_shards::tensor_cache::{CachedTensor, TensorCache};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use zenoh::Wait;

/// Bytes asked for in one request: large enough that round trips cost little against the
/// transfer, small enough to stay far below a reply's limits.
pub const CHUNK_BYTES: u64 = 1 << 20;
/// How long a peer may take to answer one chunk.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the liveliness query for peers waits.
const PEERS_TIMEOUT: Duration = Duration::from_secs(2);

/// What one fetch did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FetchReport {
    /// Verified bytes fetched (tensors and small files).
    pub bytes: u64,
    pub tensors: usize,
    pub files: usize,
    /// `peer: what` for every refusal of bytes that did not match their digest.
    pub refused: Vec<String>,
    pub seconds: f64,
}

/// Fetches the missing parts of a shard into a model folder.
pub struct Fetcher {
    session: zenoh::Session,
    keys: Keys,
    me: String,
    dir: PathBuf,
}

impl Fetcher {
    pub fn new(session: zenoh::Session, keys: Keys, me: String, dir: PathBuf) -> Self {
        Fetcher {
            session,
            keys,
            me,
            dir,
        }
    }

    /// Makes the folder hold what `w` lists: nothing to do when it has the model file itself;
    /// else every small file and every tensor it lacks, verified, then the cache's index.
    pub fn ensure(&self, w: &ShardWeights) -> Result<FetchReport> {
        let mut report = FetchReport::default();
        if self.dir.join(MODEL_FILE).is_file() {
            return Ok(report);
        }
        w.validate()
            .map_err(|e| anyhow!("the assignment's weights: {e}"))?;
        let started = Instant::now();
        let cache = TensorCache::in_model_dir(&self.dir);
        std::fs::create_dir_all(cache.dir())
            .with_context(|| format!("creating {}", cache.dir().display()))?;
        let mut refused = BTreeSet::new();
        for f in &w.files {
            let dest = self.dir.join(&f.path);
            if file_digest(&dest).as_deref() == Some(f.sha256.as_str()) {
                continue;
            }
            let what = Wanted {
                what: format!("file {}", f.path),
                file: &f.path,
                offset: 0,
                len: f.len,
                sha256: &f.sha256,
            };
            self.fetch(&what, &dest, &mut refused, &mut report)?;
            report.files += 1;
        }
        for t in missing_tensors(w, |t| cache.holds(&t.sha256, t.len)) {
            let what = Wanted {
                what: format!("tensor {}", t.name),
                file: &w.file,
                offset: t.offset,
                len: t.len,
                sha256: &t.sha256,
            };
            self.fetch(
                &what,
                &cache.tensor_path(&t.sha256),
                &mut refused,
                &mut report,
            )?;
            report.tensors += 1;
        }
        cache.record(w.tensors.iter().map(|t| {
            let entry = CachedTensor {
                dtype: t.dtype.clone(),
                shape: t.shape.clone(),
                sha256: t.sha256.clone(),
            };
            (t.name.clone(), entry)
        }))?;
        report.refused = refused.into_iter().collect();
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// The names of the alive nodes (their liveliness tokens).
    fn alive(&self) -> Result<BTreeSet<String>> {
        let replies = self
            .session
            .liveliness()
            .get(self.keys.nodes())
            .timeout(PEERS_TIMEOUT)
            .wait()
            .map_err(|e| anyhow!("liveliness query: {e}"))?;
        let mut names = BTreeSet::new();
        while let Ok(reply) = replies.recv() {
            if let Ok(sample) = reply.result() {
                if let Some(n) = self.keys.token_name("node", sample.key_expr().as_str()) {
                    names.insert(n.to_owned());
                }
            }
        }
        Ok(names)
    }

    /// Gets `w` verified into `dest`, asking peers in turn; a peer whose bytes do not match
    /// is added to `refused` and the next one is asked.
    fn fetch(
        &self,
        w: &Wanted,
        dest: &Path,
        refused: &mut BTreeSet<String>,
        report: &mut FetchReport,
    ) -> Result<()> {
        let peers = peers_to_ask(&self.alive()?, &self.me, refused);
        let mut failures = Vec::new();
        for peer in peers {
            let tmp = dest.with_extension("part");
            match self.download(&peer, w, &tmp) {
                Ok(digest) if digest == w.sha256 => {
                    if let Some(parent) = dest.parent() {
                        std::fs::create_dir_all(parent)
                            .with_context(|| format!("creating {}", parent.display()))?;
                    }
                    std::fs::rename(&tmp, dest)
                        .with_context(|| format!("keeping {}", dest.display()))?;
                    report.bytes += w.len;
                    return Ok(());
                }
                Ok(digest) => {
                    let _ = std::fs::remove_file(&tmp);
                    tracing::error!(
                        "{}: refusing {} from {peer}: its bytes have SHA-256 {digest}, the \
                         plan says {}; asking another peer",
                        self.me,
                        w.what,
                        w.sha256
                    );
                    refused.insert(peer.clone());
                    failures.push(format!("{peer}: bytes did not match"));
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    tracing::warn!("{}: {peer} did not serve {}: {e:#}", self.me, w.what);
                    failures.push(format!("{peer}: {e:#}"));
                }
            }
        }
        bail!(
            "no peer served {} intact ({})",
            w.what,
            match failures.is_empty() {
                true => "no peer to ask".to_owned(),
                false => failures.join("; "),
            }
        )
    }

    /// Downloads `w`'s bytes from `peer` into `tmp`, chunk by chunk; answers their digest.
    fn download(&self, peer: &str, w: &Wanted, tmp: &Path) -> Result<String> {
        if let Some(parent) = tmp.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(tmp).with_context(|| format!("creating {}", tmp.display()))?,
        );
        let mut hasher = Sha256::new();
        for (offset, len) in chunks(w.offset, w.len, CHUNK_BYTES) {
            let req = WeightRequest {
                file: w.file.to_owned(),
                offset,
                len,
            };
            let replies = self
                .session
                .get(self.keys.weights(peer))
                .payload(envelope::encode(&self.keys.fleet, &req))
                .timeout(CHUNK_TIMEOUT)
                .wait()
                .map_err(|e| anyhow!("asking: {e}"))?;
            let reply = replies
                .recv()
                .map_err(|_| anyhow!("no answer for bytes {offset}+{len}"))?;
            let sample = reply.result().map_err(|e| {
                anyhow!(
                    "it refused bytes {offset}+{len}: {}",
                    String::from_utf8_lossy(&e.payload().to_bytes())
                )
            })?;
            let bytes = sample.payload().to_bytes();
            if bytes.len() as u64 != len {
                bail!("{} bytes answered for {len} asked", bytes.len());
            }
            hasher.update(&bytes);
            out.write_all(&bytes)?;
        }
        out.flush()?;
        Ok(hex(&hasher.finalize()))
    }
}

/// One thing to fetch: a byte range of a served file and its digest.
struct Wanted<'a> {
    what: String,
    file: &'a str,
    offset: u64,
    len: u64,
    sha256: &'a str,
}

/// SHA-256 of the file at `path`, if it can be read.
fn file_digest(path: &Path) -> Option<String> {
    std::fs::read(path)
        .ok()
        .map(|b| super::digests::sha256_hex(&b))
}
