//! # Chapter 10 — what we gained: threads against tasks, measured
//!
//! **The question.** The documents make two claims that they never measure.
//! Seed 004 (E004-7): threads cost context switches and memory, while
//! asyncio, one thread and an event loop, is "far lighter". Seed 001
//! (E001-1) draws three pictures: *sequential* (one job after another),
//! *concurrent* (jobs take turns on one core, with a context switch at each
//! turn) and *parallel* (jobs at the same time on several cores). With the
//! whole machine built (chapters 3 to 9), we can run both and look.
//!
//! **Lighter, measured (E004-7).** [`sleeping_threads`] starts `N` OS
//! threads that each sleep; [`sleeping_tasks`] spawns `N` tasks on one event
//! loop that each `sleep`. Both report a [`CrowdReport`]: how long starting
//! them all took, the wall time until all were done, the peak memory of the
//! process, and how many context switches the threads involved made. Where
//! the figures come from (Linux's `/proc`, read by the functions below):
//!
//! * **Peak memory** is `VmHWM` in `/proc/self/status`: the high-water mark
//!   of the *process's* resident memory. A process has one such mark, so a
//!   fair comparison runs each measurement in a fresh process (the example
//!   re-executes itself once per row). It counts user-space memory only:
//!   each thread also costs the kernel a kernel stack (16 KiB on x86-64)
//!   and its bookkeeping, which no `/proc/self` field shows, so threads are
//!   heavier than the table says. `VmPeak` shows the *reserved* address
//!   space: each thread reserves a whole stack (2 MiB by default in Rust).
//! * **Context switches** are `voluntary_ctxt_switches` (the thread blocked:
//!   slept, waited on a lock) plus `nonvoluntary_ctxt_switches` (the kernel
//!   took the CPU away). The kernel counts them **per thread**, and
//!   `/proc/self/status` shows only the main thread's; a thread's count
//!   vanishes from `/proc` when it exits. So a sleeping thread reads its own
//!   `/proc/thread-self/status` just before it ends, and the task side sums
//!   `/proc/self/task/*/status` over every thread alive (the loop's thread
//!   and its timer thread) at the end of the run.
//!
//! **Sequential, concurrent, parallel, drawn (E001-1).** Three jobs of 3, 2
//! and 1 steps (the users example's look-ups, [`E001_1_STEPS`]), each step
//! one unit of [`Work`]: either *waiting* (a sleep, like I/O) or
//! *computing* (a fixed amount of CPU work, [`spin`], sized by [`calibrate`]
//! to take one unit on an idle core, so that a busy machine stretches the
//! picture instead of shrinking the work). [`sequential`] awaits the jobs
//! one after another; [`concurrent`] spawns them as tasks on the one loop
//! thread; [`parallel`] gives each job to a pool thread (chapter 9). Each
//! returns a [`JobsRun`] of when every step ran, and [`draw`] turns
//! timelines into a text picture. What the pictures show:
//!
//! * waiting jobs: sequential takes the **sum** (6 units), concurrent the
//!   **max** (3), parallel the max too, but with a thread per job;
//! * computing jobs: concurrent on one thread takes the **sum** again (a
//!   task that computes holds the loop, EX-1; taking turns only reorders the
//!   steps), and only parallel threads make computing faster, up to the
//!   number of cores. (Python's threads would not: the GIL lets one of them
//!   compute at a time. Rust's do.)
//!
//! **Limits.** The `/proc` readers work on Linux only (elsewhere they give
//! an `io::Error`). The figures belong to the machine and the build (a debug
//! build spawned tasks about three times slower than `--release` on the
//! machine the book was measured on); the tests check only the relations
//! that must hold anywhere (sum against max, at least one switch per
//! sleeping thread), never a figure. Sequential and concurrent runs read
//! the loop's clock, so on a virtual clock they are exact; pool threads
//! live outside the loop's time, so [`parallel`] reads the wall clock.
//!
//! **What comes after.** This is the last chapter: the crate root now
//! re-exports the finished runtime, and `CHAPTERS.md`'s table maps every
//! asyncio name to ours and to tokio's, for when you move on.

