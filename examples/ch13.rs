//! Chapter 13: a task in one allocation, measured beside chapter 5's.
//!
//! Prints the layout (the header both tasks share, the one-allocation
//! task's size for this example's future, the handle), then what one spawn
//! allocates with each task (counted by a counting allocator, on a warm
//! loop), then spawns per second and heap per task for both tasks side by
//! side, alternating rounds, as the benchmark's W1 does (spawn `n` tasks
//! returning their number, keep every handle, await them in order).
//! Everything printed is measured on this run; a debug build is slower
//! than `--release`, and the machine may be shared, so compare the two
//! columns, not the figures with another run.
//!
//! ```text
//! cargo run --example ch13
//! cargo run --release --example ch13 -- --tasks 1000000 --rounds 5
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use tiny_asyncio::ch13_raw_task::{header_bytes, task_bytes};
use tiny_asyncio::cli::{Cli, Opt};
use tiny_asyncio::{JoinHandle, run};

/// The example's command line (`--help` lists it).
const CLI: Cli = Cli::new(
    "ch13",
    "chapter 13's one-allocation task beside chapter 5's: layout, allocations per spawn, W1 side by side",
)
.options(&[
    Opt {
        flag: "--tasks",
        values: &["N"],
        help: "tasks per W1 round (default 100000)",
    },
    Opt {
        flag: "--rounds",
        values: &["R"],
        help: "W1 rounds per task kind, alternating (default 3)",
    },
]);

// ----------------------------------------------------- counting allocator

/// The system allocator, counting allocations and live bytes, and, while
/// `RECORDING`, noting the size of each allocation in `SIZES`.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static ALLOCATED_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static RECORDING: AtomicBool = AtomicBool::new(false);
static SIZES: [AtomicUsize; 8] = [const { AtomicUsize::new(0) }; 8];
static RECORDED: AtomicUsize = AtomicUsize::new(0);

fn note_alloc(size: usize) {
    ALLOCATIONS.fetch_add(1, Relaxed);
    ALLOCATED_BYTES.fetch_add(size, Relaxed);
    let live = LIVE_BYTES.fetch_add(size, Relaxed) + size;
    PEAK_LIVE_BYTES.fetch_max(live, Relaxed);
    if RECORDING.load(Relaxed) {
        let i = RECORDED.fetch_add(1, Relaxed);
        if let Some(slot) = SIZES.get(i) {
            slot.store(size, Relaxed);
        }
    }
}

// SAFETY: every method hands the request unchanged to `System`, which
// upholds `GlobalAlloc`'s contract; the counting only touches atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: the caller's guarantees for `alloc` are passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_sub(layout.size(), Relaxed);
        note_alloc(new_size);
        // SAFETY: `ptr` came from `System` with `layout`; passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Relaxed);
        // SAFETY: `ptr` came from `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ------------------------------------------------------------- the tasks

/// Which task a spawn builds.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Chapter 5's task (chapter 6's `spawn`): two allocations and a lock.
    Safe,
    /// Chapter 13's task (the crate root's `spawn`): one allocation.
    Raw,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Safe => "chapter 5 (safe)",
            Kind::Raw => "chapter 13 (raw)",
        }
    }
}

fn spawn_kind<F>(kind: Kind, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match kind {
        Kind::Safe => tiny_asyncio::ch06_join::spawn(future),
        Kind::Raw => tiny_asyncio::spawn(future),
    }
}

/// W1's task: returns its number.
async fn job(i: u64) -> u64 {
    i
}

fn bytes_for<F: Future>(_: &F) -> usize {
    task_bytes::<F>()
}

/// The sizes of the allocations one spawn makes, on a warm loop (a few
/// spawns first, so the loop's vectors and queues have room already).
fn one_spawn(kind: Kind) -> Vec<usize> {
    run(async move {
        for i in 0..8 {
            spawn_kind(kind, job(i)).await.expect("the task returns");
        }
        RECORDED.store(0, Relaxed);
        RECORDING.store(true, Relaxed);
        let handle = spawn_kind(kind, job(8));
        RECORDING.store(false, Relaxed);
        let made = RECORDED.load(Relaxed).min(SIZES.len());
        handle.await.expect("the task returns");
        SIZES[..made].iter().map(|s| s.load(Relaxed)).collect()
    })
}

