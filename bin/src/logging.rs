//! Logging set-up shared by every subcommand, and passed on to the processes `demo` starts.

use clap::ValueEnum;

/// Log format on stderr.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

impl LogFormat {
    /// The `--log-format` value that selects this format in a child `quantpipe` process.
    pub fn as_arg(self) -> &'static str {
        match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        }
    }
}

/// Default filter when RUST_LOG is unset: quantpipe at info; zenoh only at warn, since its
/// info lines (session ids, scouting) say nothing a fleet's operator acts on. zenoh's TLS link
/// warns at every link that it skips the server's name verification, which a secured fleet does
/// on purpose (members are addressed by IP; see `[security]`): its errors still show.
const DEFAULT_FILTER: &str = "info,zenoh=warn,zenoh_link_tls=error";

/// Default filter of a command that tells its own story on stdout (`demo`): warnings and
/// errors only, so that progress lines (a client sending microbatches again, under a plan
/// epoch that is a timestamp) do not interleave with the story; its nodes log to files.
const PRESENTING_FILTER: &str = "warn,zenoh_link_tls=error";

/// Installs the tracing subscriber on stderr; `presenting`: the command prints its own story
/// (see [`PRESENTING_FILTER`]). RUST_LOG, when set, decides.
pub fn init(format: LogFormat, presenting: bool) {
    let default = if presenting {
        PRESENTING_FILTER
    } else {
        DEFAULT_FILTER
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
