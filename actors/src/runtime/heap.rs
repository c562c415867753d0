//! Keeping a node's large freed buffers for reuse.
//!
//! Every microbatch allocates and frees buffers of megabytes to tens of megabytes (the activation
//! tensor, its encoding, the message, zenoh's copy). By default glibc serves such blocks with a
//! fresh `mmap` and unmaps them when freed, so each microbatch faults every page back in and the
//! kernel zeroes it: in a ViT-Base pipeline that was about half of a short stage's CPU outside
//! its forward passes. Raising the mmap threshold to glibc's maximum (32 MiB on 64-bit) keeps such
//! blocks in the heap, and a trim threshold of 256 MiB keeps freed ones there for the next
//! microbatch instead of returning them to the system at once.

/// Largest block glibc serves from the heap rather than from its own mapping (glibc's maximum).
const MMAP_THRESHOLD_BYTES: i32 = 32 << 20;
/// Free memory at the heap's top that glibc keeps rather than returns to the system.
const TRIM_THRESHOLD_BYTES: i32 = 256 << 20;
/// One heap for every thread: a buffer is often freed by another thread than the one that
/// allocated it, and a thread's own arena lives in 64 MiB mappings that a 24 MB block empties and
/// glibc unmaps, so a per-thread arena faults its pages in again each microbatch.
const ARENAS: i32 = 1;

/// Applies the thresholds to this process's allocator; answers whether glibc took both.
pub fn keep_freed_buffers() -> bool {
    // SAFETY: mallopt only sets allocator parameters; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
            && libc::mallopt(libc::M_ARENA_MAX, ARENAS) == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_takes_the_thresholds() {
        assert!(keep_freed_buffers());
    }
}
