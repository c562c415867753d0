//! The Open Inference Protocol v2 (KServe, Triton): health, model metadata and inference.

pub mod classify;
pub mod error;
pub mod items;
pub mod request;
pub mod response;
pub mod routes;
pub mod tensor;
