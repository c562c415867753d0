//! `quantpipe`: run transformer models as a pipeline across a fleet of edge devices.
//!
//! A thin shell: each subcommand parses its arguments and calls the library crates.

mod cmd;
mod datasets;
mod eval;
mod logging;
mod model_args;
mod plot;
mod profile_args;
mod timeline_chart;

use clap::{Parser, Subcommand};
use logging::LogFormat;

#[derive(Parser)]
#[command(name = "quantpipe", version, about)]
struct Cli {
    /// Log format on stderr (level from RUST_LOG, default info; zenoh at warn).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a model (or a unit range of it) on images, text lines or a saved boundary.
    Infer(cmd::infer::Args),
    /// Per-unit time, memory and output size, written as PipeEdge models.yml / device_types.yml.
    Profile(cmd::profile::Args),
    /// Partition a model over a fleet (PipeEdge profile files), optimally or by a baseline.
    Plan(cmd::plan::Args),
    /// Discrete-event simulation of a plan: throughput, latency percentiles, utilisation.
    Simulate(cmd::simulate::Args),
    /// EdgePipe's scaling study (1..16 devices, two types, two link speeds) on measured profiles.
    Scaling(cmd::scaling::Args),
    /// Run one device of a fleet (and its leader, when configured) until SIGINT/SIGTERM.
    Node(cmd::node::Args),
    /// The fleet as its leader sees it: nodes, plan, per-link bandwidth and bitwidth.
    Status(cmd::status::Args),
    /// A zenoh router joining fleet members on different subnets, until SIGINT/SIGTERM.
    Router(cmd::router::Args),
    /// Stream inputs through a running fleet: throughput, latency percentiles, accuracy.
    Run(cmd::run::Args),
    /// Serve a running fleet over HTTP (OpenAI embeddings, Open Inference Protocol, /metrics).
    Serve(cmd::serve::Args),
    /// A leader and three emulated heterogeneous devices on loopback running MiniLM on BBC News.
    Demo(cmd::demo::Args),
    /// Write a preset's config.json and seeded random weights as a Hugging Face folder.
    ExportPreset(cmd::export::Args),
    /// Train a small ViT on Fashion-MNIST (CPU) and save it as a Hugging Face folder.
    TrainVit(cmd::train_vit::Args),
    /// Accuracy with quantized activations at pipeline cuts, per clipping method and bitwidth.
    EvalQuant(cmd::eval_quant::Args),
    /// The fleet's certificate authority and members: init, enroll, remove, members, acl.
    #[command(subcommand)]
    Fleet(cmd::fleet::Fleet),
    /// Benchmarks that print figures (use --json for machine-readable output).
    #[command(subcommand)]
    Bench(cmd::bench::Bench),
}

fn main() {
    let cli = Cli::parse();
    // The demo tells its story on stdout: its own process logs warnings only.
    logging::init(cli.log_format, matches!(cli.command, Command::Demo(_)));
    let result = match cli.command {
        Command::Infer(args) => cmd::infer::run(args),
        Command::Profile(args) => cmd::profile::run(args),
        Command::Plan(args) => cmd::plan::run(args),
        Command::Simulate(args) => cmd::simulate::run(args),
        Command::Scaling(args) => cmd::scaling::run(args),
        Command::Node(args) => cmd::node::run(args),
        Command::Status(args) => cmd::status::run(args),
        Command::Router(args) => cmd::router::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Demo(args) => cmd::demo::run(args, cli.log_format),
        Command::ExportPreset(args) => cmd::export::run(args),
        Command::TrainVit(args) => cmd::train_vit::run(args),
        Command::EvalQuant(args) => cmd::eval_quant::run(args),
        Command::Fleet(fleet) => cmd::fleet::run(fleet),
        Command::Bench(bench) => cmd::bench::run(bench),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