#![forbid(unsafe_code)]

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::ch04_timer::{self, Timer, sleep};
use crate::ch05_event_loop::{run, yield_now};
use crate::ch06_join::spawn;
use crate::ch09_pool::ThreadPool;

// ---------------------------------------------------------------------------
// Reading /proc
// ---------------------------------------------------------------------------

/// The number at the start of the value of field `name` in the text of a
/// `/proc/.../status` file: `status_field(text, "VmHWM")` reads the line
/// `VmHWM:    1620 kB` (a tab after the colon) as `1620` (memory fields are in KiB; counts such as
/// `Threads` are plain numbers). `None` if the field is missing or not a
/// number.
///
/// ```
/// use tiny_asyncio::ch10_measure::status_field;
///
/// let text = "Name:\tdemo\nVmHWM:\t    1620 kB\nThreads:\t3\n";
/// assert_eq!(status_field(text, "VmHWM"), Some(1620));
/// assert_eq!(status_field(text, "Threads"), Some(3));
/// assert_eq!(status_field(text, "VmRSS"), None);
/// assert_eq!(status_field(text, "Name"), None); // not a number
/// ```
pub fn status_field(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        if key != name {
            return None;
        }
        value.split_whitespace().next()?.parse().ok()
    })
}

/// The fields of a `/proc/.../status` file that this chapter measures.
///
/// For a whole process (`/proc/self/status`) the memory fields and
/// `threads` describe the process, but the two switch counts are those of
/// its **main thread** only; for one thread (`/proc/thread-self/status`)
/// the switch counts are that thread's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcStatus {
    /// `VmPeak`: the most address space ever reserved, in KiB.
    pub vm_peak_kb: u64,
    /// `VmHWM`: the most resident memory ever used (the high-water mark),
    /// in KiB.
    pub vm_hwm_kb: u64,
    /// `VmRSS`: resident memory now, in KiB.
    pub vm_rss_kb: u64,
    /// `Threads`: how many threads the process has now.
    pub threads: u64,
    /// `voluntary_ctxt_switches`: times the thread gave up the CPU because
    /// it blocked (slept, waited).
    pub voluntary_switches: u64,
    /// `nonvoluntary_ctxt_switches`: times the kernel took the CPU away.
    pub involuntary_switches: u64,
}

/// A `/proc/.../status` text lacked a field [`ProcStatus`] needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingField(pub &'static str);

impl fmt::Display for MissingField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the status text has no numeric `{}:` line (is this Linux's /proc/<pid>/status?)",
            self.0
        )
    }
}

impl std::error::Error for MissingField {}

impl ProcStatus {
    /// Parses the text of a `/proc/.../status` file.
    ///
    /// ```
    /// use tiny_asyncio::ch10_measure::ProcStatus;
    ///
    /// let text = "VmPeak:\t 3060 kB\nVmHWM:\t 1620 kB\nVmRSS:\t 1600 kB\nThreads:\t1\n\
    ///             voluntary_ctxt_switches:\t7\nnonvoluntary_ctxt_switches:\t2\n";
    /// let status = ProcStatus::parse(text).unwrap();
    /// assert_eq!(status.vm_hwm_kb, 1620);
    /// assert_eq!(status.switches(), 9);
    /// assert!(ProcStatus::parse("Threads:\t1\n").is_err());
    /// ```
    pub fn parse(status: &str) -> Result<ProcStatus, MissingField> {
        let field = |name: &'static str| status_field(status, name).ok_or(MissingField(name));
        Ok(ProcStatus {
            vm_peak_kb: field("VmPeak")?,
            vm_hwm_kb: field("VmHWM")?,
            vm_rss_kb: field("VmRSS")?,
            threads: field("Threads")?,
            voluntary_switches: field("voluntary_ctxt_switches")?,
            involuntary_switches: field("nonvoluntary_ctxt_switches")?,
        })
    }

