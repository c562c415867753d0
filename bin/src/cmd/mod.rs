//! One module per subcommand.

pub mod bench;
pub mod demo;
pub mod eval_quant;
pub mod export;
pub mod fleet;
pub mod infer;
pub mod node;
pub mod plan;
pub mod profile;
pub mod router;
pub mod run;
pub mod scaling;
pub mod serve;
pub mod simulate;
pub mod status;
pub mod train_vit;

use anyhow::Result;

/// Prints `report` as JSON, or as the human text `human` renders.
pub fn print<T: serde::Serialize>(
    report: &T,
    json: bool,
    human: impl FnOnce(&T) -> String,
) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!("{}", human(report));
    }
    Ok(())
}
