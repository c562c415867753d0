//! Embeds texts through a running fleet, one request per text, all submitted at once from
//! their own threads: the client packs them into microbatches of the plan's size.
//!
//! ```text
//! cargo run -p quantpipe-client --example embed -- client.toml "first text" "second text"
//! ```
//!
//! `client.toml` is a client's settings file (the fleet's name, this client's unique name, the
//! model folder, and the zenoh endpoints of the fleet), as `quantpipe run --config` takes (the
//! demo writes its own client's, `demo-client.toml`, into its output folder; give this program
//! another `name` if both run at once).

use anyhow::{bail, Context as _, Result};
use quantpipe_client::{FleetClient, Item, ServiceOptions, Settings};
use std::path::Path;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(config), texts) = (args.next(), args.collect::<Vec<_>>()) else {
        bail!("usage: embed CLIENT.toml TEXT...");
    };
    if texts.is_empty() {
        bail!("give at least one text to embed");
    }
    let settings = Settings::load(Path::new(&config))
        .with_context(|| format!("reading the client's settings {config}"))?;
    // Connects to the fleet and waits for the leader's plan.
    let client = FleetClient::connect(&settings, ServiceOptions::default())?;
    println!(
        "{} serves {:?} ({}-dimensional outputs)",
        client.model().name,
        client.model().task,
        client.model().output_dim
    );

    // Every text is its own request, from its own thread: a handle is shared by reference (or
    // cloned) and `submit` may be called from anywhere at once.
    let answers: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = texts
            .iter()
            .map(|text| {
                let client = &client;
                scope.spawn(move || {
                    let submitted = client.submit(vec![Item::Text(text.clone())], None)?;
                    // `wait` blocks this thread; async callers `.await` `outputs()` instead.
                    Ok::<_, anyhow::Error>(submitted.wait().remove(0))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect()
    });

    for (text, answer) in texts.iter().zip(answers) {
        let output = answer.expect("a submitting thread panicked")??;
        let head: Vec<String> = output
            .values
            .iter()
            .take(4)
            .map(|v| format!("{v:.4}"))
            .collect();
        println!(
            "{text:?}: {} tokens -> [{}, ...] ({} values)",
            output.tokens,
            head.join(", "),
            output.values.len()
        );
    }
    let s = client.snapshot();
    println!(
        "{} microbatch(es) for {} item(s), mean fill {:.2} of the plan's microbatch",
        s.microbatches_sent, s.items_answered, s.mean_fill
    );
    client.close();
    Ok(())
}