    /// Reads and parses the status file at `path`.
    pub fn read(path: impl AsRef<Path>) -> io::Result<ProcStatus> {
        let text = fs::read_to_string(path)?;
        ProcStatus::parse(&text)
            .map_err(|missing| io::Error::new(io::ErrorKind::InvalidData, missing))
    }

    /// This process's status (`/proc/self/status`).
    pub fn of_process() -> io::Result<ProcStatus> {
        ProcStatus::read("/proc/self/status")
    }

    /// The calling thread's status (`/proc/thread-self/status`): its own
    /// context switches.
    pub fn of_this_thread() -> io::Result<ProcStatus> {
        ProcStatus::read("/proc/thread-self/status")
    }

    /// Voluntary plus involuntary context switches.
    pub fn switches(&self) -> u64 {
        self.voluntary_switches + self.involuntary_switches
    }
}

/// Linux's errno "no such process": what reading a thread's `/proc` file
/// answers when the thread exits between listing it and reading it.
pub const ESRCH: i32 = 3;

/// The context switches (voluntary plus involuntary) of every thread of
/// this process that is alive now, summed over `/proc/self/task/*/status`.
/// Threads that have already exited are not counted (their counts are gone
/// from `/proc`); a thread that exits while we read is skipped.
pub fn switches_of_live_threads() -> io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir("/proc/self/task")? {
        match ProcStatus::read(entry?.path().join("status")) {
            Ok(status) => total += status.switches(),
            // A thread exiting under our feet: its file is gone (NotFound),
            // its process entry answers ESRCH, or we read half of it.
            Err(error)
                if error.kind() == io::ErrorKind::NotFound
                    || error.kind() == io::ErrorKind::InvalidData
                    || error.raw_os_error() == Some(ESRCH) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(total)
}

// ---------------------------------------------------------------------------
// E004-7: N sleeping threads against N sleeping tasks
// ---------------------------------------------------------------------------

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
        match self {
            Sleepers::Threads => "threads",
            Sleepers::Tasks => "tasks",
        }
    }
}

impl FromStr for Sleepers {
    type Err = String;
    fn from_str(s: &str) -> Result<Sleepers, String> {
        match s {
            "threads" => Ok(Sleepers::Threads),
            "tasks" => Ok(Sleepers::Tasks),
            other => Err(format!("expected `threads` or `tasks`, got {other:?}")),
        }
    }
}

/// What one crowd of sleepers cost (see the module docs for where each
/// figure comes from).
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
    /// Context switches made by the threads involved (see the module docs).
    pub switches: u64,
}

impl CrowdReport {
    /// The peak memory beyond the baseline, per sleeper, in bytes.
    pub fn bytes_per_sleeper(&self) -> u64 {
        // Saturating: a peak below the baseline (memory given back to the
        // OS between the readings) means "nothing measurable", not a panic.
        let extra = self.peak_rss_kb.saturating_sub(self.baseline_rss_kb) * 1024;
        extra / self.count.max(1) as u64
    }

