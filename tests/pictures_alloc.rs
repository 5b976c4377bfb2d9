//! With tracing off, a spawn-heavy run allocates nothing for the trace.
//!
//! The appendix module `trace` promises that a loop's recorder, switched
//! off, costs one atomic load per hook and allocates nothing. This file
//! proves it with a counting global allocator (its own test binary, so the
//! allocator touches no other test). The count is per thread, and each
//! measurement runs on a fresh thread: the loop's thread-local run queue
//! starts empty every time, and no other test's allocations are counted.
//! Everything runs on the virtual clock, where nothing depends on timing,
//! so the counts are exact and the same on every run.
//!
//! The program: the main future spawns `n` tasks that each yield twice (two
//! wakes each), then awaits them all. Three facts, together convincing:
//!
//! 1. **Off, the record vector never allocated**: after the run the trace
//!    holds no records, no names, and a vector of capacity 0.
//! 2. **On costs exactly the record vector**: the allocations of the run
//!    with tracing on, minus those with tracing off, equal the allocations
//!    of pushing the same records, one by one, into a fresh `Vec`. Anything
//!    else the trace allocated when on, or *anything it allocated when
//!    off*, would break this equality (the second would make the difference
//!    smaller).
//! 3. **Off, a task costs what spawning it needs and nothing more**: two
//!    allocations (the task, and its boxed future: chapter 5's module doc
//!    says so). Measured as a second difference over `n`, `2n`, `4n`: the
//!    growth of the loop's vectors and queues (doubling, so a fixed number
//!    of extra allocations each time `n` doubles) cancels out, and what is
//!    left is exactly 2 allocations per task.
#![warn(clippy::undocumented_unsafe_blocks)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::thread;

use tiny_asyncio::trace::{Record, Trace};
// Chapter 6's `spawn`, which builds chapter 5's task: the one this file
// counts (the crate root's `spawn` builds chapter 13's, counted in
// `tests/ch13_raw_task.rs`).
use tiny_asyncio::ch06_join::spawn;
use tiny_asyncio::{EventLoop, yield_now};

/// The system allocator, counting each allocation (and reallocation) made
/// by the current thread.
struct Counting;

thread_local! {
    /// Allocations made by this thread so far. A `const` thread-local of a
    /// type without `Drop` never allocates itself and is never torn down,
    /// so the allocator may use it.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every method hands the request unchanged to `System`, which
// upholds `GlobalAlloc`'s contract; counting touches only a thread-local
// integer and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller's guarantees for `alloc` are passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: `ptr` was allocated by this allocator, that is by
        // `System`, with `layout`: the caller's guarantees are `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs the spawn-heavy program with `n` tasks on a fresh virtual-clock
/// loop, on a fresh thread; gives the allocations the run made on the loop
/// thread, and the loop's trace.
fn measure(n: u64, tracing: bool) -> (u64, Trace) {
    thread::spawn(move || {
        let event_loop = EventLoop::with_virtual_clock();
        if tracing {
            event_loop.enable_trace();
        }
        let before = allocations();
        let sum = event_loop.run_until_complete(async move {
            let mut tasks = Vec::with_capacity(n as usize);
            for i in 0..n {
                tasks.push(spawn(async move {
                    yield_now().await;
                    yield_now().await;
                    i
                }));
            }
            let mut sum = 0;
            for task in tasks {
                sum += task.await.expect("the tasks do not fail");
            }
            sum
        });
        let made = allocations() - before;
        assert_eq!(sum, n * (n - 1) / 2);
        (made, event_loop.take_trace())
    })
    .join()
    .expect("the measuring thread does not panic")
}

/// What pushing `records`, one by one, into a fresh `Vec` allocates: the
/// recorder's own way of growing.
fn allocations_to_push(records: Vec<Record>) -> u64 {
    thread::spawn(move || {
        let before = allocations();
        let mut kept = Vec::new();
        for record in records {
            kept.push(record);
        }
        let made = allocations() - before;
        drop(kept);
        made
    })
    .join()
    .unwrap()
}

const N: u64 = 1000;

#[test]
fn with_tracing_off_the_record_vector_never_allocates() {
    let (_, trace) = measure(N, false);
    assert!(trace.records.is_empty());
    assert!(trace.names.is_empty());
    assert_eq!(trace.records.capacity(), 0, "the record vector allocated");
}

#[test]
fn tracing_on_costs_exactly_the_growth_of_the_record_vector_and_off_costs_nothing() {
    let (off, _) = measure(N, false);
    let (on, trace) = measure(N, true);
    // Per task: Spawned, three polls (start and end), two wakes, Done.
    assert!(trace.records.len() as u64 > 8 * N);
    let pushing = allocations_to_push(trace.records);
    assert!(
        pushing > 0 && on > off,
        "on: {on}, off: {off}, pushing: {pushing}"
    );
    assert_eq!(
        on - off,
        pushing,
        "on: {on} allocations, off: {off}; the record vector alone accounts for {pushing}"
    );
}

#[test]
fn with_tracing_off_a_task_costs_exactly_two_allocations_the_task_and_its_future() {
    let (a, _) = measure(N, false);
    let (b, _) = measure(2 * N, false);
    let (c, _) = measure(4 * N, false);
    // a = 2N + g + c0, b = 4N + (g + m) + c0, c = 8N + (g + 2m) + c0, where
    // the loop's vectors grow m more times each time n doubles.
    let per_task_times_n = (c - b) - (b - a);
    assert_eq!(
        per_task_times_n,
        2 * N,
        "allocations for {N}, {}, {} tasks: {a}, {b}, {c}",
        2 * N,
        4 * N
    );
}
