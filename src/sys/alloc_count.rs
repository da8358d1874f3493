//! A global allocator that counts the allocations made, per thread and in
//! the whole process: tests install it (`#[global_allocator]`) to check
//! that a path allocates nothing (`tests/alloc_reactor.rs`,
//! `tests/alloc_worker.rs`, `tests/alloc_end_to_end.rs`). The server itself never uses it.
//!
//! Here because implementing `GlobalAlloc` takes `unsafe`, which stoke keeps
//! in `sys`. It forwards every call to the system allocator unchanged.
//!
//! Runs on: whichever thread allocates, in the test binaries that install it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    // Const-initialised and without a destructor: reading it never
    // allocates, so the allocator can use it.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Allocations made so far by every thread.
static IN_PROCESS: AtomicU64 = AtomicU64::new(0);

/// The system allocator, counting allocations (`alloc`, `alloc_zeroed`
/// and `realloc`; frees are not counted) per thread and in the process.
pub struct CountingAlloc;

impl CountingAlloc {
    /// Allocations the calling thread has made so far.
    pub fn allocations_on_this_thread() -> u64 {
        ALLOCATIONS.with(Cell::get)
    }

    /// Allocations every thread of the process has made so far.
    pub fn allocations_in_process() -> u64 {
        IN_PROCESS.load(Ordering::Relaxed)
    }
}

fn count() {
    IN_PROCESS.fetch_add(1, Ordering::Relaxed);
    // `try_with`: during thread teardown the slot may be gone; then the
    // allocation simply goes uncounted.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments
// untouched, so `System`'s guarantees are ours; the counter touches no
// memory the allocator hands out.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` came from `System` through this allocator, with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
