//! E004-7, measured: a crowd of `N` sleepers, as OS threads or as tasks on
//! one event loop, and what each crowd cost.
//!
//! Read it third, after `proc.rs`: its [`ProcStatus`] and
//! [`switches_of_live_threads`] give every figure of a [`CrowdReport`].
//! [`sleeping_threads`] is the thread side, [`sleeping_tasks`] the task
//! side (chapter 5's `run`, chapter 6's `spawn`, chapter 4's `sleep`);
//! [`Sleepers`] names the two, and the report's `to_line` / `from_line`
//! carry it from the example's child processes to their parent.

use std::io;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::proc::{ProcStatus, switches_of_live_threads};
use crate::ch04_timer::sleep;
use crate::ch05_event_loop::run;
use crate::ch06_join::spawn;

/// What sleeps in a crowd: OS threads or tasks on one event loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sleepers {
    /// One OS thread per sleeper, each in `std::thread::sleep`.
    Threads,
    /// One task per sleeper on one event loop, each awaiting `sleep`.
    Tasks,
}

impl Sleepers {
    /// `"threads"` or `"tasks"`.
    pub fn as_str(self) -> &'static str {
        // The same words `from_str` reads back: a child process names its
        // sleepers this way on its report line, and the parent parses them.
        match self {
            Sleepers::Threads => "threads",
            Sleepers::Tasks => "tasks",
        }
    }
}

impl FromStr for Sleepers {
    type Err = String;
    /// `"threads"` or `"tasks"`, as the example's `--crowd` option and
    /// [`CrowdReport::from_line`] give it; anything else is an error that
    /// says what was expected.
    fn from_str(s: &str) -> Result<Sleepers, String> {
        match s {
            "threads" => Ok(Sleepers::Threads),
            "tasks" => Ok(Sleepers::Tasks),
            other => Err(format!("expected `threads` or `tasks`, got {other:?}")),
        }
    }
}

/// What one crowd of sleepers cost (see [the chapter's docs](super) for
/// where each figure comes from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrowdReport {
    /// Threads or tasks.
    pub sleepers: Sleepers,
    /// How many.
    pub count: usize,
    /// How long each one slept.
    pub nap: Duration,
    /// Wall time to start them all (every `spawn` call returned).
    pub start: Duration,
    /// Wall time from the first spawn until every sleeper had finished.
    pub total: Duration,
    /// Resident memory of the process before the crowd started, in KiB.
    /// Read it with `peak_rss_kb`: the crowd's cost is the difference.
    pub baseline_rss_kb: u64,
    /// Peak resident memory of the process (`VmHWM`) afterwards, in KiB.
    /// A peak over the process's whole life, so it means "this crowd" only
    /// in a process that ran nothing bigger before (the example's children).
    pub peak_rss_kb: u64,
    /// Peak reserved address space (`VmPeak`) afterwards, in KiB.
    pub peak_virtual_kb: u64,
    /// Context switches made by the threads involved (see [the chapter's
    /// docs](super)).
    pub switches: u64,
}

impl CrowdReport {
    /// The peak memory beyond the baseline, per sleeper, in bytes.
    pub fn bytes_per_sleeper(&self) -> u64 {
        // Saturating: a peak below the baseline (memory given back to the
        // OS between the readings) means "nothing measurable", not a panic.
        let extra = self.peak_rss_kb.saturating_sub(self.baseline_rss_kb) * 1024;
        // Divided by the count, the crowd's cost becomes what one more
        // thread or task costs; `max(1)` keeps an empty crowd from dividing
        // by zero.
        extra / self.count.max(1) as u64
    }

    /// One line of `key=value` pairs, for a child process to hand its
    /// report to its parent; [`CrowdReport::from_line`] reads it back.
    pub fn to_line(&self) -> String {
        // Durations as whole microseconds: a plain integer parses back
        // exactly, where a `Duration`'s `{:?}` (`1.5ms`) would not. The
        // first word, `crowd`, lets the parent pick this line out of
        // whatever else the child prints.
        format!(
            "crowd sleepers={} count={} nap_us={} start_us={} total_us={} baseline_kb={} \
             peak_kb={} virtual_kb={} switches={}",
            self.sleepers.as_str(),
            self.count,
            self.nap.as_micros(),
            self.start.as_micros(),
            self.total.as_micros(),
            self.baseline_rss_kb,
            self.peak_rss_kb,
            self.peak_virtual_kb,
            self.switches
        )
    }

