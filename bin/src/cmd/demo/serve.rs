//! `quantpipe demo --serve PORT`: the demo fleet kept up behind a gateway until Ctrl-C, with
//! the lines to call it from curl and Python.

use super::fleet::DemoFleet;
use anyhow::Result;
use quantpipe_gateway::{server, GatewayConfig};
use quantpipe_launcher::Fleet;

/// The name the demo serves MiniLM under.
const SERVED_NAME: &str = "minilm";

/// Joins `nodes` as a gateway on `port` and serves until interrupted, then stops the fleet.
pub fn serve(fleet: &DemoFleet, nodes: Fleet, port: u16) -> Result<()> {
    let mut settings = fleet.client_settings(super::fleet::GATEWAY)?;
    // The nodes are still starting: wait for the leader's plan as long as they may take.
    settings.client.plan_wait_s = 180.0;
    let config = GatewayConfig {
        listen: format!("127.0.0.1:{port}"),
        served_name: Some(SERVED_NAME.into()),
        ..GatewayConfig::default()
    };
    config.validate()?;
    let client = server::connect(&settings, &config)?;
    let closing = client.clone();
    let result = actix_rt::System::new().block_on(async move {
        let running = server::start(client, config)?;
        println!(
            "{}",
            try_lines(&format!("http://{}", running.addr), SERVED_NAME)
        );
        // Runs until SIGINT (Ctrl-C) or SIGTERM.
        running.server.await.map_err(anyhow::Error::from)
    });
    closing.close();
    drop(nodes);
    eprintln!("stopped the gateway and the fleet");
    result
}

/// What to paste into a shell to call the gateway at `url`.
pub fn try_lines(url: &str, model: &str) -> String {
    format!(
        r#"The demo fleet is serving {model} at {url} (Ctrl-C stops it). Try:

  curl -s {url}/v1/embeddings -H 'Content-Type: application/json' \
    -d '{{"model": "{model}", "input": ["The central bank raised rates.", "A late goal won the cup."]}}'

  curl -s {url}/v2/models/{model}/infer -H 'Content-Type: application/json' \
    -d '{{"inputs": [{{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hello fleet"]}}]}}'

  curl -s {url}/metrics

  .venv/bin/python -c 'from openai import OpenAI; c = OpenAI(base_url="{url}/v1", api_key="-"); print(c.embeddings.create(model="{model}", input="hello fleet").data[0].embedding[:4])'
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lines_to_try_name_the_url_and_model_of_every_api() {
        let text = try_lines("http://127.0.0.1:8080", "minilm");
        assert!(text.contains("http://127.0.0.1:8080/v1/embeddings"));
        assert!(text.contains("http://127.0.0.1:8080/v2/models/minilm/infer"));
        assert!(text.contains("http://127.0.0.1:8080/metrics"));
        assert!(text.contains(r#"base_url="http://127.0.0.1:8080/v1""#));
    }
}
