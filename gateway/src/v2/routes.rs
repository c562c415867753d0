//! The Open Inference Protocol routes: health, model metadata and readiness, inference.

use super::{error, items, request, response};
use crate::body;
use crate::failure::Failure;
use crate::reply::finish;
use crate::state::Gateway;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v2", web::get().to(server_metadata))
        .route("/v2/health/live", web::get().to(live))
        .route("/v2/health/ready", web::get().to(ready))
        .route("/v2/models/{name}", web::get().to(metadata))
        .route("/v2/models/{name}/ready", web::get().to(model_ready))
        .route("/v2/models/{name}/infer", web::post().to(infer))
        .route(
            "/v2/models/{name}/versions/{version}",
            web::get().to(metadata_version),
        )
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            web::post().to(infer_version),
        );
}

/// Ready: the gateway has a plan to send under.
fn is_ready(gateway: &Gateway) -> bool {
    gateway.client.snapshot().plan.is_some()
}

async fn server_metadata(gateway: web::Data<Gateway>) -> HttpResponse {
    let started = Instant::now();
    let body = json!({"name": "quantpipe", "version": env!("CARGO_PKG_VERSION"), "extensions": ["classification", "binary_tensor_data"]});
    finish(&gateway, "health", started, Ok(body), error::body)
}

async fn live(gateway: web::Data<Gateway>) -> HttpResponse {
    let started = Instant::now();
    finish(
        &gateway,
        "health",
        started,
        Ok(json!({"live": true})),
        error::body,
    )
}

async fn ready(gateway: web::Data<Gateway>) -> HttpResponse {
    let started = Instant::now();
    let result = if is_ready(&gateway) {
        Ok(json!({"ready": true}))
    } else {
        Err(Failure::Unavailable("the fleet has no plan yet".into()))
    };
    finish(&gateway, "health", started, result, error::body)
}

async fn metadata(gateway: web::Data<Gateway>, name: web::Path<String>) -> HttpResponse {
    let started = Instant::now();
    let model = gateway.client.model();
    let result = response::check_model(&name, model)
        .map(|()| response::metadata(model, gateway.config.top_k));
    finish(&gateway, "metadata", started, result, error::body)
}

async fn metadata_version(
    gateway: web::Data<Gateway>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (name, version) = path.into_inner();
    let started = Instant::now();
    let model = gateway.client.model();
    let result = response::check_model(&name, model)
        .and_then(|()| check_version(&version))
        .map(|()| response::metadata(model, gateway.config.top_k));
    finish(&gateway, "metadata", started, result, error::body)
}

async fn model_ready(gateway: web::Data<Gateway>, name: web::Path<String>) -> HttpResponse {
    let started = Instant::now();
    let result = response::check_model(&name, gateway.client.model()).and_then(|()| {
        if is_ready(&gateway) {
            Ok(json!({"name": *name, "ready": true}))
        } else {
            Err(Failure::Unavailable("the fleet has no plan yet".into()))
        }
    });
    finish(&gateway, "health", started, result, error::body)
}

async fn infer(
    gateway: web::Data<Gateway>,
    name: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let started = Instant::now();
    let result = answer(&gateway, &name, &req, payload).await;
    finish(&gateway, "infer", started, result, error::body)
}

async fn infer_version(
    gateway: web::Data<Gateway>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let (name, version) = path.into_inner();
    let started = Instant::now();
    let result = match check_version(&version) {
        Ok(()) => answer(&gateway, &name, &req, payload).await,
        Err(f) => Err(f),
    };
    finish(&gateway, "infer", started, result, error::body)
}

fn check_version(version: &str) -> Result<(), Failure> {
    if version == response::VERSION {
        Ok(())
    } else {
        Err(Failure::bad(format!(
            "unknown model version '{version}': the only version is {}",
            response::VERSION
        )))
    }
}

/// The `Inference-Header-Content-Length` header, when the body uses the binary extension.
fn header_length(req: &HttpRequest) -> Result<Option<usize>, Failure> {
    match req.headers().get("Inference-Header-Content-Length") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| Failure::bad("Inference-Header-Content-Length is not a byte count")),
    }
}

async fn answer(
    gateway: &Gateway,
    name: &str,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Value, Failure> {
    let model = gateway.client.model();
    response::check_model(name, model)?;
    let body = body::read(req, payload, gateway.config.max_body_bytes).await?;
    let request = request::parse(&body, header_length(req)?)?;
    let outputs = response::resolve_outputs(&request.outputs, model, gateway.config.top_k)?;
    let items = items::items(&request, model)?;
    let deadline = request.timeout_us.map(Duration::from_micros);
    let rows: Vec<Vec<f32>> = gateway
        .run(items, deadline)
        .await?
        .into_iter()
        .map(|o| o.values)
        .collect();
    Ok(response::infer(
        model,
        request.id.as_deref(),
        &outputs,
        &rows,
    ))
}
