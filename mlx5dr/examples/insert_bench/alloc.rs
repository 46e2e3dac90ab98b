//! A counting global allocator: the host memory figures of the benchmark are measured,
//! not estimated.
//!
//! Every allocation goes to the system allocator; this wrapper adds the request's size to
//! a live-bytes counter (and one to an allocation counter) and subtracts it again on
//! free. The counters are process-wide relaxed atomics: cheap next to a rule insert, and
//! exact once the threads that allocated have been joined.
//!
//! Requested sizes are counted, not what the system allocator rounds them up to, so the
//! figure is what the program asks for (the allocator's own overhead comes on top, as it
//! would for rdma-core's `malloc`s).

// `GlobalAlloc` is an unsafe trait: the one place in the example that needs `unsafe`.
// Each method only forwards its arguments unchanged to `System`, whose contract is the
// same, and touches nothing but the counters.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// The system allocator with counters.
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

/// What the allocator has counted, at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Bytes allocated and not yet freed.
    pub live: usize,
    /// Allocation calls so far (reallocations included).
    pub allocs: u64,
}

/// The counters now.
pub fn usage() -> Usage {
    Usage {
        live: LIVE.load(Relaxed),
        allocs: ALLOCS.load(Relaxed),
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees for `layout` are `System::alloc`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Relaxed);
            ALLOCS.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Relaxed);
            ALLOCS.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, hence from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with `layout`; `new_size` is the caller's,
        // under `GlobalAlloc::realloc`'s contract, which is `System`'s too.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // The old block is gone and the new one live: adjust by the difference.
            LIVE.fetch_add(new_size, Relaxed);
            LIVE.fetch_sub(layout.size(), Relaxed);
            ALLOCS.fetch_add(1, Relaxed);
        }
        p
    }
}