    /// Reads a line written by [`CrowdReport::to_line`]; `None` if it is
    /// not one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tiny_asyncio::ch10_measure::{CrowdReport, Sleepers};
    ///
    /// let report = CrowdReport {
    ///     sleepers: Sleepers::Tasks,
    ///     count: 1000,
    ///     nap: Duration::from_secs(1),
    ///     start: Duration::from_micros(1500),
    ///     total: Duration::from_micros(1_002_000),
    ///     baseline_rss_kb: 2000,
    ///     peak_rss_kb: 2600,
    ///     peak_virtual_kb: 9000,
    ///     switches: 4,
    /// };
    /// assert_eq!(CrowdReport::from_line(&report.to_line()), Some(report));
    /// assert_eq!(CrowdReport::from_line("hello"), None);
    /// ```
    pub fn from_line(line: &str) -> Option<CrowdReport> {
        let mut words = line.split_whitespace();
        if words.next()? != "crowd" {
            return None;
        }
        // Every word after "crowd" must be `key=value`; any other shape
        // makes the whole line "not a report" (`None`), never a half one.
        let pairs: Vec<(&str, &str)> = words.map(|w| w.split_once('=')).collect::<Option<_>>()?;
        // Keys are looked up wherever they sit on the line: `to_line`
        // writes them in one order, but nothing here relies on it.
        let get = |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let number = |key: &str| get(key)?.parse::<u64>().ok();
        let micros = |key: &str| number(key).map(Duration::from_micros);
        Some(CrowdReport {
            sleepers: get("sleepers")?.parse().ok()?,
            count: get("count")?.parse().ok()?,
            nap: micros("nap_us")?,
            start: micros("start_us")?,
            total: micros("total_us")?,
            baseline_rss_kb: number("baseline_kb")?,
            peak_rss_kb: number("peak_kb")?,
            peak_virtual_kb: number("virtual_kb")?,
            switches: number("switches")?,
        })
    }
}

