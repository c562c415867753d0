//! The gateway under load: `quantpipe serve`'s server over a fleet client, in this process on
//! an actix system of its own thread, listening on a free loopback port.

use super::fleet::BenchFleet;
use super::Args;
use actix_web::dev::ServerHandle;
use anyhow::{anyhow, Context, Result};
use quantpipe_client::FleetClient;
use quantpipe_gateway::{server, GatewayConfig};
use std::net::SocketAddr;
use std::thread::JoinHandle;

/// A serving gateway.
pub struct Served {
    pub client: FleetClient,
    addr: SocketAddr,
    system: actix_rt::System,
    server: ServerHandle,
    thread: JoinHandle<Result<()>>,
}

impl Served {
    /// Joins `fleet` as a gateway (queue and deadline large enough that the load is never
    /// refused: the bench measures throughput, not admission) and starts serving.
    pub fn start(fleet: &BenchFleet, args: &Args) -> Result<Served> {
        let settings = fleet.client_settings("serve-gateway", args.window);
        let config = GatewayConfig {
            listen: "127.0.0.1:0".into(),
            max_delay_ms: args.max_delay_ms,
            queue_items: 4 * args.clients.iter().copied().max().unwrap_or(1).max(64),
            deadline_ms: 120_000.0,
            ..GatewayConfig::default()
        };
        let client = server::connect(&settings, &config)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let for_server = client.clone();
        let thread = std::thread::spawn(move || -> Result<()> {
            actix_rt::System::new().block_on(async move {
                let running = server::start(for_server, config)?;
                let started = (
                    running.addr,
                    actix_rt::System::current(),
                    running.server.handle(),
                );
                let _ = tx.send(started);
                running
                    .server
                    .await
                    .context("the gateway's HTTP server failed")
            })
        });
        let (addr, system, server) = match rx.recv() {
            Ok(started) => started,
            Err(_) => {
                return Err(match thread.join() {
                    Ok(Err(e)) => e,
                    _ => anyhow!("the gateway's thread ended before it listened"),
                })
            }
        };
        Ok(Served {
            client,
            addr,
            system,
            server,
            thread,
        })
    }

    pub fn embeddings_url(&self) -> String {
        format!("http://{}/v1/embeddings", self.addr)
    }

    /// Stops the server and leaves the fleet.
    pub fn stop(self) {
        // The server future ends once the server stops; stopping the system alone would not
        // end `block_on`.
        let server = self.server.clone();
        self.system
            .arbiter()
            .spawn(async move { server.stop(true).await });
        match self.thread.join() {
            Ok(Err(e)) => tracing::warn!("the gateway stopped: {e:#}"),
            Err(_) => tracing::warn!("the gateway's thread panicked"),
            Ok(Ok(())) => {}
        }
        self.client.close();
    }
}
