//! The HTTP server: every API's routes over one [`Gateway`], bound to `[gateway] listen`.

use crate::config::GatewayConfig;
use crate::failure::Failure;
use crate::state::Gateway;
use crate::{metrics, openai, reply, v2};
use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::{Context, Result};
use quantpipe_client::{FleetClient, ServiceOptions, Settings};
use std::net::SocketAddr;

/// The fleet client's options from the `[gateway]` section.
pub fn service_options(config: &GatewayConfig) -> ServiceOptions {
    ServiceOptions {
        max_delay: config.max_delay(),
        queue_items: config.queue_items,
        default_deadline: config.deadline(),
        max_tokens: config.max_tokens,
        served_name: config.served_name.clone(),
    }
}

/// Joins the fleet of `settings` (blocking until the leader's plan arrives or
/// `client.plan_wait_s` passes) with the batching `config` asks for.
pub fn connect(settings: &Settings, config: &GatewayConfig) -> Result<FleetClient> {
    FleetClient::connect(settings, service_options(config))
        .with_context(|| format!("joining fleet {}", settings.fleet))
}

async fn no_route(req: actix_web::HttpRequest) -> HttpResponse {
    let f = Failure::NotFound(format!("no route {} {}", req.method(), req.path()));
    reply::failure(&f, v2::error::body)
}

/// A running gateway: the server future to await (or stop) and the address it listens on.
pub struct Running {
    pub server: Server,
    pub addr: SocketAddr,
}

/// Binds `config.listen` and serves every route over `client`. Call inside an actix system;
/// the server stops on SIGINT/SIGTERM or through its handle.
pub fn start(client: FleetClient, config: GatewayConfig) -> Result<Running> {
    let listen = config.listen.clone();
    let gateway = web::Data::new(Gateway::new(client, config));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(gateway.clone())
            .configure(openai::routes::configure)
            .configure(v2::routes::configure)
            .configure(metrics::route::configure)
            .default_service(web::to(no_route))
    })
    // A gateway is I/O bound: the fleet does the work.
    .workers(2)
    .bind(&listen)
    .with_context(|| format!("binding {listen}"))?;
    let addr = *server
        .addrs()
        .first()
        .context("the server bound no address")?;
    Ok(Running {
        server: server.run(),
        addr,
    })
}

/// `quantpipe serve`: joins the fleet, serves until interrupted, then closes the client.
pub fn serve(settings: &Settings, config: GatewayConfig) -> Result<()> {
    let client = connect(settings, &config)?;
    tracing::info!(
        "serving model '{}' of fleet {}",
        client.model().name,
        settings.fleet
    );
    let closing = client.clone();
    actix_rt::System::new().block_on(async move {
        let running = start(client, config)?;
        tracing::info!("listening on http://{}", running.addr);
        running.server.await.context("the HTTP server failed")
    })?;
    closing.close();
    Ok(())
}
