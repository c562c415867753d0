//! `GET /metrics`: one scrape, from the client's snapshot and every stage's stats.

use super::{render, FleetFigures};
use crate::state::Gateway;
use actix_web::{web, HttpResponse};
use std::time::{Duration, Instant};

/// How long a scrape waits for each stage's stats.
const STATS_LIMIT: Duration = Duration::from_secs(2);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(scrape));
}

async fn scrape(gateway: web::Data<Gateway>) -> HttpResponse {
    let started = Instant::now();
    let client = gateway.client.clone();
    // Stats queries wait on zenoh: off the HTTP worker.
    let nodes = web::block(move || client.node_stats(STATS_LIMIT))
        .await
        .unwrap_or_default();
    let stages = gateway
        .rates
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .update(Instant::now(), nodes.clone());
    let fleet = FleetFigures {
        client: gateway.client.snapshot(),
        stages,
        nodes,
    };
    // This scrape is counted in the next one (its own answer is being written).
    let text = render(&gateway.metrics, &fleet);
    gateway.metrics.observe("metrics", 200, started.elapsed());
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(text)
}
