//! The load: `clients` threads, each sending one text at a time to the gateway's
//! `/v1/embeddings` and sending the next as soon as the answer arrives, for a fixed time.

use anyhow::{bail, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One request's fate.
pub struct Sample {
    /// Seconds from the load's start to the answer.
    pub done_s: f64,
    pub latency_s: f64,
    pub status: u16,
}

/// Sends from `clients` threads to `url` for `duration`, texts taken round-robin from `texts`
/// (each thread starting at its own offset).
pub fn run(
    url: &str,
    model: &str,
    texts: Arc<Vec<String>>,
    clients: usize,
    duration: Duration,
) -> Result<Vec<Sample>> {
    if texts.is_empty() {
        bail!("no text to send");
    }
    let start = Instant::now();
    let end = start + duration;
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (url, model, texts) = (url.to_owned(), model.to_owned(), texts.clone());
            std::thread::spawn(move || client(&url, &model, &texts, c, start, end))
        })
        .collect();
    let mut samples = Vec::new();
    for t in threads {
        match t.join() {
            Ok(s) => samples.extend(s?),
            Err(_) => bail!("a load thread panicked"),
        }
    }
    Ok(samples)
}

fn client(
    url: &str,
    model: &str,
    texts: &[String],
    offset: usize,
    start: Instant,
    end: Instant,
) -> Result<Vec<Sample>> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(120))
        .build();
    let mut samples = Vec::new();
    let mut i = offset.wrapping_mul(7919);
    while Instant::now() < end {
        let text = &texts[i % texts.len()];
        i += 1;
        let sent = Instant::now();
        let status = match agent
            .post(url)
            .send_json(serde_json::json!({ "model": model, "input": text }))
        {
            Ok(r) => {
                // Read the whole answer: a request is done when its body has arrived.
                let _ = r.into_string()?;
                200
            }
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => bail!("POST {url}: {e}"),
        };
        samples.push(Sample {
            done_s: start.elapsed().as_secs_f64(),
            latency_s: sent.elapsed().as_secs_f64(),
            status,
        });
    }
    Ok(samples)
}
