//! One module per subcommand.

pub mod bench;
pub mod demo;
pub mod eval_quant;
pub mod export;
pub mod infer;
pub mod node;
pub mod plan;
pub mod profile;
pub mod run;
pub mod scaling;
pub mod simulate;
pub mod train_vit;
