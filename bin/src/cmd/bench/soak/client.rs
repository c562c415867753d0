//! The soak's client: runs of short texts on the bench's session, one after another, until the
//! microbatches asked for are answered or it is told to stop. Each run is `ROUND` microbatches,
//! so what a run keeps (its outputs) is freed before the next and the client's memory measures
//! what piles up, not what it was asked to keep.

use anyhow::Result;
use quantpipe_actors::runtime::client::run_texts_on_with_progress;
use quantpipe_actors::runtime::config::Settings;
use quantpipe_launcher::minilm::long_texts;
use quantpipe_messages::Keys;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use zenoh::Session;

/// Microbatches of one run.
const ROUND: u64 = 250;
/// Words of each text: a dozen tokens, so a microbatch is cheap and a long soak fits.
const WORDS: usize = 8;

/// What the client did so far, shared with the soak's loop.
#[derive(Default)]
pub struct Progress {
    answered: AtomicU64,
    resent: AtomicU64,
    stop: AtomicBool,
    finished: AtomicBool,
}

impl Progress {
    /// Microbatches answered.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    pub fn resent(&self) -> u64 {
        self.resent.load(Ordering::Relaxed)
    }

    /// Stops after the run under way.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn finished(&self) -> bool {
        self.finished.load(Ordering::Relaxed)
    }
}

/// Runs `total` microbatches of `ubatch` texts (or until stopped) on its own thread.
pub fn spawn(
    session: Session,
    keys: Keys,
    settings: Settings,
    ubatch: usize,
    total: u64,
    progress: Arc<Progress>,
) -> JoinHandle<Result<()>> {
    std::thread::spawn(move || {
        let result = run(&session, &keys, &settings, ubatch, total, &progress);
        progress.finished.store(true, Ordering::Relaxed);
        result
    })
}

fn run(
    session: &Session,
    keys: &Keys,
    settings: &Settings,
    ubatch: usize,
    total: u64,
    progress: &Progress,
) -> Result<()> {
    let texts = long_texts(ROUND as usize * ubatch, WORDS);
    let mut base = 0;
    while base < total && !progress.stop.load(Ordering::Relaxed) {
        let round = ROUND.min(total - base) as usize;
        let report = run_texts_on_with_progress(
            session,
            keys,
            settings,
            &texts[..round * ubatch],
            &mut |items| {
                let answered = base + (items / ubatch) as u64;
                progress.answered.store(answered, Ordering::Relaxed);
            },
        )?;
        progress.resent.fetch_add(report.resent, Ordering::Relaxed);
        base += round as u64;
        progress.answered.store(base, Ordering::Relaxed);
    }
    Ok(())
}