    /// One line of `key=value` pairs, for a child process to hand its
    /// report to its parent; [`CrowdReport::from_line`] reads it back.
    pub fn to_line(&self) -> String {
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
    let reported = Arc::new(AtomicU64::new(0));
    let unreadable = Arc::new(AtomicU64::new(0));

    // 2. Start them all, timing the starts. A refusal (too many threads
    //    for the OS) stops the starting but not the joining below.
    let begun = Instant::now();
    let mut threads = Vec::with_capacity(count);
    let mut refused = None;
    for _ in 0..count {
        let (reported, unreadable) = (reported.clone(), unreadable.clone());
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
    let start = begun.elapsed();
    for thread in threads {
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

// ---------------------------------------------------------------------------
// E001-1: the same jobs, sequential, concurrent and parallel
// ---------------------------------------------------------------------------

/// The three jobs of E001-1: 3, 2 and 1 steps, like seed 000 and 001's
/// requests for 3, 2 and 1 users.
pub const E001_1_STEPS: [u32; 3] = [3, 2, 1];

/// What one step of a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Waits this long (a sleep: on the loop `sleep(d).await`, on a pool
    /// thread `thread::sleep(d)`), as I/O would.
    Wait(Duration),
    /// Computes: this many rounds of [`spin`], never awaiting.
    Compute(u64),
}

/// How the jobs were run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// One after another, each awaited in turn on the loop.
    Sequential,
    /// As tasks taking turns on the loop's one thread.
    Concurrent,
    /// Each on its own pool thread.
    Parallel,
}

impl Way {
    /// A short label, with the document's Korean word.
    pub fn label(self) -> &'static str {
        match self {
            Way::Sequential => "sequential (순차)",
            Way::Concurrent => "concurrent (동시성)",
            Way::Parallel => "parallel (병렬)",
        }
    }
}

/// One step of one job: when it started and ended, since the run began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedStep {
    /// Which job (0 for the first).
    pub job: usize,
    /// Which of the job's steps (1 for the first).
    pub step: u32,
    /// When the step began.
    pub start: Duration,
    /// When the step ended.
    pub end: Duration,
}

/// What a run of the jobs did, step by step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobsRun {
    /// How the jobs were run.
    pub way: Way,
    /// What each step did.
    pub work: Work,
    /// How many steps each job had.
    pub steps: Vec<u32>,
    /// From the start of the run until the last job finished.
    pub total: Duration,
    /// Every step of every job, in the order the jobs were given, each
    /// job's steps in order.
    pub spans: Vec<TimedStep>,
}

impl JobsRun {
    /// When job `job` finished (its last step's end; zero for a job
    /// without steps).
    pub fn finished_at(&self, job: usize) -> Duration {
        self.spans
            .iter()
            .filter(|span| span.job == job)
            .map(|span| span.end)
            .max()
            .unwrap_or_default()
    }
}

/// `iterations` rounds of a little integer arithmetic that the optimizer
/// cannot skip: CPU work of a fixed size, whatever else the machine does.
pub fn spin(iterations: u64) -> u64 {
    // A linear congruential step per round: cheap, dependent on the round
    // before (so it cannot be vectorised away), and `black_box` stops the
    // optimizer from computing the whole loop at compile time.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..iterations {
        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
    }
    x
}

/// How many rounds of [`spin`] take `unit` on this machine and build, at
/// its fastest (at least 1).
///
/// It first spins for 200 ms to wake the core up (a core that was idle may
/// run slowly for a moment, and a virtual machine's may even more), then
/// times seven short runs of about 10 ms each and keeps the fastest: a run
/// that was preempted, or that shared its core with a busy sibling thread,
/// only ever looks slower, so the fastest run is the best guess at what one
/// unit of work costs on an idle machine. On a busy machine the steps then
/// take longer than a unit, and the pictures show it.
pub fn calibrate(unit: Duration) -> u64 {
    // 1. Warm the core up, so the trials below do not time a sleepy one.
    let warming = Instant::now();
    while warming.elapsed() < Duration::from_millis(200) {
        spin(10_000);
    }
    // Grow the trial until it takes about 10 ms.
    let mut rounds = 1_000u64;
    while rounds < 1 << 40 {
        let begun = Instant::now();
        spin(rounds);
        if begun.elapsed() >= Duration::from_millis(10) {
            break;
        }
        rounds *= 2;
    }
    // 2. Seven trials of that size; the fastest is the least disturbed.
    let fastest = (0..7)
        .map(|_| {
            let begun = Instant::now();
            spin(rounds);
            begun.elapsed()
        })
        .min()
        .unwrap_or(Duration::from_millis(10));
    // 3. Rounds per unit, from the cost of one round.
    let per_round = fastest.as_secs_f64() / rounds as f64;
    ((unit.as_secs_f64() / per_round) as u64).max(1)
}

