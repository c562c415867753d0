//! Child processes with their logs, all killed and reaped on drop (on success, error, panic or
//! a test's timeout).

use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How a process is started: a program and its arguments, optionally pinned to a core or run
/// inside a network namespace.
#[derive(Debug, Clone)]
pub struct Launch {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Launch {
    pub fn new(program: &Path, args: &[&str]) -> Launch {
        Launch {
            program: program.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
        }
    }

    /// The same process pinned to `core` with `taskset` (all its threads).
    pub fn pinned(self, core: usize) -> Launch {
        let mut args = vec!["-c".to_owned(), core.to_string()];
        args.extend(self.argv());
        Launch {
            program: PathBuf::from("taskset"),
            args,
            env: self.env,
        }
    }

    /// The same process inside network namespace `ns`. `ip netns exec` execs the program, so
    /// the child's pid is the program's: killing it kills the program.
    pub fn in_netns(self, ns: &str) -> Launch {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        Launch {
            args: crate::netns::commands::exec_in(ns, &self.program.to_string_lossy(), &args),
            program: PathBuf::from("ip"),
            env: self.env,
        }
    }

    /// With environment variable `key` set to `value`.
    pub fn env(mut self, key: &str, value: &str) -> Launch {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The program and arguments as run: `prefix... program args...`.
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(self.program.to_string_lossy().into_owned())
            .chain(self.args.iter().cloned())
            .collect()
    }

    fn spawn(&self, name: &str, stdout: std::fs::File, stderr: std::fs::File) -> Result<Child> {
        Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {name} ({})", self.argv().join(" ")))
    }
}

/// Child processes with their logs (`<dir>/<name>.log`); all killed and reaped on drop.
pub struct Procs {
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Procs {
    pub fn new(log_dir: &Path) -> Self {
        Procs {
            dir: log_dir.to_path_buf(),
            children: Vec::new(),
        }
    }

    /// The folder of the logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log of process `name`.
    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    fn create(&self, path: &Path) -> Result<std::fs::File> {
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))
    }

    /// Starts a long-running process, stdout and stderr to `<name>.log`.
    pub fn start(&mut self, name: &str, launch: &Launch) -> Result<()> {
        let log = self.create(&self.log(name))?;
        let child = launch.spawn(name, log.try_clone()?, log)?;
        self.children.push((name.to_owned(), child));
        Ok(())
    }

    /// Starts `bin args...` on this host (see [`Procs::start`]).
    pub fn spawn(&mut self, name: &str, bin: &Path, args: &[&str]) -> Result<()> {
        self.start(name, &Launch::new(bin, args))
    }

