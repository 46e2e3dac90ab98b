//! A lock whose holder also runs the updates other threads hand it (flat combining).
//!
//! Two threads updating one matcher side take turns on its lock. With a plain mutex
//! every turn moves the side's hot state (its records, the send ring's shadow, staging
//! and completion buffers, the simulated device's queue) from one core's cache to the
//! other's, and the waiter sleeps and is woken through the kernel: two threads made
//! about half of what one makes alone. Here a thread that finds the lock taken queues
//! its update instead and waits for the result; the holder runs every queued update
//! before it lets go, on the core where that state already is. The threads still
//! prepare their updates (tags, value checks, handles) in parallel.
//!
//! Invariants:
//! - every queued job runs exactly once, under the lock, and in queue order;
//! - a queued job is never left behind: whoever releases the lock looks at the queue
//!   again afterwards, and a waiter takes the lock itself when it finds it free;
//! - if a job panics, its waiter panics instead of waiting forever, and the thread
//!   that ran it carries on; the lock is not poisoned for anyone (the data it guards
//!   tolerates a panic no worse than a crash, see [`super::link::MatcherSide::lock`]).

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{fence, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::thread::{self, Thread};
use std::time::Duration;

/// A job another thread queued: it runs under the lock and delivers its own result.
type Job<T> = Box<dyn FnOnce(&mut T) + Send>;

/// How long a waiter spins on its result before it parks. A queued update usually
/// completes within a few microseconds (the holder's own update, then this one).
const SPINS: u32 = 1 << 12;

/// How long a parked waiter sleeps before it looks at the lock itself. Only a safety
/// net: the releasing thread's second look at the queue (see the module invariants)
/// already covers every job queued while the lock was held.
const PARK: Duration = Duration::from_micros(100);

/// `T` behind a mutex, with a queue of jobs for the holder to run.
pub(crate) struct Combining<T> {
    inner: Mutex<T>,
    queue: Mutex<VecDeque<Job<T>>>,
    /// The queue's length, changed under the queue's lock: the holder's look at the
    /// queue, on every update, is then one load instead of a lock and an unlock.
    queued: AtomicUsize,
}

impl<T: std::fmt::Debug> std::fmt::Debug for Combining<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Combining")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<T> Combining<T> {
    pub(crate) fn new(value: T) -> Combining<T> {
        Combining {
            inner: Mutex::new(value),
            queue: Mutex::new(VecDeque::new()),
            queued: AtomicUsize::new(0),
        }
    }

    /// The lock, for operations that are not handed over (control paths). Jobs queued
    /// meanwhile wait until the guard is dropped and a waiter takes the lock.
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        match self.inner.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<Job<T>>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` under the lock, waiting for the lock if another thread holds it, then
    /// runs the jobs queued meanwhile before letting go. For updates too large to hand
    /// to another thread (a batch of rules), which are worth a wait.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut guard = self.lock();
        let result = f(&mut guard);
        self.serve(guard);
        result
    }

    /// [`Combining::with`] if the lock is free now; otherwise `f` comes back unrun.
    pub(crate) fn try_with<R, F: FnOnce(&mut T) -> R>(&self, f: F) -> Result<R, F> {
        let Some(mut guard) = self.try_lock() else {
            return Err(f);
        };
        let result = f(&mut guard);
        self.serve(guard);
        Ok(result)
    }

    /// The oldest queued job, taken off the queue.
    fn pop(&self) -> Option<Job<T>> {
        let mut queue = self.queue();
        let job = queue.pop_front()?;
        self.queued.fetch_sub(1, Ordering::SeqCst);
        Some(job)
    }

    /// Runs an update of `arg` under the lock: `here` on this thread if the lock is
    /// free; otherwise the job `owned(arg)` makes (the same update over owned copies of
    /// its other inputs) is queued for the holder, and this thread waits for its result.
    pub(crate) fn run<A, R, O>(
        &self,
        arg: A,
        here: impl FnOnce(&mut T, A) -> R,
        owned: impl FnOnce(A) -> O,
    ) -> R
    where
        R: Send + 'static,
        O: FnOnce(&mut T) -> R + Send + 'static,
    {
        if let Some(mut guard) = self.try_lock() {
            let result = here(&mut guard, arg);
            self.serve(guard);
            return result;
        }
        let slot = Arc::new(Slot::new());
        let reply = Reply(Arc::clone(&slot));
        let op = owned(arg);
        {
            let mut queue = self.queue();
            queue.push_back(Box::new(move |t: &mut T| reply.send(op(t))));
            self.queued.fetch_add(1, Ordering::SeqCst);
        }
        // The holder may have looked at the queue for the last time just before the push;
        // then it has let go (or is about to) and this thread serves itself. The fences
        // here and in `serve` pair up: either the holder's look sees the job or this
        // `try_lock` sees the lock released.
        fence(Ordering::SeqCst);
        if let Some(guard) = self.try_lock() {
            self.serve(guard);
        }
        let mut spins = 0;
        loop {
            match slot.state.load(Ordering::Acquire) {
                DONE => return slot.take(),
                ABANDONED => panic!("a matcher update handed to another thread panicked there"),
                _ => {}
            }
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            thread::park_timeout(PARK);
            if let Some(guard) = self.try_lock() {
                self.serve(guard);
            }
        }
    }

    /// Runs every queued job, lets go of the lock, and looks again: a job queued after
    /// the last look but before the release would otherwise wait for its own thread to
    /// notice the lock is free.
    fn serve<'a>(&'a self, mut guard: MutexGuard<'a, T>) {
        loop {
            while self.queued.load(Ordering::Acquire) != 0 {
                // The queue's lock is not held while a job runs.
                let Some(job) = self.pop() else {
                    break;
                };
                // A job that panics fails its own waiter (its `Reply` is dropped unsent),
                // not this thread, whose own update has already returned its result.
                let _ = panic::catch_unwind(AssertUnwindSafe(|| job(&mut guard)));
            }
            drop(guard);
            fence(Ordering::SeqCst);
            if self.queued.load(Ordering::SeqCst) == 0 {
                return;
            }
            match self.try_lock() {
                Some(again) => guard = again,
                // Someone else holds it and will look at the queue when they let go.
                None => return,
            }
        }
    }
}

const WAITING: u8 = 0;
const DONE: u8 = 1;
const ABANDONED: u8 = 2;

/// Where a queued job leaves its result for the thread that queued it.
struct Slot<R> {
    state: AtomicU8,
    value: Mutex<Option<R>>,
    waiter: Thread,
}

impl<R> Slot<R> {
    fn new() -> Slot<R> {
        Slot {
            state: AtomicU8::new(WAITING),
            value: Mutex::new(None),
            waiter: thread::current(),
        }
    }

    /// The result; called once `state` is `DONE`.
    fn take(&self) -> R {
        self.value
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("a finished slot holds its result until its waiter takes it")
    }
}

/// The job's end of a [`Slot`]: sends the result, or, dropped without sending (the job
/// panicked), tells the waiter so.
struct Reply<R>(Arc<Slot<R>>);

impl<R> Reply<R> {
    fn send(self, result: R) {
        *self.0.value.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        self.0.state.store(DONE, Ordering::Release);
        self.0.waiter.unpark();
        // `Drop` sees DONE and does nothing more.
    }
}

impl<R> Drop for Reply<R> {
    fn drop(&mut self) {
        if self
            .0
            .state
            .compare_exchange(WAITING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.0.waiter.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    /// Many threads add through the combining lock: every job runs once, the total is
    /// exact, and each thread gets its own job's result back.
    #[test]
    fn every_update_runs_once_and_returns_its_own_result() {
        const THREADS: u64 = 4;
        const EACH: u64 = 20_000;
        let c = Combining::new(Vec::<u64>::new());
        let start = Barrier::new(THREADS as usize);
        thread::scope(|s| {
            for t in 0..THREADS {
                let (c, start) = (&c, &start);
                s.spawn(move || {
                    start.wait();
                    for i in 0..EACH {
                        let value = t * EACH + i;
                        let push = move |v: &mut Vec<u64>| {
                            v.push(value);
                            v.len() as u64 * 1_000_000 + value
                        };
                        let got = c.run((), move |v, ()| push(v), move |()| push);
                        assert_eq!(got % 1_000_000, value, "thread {t} got another's result");
                    }
                });
            }
        });
        let mut all = c.lock().clone();
        all.sort_unstable();
        assert_eq!(all, (0..THREADS * EACH).collect::<Vec<_>>());
    }

    /// A job queued while the lock is held by a control path (which does not serve the
    /// queue) runs once that guard is dropped.
    #[test]
    fn a_job_queued_behind_a_plain_lock_runs_after_it() {
        let c = Combining::new(0u32);
        let guard = c.lock();
        thread::scope(|s| {
            let waiter = s.spawn(|| c.run(100, |v, n| *v + n, |n| move |v: &mut u32| *v + n));
            // Let the waiter queue its job and park, then release.
            while c.queue().is_empty() {
                thread::yield_now();
            }
            let mut guard = guard;
            *guard = 7;
            drop(guard);
            assert_eq!(waiter.join().unwrap(), 107);
        });
    }

    /// A job that panics on the holder's thread makes its waiter panic rather than
    /// wait forever, and the lock stays usable.
    #[test]
    fn a_panicking_job_fails_its_waiter_not_the_lock() {
        let c = Combining::new(0u32);
        let guard = c.lock();
        thread::scope(|s| {
            let waiter = s.spawn(|| {
                c.run(
                    (),
                    |_, ()| -> u32 { panic!("job failed") },
                    |()| |_: &mut u32| -> u32 { panic!("job failed") },
                )
            });
            while c.queue().is_empty() {
                thread::yield_now();
            }
            drop(guard);
            assert!(waiter.join().is_err());
        });
        assert_eq!(c.run(1, |v, n| *v + n, |n| move |v: &mut u32| *v + n), 1);
    }
}
