//! `quantpipe bench serve`: the fleet as a service against the same pipeline driven by the
//! batch client, in one run. A 2-stage MiniLM fleet on loopback; first the batch client
//! (`quantpipe run`'s) streams texts with `window` microbatches in flight, then a gateway
//! (`quantpipe serve`'s, in this process) serves the same fleet and 1, 8, 64... concurrent
//! HTTP clients each send one text per `/v1/embeddings` request, the next as soon as the answer
//! arrives, for a fixed time. Per level: answered items/s against the batch client's steady
//! rate, p50 / p99 request latency, requests by status, and the mean microbatch fill the
//! gateway's dynamic batching reached. The batch client runs again at the end, so a drift of
//! the machine during the run shows.

mod figures;
mod fleet;
mod gateway;
mod load;

use anyhow::{Context, Result};
use fleet::BenchFleet;
use quantpipe_actors::runtime::client::run_texts_on;
use quantpipe_launcher::minilm::long_texts;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A sentence-embedding model folder (Hugging Face layout).
    #[arg(long, default_value = "data/minilm")]
    model_dir: PathBuf,
    /// Concurrent HTTP clients of each level.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    clients: Vec<usize>,
    /// Seconds each level sends for.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Seconds at the start of each level left out of its figures.
    #[arg(long, default_value_t = 4.0)]
    warmup_s: f64,
    /// Items the batch client streams.
    #[arg(long, default_value_t = 384)]
    batch_items: usize,
    #[arg(long, default_value_t = 8)]
    ubatch: usize,
    /// Microbatches in flight (batch client and gateway alike).
    #[arg(long, default_value_t = 4)]
    window: usize,
    #[arg(long, default_value_t = 32)]
    bits: u8,
    /// The gateway's longest wait for a microbatch to fill, milliseconds.
    #[arg(long, default_value_t = 5.0)]
    max_delay_ms: f64,
    /// Where the fleet's configs and logs go (default: a temporary folder).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    model: String,
    ubatch: usize,
    window: usize,
    bits: u8,
    stages: usize,
    max_delay_ms: f64,
    seconds: f64,
    warmup_s: f64,
    /// Steady rate of the batch client, items/s, before and after the levels (levels are set
    /// against their mean).
    batch_items_per_s: [f64; 2],
    levels: Vec<figures::Level>,
}

pub fn run(args: Args) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = args.out.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    eprintln!(
        "starting a 2-stage MiniLM fleet (logs in {})",
        dir.display()
    );
    let mut fleet = BenchFleet::start(&args.model_dir, &dir, args.ubatch, args.bits)?;
    // Texts that fit the gateway's token limit (it refuses longer ones rather than cut them),
    // all of about the same length, so every microbatch costs the same on both paths.
    let texts = Arc::new(long_texts(args.batch_items.max(64), 90));
    let batch_before = batch_rate(&fleet, &args, &texts)?;
    eprintln!("batch client: {batch_before:.2} items/s");
    let served = gateway::Served::start(&fleet, &args)?;
    let mut measured = Vec::new();
    for &clients in &args.clients {
        let before = served.client.snapshot();
        let samples = load::run(
            &served.embeddings_url(),
            &served.client.model().name,
            texts.clone(),
            clients,
            Duration::from_secs_f64(args.seconds),
        )?;
        let after = served.client.snapshot();
        let sent = after.microbatches_sent - before.microbatches_sent;
        let answered = after.items_answered - before.items_answered;
        let fill = answered as f64 / (sent.max(1) * args.ubatch as u64) as f64;
        // Against the first batch rate for now; the report uses both.
        let level = figures::level(
            clients,
            &samples,
            args.warmup_s,
            args.seconds,
            batch_before,
            fill,
        );
        eprintln!("{}", level_line(&level));
        measured.push((clients, samples, fill));
        fleet.nodes.check()?;
    }
    served.stop();
    let batch_after = batch_rate(&fleet, &args, &texts)?;
    eprintln!("batch client again: {batch_after:.2} items/s");
    // The machine may drift during the run: each level is set against the mean of the batch
    // client's rate before and after.
    let batch_mean = (batch_before + batch_after) / 2.0;
    let levels = measured
        .iter()
        .map(|(clients, samples, fill)| {
            figures::level(
                *clients,
                samples,
                args.warmup_s,
                args.seconds,
                batch_mean,
                *fill,
            )
        })
        .collect();
    let report = Report {
        model: args.model_dir.display().to_string(),
        ubatch: args.ubatch,
        window: args.window,
        bits: args.bits,
        stages: fleet.plan.stages.len(),
        max_delay_ms: args.max_delay_ms,
        seconds: args.seconds,
        warmup_s: args.warmup_s,
        batch_items_per_s: [batch_before, batch_after],
        levels,
    };
    super::print(&report, args.json, |r| {
        let mut lines = vec![format!(
            "batch client {:.2} / {:.2} items/s (before / after the levels; ratios to their mean)",
            r.batch_items_per_s[0], r.batch_items_per_s[1]
        )];
        lines.extend(r.levels.iter().map(level_line));
        lines.join("\n")
    })
}

fn level_line(l: &figures::Level) -> String {
    format!(
        "{:>3} clients: {:>6.2} items/s = {:.2} x batch, p50 {:.3} s, p99 {:.3} s, fill {:.2}",
        l.clients, l.items_per_s, l.of_batch_client, l.latency_p50_s, l.latency_p99_s, l.mean_fill
    )
}

/// The batch client's steady rate over `args.batch_items` texts on the bench's session.
fn batch_rate(fleet: &BenchFleet, args: &Args, texts: &[String]) -> Result<f64> {
    let settings = fleet.client_settings("serve-batch", args.window);
    let items = &texts[..args.batch_items.min(texts.len())];
    let report = run_texts_on(&fleet.session, &fleet.keys, &settings, items)?;
    Ok(figures::steady_rate(&report.arrivals_s, args.ubatch))
}