    /// The process id of `name`, while it runs.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.children
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.id())
    }

    /// Kills the process `name` (a node that is to die) and reaps it.
    pub fn kill(&mut self, name: &str) -> Result<()> {
        let i = self
            .children
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| anyhow!("no process {name} was started"))?;
        let (_, mut c) = self.children.remove(i);
        let _ = c.kill();
        c.wait().with_context(|| format!("reaping {name}"))?;
        Ok(())
    }

    /// Fails naming the first started process that exited, with the logs.
    pub fn check(&mut self) -> Result<()> {
        let died = self
            .children
            .iter_mut()
            .find_map(|(n, c)| c.try_wait().ok().flatten().map(|s| (n.clone(), s)));
        match died {
            Some((name, status)) => bail!("{name} exited ({status}):\n{}", self.logs()),
            None => Ok(()),
        }
    }

    /// The last 20 lines of every log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        paths.sort();
        for p in paths {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(20)..];
            out += &format!("--- {} ---\n{}\n", p.display(), tail.join("\n"));
        }
        out
    }

    /// Waits until the text of file `path` (a log, a metrics file, a timeline) satisfies `ok`
    /// and answers it; fails naming `what` with every log once `limit` passes. A file not
    /// written yet reads as empty.
    pub fn wait_for_file(
        &self,
        path: &Path,
        what: &str,
        limit: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if ok(&text) {
                return Ok(text);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{what}: not in {} within {limit:?}:\n{}",
                    path.display(),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts a process whose stdout is its answer (`<name>.out`), stderr to `<name>.log`;
    /// [`Procs::finish`] waits for it.
    pub fn start_with_output(&mut self, name: &str, launch: &Launch) -> Result<()> {
        let out = self.create(&self.dir.join(format!("{name}.out")))?;
        let child = launch.spawn(name, out, self.create(&self.log(name))?)?;
        self.children.push((name.to_owned(), child));
        Ok(())
    }

    /// Waits up to `limit` for the started process `name` to end (killing it past that) and
    /// answers its stdout (`<name>.out`, when it was started with
    /// [`Procs::start_with_output`]); fails with every log when it fails, times out, or another
    /// started process died meanwhile.
    pub fn finish(&mut self, name: &str, limit: Duration) -> Result<String> {
        let i = self
            .children
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| anyhow!("no process {name} was started"))?;
        let (_, mut child) = self.children.remove(i);
        let deadline = Instant::now() + limit;
        let failure = loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("{name} failed ({status}):\n{}", self.logs());
                }
                let out = self.dir.join(format!("{name}.out"));
                return Ok(std::fs::read_to_string(out).unwrap_or_default());
            }
            if let Err(e) = self.check() {
                break format!("while {name} ran, {e:#}");
            }
            if Instant::now() >= deadline {
                break format!(
                    "{name} did not finish within {limit:?}; killed:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let _ = child.kill();
        let _ = child.wait();
        bail!(failure)
    }

    /// Runs a process to completion within `limit` and answers its stdout (see
    /// [`Procs::finish`]).
    pub fn run_launch(&mut self, name: &str, launch: &Launch, limit: Duration) -> Result<String> {
        self.start_with_output(name, launch)?;
        self.finish(name, limit)
    }

    /// Runs `bin args...` on this host to completion (see [`Procs::run_launch`]).
    pub fn run_to_end(
        &mut self,
        name: &str,
        bin: &Path,
        args: &[&str],
        limit: Duration,
    ) -> Result<String> {
        self.run_launch(name, &Launch::new(bin, args), limit)
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrappers_put_taskset_or_ip_netns_exec_before_the_program() {
        let l = Launch::new(Path::new("/bin/qp"), &["node", "--config", "a b.toml"]);
        assert_eq!(
            l.clone().pinned(3).argv(),
            ["taskset", "-c", "3", "/bin/qp", "node", "--config", "a b.toml"]
        );
        assert_eq!(
            l.in_netns("m").argv(),
            ["ip", "netns", "exec", "m", "/bin/qp", "node", "--config", "a b.toml"]
        );
    }

    #[test]
    fn a_run_answers_stdout_and_a_dead_process_fails_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let mut procs = Procs::new(dir.path());
        let out = procs
            .run_to_end("echo", Path::new("echo"), &["hi"], Duration::from_secs(10))
            .unwrap();
        assert_eq!(out, "hi\n");
        procs.spawn("short", Path::new("true"), &[]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while procs.check().is_ok() {
            assert!(Instant::now() < deadline, "`true` never exited");
            std::thread::sleep(Duration::from_millis(10));
        }
        let err = procs.check().unwrap_err().to_string();
        assert!(err.contains("short exited"), "{err}");
    }

    #[test]
    fn waiting_for_a_file_answers_its_text_or_fails_naming_what_was_awaited() {
        let dir = tempfile::tempdir().unwrap();
        let procs = Procs::new(dir.path());
        let path = dir.path().join("a.log");
        std::fs::write(&path, "node a up\n").unwrap();
        let text = procs
            .wait_for_file(&path, "a up", Duration::from_secs(1), |t| {
                t.contains("a up")
            })
            .unwrap();
        assert_eq!(text, "node a up\n");
        let err = procs
            .wait_for_file(&path, "a plan", Duration::from_millis(100), |t| {
                t.contains("plan")
            })
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("a plan: not in"), "{err}");
        assert!(
            err.contains("node a up"),
            "the logs are in the failure: {err}"
        );
    }
}
