//! `quantpipe router`: a zenoh router joining members of a fleet that cannot reach each other
//! directly (nodes on different subnets with no IP route between them). Each member runs as a
//! zenoh client of the router's address on its own subnet (`zenoh.mode = "client"`,
//! `zenoh.connect`): every declaration (liveliness tokens, subscribers, queryables) and every
//! message then goes through the router, which forwards it to the members it is meant for.
//! Plain TCP only: a fleet secured with a CA is refused (see [`refuse_security`]).

use anyhow::{anyhow, bail, Context as _, Result};
use quantpipe_actors::runtime::config::ZenohSettings;
use quantpipe_security::SecuritySettings;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use zenoh::Wait;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Endpoints to listen on, e.g. `tcp/10.1.0.1:7447 tcp/10.2.0.1:7447` (one per subnet),
    /// or `tcp/0.0.0.0:7447`; added to the settings' `zenoh.listen`.
    #[arg(long, num_args = 1..)]
    listen: Vec<String>,
    /// Other routers to connect to; added to the settings' `zenoh.connect`.
    #[arg(long, num_args = 1..)]
    connect: Vec<String>,
    /// Router settings (TOML): `fleet`, `name`, `[zenoh]` (`listen`, `connect`, `lease_ms`)
    /// and `[security]` as a member's (see config/router.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// How long a silent link may stay before its peer is declared gone, ms (default: the
    /// settings', else zenoh's 10000): give it the fleet's `zenoh.lease_ms`.
    #[arg(long)]
    lease_ms: Option<u64>,
    /// Plain TCP beyond loopback, on a network you trust (no certificate, no access control).
    #[arg(long)]
    insecure: bool,
}

/// What a router's settings file holds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouterFile {
    fleet: String,
    name: String,
    #[serde(default)]
    zenoh: ZenohSettings,
    #[serde(default)]
    security: SecuritySettings,
}

impl RouterFile {
    fn load(path: &Path) -> Result<RouterFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading router settings {}", path.display()))?;
        let mut f: RouterFile =
            toml::from_str(&text).with_context(|| format!("router settings {}", path.display()))?;
        if let Some(folder) = path.parent() {
            f.security.resolve_relative_to(folder);
        }
        Ok(f)
    }
}

/// The router's zenoh settings: router mode, `file`'s endpoints and the given ones, no
/// multicast scouting (members name the router in `zenoh.connect`).
fn router_zenoh(
    file: &ZenohSettings,
    listen: &[String],
    connect: &[String],
    lease_ms: Option<u64>,
) -> Result<ZenohSettings> {
    let mut z = file.clone();
    z.mode = "router".into();
    z.listen.extend_from_slice(listen);
    z.connect.extend_from_slice(connect);
    z.multicast_scouting = false;
    if let Some(ms) = lease_ms {
        z.lease_ms = ms;
    }
    if z.listen.is_empty() {
        bail!("a router needs at least one endpoint to listen on (--listen, or zenoh.listen)");
    }
    Ok(z)
}

/// A secured fleet cannot go through the router yet: on a link to it, each member's access
/// control would see the router's certificate in place of the sender's or receiver's.
fn refuse_security(name: &str, security: &SecuritySettings) -> Result<()> {
    if security.ca.is_some() {
        bail!(
            "router `{name}`: [security] sets a CA, but a secured fleet cannot be routed yet \
             (each member's access control would see the router's certificate on every message \
             it relays); link a secured fleet's members directly, or run the router with plain \
             TCP (`insecure = true`) on a network you trust"
        );
    }
    Ok(())
}