/// Starts `count` OS threads that each `thread::sleep(nap)`, and waits for
/// them all: the thread side of E004-7.
///
/// Each thread, once awake, reads its own context-switch count just before
/// it exits (the kernel forgets it after); the report adds the calling
/// thread's own switches during the run (it blocks in `join`).
///
/// The memory figures are the whole process's: run it in a process of its
/// own for a clean peak.
///
/// # Errors
/// If `/proc` cannot be read (not Linux), or the OS refuses to start a
/// thread (the threads already started are joined first).
pub fn sleeping_threads(count: usize, nap: Duration) -> io::Result<CrowdReport> {
    // 1. The baseline: memory, and this thread's own switches so far.
    let before = ProcStatus::of_process()?;
    let own_before = ProcStatus::of_this_thread()?.switches();
    // The sleepers add up their own switches here (a thread's count is
    // readable only by the thread itself while it lives), and count the
    // ones that could not read theirs, so a gap is an error, not a zero.
    // `Relaxed` is enough: the sleepers only add, and `join` below makes
    // every sleeper's additions visible here before the sums are read.
    let reported = Arc::new(AtomicU64::new(0));
    let unreadable = Arc::new(AtomicU64::new(0));

    // 2. Start them all, timing the starts. A refusal (too many threads
    //    for the OS) stops the starting but not the joining below.
    let begun = Instant::now();
    let mut threads = Vec::with_capacity(count);
    let mut refused = None;
    for _ in 0..count {
        let (reported, unreadable) = (reported.clone(), unreadable.clone());
        // `Builder::spawn`, not `thread::spawn`: the latter panics when the
        // OS refuses a thread (out of memory, or its limit on threads, which
        // a crowd of thousands can reach); the former hands back the error.
        // The name shows in `/proc/self/task/*/comm` and in a debugger.
        let spawned = thread::Builder::new()
            .name("sleeper".into())
            .spawn(move || {
                thread::sleep(nap);
                match ProcStatus::of_this_thread() {
                    Ok(status) => reported.fetch_add(status.switches(), Ordering::Relaxed),
                    Err(_) => unreadable.fetch_add(1, Ordering::Relaxed),
                };
            });
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(error) => {
                refused = Some(error);
                break;
            }
        }
    }
    // 3. Wait for every one: each sleeps `nap`, then reports and exits.
    //    Every spawn has returned: that was the cost of starting them.
    let start = begun.elapsed();
    for thread in threads {
        // A sleeper only sleeps and adds, so it cannot panic and `join`
        // never gives an `Err`; one that could not read its count said so
        // in `unreadable`, checked below.
        let _ = thread.join();
    }
    let total = begun.elapsed();
    if let Some(error) = refused {
        return Err(io::Error::new(
            error.kind(),
            format!("the OS refused to start sleeping thread {count}: {error}"),
        ));
    }
    if unreadable.load(Ordering::Relaxed) > 0 {
        return Err(io::Error::other(
            "a sleeping thread could not read /proc/thread-self/status",
        ));
    }

    // 4. After: the peak memory, and the switches of everyone involved
    //    (the sleepers' reports, plus this thread's own: it blocked in
    //    `join` while they slept).
    let after = ProcStatus::of_process()?;
    // A thread's counts only ever grow, so `own_after - own_before` cannot
    // underflow.
    let own_after = ProcStatus::of_this_thread()?.switches();
    Ok(CrowdReport {
        sleepers: Sleepers::Threads,
        count,
        nap,
        start,
        total,
        baseline_rss_kb: before.vm_rss_kb,
        peak_rss_kb: after.vm_hwm_kb,
        peak_virtual_kb: after.vm_peak_kb,
        switches: reported.load(Ordering::Relaxed) + (own_after - own_before),
    })
}

/// Spawns `count` tasks that each `sleep(nap)` on a fresh event loop
/// (`run`, real clock), and waits for them all: the task side of E004-7.
///
/// The switches are those of every thread alive at the end of the run (the
/// loop's thread and its timer thread) minus those counted before it, so
/// they are only meaningful in a process that runs nothing else, such as
/// the example's child processes.
///
/// # Errors
/// If `/proc` cannot be read (not Linux).
///
/// # Panics
/// Inside a running event loop (`run` cannot nest).
pub fn sleeping_tasks(count: usize, nap: Duration) -> io::Result<CrowdReport> {
    // 1. The baseline, as for threads (here every thread of the process
    //    counts: the loop's and, once started, its timer thread).
    let before = ProcStatus::of_process()?;
    let switches_before = switches_of_live_threads()?;
    let begun = Instant::now();
    // 2. One loop, `count` tasks, each one `Sleep` in the one timer wheel:
    //    the calling thread runs the loop, and one timer thread serves
    //    every sleep.
    let (start, total, switches_after) = run(async move {
        // A task is chapter 5's header and a boxed `Sleep`: a couple of
        // small heap allocations, where a thread reserves a whole stack
        // (and the kernel one more of its own). Spawned on the loop's own
        // thread, a task is pushed on the run queue with no lock and no
        // wake-up: the kernel never hears of it.
        let handles: Vec<_> = (0..count).map(|_| spawn(sleep(nap))).collect();
        let start = begun.elapsed();
        for handle in handles {
            handle.await.expect("a sleeping task does not panic");
        }
        let total = begun.elapsed();
        // Read now, while the loop's timer thread is still alive.
        (start, total, switches_of_live_threads())
    });
    let after = ProcStatus::of_process()?;
    Ok(CrowdReport {
        sleepers: Sleepers::Tasks,
        count,
        nap,
        start,
        total,
        baseline_rss_kb: before.vm_rss_kb,
        peak_rss_kb: after.vm_hwm_kb,
        peak_virtual_kb: after.vm_peak_kb,
        switches: switches_after?.saturating_sub(switches_before),
    })
}
