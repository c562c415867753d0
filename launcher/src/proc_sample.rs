//! A process's resident memory, threads and open file descriptors, read from `/proc`: what a
//! soak samples to see whether anything piles up over a long run.

use anyhow::{anyhow, Context, Result};
use serde::Serialize;

/// One process at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProcSample {
    /// Resident set size, bytes (`VmRSS`).
    pub rss_bytes: u64,
    pub threads: u64,
    /// Entries of `/proc/<pid>/fd`.
    pub fds: u64,
}

/// Process `pid` now.
pub fn sample(pid: u32) -> Result<ProcSample> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let (rss_bytes, threads) = parse_status(&status).with_context(|| format!("parsing {path}"))?;
    let fd_dir = format!("/proc/{pid}/fd");
    let fds = std::fs::read_dir(&fd_dir)
        .with_context(|| format!("listing {fd_dir}"))?
        .count() as u64;
    Ok(ProcSample {
        rss_bytes,
        threads,
        fds,
    })
}

/// This process now.
pub fn sample_self() -> Result<ProcSample> {
    sample(std::process::id())
}

/// `VmRSS` (bytes) and `Threads` of a `/proc/<pid>/status` text.
pub fn parse_status(status: &str) -> Result<(u64, u64)> {
    let field = |name: &str| -> Result<&str> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .ok_or_else(|| anyhow!("no {name} line"))
    };
    let rss = field("VmRSS")?;
    let kb = rss
        .strip_suffix("kB")
        .ok_or_else(|| anyhow!("VmRSS is not in kB: {rss:?}"))?
        .trim()
        .parse::<u64>()
        .with_context(|| format!("VmRSS {rss:?}"))?;
    let threads = field("Threads")?;
    let threads = threads
        .parse::<u64>()
        .with_context(|| format!("Threads {threads:?}"))?;
    Ok((kb * 1024, threads))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tquantpipe\nState:\tS (sleeping)\nVmPeak:\t 2097152 kB\n\
        VmRSS:\t  123456 kB\nRssAnon:\t   1000 kB\nThreads:\t17\nSigQ:\t0/1\n";

    #[test]
    fn rss_and_threads_are_read_from_a_status_text() {
        assert_eq!(parse_status(STATUS).unwrap(), (123_456 * 1024, 17));
    }

    #[test]
    fn a_status_without_rss_names_the_missing_line() {
        let e = parse_status("Name:\tkthreadd\nThreads:\t1\n").unwrap_err();
        assert!(e.to_string().contains("VmRSS"), "{e}");
    }

    #[test]
    fn a_malformed_thread_count_is_an_error_naming_it() {
        let e = parse_status("VmRSS:\t 10 kB\nThreads:\tmany\n").unwrap_err();
        assert!(format!("{e:#}").contains("Threads"), "{e:#}");
    }

    #[test]
    fn this_process_has_memory_threads_and_descriptors() {
        let s = sample_self().unwrap();
        assert!(s.rss_bytes > 0 && s.threads >= 1 && s.fds >= 3, "{s:?}");
    }

    #[test]
    fn a_missing_process_is_an_error_naming_its_file() {
        let e = sample(u32::MAX).unwrap_err();
        assert!(e.to_string().contains("/proc/4294967295/status"), "{e}");
    }
}
