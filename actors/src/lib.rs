//! quantpipe's actors and the pure algorithms they wrap.
//!
//! The algorithms live in plain modules whose signatures take and return plain data (no actix, no
//! zenoh), so they are unit-tested, property-tested and benchmarked directly; the actors that own
//! runtime state are thin shells over them.
//!
//! - [`adaptive`]: adaptive quantization: per-link bandwidth estimates, the bitwidth policies,
//!   bandwidth traces and the link simulation they are judged on.
//! - [`planner`]: EdgePipe partitioning (exact optimum, per-link planning, quantization-aware
//!   bitwidth choice), the baselines users compare against, the scaling study and the planner bench.
//! - [`simulator`]: a discrete-event simulation of a planned pipeline with bounded buffers.
//! - [`runtime`]: the running system: device nodes, stage/quantizer/probe/planner actors over
//!   zenoh, and the client.
//! - [`profiles`]: PipeEdge's `models.yml` / `device_types.yml` / `devices.yml` files and synthetic
//!   ViT profiles of plausible shape.

pub mod adaptive;
pub mod planner;
pub mod profiles;
pub mod runtime;
pub mod simulator;