/// Runs step `step` of job `job` on the loop, and gives its span in
/// `timer`'s time since `origin`.
async fn step_on_loop(
    timer: &Timer,
    origin: Duration,
    job: usize,
    step: u32,
    work: Work,
) -> TimedStep {
    let start = timer.now() - origin;
    match work {
        // Waiting hands the thread back to the loop until the timer fires.
        Work::Wait(d) => sleep(d).await,
        // Computing never awaits: the loop's one thread is ours until done,
        // which is the point E001-1 makes about concurrency.
        Work::Compute(rounds) => {
            spin(rounds);
        }
    }
    // On a virtual clock a compute step takes no loop time at all (only
    // real time passes): computing is worth measuring on a real clock only.
    let end = timer.now() - origin;
    TimedStep {
        job,
        step,
        start,
        end,
    }
}

/// Runs step `step` of job `job` on the calling (pool) thread, and gives
/// its span in wall-clock time since `origin`.
fn step_blocking(origin: Instant, job: usize, step: u32, work: Work) -> TimedStep {
    let start = origin.elapsed();
    match work {
        Work::Wait(d) => thread::sleep(d),
        Work::Compute(rounds) => {
            spin(rounds);
        }
    }
    TimedStep {
        job,
        step,
        start,
        end: origin.elapsed(),
    }
}

/// Runs the jobs one after another, each awaited in turn (E002-7's
/// sequential awaits): the total is the **sum** of the jobs. Times are the
/// current timer's: inside an event loop the loop's, so on a virtual clock
/// they are exact. (It needs no loop: under `block_on` it runs on the
/// process's real-clock timer.)
pub async fn sequential(steps: &[u32], work: Work) -> JobsRun {
    let timer = ch04_timer::current_timer();
    let origin = timer.now();
    let mut spans = Vec::new();
    for (job, &count) in steps.iter().enumerate() {
        for step in 1..=count {
            spans.push(step_on_loop(&timer, origin, job, step, work).await);
        }
    }
    JobsRun {
        way: Way::Sequential,
        work,
        steps: steps.to_vec(),
        total: timer.now() - origin,
        spans,
    }
}

/// Runs the jobs as tasks on the running loop, all at once, and awaits
/// them in turn. Waiting steps overlap, so the total is the **max** of the
/// jobs; a computing step holds the loop's one thread, so computing jobs
/// still take the **sum** (each task yields after every step, so the steps
/// take turns as in the document's picture).
///
/// # Panics
/// Outside a running event loop ("no running event loop").
pub async fn concurrent(steps: &[u32], work: Work) -> JobsRun {
    let timer = ch04_timer::current_timer();
    let origin = timer.now();
    // Spawn every job first (none runs until we await), then await them in
    // turn: the awaits overlap because the tasks already run.
    let handles: Vec<_> = steps
        .iter()
        .enumerate()
        .map(|(job, &count)| {
            let timer = timer.clone();
            spawn(async move {
                let mut spans = Vec::new();
                for step in 1..=count {
                    spans.push(step_on_loop(&timer, origin, job, step, work).await);
                    if let Work::Compute(_) = work {
                        // Let the other tasks have a turn: asyncio.sleep(0).
                        yield_now().await;
                    }
                }
                spans
            })
        })
        .collect();
    let mut spans = Vec::new();
    for handle in handles {
        spans.extend(handle.await.expect("a job's task does not panic"));
    }
    JobsRun {
        way: Way::Concurrent,
        work,
        steps: steps.to_vec(),
        total: timer.now() - origin,
        spans,
    }
}

