//! Shared by the worker's integration tests that measure the heap
//! (`pmd_memory`, `tls_memory`, `frame_headroom`): a counting global allocator. Each such
//! test crate installs it with `#[global_allocator] static GLOBAL: Counting = Counting;`
//! and uses the figures it needs, so some go unused in each crate.
#![allow(dead_code, reason = "each test crate reads only the figures it needs")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts, per thread (so tests running in parallel do not mix): the bytes live on the
/// heap, their peak since [`reset_peak`], and the allocations made.
pub struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn add(n: isize, new_allocation: bool) {
    let _ = LIVE.try_with(|l| {
        let v = l.get() + n;
        l.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
    if new_allocation {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
    }
}

// SAFETY: every method forwards to `System` with the same arguments and only adds
// bookkeeping in thread-local cells, which never allocates (const-initialised `Cell`s).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize, true);
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize, true);
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as isize), false);
        // SAFETY: forwarded unchanged; `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as isize - layout.size() as isize, true);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Bytes live on this thread's heap.
pub fn live() -> isize {
    LIVE.with(Cell::get)
}

/// Starts a new peak from what is live now.
pub fn reset_peak() {
    PEAK.with(|p| p.set(live()));
}

/// The most bytes live since [`reset_peak`].
pub fn peak() -> isize {
    PEAK.with(Cell::get)
}

/// Allocations (and reallocations) this thread made.
pub fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}
