//! Giving freed memory back to the system.
//!
//! glibc's allocator keeps what a program frees for its next allocations, so
//! after a busy hour (many KV caches freed) the process would stay at its
//! peak. `malloc_trim` returns the free pages of every arena.

/// Returns the allocator's free pages to the system, where the allocator
/// can (glibc on Linux); elsewhere does nothing.
pub(crate) fn give_back_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `malloc_trim` only walks the allocator's own free lists
        // under its locks; it takes no pointer from us and is safe to call
        // from any thread at any time.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
