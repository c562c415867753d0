//! The OpenAI-compatible API: `POST /v1/embeddings`, `GET /v1/models`.

pub mod error;
pub mod request;
pub mod response;
pub mod routes;
