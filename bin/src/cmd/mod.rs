//! One module per subcommand.

pub mod bench;
pub mod export;
pub mod infer;
pub mod plan;
pub mod profile;
pub mod simulate;
