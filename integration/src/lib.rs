//! Helpers for quantpipe multi-node tests: the `quantpipe` binary, free loopback ports, and child
//! processes that are killed when the test ends (passing, failing or timing out).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration/ has a parent")
        .to_path_buf()
}

/// Builds the `quantpipe` binary (debug profile; a no-op when up to date) and returns its path.
pub fn quantpipe_bin() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "-p", "quantpipe"])
        .current_dir(repo_root())
        .status()
        .unwrap_or_else(|e| panic!("running `{cargo} build -p quantpipe`: {e}"));
    assert!(
        status.success(),
        "`cargo build -p quantpipe` failed ({status})"
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let bin = target.join("debug").join("quantpipe");
    assert!(
        bin.exists(),
        "no binary at {} after building it",
        bin.display()
    );
    bin
}

/// `n` distinct loopback TCP ports that were free a moment ago.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("binding a loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A zenoh peer session of the test itself (a client, or a hostile peer) connected to the node
/// listening on loopback `port`, with multicast scouting off.
pub fn peer_session(port: u16) -> zenoh::Session {
    use zenoh::Wait;
    let mut c = zenoh::Config::default();
    c.insert_json5("mode", "\"peer\"").unwrap();
    c.insert_json5("connect/endpoints", &format!("[\"tcp/127.0.0.1:{port}\"]"))
        .unwrap();
    c.insert_json5("scouting/multicast/enabled", "false")
        .unwrap();
    zenoh::open(c).wait().expect("opening a test zenoh session")
}

/// Child processes with their logs; all killed and reaped on drop.
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

    fn log(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// Starts a long-running process, stdout and stderr to `<name>.log`.
    pub fn spawn(&mut self, name: &str, bin: &Path, args: &[&str]) {
        let log = std::fs::File::create(self.log(name)).unwrap();
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        self.children.push((name.to_owned(), child));
    }

    /// Kills the spawned process `name` (a node that is to die) and reaps it.
    pub fn kill(&mut self, name: &str) {
        let i = self
            .children
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no process {name} was spawned"));
        let (_, mut c) = self.children.remove(i);
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Every log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(20)..];
                out += &format!("--- {} ---\n{}\n", p.display(), tail.join("\n"));
            }
        }
        out
    }

    /// Runs a process to completion within `limit` (killing it past that) and returns its
    /// stdout; panics with every log when it fails, times out, or a spawned process died.
    pub fn run_to_end(&mut self, name: &str, bin: &Path, args: &[&str], limit: Duration) -> String {
        let out_path = self.dir.join(format!("{name}.out"));
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(self.log(name)).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                if !status.success() {
                    panic!("{name} failed ({status}):\n{}", self.logs());
                }
                return std::fs::read_to_string(&out_path).unwrap();
            }
            let died = self
                .children
                .iter_mut()
                .find_map(|(n, c)| c.try_wait().unwrap().map(|s| (n.clone(), s)));
            if let Some((n, status)) = died {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{n} exited ({status}) while {name} ran:\n{}", self.logs());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{name} did not finish within {limit:?}; killed:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
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

pub mod fleet;
pub mod netns;
pub mod trace_fleet;