/// One W1 round: spawn `n`, keep the handles, await in order. Gives the
/// seconds it took, allocations and bytes per task, peak live heap.
fn round(kind: Kind, n: u64) -> (f64, f64, f64, usize) {
    let allocations = ALLOCATIONS.load(Relaxed);
    let bytes = ALLOCATED_BYTES.load(Relaxed);
    PEAK_LIVE_BYTES.store(LIVE_BYTES.load(Relaxed), Relaxed);
    let base = LIVE_BYTES.load(Relaxed);
    let seconds = run(async move {
        let start = Instant::now();
        let handles: Vec<_> = (0..n).map(|i| spawn_kind(kind, job(i))).collect();
        let mut sum = 0;
        for handle in handles {
            sum += handle.await.expect("a task failed");
        }
        assert_eq!(sum, n * (n - 1) / 2, "every task's number came back");
        start.elapsed().as_secs_f64()
    });
    let per_task = |now: usize, then: usize| (now - then) as f64 / n as f64;
    (
        seconds,
        per_task(ALLOCATIONS.load(Relaxed), allocations),
        per_task(ALLOCATED_BYTES.load(Relaxed), bytes),
        PEAK_LIVE_BYTES.load(Relaxed).saturating_sub(base),
    )
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// `--tasks N` and `--rounds R` (or the defaults); anything else is
/// refused with exit code 2, `--help` prints the usage.
fn parse_args() -> (u64, usize) {
    let args = CLI.from_env();
    let number = |flag: &str, default: u64| -> u64 {
        match args.value(flag) {
            None => default,
            Some(text) => match text.parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => CLI.refuse(format!(
                    "{flag} needs a positive whole number, not {text:?}"
                )),
            },
        }
    };
    (number("--tasks", 100_000), number("--rounds", 3) as usize)
}

fn main() {
    let (tasks, rounds) = parse_args();

    println!("== The layout (bytes, this build)");
    println!(
        "  header (both tasks: state, slot, number, handle count, loop): {}",
        header_bytes()
    );
    println!(
        "  one-allocation task for W1's future (Arc counts + header + stage + waker slot): {}",
        bytes_for(&job(0))
    );
    println!(
        "  JoinHandle<u64> (chapter 6's, for both tasks): {}",
        size_of::<JoinHandle<u64>>()
    );
    println!(
        "  a turn in the run queue / an entry in the list of live tasks: 16 (an Arc<dyn Runnable>)"
    );

    println!();
    println!("== What one spawn allocates (counted, on a warm loop)");
    for kind in [Kind::Safe, Kind::Raw] {
        let sizes = one_spawn(kind);
        println!(
            "  {:<17} {} allocation(s), of {:?} bytes",
            kind.name(),
            sizes.len(),
            sizes
        );
    }

    println!();
    println!(
        "== W1: spawn {tasks} tasks, keep the handles, await them ({rounds} rounds each, alternating)"
    );
    let mut results = [
        (Vec::new(), 0.0, 0.0, 0usize),
        (Vec::new(), 0.0, 0.0, 0usize),
    ];
    for _ in 0..rounds {
        for (slot, kind) in [Kind::Safe, Kind::Raw].into_iter().enumerate() {
            let (seconds, allocations, bytes, peak) = round(kind, tasks);
            let r = &mut results[slot];
            r.0.push(tasks as f64 / seconds);
            (r.1, r.2, r.3) = (allocations, bytes, r.3.max(peak));
        }
    }
    println!(
        "  {:<17} {:>14} {:>16} {:>15} {:>18}",
        "task", "tasks/s median", "allocs per task", "bytes per task", "peak heap (MiB)"
    );
    let mut rates = Vec::new();
    for (slot, kind) in [Kind::Safe, Kind::Raw].into_iter().enumerate() {
        let (ref per_second, allocations, bytes, peak) = results[slot];
        let rate = median(per_second.clone());
        rates.push(rate);
        println!(
            "  {:<17} {:>14.0} {:>16.2} {:>15.1} {:>18.1}",
            kind.name(),
            rate,
            allocations,
            bytes,
            peak as f64 / (1024.0 * 1024.0)
        );
    }
    println!();
    println!(
        "  measured here: the one-allocation task spawned {:.2}x as many tasks per second",
        rates[1] / rates[0]
    );
    println!(
        "  (allocations and bytes per task include the handles' vector and the loop's queues, amortized)"
    );
}
