//! E001-1, drawn: the same three jobs run sequential, concurrent and
//! parallel, every step timed, and the timelines turned into a picture.
//!
//! Read it last. It needs nothing from `proc.rs` or `crowd.rs`, only the
//! runtime of the earlier chapters: chapter 4's timer and `sleep`, chapter
//! 5's `yield_now`, chapter 6's `spawn` and chapter 9's [`ThreadPool`]. The
//! jobs are [`E001_1_STEPS`], each step one unit of [`Work`]; [`sequential`],
//! [`concurrent`] and [`parallel`] each give a [`JobsRun`], and [`draw`]
//! renders them on one time scale.

use std::thread;
use std::time::{Duration, Instant};

use crate::ch04_timer::{self, Timer, sleep};
use crate::ch05_event_loop::yield_now;
use crate::ch06_join::spawn;
use crate::ch09_pool::ThreadPool;

/// The three jobs of E001-1: 3, 2 and 1 steps, like seed 000 and 001's
/// requests for 3, 2 and 1 users.
pub const E001_1_STEPS: [u32; 3] = [3, 2, 1];

/// What one step of a job does.
///
/// `Copy`, so that every job's task or pool thread takes its own copy into
/// its `move` closure, and nothing is shared between them.
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
///
/// In loop time for [`sequential`] and [`concurrent`] runs, in wall-clock
/// time for [`parallel`] ones (pool threads live outside the loop's time).
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
        // E001-2's latency per request: run sequentially the jobs of
        // `E001_1_STEPS` finish at 3, 5 and 6 units, concurrently at 3, 2
        // and 1. `max` of the ends, so nothing relies on the spans' order.
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
    // The multiplier is Knuth's for a 64-bit LCG (MMIX); the start is
    // 2^64 divided by the golden ratio. Any start would do: only the
    // number of rounds matters, never the value.
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
    // Grow the trial until it takes about 10 ms. The `1 << 40` bound is
    // far beyond 10 ms on any machine: it only keeps a clock that never
    // advances from doubling `rounds` forever.
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
        // The `min` of seven trials is always `Some`: the fallback is
        // never used, it only answers the `Option`.
        .unwrap_or(Duration::from_millis(10));
    // 3. Rounds per unit, from the cost of one round.
    //    (A float-to-integer `as` saturates: a unit too long for a `u64`
    //    of rounds gives `u64::MAX`, never a wrapped small number.)
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
    // `origin` is the run's start in this timer's time, so every span of
    // one run sits on one scale, on a real clock or a virtual one.
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
    // `Instant` is one clock for every thread of the process, so spans
    // measured on different workers line up on one scale.
    let start = origin.elapsed();
    match work {
        // Blocking is fine here: it holds only this pool thread, never the
        // loop, which is what a pool is for (chapter 9).
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
            // Each step is awaited to its end before the next begins: the
            // steps never overlap, and while one waits this run has
            // nothing else to do.
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
            // `spawn` wants a `'static` future: each task takes its own
            // handle on the timer and copies of `job`, `count` and `work`,
            // never a borrow of `steps`.
            let timer = timer.clone();
            spawn(async move {
                let mut spans = Vec::new();
                for step in 1..=count {
                    spans.push(step_on_loop(&timer, origin, job, step, work).await);
                    // A waiting step needs no yield: its `sleep` already
                    // handed the thread back to the loop.
                    if let Work::Compute(_) = work {
                        // Let the other tasks have a turn: asyncio.sleep(0).
                        yield_now().await;
                    }
                }
                spans
            })
        })
        .collect();
    // Awaiting in order costs nothing: a job that ended early has its spans
    // waiting in its handle, and the last await returns when the last job
    // is done. A handle gives an `Err` only if its task panicked or was
    // aborted, and these do neither.
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
    // One job per pool thread, all submitted before any await. The picture
    // is parallel only if the pool has a thread for every job (the example
    // makes one of `E001_1_STEPS.len()`): with fewer, the extra jobs queue
    // until a worker is free. The closures cross to other threads, so they
    // must be `Send + 'static`: they capture copies, as in `concurrent`.
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
    // Awaiting a pool handle suspends only this future: inside a loop, the
    // loop sleeps (or runs other tasks) until a worker's result wakes it.
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
    // At least one column, so that an empty or instant run still draws.
    let columns = ((units * COLUMNS_PER_UNIT as f64).round() as usize).max(1);
    let column_time = unit.as_secs_f64() / COLUMNS_PER_UNIT as f64;

    // Unit marks under the rows: mark k sits under the boundary where unit
    // k begins, the `|` before the first column being time 0.
    const ROW_PREFIX: usize = "  A (3) ".len();
    // Eight spare blanks past the rows: room for the last mark's digits
    // (`trim_end` drops what is left over).
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
            // A, B, C …, wrapping after Z: a byte sum cannot overflow.
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
