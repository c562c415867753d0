//! CPU time of this thread and of this process, from the kernel's clocks.
//!
//! Wall-clock time says how long something took; on a core shared with other work it includes
//! waiting for the core. CPU time says what the work itself cost, which is what a pipeline
//! stage gives up to its codec and transport.

/// Seconds of CPU the calling thread has used.
pub fn thread_cpu_s() -> f64 {
    clock_s(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// Seconds of CPU every thread of this process has used (user and system).
pub fn process_cpu_s() -> f64 {
    clock_s(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn clock_s(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; both clocks exist on every Linux.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn sleeping_costs_no_thread_cpu_and_spinning_does() {
        let before = thread_cpu_s();
        std::thread::sleep(Duration::from_millis(200));
        let slept = thread_cpu_s() - before;
        assert!(slept < 0.05, "sleeping used {slept} s of CPU");

        let before = (thread_cpu_s(), process_cpu_s());
        let until = Instant::now() + Duration::from_millis(200);
        let mut x = 0u64;
        while Instant::now() < until {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let spun = thread_cpu_s() - before.0;
        assert!(spun > 0.05, "200 ms of spinning used {spun} s of CPU");
        // The process clock counts this thread too.
        assert!(process_cpu_s() - before.1 >= spun * 0.99);
    }
}