pub fn run(args: Args) -> Result<()> {
    let file = match &args.config {
        Some(path) => RouterFile::load(path)?,
        None => RouterFile {
            fleet: "router".into(),
            name: "router".into(),
            zenoh: ZenohSettings::default(),
            security: SecuritySettings::default(),
        },
    };
    let z = router_zenoh(&file.zenoh, &args.listen, &args.connect, args.lease_ms)?;
    refuse_security(&file.name, &file.security)?;
    let mut security = file.security.clone();
    security.insecure |= args.insecure;
    // The fleet's rules for links: TLS under the CA, or plain on loopback (beyond it only
    // when told so).
    let secure = security
        .secure_zenoh(&file.fleet, &file.name, &z.listen, &z.connect)
        .with_context(|| format!("[security] of router `{}`", file.name))?;
    if let Some(w) = &secure.warning {
        tracing::warn!("{w}");
    }
    let mut config = z.config()?;
    for (k, v) in &secure.entries {
        config
            .insert_json5(k, &v.to_string())
            .map_err(|e| anyhow!("zenoh setting {k}: {e}"))?;
    }
    let session = zenoh::open(config)
        .wait()
        .map_err(|e| anyhow!("opening the zenoh router: {e}"))?;
    tracing::info!(
        "router {} up{}, listening on {}",
        file.name,
        match secure.member {
            Some(_) => format!(" in fleet {} (TLS, access control)", file.fleet),
            None => String::new(),
        },
        z.listen.join(", ")
    );
    let waited = actix_rt::System::new().block_on(wait_for_signal());
    if let Err(e) = session.close().wait() {
        tracing::warn!("closing the zenoh router: {e}");
    }
    waited
}

/// Until SIGINT (Ctrl-C) or SIGTERM.
async fn wait_for_signal() -> Result<()> {
    use actix_rt::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    std::future::poll_fn(|cx| {
        match term.poll_recv(cx).is_ready() || int.poll_recv(cx).is_ready() {
            true => std::task::Poll::Ready(()),
            false => std::task::Poll::Pending,
        }
    })
    .await;
    tracing::info!("stopping");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn a_router_listens_on_every_subnet_given_without_multicast() {
        let file = ZenohSettings {
            listen: v(&["tcp/10.1.0.1:7447"]),
            multicast_scouting: true,
            ..ZenohSettings::default()
        };
        let z = router_zenoh(&file, &v(&["tcp/10.2.0.1:7447"]), &[], Some(3000)).unwrap();
        assert_eq!(z.mode, "router");
        assert_eq!(z.listen, v(&["tcp/10.1.0.1:7447", "tcp/10.2.0.1:7447"]));
        assert!(!z.multicast_scouting);
        assert_eq!(z.lease_ms, 3000);
        z.config().unwrap();
        let kept = router_zenoh(&file, &[], &[], None).unwrap();
        assert_eq!(kept.lease_ms, file.lease_ms);
    }

    #[test]
    fn a_router_without_an_endpoint_is_refused() {
        let e = router_zenoh(&ZenohSettings::default(), &[], &[], None).unwrap_err();
        assert!(e.to_string().contains("at least one endpoint"), "{e}");
    }

    #[test]
    fn a_router_with_a_ca_is_refused_naming_why() {
        let secured = SecuritySettings {
            ca: Some("ca.pem".into()),
            ..Default::default()
        };
        let e = refuse_security("r", &secured).unwrap_err().to_string();
        assert!(e.contains("cannot be routed yet"), "{e}");
        assert!(refuse_security("r", &SecuritySettings::default()).is_ok());
    }

    #[test]
    fn the_example_router_settings_load() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/router.toml");
        let f = RouterFile::load(&path).unwrap();
        let z = router_zenoh(&f.zenoh, &[], &[], None).unwrap();
        assert!(z.listen.iter().all(|e| e.starts_with("tcp/")), "{z:?}");
        assert!(f.security.insecure);
    }

    #[test]
    fn router_settings_read_fleet_name_endpoints_and_security() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("router.toml");
        std::fs::write(
            &path,
            "fleet = \"lab\"\nname = \"r\"\n[zenoh]\nlisten = [\"tls/10.1.0.1:7447\"]\n\
             lease_ms = 3000\n[security]\nca = \"ca.pem\"\n",
        )
        .unwrap();
        let f = RouterFile::load(&path).unwrap();
        assert_eq!((f.fleet.as_str(), f.name.as_str()), ("lab", "r"));
        assert_eq!(f.zenoh.lease_ms, 3000);
        assert!(f.security.ca.is_some());
    }
}
