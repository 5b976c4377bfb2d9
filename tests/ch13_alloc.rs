//! Chapter 13's promise, counted: a spawn of the one-allocation task makes
//! exactly one allocation, and it is the task itself (header, future and
//! waker slot together, `ch13_raw_task::task_bytes` bytes).
//!
//! A counting global allocator (in a test binary of its own, so it counts
//! nobody else) counts this thread's allocations and those of one chosen
//! size. As in `tests/pictures_alloc.rs`, each measurement runs on a fresh
//! thread on the virtual clock, and the growth of the loop's own vectors
//! and queues (doubling: a fixed number of extra allocations each time the
//! number of tasks doubles) is cancelled by a second difference over `n`,
//! `2n` and `4n` tasks. Chapter 5's task, measured the same way, costs two.
//! Runs under Miri too (`cargo +nightly miri test --test ch13_alloc`).
#![warn(clippy::undocumented_unsafe_blocks)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::thread;

use tiny_asyncio::ch13_raw_task::task_bytes;
use tiny_asyncio::{EventLoop, JoinHandle, yield_now};

/// The system allocator, counting what this thread allocates.
struct Counting;

thread_local! {
    /// Allocations (and reallocations) made by this thread so far. `const`
    /// and without `Drop`: it never allocates and is never torn down.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    /// The size to watch for, and how many allocations of exactly that size
    /// this thread made.
    static WATCHED_SIZE: Cell<usize> = const { Cell::new(0) };
    static OF_WATCHED_SIZE: Cell<u64> = const { Cell::new(0) };
}

fn count(layout: Layout) {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    let _ = WATCHED_SIZE.try_with(|size| {
        if size.get() == layout.size() {
            let _ = OF_WATCHED_SIZE.try_with(|n| n.set(n.get() + 1));
        }
    });
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every method hands the request unchanged to `System`, which
// upholds `GlobalAlloc`'s contract; counting touches only thread-locals of
// plain integers and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout);
        // SAFETY: the caller's guarantees for `alloc` are passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(layout);
        // SAFETY: `ptr` was allocated by `System` (through this allocator)
        // with `layout`: the caller's guarantees are `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// What each task runs: two yields (two wakes), then its number.
async fn job(i: u64) -> u64 {
    yield_now().await;
    yield_now().await;
    i
}

/// The heap bytes of one one-allocation task running `future`.
fn bytes_for<F: Future>(_: &F) -> usize {
    task_bytes::<F>()
}

/// Which `spawn` to count.
#[derive(Clone, Copy)]
enum Kind {
    /// The crate root's: chapter 13's task.
    Raw,
    /// Chapter 6's: chapter 5's task.
    Safe,
}

fn spawn_kind<F>(kind: Kind, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match kind {
        Kind::Raw => tiny_asyncio::spawn(future),
        Kind::Safe => tiny_asyncio::ch06_join::spawn(future),
    }
}

/// Spawns `n` tasks and awaits them all on a fresh loop and thread; gives
/// the allocations the run made and how many were the size of one raw task.
fn measure(kind: Kind, n: u64) -> (u64, u64) {
    thread::spawn(move || {
        WATCHED_SIZE.with(|size| size.set(bytes_for(&job(0))));
        let event_loop = EventLoop::with_virtual_clock();
        let before = (allocations(), OF_WATCHED_SIZE.with(Cell::get));
        let sum = event_loop.run_until_complete(async move {
            let mut handles = Vec::with_capacity(n as usize);
            for i in 0..n {
                handles.push(spawn_kind(kind, job(i)));
            }
            let mut sum = 0;
            for handle in handles {
                sum += handle.await.expect("the tasks do not fail");
            }
            sum
        });
        assert_eq!(sum, n * (n - 1) / 2);
        (
            allocations() - before.0,
            OF_WATCHED_SIZE.with(Cell::get) - before.1,
        )
    })
    .join()
    .expect("the measuring thread does not panic")
}

const N: u64 = if cfg!(miri) { 16 } else { 1000 };

/// Allocations per task, with the loop's own growth cancelled out.
fn per_task(kind: Kind) -> (u64, [u64; 3]) {
    let (a, _) = measure(kind, N);
    let (b, _) = measure(kind, 2 * N);
    let (c, _) = measure(kind, 4 * N);
    // a = kN + g + c0, b = 2kN + (g + m) + c0, c = 4kN + (g + 2m) + c0.
    ((c - b) - (b - a), [a, b, c])
}

#[test]
fn a_spawn_of_the_one_allocation_task_makes_exactly_one_allocation() {
    let (per_n, counts) = per_task(Kind::Raw);
    assert_eq!(per_n, N, "allocations for N, 2N, 4N tasks: {counts:?}");
}

#[test]
fn that_one_allocation_is_the_task_itself_header_future_and_waker_slot_together() {
    let (_, of_task_size) = measure(Kind::Raw, N);
    assert!(
        bytes_for(&job(0)) > size_of::<u64>() * 4,
        "header, future, slot"
    );
    // At least one allocation of exactly the task's size per task (the
    // loop's vectors may happen to grow to that size once or twice too).
    assert!(
        (N..=N + 2).contains(&of_task_size),
        "{of_task_size} allocations of {} bytes for {N} tasks",
        bytes_for(&job(0))
    );
}

#[test]
fn chapter_5s_task_measured_the_same_way_makes_two() {
    let (per_n, counts) = per_task(Kind::Safe);
    assert_eq!(per_n, 2 * N, "allocations for N, 2N, 4N tasks: {counts:?}");
}