/// Runs each job on a thread of `pool` (chapter 9) and awaits them in
/// turn. With a thread per job, waiting jobs take the **max**, and
/// computing jobs too, as long as there are cores for them all. Times are
/// the wall clock's: pool threads live outside the loop's time.
///
/// Works inside a running loop (the loop waits while the threads work) and
/// under `block_on`.
pub async fn parallel(pool: &ThreadPool, steps: &[u32], work: Work) -> JobsRun {
    // The wall clock: the pool's threads do not run on the loop's time.
    let origin = Instant::now();
    // One job per pool thread, all submitted before any await.
    let handles: Vec<_> = steps
        .iter()
        .enumerate()
        .map(|(job, &count)| {
            pool.run_in_executor(move || {
                (1..=count)
                    .map(|step| step_blocking(origin, job, step, work))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut spans = Vec::new();
    for handle in handles {
        spans.extend(handle.await.expect("a job on the pool does not panic"));
    }
    JobsRun {
        way: Way::Parallel,
        work,
        steps: steps.to_vec(),
        total: origin.elapsed(),
        spans,
    }
}

/// How many columns of a picture one unit of time takes.
pub const COLUMNS_PER_UNIT: usize = 4;

/// Draws timelines as text, one row per job, all on the same time scale
/// (`unit` of time = [`COLUMNS_PER_UNIT`] columns): `=` while the job's
/// step waits, `#` while it computes, `.` while the job is not running.
///
/// ```
/// use std::time::Duration;
/// use tiny_asyncio::ch10_measure::{TimedStep, JobsRun, Way, Work, draw};
///
/// let unit = Duration::from_secs(1);
/// let span = |job, step, from: u64, to: u64| TimedStep {
///     job,
///     step,
///     start: Duration::from_secs(from),
///     end: Duration::from_secs(to),
/// };
/// let timeline = JobsRun {
///     way: Way::Sequential,
///     work: Work::Wait(unit),
///     steps: vec![2, 1],
///     total: Duration::from_secs(3),
///     spans: vec![span(0, 1, 0, 1), span(0, 2, 1, 2), span(1, 1, 2, 3)],
/// };
/// let picture = draw(&[timeline], unit);
/// assert!(picture.contains("A (2) |========....|"));
/// assert!(picture.contains("B (1) |........====|"));
/// ```
pub fn draw(timelines: &[JobsRun], unit: Duration) -> String {
    // One scale for every picture: the longest run sets the width.
    let longest = timelines.iter().map(|t| t.total).max().unwrap_or_default();
    let units = longest.as_secs_f64() / unit.as_secs_f64();
    let columns = ((units * COLUMNS_PER_UNIT as f64).round() as usize).max(1);
    let column_time = unit.as_secs_f64() / COLUMNS_PER_UNIT as f64;

    // Unit marks under the rows: mark k sits under the boundary where unit
    // k begins, the `|` before the first column being time 0.
    const ROW_PREFIX: usize = "  A (3) ".len();
    let mut axis = vec![' '; ROW_PREFIX + columns + 8];
    for k in 0..=columns / COLUMNS_PER_UNIT {
        for (i, digit) in k.to_string().chars().enumerate() {
            axis[ROW_PREFIX + k * COLUMNS_PER_UNIT + i] = digit;
        }
    }
    let axis: String = axis.into_iter().collect();

    // Then each run: a title line with its measured total, and one row per
    // job, its letter and step count first (A (3), B (2), C (1)).
    let mut out = String::new();
    for timeline in timelines {
        let mark = match timeline.work {
            Work::Wait(_) => '=',
            Work::Compute(_) => '#',
        };
        out.push_str(&format!(
            "{}: {:.2} units\n",
            timeline.way.label(),
            timeline.total.as_secs_f64() / unit.as_secs_f64()
        ));
        for (job, &count) in timeline.steps.iter().enumerate() {
            let name = char::from(b'A' + (job % 26) as u8);
            // A column is busy if the middle of its time falls inside one
            // of this job's steps: rounding that never draws a step wider
            // than it was by more than half a column.
            let row: String = (0..columns)
                .map(|column| {
                    let middle = (column as f64 + 0.5) * column_time;
                    let busy = timeline.spans.iter().any(|span| {
                        span.job == job
                            && span.start.as_secs_f64() <= middle
                            && middle < span.end.as_secs_f64()
                    });
                    if busy { mark } else { '.' }
                })
                .collect();
            out.push_str(&format!("  {name} ({count}) |{row}|\n"));
        }
    }
    out.push_str(axis.trim_end());
    out.push_str(" units\n");
    out
}
