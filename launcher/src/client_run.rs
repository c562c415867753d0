//! The command line of a client run, `quantpipe run`, against a launched fleet: the one place
//! the tests, the adaptive trace fleet and anyone else spell its flags.

use crate::Launch;
use std::path::Path;

/// `quantpipe [--log-format F] run --config C --input I [--save-outputs O] [--json]
/// [--report R --report-window-s W]`, built flag by flag.
#[derive(Debug, Clone)]
pub struct ClientRun {
    /// Arguments before the `run` subcommand.
    global: Vec<String>,
    /// `run` and its flags.
    run: Vec<String>,
}

impl ClientRun {
    /// A run over the text file `input` (one item a line) with the client settings in `config`.
    pub fn new(config: &Path, input: &Path) -> ClientRun {
        ClientRun {
            global: Vec::new(),
            run: vec![
                "run".into(),
                "--config".into(),
                config.to_string_lossy().into_owned(),
                "--input".into(),
                input.to_string_lossy().into_owned(),
            ],
        }
    }

    /// The client logs in `format` (`text` or `json`).
    pub fn log_format(mut self, format: &str) -> ClientRun {
        self.global = vec!["--log-format".into(), format.into()];
        self
    }

    /// Every output row is saved to `path` (a JSON array of rows).
    pub fn save_outputs(self, path: &Path) -> ClientRun {
        self.flag("--save-outputs", Some(&path.to_string_lossy()))
    }

    /// The report is printed on stdout as JSON.
    pub fn json(self) -> ClientRun {
        self.flag("--json", None)
    }

    /// The report, with a timeline in windows of `window_s`, goes to folder `dir`.
    pub fn report(self, dir: &Path, window_s: f64) -> ClientRun {
        self.flag("--report", Some(&dir.to_string_lossy()))
            .flag("--report-window-s", Some(&window_s.to_string()))
    }

    fn flag(mut self, name: &str, value: Option<&str>) -> ClientRun {
        self.run.push(name.into());
        self.run.extend(value.map(str::to_owned));
        self
    }

    /// The arguments after the program name.
    pub fn args(&self) -> Vec<String> {
        self.global.iter().chain(&self.run).cloned().collect()
    }

    /// The run as a process of `bin` (the `quantpipe` binary) on this host; place it elsewhere
    /// with [`Launch::in_netns`] or [`crate::Place::apply`].
    pub fn launch(&self, bin: &Path) -> Launch {
        let args = self.args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Launch::new(bin, &args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_flags_come_before_the_subcommand_and_run_flags_after() {
        let run = ClientRun::new(Path::new("c.toml"), Path::new("in.txt"))
            .json()
            .log_format("json")
            .save_outputs(Path::new("o.json"));
        assert_eq!(
            run.args(),
            [
                "--log-format",
                "json",
                "run",
                "--config",
                "c.toml",
                "--input",
                "in.txt",
                "--json",
                "--save-outputs",
                "o.json"
            ]
        );
    }

    #[test]
    fn a_report_names_its_folder_and_window() {
        let run = ClientRun::new(Path::new("c"), Path::new("i")).report(Path::new("r"), 0.5);
        assert_eq!(
            run.args()[5..],
            ["--report", "r", "--report-window-s", "0.5"]
        );
    }
}
