//! The `[gateway]` section of a fleet client's settings file: where the gateway listens and how
//! it admits requests. The rest of the file is the client's `Settings`, which ignores this
//! section; this module ignores everything else.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// Environment variables that override `[gateway]` keys: `QUANTPIPE_GATEWAY__LISTEN`, ...
const ENV_PREFIX: &str = "QUANTPIPE_GATEWAY__";

/// The gateway's own settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Socket address the HTTP server binds, e.g. "127.0.0.1:8080".
    pub listen: String,
    /// Longest an item waits for its microbatch to fill, milliseconds.
    pub max_delay_ms: f64,
    /// Items admitted but not yet answered, at most; past it requests get 429.
    pub queue_items: usize,
    /// Per-request deadline when the request gives none, milliseconds; past it 504.
    pub deadline_ms: f64,
    /// Largest request body accepted, bytes; longer bodies get 413.
    pub max_body_bytes: usize,
    /// Most tokens a text item may have (default: the client's `max_len`).
    pub max_tokens: Option<usize>,
    /// The model name clients use (default: the model folder's name).
    pub served_name: Option<String>,
    /// Labels a classifier's answer lists per item when the request names no outputs (a
    /// requested output's `classification` parameter sets its own count).
    pub top_k: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: "127.0.0.1:8080".into(),
            max_delay_ms: 5.0,
            queue_items: 256,
            deadline_ms: 30_000.0,
            max_body_bytes: 8 << 20,
            max_tokens: None,
            served_name: None,
            top_k: 5,
        }
    }
}

/// The file as far as the gateway reads it.
#[derive(Deserialize)]
struct File {
    #[serde(default)]
    gateway: GatewayConfig,
}

impl GatewayConfig {
    /// The `[gateway]` section of TOML `text` (defaults when absent).
    pub fn parse(text: &str) -> Result<GatewayConfig> {
        let file: File = toml::from_str(text).context("the [gateway] section")?;
        file.gateway.validate()?;
        Ok(file.gateway)
    }

    /// The `[gateway]` section of the settings file at `path`, with `QUANTPIPE_GATEWAY__*`
    /// environment overrides applied (as `Settings::load` applies `QUANTPIPE_*` to the rest).
    pub fn load(path: &Path) -> Result<GatewayConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let env = std::env::vars().filter(|(k, _)| k.starts_with(ENV_PREFIX));
        GatewayConfig::parse_with_env(&text, env)
            .with_context(|| format!("config {}", path.display()))
    }

    /// The `[gateway]` section of TOML `text` with overrides from `env`
    /// (`QUANTPIPE_GATEWAY__KEY` = value: a number when it parses as one, else a string).
    pub fn parse_with_env(
        text: &str,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<GatewayConfig> {
        let mut file: toml::Table = toml::from_str(text).context("the settings file")?;
        let section = file
            .entry("gateway")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section) = section.as_table_mut() else {
            bail!("gateway must be a section ([gateway])");
        };
        for (key, value) in env {
            let Some(name) = key.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let value = value
                .parse::<i64>()
                .map(toml::Value::Integer)
                .or_else(|_| value.parse::<f64>().map(toml::Value::Float))
                .unwrap_or(toml::Value::String(value));
            section.insert(name.to_ascii_lowercase(), value);
        }
        GatewayConfig::parse(&toml::to_string(&file)?)
    }

    /// Fails naming the first setting that cannot work.
    pub fn validate(&self) -> Result<()> {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            bail!(
                "gateway.listen = {:?} is not a socket address (e.g. \"127.0.0.1:8080\")",
                self.listen
            );
        }
        if !(self.max_delay_ms.is_finite() && self.max_delay_ms >= 0.0) {
            bail!("gateway.max_delay_ms must be a non-negative number of milliseconds");
        }
        if !(self.deadline_ms.is_finite() && self.deadline_ms > 0.0) {
            bail!("gateway.deadline_ms must be a positive number of milliseconds");
        }
        if self.queue_items == 0 {
            bail!("gateway.queue_items must be at least 1");
        }
        if self.max_body_bytes < 64 {
            bail!("gateway.max_body_bytes must be at least 64");
        }
        if self.max_tokens == Some(0) {
            bail!("gateway.max_tokens must be at least 1");
        }
        if self.top_k == 0 {
            bail!("gateway.top_k must be at least 1");
        }
        Ok(())
    }

    pub fn max_delay(&self) -> Duration {
        Duration::from_secs_f64(self.max_delay_ms / 1e3)
    }

    pub fn deadline(&self) -> Duration {
        Duration::from_secs_f64(self.deadline_ms / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_the_section_gets_the_defaults() {
        let c = GatewayConfig::parse("fleet = \"f\"\n[zenoh]\nconnect = []\n").unwrap();
        assert_eq!(c, GatewayConfig::default());
    }

    #[test]
    fn the_section_is_read_beside_the_client_settings() {
        let text = "fleet = \"f\"\nname = \"gw\"\n[client]\nmax_len = 128\n\
                    [gateway]\nlisten = \"0.0.0.0:9000\"\nqueue_items = 16\nmax_delay_ms = 2\n\
                    served_name = \"minilm\"\n";
        let c = GatewayConfig::parse(text).unwrap();
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.queue_items, 16);
        assert_eq!(c.max_delay(), Duration::from_millis(2));
        assert_eq!(c.served_name.as_deref(), Some("minilm"));
    }

    #[test]
    fn a_misspelt_key_is_refused_by_name() {
        let err = GatewayConfig::parse("[gateway]\nqueue_item = 3\n").unwrap_err();
        assert!(format!("{err:#}").contains("queue_item"), "{err:#}");
    }

    #[test]
    fn a_listen_address_that_is_no_socket_address_is_refused() {
        let err = GatewayConfig::parse("[gateway]\nlisten = \"localhost\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("gateway.listen"), "{err:#}");
    }

    #[test]
    fn environment_overrides_replace_keys_of_the_section() {
        let env = [
            (
                "QUANTPIPE_GATEWAY__LISTEN".to_string(),
                "0.0.0.0:9100".to_string(),
            ),
            (
                "QUANTPIPE_GATEWAY__QUEUE_ITEMS".to_string(),
                "8".to_string(),
            ),
            (
                "QUANTPIPE_GATEWAY__MAX_DELAY_MS".to_string(),
                "2.5".to_string(),
            ),
        ];
        let text = "fleet = \"f\"\n[gateway]\nqueue_items = 3\n";
        let c = GatewayConfig::parse_with_env(text, env.into_iter()).unwrap();
        assert_eq!(c.listen, "0.0.0.0:9100");
        assert_eq!(c.queue_items, 8);
        assert_eq!(c.max_delay_ms, 2.5);
        let misspelt = [("QUANTPIPE_GATEWAY__QUEUE".to_string(), "8".to_string())];
        assert!(GatewayConfig::parse_with_env("", misspelt.into_iter()).is_err());
    }

    #[test]
    fn an_empty_queue_is_refused() {
        assert!(GatewayConfig::parse("[gateway]\nqueue_items = 0\n").is_err());
    }
}
