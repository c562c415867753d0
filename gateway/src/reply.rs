//! Answers of every route: the JSON body or the failure in the API's own error shape, the
//! `Retry-After` header of a full queue, and the request counted in the metrics.

use crate::failure::Failure;
use crate::state::Gateway;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::Value;
use std::time::Instant;

/// An API's error body for a failure.
pub type ErrorShape = fn(&Failure) -> Value;

/// The HTTP answer of `failure` in `shape`.
pub fn failure(failure: &Failure, shape: ErrorShape) -> HttpResponse {
    let status =
        StatusCode::from_u16(failure.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = HttpResponse::build(status);
    if let Some(s) = failure.retry_after_s() {
        builder.insert_header(("Retry-After", s.to_string()));
    }
    builder.json(shape(failure))
}

/// Answers `result` (a 200 JSON body or a failure) and counts it under `api`.
pub fn finish(
    gateway: &Gateway,
    api: &str,
    started: Instant,
    result: Result<Value, Failure>,
    shape: ErrorShape,
) -> HttpResponse {
    let response = match result {
        Ok(body) => HttpResponse::Ok().json(body),
        Err(f) => {
            if f.status() >= 500 {
                tracing::warn!("{api}: {} {f}", f.status());
            } else {
                tracing::debug!("{api}: {} {f}", f.status());
            }
            failure(&f, shape)
        }
    };
    gateway
        .metrics
        .observe(api, response.status().as_u16(), started.elapsed());
    response
}
