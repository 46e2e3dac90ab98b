//! The per-rule ICM path allocates no host memory: once a slab's block table is sized,
//! freeing entries and allocating them again (reclaim and fresh blocks from the pool
//! included) makes no heap allocation. Counted with a global allocator that counts the
//! allocations of the thread that asks, during the closures it is asked about.
#![cfg(feature = "sim")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use mlx5dr::device::sim::SimBackend;
use mlx5dr::icm::{Entry, EntrySlab, IcmPool, PoolConfig};
use mlx5dr::{Device, DeviceCaps};
use sim::profile::DeviceModel;

thread_local! {
    /// `Some(n)`: this thread is being counted and has made `n` allocations.
    static COUNT: Cell<Option<u64>> = const { Cell::new(None) };
}

struct Counting;

fn count_one() {
    // `try_with`: the allocator also runs while thread locals are torn down.
    let _ = COUNT.try_with(|c| {
        if let Some(n) = c.get() {
            c.set(Some(n + 1));
        }
    });
}

// SAFETY: every call is passed unchanged to the system allocator; counting touches only
// a const-initialised thread-local cell, which allocates nothing.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    COUNT.with(|c| c.set(Some(0)));
    f();
    COUNT.with(|c| c.replace(None)).unwrap_or(0)
}

#[test]
fn slab_alloc_and_free_do_not_allocate_host_memory() {
    let be = Arc::new(SimBackend::of_model(DeviceModel::ConnectX6Dx));
    let mut cfg = PoolConfig::steering(&DeviceCaps::query(&*be).unwrap());
    // Syncs run a command, whose mailboxes are heap buffers; this test runs them by hand.
    cfg.sync_min_bytes = u64::MAX;
    let dev: Arc<dyn Device> = be.clone();
    let pool = Arc::new(IcmPool::new(dev, cfg).unwrap());
    let mut slab = EntrySlab::new(pool.clone());

    // The counter works.
    assert!(allocations(|| drop(std::hint::black_box(vec![1u8; 16]))) >= 1);

    // Size the slab: 100 blocks.
    let mut entries: Vec<Entry> = Vec::with_capacity(6400);
    for _ in 0..6400 {
        entries.push(slab.alloc().unwrap());
    }
    let frees = allocations(|| {
        for e in entries.drain(..) {
            slab.free(e).unwrap();
        }
    });
    assert_eq!(frees, 0, "heap allocations while freeing 6400 entries");

    pool.sync().unwrap();
    // The first alloc reclaims the synced entries and gives 99 wholly free blocks back to
    // the pool; the rest take blocks from the pool again into the vacant slots.
    let allocs = allocations(|| {
        for _ in 0..6400 {
            entries.push(slab.alloc().unwrap());
        }
    });
    assert_eq!(allocs, 0, "heap allocations while allocating 6400 entries");
    assert_eq!(slab.stats().blocks, 100);
    assert_eq!(pool.stats().slab_bytes, 100 * 64 * 64);
}
