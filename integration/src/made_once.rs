//! A folder that tests make on first use (a trained model, say) rather than a set-up step: made
//! once however many test threads and processes ask for it at the same time, and never seen
//! half-made.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// Answers `dir` once it holds the file `complete`, first making it with `make` when it does not.
///
/// Makers are serialised by an exclusive lock on `.<name>.lock` beside `dir` (threads and processes
/// alike), and whoever gets the lock checks again, so `make` runs once. It fills a fresh temporary
/// folder beside `dir`, which is renamed to `dir` only once `complete` is in it: a maker that fails
/// or is killed leaves no `dir` behind, and the next caller starts over.
pub fn dir_made_once(
    dir: &Path,
    complete: &str,
    make: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<PathBuf> {
    if dir.join(complete).exists() {
        return Ok(dir.to_path_buf());
    }
    let (parent, name) = match (dir.parent(), dir.file_name()) {
        (Some(parent), Some(name)) => (parent, name.to_string_lossy()),
        _ => {
            return Err(io::Error::other(format!(
                "{} has no parent folder to make it in",
                dir.display()
            )))
        }
    };
    fs::create_dir_all(parent)?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(parent.join(format!(".{name}.lock")))?;
    // Held until `lock` is dropped, also when `make` panics.
    lock.lock()?;
    if dir.join(complete).exists() {
        return Ok(dir.to_path_buf());
    }
    let tmp = parent.join(format!(".{name}.tmp"));
    remove_dir_if_any(&tmp)?;
    make(&tmp)?;
    if !tmp.join(complete).exists() {
        return Err(io::Error::other(format!(
            "making {} left no {complete} in {}",
            dir.display(),
            tmp.display()
        )));
    }
    // A folder without `complete` is what an older, interrupted maker left: replaced.
    remove_dir_if_any(dir)?;
    fs::rename(&tmp, dir)?;
    Ok(dir.to_path_buf())
}

fn remove_dir_if_any(dir: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn write_model(tmp: &Path) -> io::Result<()> {
        fs::create_dir_all(tmp)?;
        fs::write(tmp.join("model.safetensors"), b"weights")
    }

    #[test]
    fn missing_folder_is_made_and_renamed_into_place() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data/model");
        let made = dir_made_once(&dir, "model.safetensors", write_model).unwrap();
        assert_eq!(made, dir);
        assert_eq!(fs::read(dir.join("model.safetensors")).unwrap(), b"weights");
        assert!(!root.path().join("data/.model.tmp").exists());
    }

    #[test]
    fn complete_folder_is_not_made_again() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("model");
        write_model(&dir).unwrap();
        dir_made_once(&dir, "model.safetensors", |_| {
            panic!("a complete folder must not be made again")
        })
        .unwrap();
    }

    #[test]
    fn concurrent_callers_make_it_once() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("model");
        let makes = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    dir_made_once(&dir, "model.safetensors", |tmp| {
                        makes.fetch_add(1, Ordering::SeqCst);
                        // Long enough for the other threads to be waiting on the lock.
                        std::thread::sleep(Duration::from_millis(200));
                        write_model(tmp)
                    })
                    .unwrap();
                });
            }
        });
        assert_eq!(makes.load(Ordering::SeqCst), 1);
        assert!(dir.join("model.safetensors").exists());
    }

    #[test]
    fn failed_make_leaves_nothing_and_the_next_caller_starts_over() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("model");
        let failed = dir_made_once(&dir, "model.safetensors", |tmp| {
            fs::create_dir_all(tmp)?;
            fs::write(tmp.join("half"), b"")?;
            Err(io::Error::other("training diverged"))
        });
        assert_eq!(failed.unwrap_err().to_string(), "training diverged");
        assert!(!dir.exists());
        dir_made_once(&dir, "model.safetensors", |tmp| {
            assert!(!tmp.exists(), "the failed maker's files are cleared first");
            write_model(tmp)
        })
        .unwrap();
        assert!(dir.join("model.safetensors").exists());
    }

    #[test]
    fn maker_without_the_complete_file_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("model");
        let err = dir_made_once(&dir, "model.safetensors", |tmp| fs::create_dir_all(tmp))
            .unwrap_err()
            .to_string();
        assert!(err.contains("left no model.safetensors"), "{err}");
        assert!(!dir.exists());
    }

    #[test]
    fn interrupted_folder_without_the_complete_file_is_replaced() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("model");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("config.json"), b"{}").unwrap();
        dir_made_once(&dir, "model.safetensors", write_model).unwrap();
        assert!(dir.join("model.safetensors").exists());
        assert!(!dir.join("config.json").exists());
    }
}
