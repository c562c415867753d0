//! `quantpipe eval-quant`: accuracy of a model whose pipeline cuts carry quantized activations,
//! for every (clipping method, bitwidth), against the same model at fp32.

use crate::datasets::{bbc, fashion_mnist};
use crate::eval::{self, CutSpec, Request, Setting};
use anyhow::{bail, Result};
use quantpipe_messages::clipping::ClipMethod;
use quantpipe_messages::Bits;
use quantpipe_model_shards::ModelSource;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Dataset {
    /// BBC News with a sentence-embedding model (MiniLM): kNN labels over fp32 embeddings.
    Bbc,
    /// Fashion-MNIST test images with an image classifier (the ViT of `train-vit`).
    FashionMnist,
}

impl Dataset {
    /// Where the data set is read from without `--data`.
    fn default_dir(self) -> &'static str {
        match self {
            Dataset::Bbc => bbc::DEFAULT_DIR,
            Dataset::FashionMnist => fashion_mnist::DEFAULT_DIR,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Hugging Face model folder.
    #[arg(long)]
    model_dir: PathBuf,
    #[arg(long, value_enum)]
    dataset: Dataset,
    /// Data folder (default: data/bbc, or /usr/share/datasets/fashion-mnist).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Bitwidths, comma-separated (1-16, or 32 for raw f32 through the codec).
    #[arg(long, value_delimiter = ',', default_value = "2,3,4,6,8,16,32", value_parser = parse_bits)]
    bits: Vec<Bits>,
    /// Clipping methods, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "naive,aciq,ds-aciq")]
    clip: Vec<ClipMethod>,
    /// Cuts, comma-separated: a unit number K (quantize what crosses after unit K), `mid` (the
    /// MLP cut nearest the middle: post-GELU and residual tensors) or `all` (the three cuts of an
    /// even 4-stage plan).
    #[arg(long, value_delimiter = ',', default_value = "mid")]
    cut: Vec<CutSpec>,
    /// Evaluate at most N test items (BBC: and at most 4N training articles).
    #[arg(long)]
    limit: Option<usize>,
    /// Items per forward pass.
    #[arg(long, default_value_t = 64)]
    ubatch: usize,
    /// libtorch intra-op threads (default: libtorch's choice).
    #[arg(long)]
    threads: Option<i32>,
    /// Print the rows as JSON instead of a markdown table.
    #[arg(long)]
    json: bool,
}

/// The error for a `--model-dir` without weights: the command that makes the model.
fn missing_model(dataset: Dataset, model_dir: &Path, data: &Path) -> String {
    let dir = model_dir.display();
    match dataset {
        Dataset::Bbc => format!(
            "no model.safetensors in {dir}: `scripts/setup` fetches MiniLM-L6 into data/minilm"
        ),
        // The recipe of the tests' ViT (quantpipe_integration::fmnist_vit_dir).
        Dataset::FashionMnist => format!(
            "no model.safetensors in {dir}: train the Fashion-MNIST ViT there with \
             `quantpipe train-vit --data {} --out {dir} --seed 0 --threads 1` (a few minutes)",
            data.display()
        ),
    }
}

fn parse_bits(s: &str) -> Result<Bits, String> {
    let b: u8 = s
        .trim()
        .parse()
        .map_err(|_| format!("bad bitwidth {s:?}: expected 1-16 or 32"))?;
    Bits::new(b).map_err(|e| e.to_string())
}

pub fn run(args: Args) -> Result<()> {
    if let Some(n) = args.threads {
        tch::set_num_threads(n);
    }
    if args.ubatch == 0 || args.limit == Some(0) {
        bail!("--ubatch and --limit must be at least 1");
    }
    let data = args
        .data
        .unwrap_or_else(|| PathBuf::from(args.dataset.default_dir()));
    if !args.model_dir.join("model.safetensors").exists() {
        bail!("{}", missing_model(args.dataset, &args.model_dir, &data));
    }
    let source = ModelSource::open_dir(&args.model_dir)?;
    let settings = Setting::grid(&args.clip, &args.bits);
    let request = Request {
        data: &data,
        cuts: &args.cut,
        settings: &settings,
        limit: args.limit,
        ubatch: args.ubatch,
    };
    let rows = match args.dataset {
        Dataset::Bbc => eval::bbc::evaluate(&source, &request)?,
        Dataset::FashionMnist => eval::fashion::evaluate(&source, &request)?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", eval::table::markdown(&rows));
        print!("{}", eval::ordering::markdown(&rows));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_vit_names_the_training_command_for_that_folder() {
        let message = missing_model(
            Dataset::FashionMnist,
            Path::new("data/fmnist-vit"),
            Path::new(fashion_mnist::DEFAULT_DIR),
        );
        assert!(
            message.contains(
                "quantpipe train-vit --data /usr/share/datasets/fashion-mnist \
                 --out data/fmnist-vit --seed 0 --threads 1"
            ),
            "{message}"
        );
    }

    #[test]
    fn missing_minilm_names_the_setup_script() {
        let message = missing_model(
            Dataset::Bbc,
            Path::new("data/minilm"),
            Path::new("data/bbc"),
        );
        assert!(message.contains("scripts/setup"), "{message}");
    }
}
