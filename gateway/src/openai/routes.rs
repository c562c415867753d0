//! The OpenAI routes: `POST /v1/embeddings`, `GET /v1/models`, `GET /v1/models/{name}`.

use super::request::{self, EmbeddingInput};
use super::{error, response};
use crate::body;
use crate::failure::Failure;
use crate::reply::finish;
use crate::state::Gateway;
use actix_web::{web, HttpRequest, HttpResponse};
use quantpipe_client::{Item, Task};
use serde_json::Value;
use std::time::Instant;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/embeddings", web::post().to(embeddings))
        .route("/v1/models", web::get().to(models))
        .route("/v1/models/{name}", web::get().to(model));
}

async fn embeddings(
    gateway: web::Data<Gateway>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let started = Instant::now();
    let result = answer(&gateway, &req, payload).await;
    finish(&gateway, "embeddings", started, result, error::body)
}

async fn answer(
    gateway: &Gateway,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Value, Failure> {
    let body = body::read(req, payload, gateway.config.max_body_bytes).await?;
    let request = request::parse(&body)?;
    let model = gateway.client.model();
    request::check_model(&request.model, &model.name)?;
    if model.task != Task::Embedding {
        return Err(Failure::bad_param(
            "model",
            format!(
                "'{}' is a classifier: ask POST /v2/models/{}/infer",
                model.name, model.name
            ),
        ));
    }
    if let Some(d) = request.dimensions.filter(|d| *d != model.output_dim) {
        return Err(Failure::bad_param(
            "dimensions",
            format!(
                "'{}' answers {} dimensions, not {d}",
                model.name, model.output_dim
            ),
        ));
    }
    let items = request
        .inputs
        .into_iter()
        .map(|i| match i {
            EmbeddingInput::Text(t) => Item::Text(t),
            EmbeddingInput::Tokens(t) => Item::Tokens(t),
        })
        .collect();
    let outputs = gateway.run(items, None).await?;
    let tokens = outputs.iter().map(|o| o.tokens).sum();
    let rows: Vec<Vec<f32>> = outputs.into_iter().map(|o| o.values).collect();
    Ok(response::embeddings(
        &model.name,
        &rows,
        request.encoding_format,
        tokens,
    ))
}

async fn models(gateway: web::Data<Gateway>) -> HttpResponse {
    let started = Instant::now();
    let result = Ok(response::models(&gateway.client.model().name));
    finish(&gateway, "models", started, result, error::body)
}

async fn model(gateway: web::Data<Gateway>, name: web::Path<String>) -> HttpResponse {
    let started = Instant::now();
    let served = &gateway.client.model().name;
    let result = if *name == *served {
        Ok(response::model(served))
    } else {
        Err(Failure::NotFound(format!(
            "the model '{name}' does not exist here; this fleet serves '{served}'"
        )))
    };
    finish(&gateway, "models", started, result, error::body)
}
