//! # Chapter 9 — when you must block: a thread pool and `run_in_executor`
//!
//! **The question.** Everything so far waited *politely*: a task that
//! sleeps hands the thread back to the loop. But some work cannot await.
//! `time.sleep(5)`, a database driver with no async API, a file read, a long
//! computation: called inside a task, each one holds the loop's only thread,
//! and every other task, timers included, waits until it is over (EX-1).
//! How does asyncio let a coroutine wait for blocking work *without*
//! blocking the loop?
//!
//! **The documents.** Seed 003 (E003-4): two coroutines print "start" and
//! "suspend", then each awaits `loop.run_in_executor(None, time.sleep, 5)`,
//! a blocking call handed to the loop's default thread pool, then prints
//! "resume". Both sleeps run at once on two pool threads, so the program
//! takes 5 s, not 10, and the two "resume" lines may come in either order
//! (the document printed 2 before 1). Across the documents (EX-1): async
//! helps waiting, not computing; a task that computes without awaiting
//! holds the whole loop.
//!
//! **The idea.** Give the blocking call to *another* thread, and give the
//! task a future that the other thread completes. We already have both
//! halves:
//!
//! * chapter 6's [`JoinCell`] is a result plus the waker of whoever awaits
//!   it, and it is `Send`: a worker thread can fill it, and filling it wakes
//!   the awaiting task (chapter 3's seam once more: the pool only ever needs
//!   a waker to call);
//! * chapter 6's [`JoinHandle::from_cell`] turns such a cell into the same
//!   `JoinHandle` that `spawn` returns, so awaiting a blocking job reads
//!   exactly like awaiting a task.
//!
//! What is new is the pool itself, [`ThreadPool`]: `n` worker threads that
//! take jobs from one FIFO queue (a `Mutex<VecDeque<Job>>` with a `Condvar`
//! to sleep on while it is empty, the shape of smol's `blocking` crate and of
//! Python's `ThreadPoolExecutor`). A job is the user's closure wrapped so
//! that it runs inside `catch_unwind` and puts `Ok(value)` or
//! [`JoinError`] "panicked" in its cell. A panicking job does not take its
//! worker down: the worker goes back to the queue for the next job.
//!
//! [`run_in_executor`] at the crate root is asyncio's
//! `loop.run_in_executor(None, func)`: it uses the running loop's **default
//! pool**, made on first use with asyncio's default size
//! ([`default_pool_size`]: `min(32, cpus + 4)`) and kept in the loop as a
//! per-loop resource ([`DefaultPool`]), so that closing the loop drops it
//! and joins its threads.
//!
//! ## Choices, written down
//!
//! * **Threads start lazily.** A pool starts with no thread. A submitted job
//!   starts a new worker only if every existing worker is busy (more jobs
//!   queued than idle workers) and fewer than `n` exist, as Python's
//!   `ThreadPoolExecutor` does. So a loop whose default pool runs one job at
//!   a time costs one thread, not six. Workers never retire while the pool
//!   lives (smol's pool shrinks after idling; ours stays simple).
//! * **FIFO.** Jobs start in the order they were submitted; at most `n` run
//!   at once.
//! * **Abort.** There is no safe way to stop a thread in the middle of a
//!   call, so [`JoinHandle::abort`] on a job sets a flag and resolves the
//!   handle "cancelled" at once: nobody waits for a job they gave up on. A
//!   job that is still queued is skipped when its turn comes: it never runs.
//!   A job that is already running finishes, and its result is dropped on
//!   the worker (the handle's first result, "cancelled", wins). (tokio's
//!   `spawn_blocking` makes the same promise about running jobs.)
//! * **Shutdown.** Dropping a pool (or closing the loop that owns the
//!   default pool) waits for the running jobs, joins every worker, and
//!   resolves the handles of the jobs still queued as "cancelled": they
//!   never run, and nobody is left waiting forever. That is Python's
//!   `executor.shutdown(wait=True, cancel_futures=True)`. (Python's
//!   `asyncio.run` instead lets queued jobs run before it returns; we
//!   choose the prompt shutdown: by the time a loop closes, its tasks,
//!   the only ones awaiting those jobs, are gone.) No thread outlives its
//!   pool.
//! * **The virtual clock.** Chapter 5's virtual clock jumps to the next
//!   deadline when no task can run. While a blocking job runs on a worker,
//!   that would be wrong: real work takes real time, and the task waiting
//!   for it must not find that ten virtual seconds went by. So a job
//!   submitted from inside a running loop carries that loop's
//!   [`KeepAwake`](crate::ch05_event_loop::KeepAwake) guard, held by the
//!   job's cell (`JoinCell::keep_loop_awake`): it is released only after
//!   the cell is filled (and the waiting task queued), so the clock stays
//!   put until the task has seen the result. An aborted job's handle
//!   resolves at once, and so the clock is free at once, while the job
//!   finishes unobserved. A handle awaited in another loop than the one
//!   that submitted it (or made outside any loop) keeps the awaiting loop
//!   awake too, from its first `Pending` poll: that is the loop whose task
//!   waits, and a virtual clock there must not jump, nor the loop declare a
//!   deadlock, while the job runs.
//! * **Pictures.** A job submitted from inside a loop that is tracing (the
//!   appendix module [`trace`](crate::trace)) records `JobStart` and
//!   `JobEnd` with its worker's name, so the loop's picture gets one row per
//!   pool thread. The job records through the loop's `TraceSink`, taken at
//!   submit time (the worker has no loop of its own). A job's record names
//!   task 0: the loop does not tell which task submitted it.
//!
//! ## Limits, on purpose
//!
//! * A job that blocks forever keeps its worker forever, and keeps dropping
//!   the pool (or closing the loop) waiting. On a virtual clock it also
//!   keeps time from moving.
//! * `n` threads at most: job `n + 1` waits in the queue for a free worker,
//!   however long the first `n` take.
//! * Threads are named `tiny-asyncio-pool-<i>`. Linux keeps only the first
//!   15 bytes of a thread's name, so `/proc` and `top` show
//!   `tiny-asyncio-po`; [`ThreadPool::threads_alive`] counts a pool's own.
//! * Unlike Python, where the GIL lets only one thread run Python code at a
//!   time (seed 004, E004-7), Rust threads compute in parallel: CPU-bound
//!   jobs on this pool really use several cores, up to the machine's count.
//!
//! **What the next chapter needs from this one.** Chapter 10 measures what
//! the book has gained: sleeping tasks against sleeping threads, and the
//! same jobs run one after another, concurrently on the loop, and in
//! parallel on this pool.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::fmt;
use std::num::NonZeroUsize;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

use crate::ch03_waker::lock;
use crate::ch05_event_loop::{Handle, TraceSink, expect_running_loop, try_running_loop};
use crate::ch06_join::{JoinCell, JoinError, JoinHandle};
use crate::trace::Event;

/// The prefix of every pool thread's name: `tiny-asyncio-pool-0`,
/// `tiny-asyncio-pool-1`, …
pub const THREAD_NAME_PREFIX: &str = "tiny-asyncio-pool-";

/// One queued job, its result type erased: run it, or drop it (then its
/// handle resolves "cancelled").
type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed-size pool of worker threads that run blocking jobs: Python's
/// `concurrent.futures.ThreadPoolExecutor`, tokio's blocking pool.
///
/// ```
/// use std::time::Duration;
/// use tiny_asyncio::{ThreadPool, block_on};
///
/// let pool = ThreadPool::new(2);
/// let job = pool.run_in_executor(|| {
///     std::thread::sleep(Duration::from_millis(10)); // blocking, and fine here
///     6 * 7
/// });
/// // A job's handle is a future: await it in a task, or block on it.
/// assert_eq!(block_on(job).unwrap(), 42);
/// ```
///
/// See the [module docs](self) for when threads start, what abort does, and
/// what dropping the pool does with queued jobs.
pub struct ThreadPool {
    /// The queue and the counts, shared with every worker.
    shared: Arc<PoolShared>,
    /// The workers, to join when the pool is dropped. In a `Mutex` because
    /// `run_in_executor` takes `&self` and may start one.
    threads: Mutex<Vec<thread::JoinHandle<()>>>,
    /// The most workers it may start (`n`); fixed at `new`.
    size: usize,
    /// Numbers the jobs 1, 2, 3 … for `JoinHandle::id` and error messages.
    next_job: AtomicU64,
}

/// What the pool and its workers share.
struct PoolShared {
    /// The queue and the counts that decide when to start a worker.
    state: Mutex<PoolState>,
    /// Workers sleep here while the queue is empty.
    work: Condvar,
    /// Workers started and not yet finished.
    alive: AtomicUsize,
}

struct PoolState {
    /// Jobs not started yet, oldest first.
    queue: VecDeque<Job>,
    /// Workers waiting on `work` for a job. A job queued while
    /// `queue.len() <= idle` has a worker ready for it; otherwise the pool
    /// starts one more (if it may).
    idle: usize,
    /// Workers started so far (never more than `size`).
    started: usize,
    /// The pool is being dropped: workers exit once the queue is empty.
    shutdown: bool,
}

impl ThreadPool {
    /// A pool of at most `threads` workers. No thread starts until the first
    /// job arrives (see the module docs).
    ///
    /// # Panics
    /// If `threads` is 0: such a pool could never run a job, and every
    /// handle given out would wait forever.
    pub fn new(threads: usize) -> ThreadPool {
        assert!(
            threads > 0,
            "ThreadPool::new: a pool needs at least one thread (got 0); a pool with no \
             threads would accept jobs and never run them"
        );
        ThreadPool {
            shared: Arc::new(PoolShared {
                state: Mutex::new(PoolState {
                    queue: VecDeque::new(),
                    idle: 0,
                    started: 0,
                    shutdown: false,
                }),
                work: Condvar::new(),
                alive: AtomicUsize::new(0),
            }),
            threads: Mutex::new(Vec::new()),
            size: threads,
            next_job: AtomicU64::new(0),
        }
    }

    /// The most worker threads this pool runs at once.
    pub fn size(&self) -> usize {
        self.size
    }

    /// How many of this pool's worker threads are alive right now (started
    /// and not yet exited). Starts at 0 and never exceeds
    /// [`ThreadPool::size`]; dropping the pool joins them all.
    pub fn threads_alive(&self) -> usize {
        self.shared.alive.load(Ordering::Acquire)
    }

    /// Runs the blocking closure `f` on a worker thread and returns a
    /// handle to its result: asyncio's `loop.run_in_executor(pool, f)`,
    /// tokio's `spawn_blocking`.
    ///
    /// The handle is a future: await it in a task (the task sleeps while the
    /// job runs, and the loop runs other tasks), or `block_on` it outside any
    /// loop. It gives `Ok(value)`, or a [`JoinError`] if `f` panicked or the
    /// job was aborted before it returned.
    ///
    /// Called inside a running event loop, the job holds that loop's
    /// `KeepAwake` until its result is delivered, so a virtual clock does not
    /// jump while it runs.
    ///
    /// The handle's [`id`](JoinHandle::id) (and the number in a
    /// [`JoinError`]'s message) is the job's number in this pool: 1 for its
    /// first job, 2 for the next …; it is not a task number.
    pub fn run_in_executor<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let running = try_running_loop().ok();
        let trace = running.as_ref().and_then(tracing);
        self.submit(f, running, trace)
    }

    /// Queues `f` (keeping the submitting loop, if any, awake, and with its
    /// trace sink) and starts a worker for it if every existing worker is
    /// busy.
    fn submit<F, T>(&self, f: F, running: Option<Handle>, trace: Option<TraceSink>) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let id = self.next_job.fetch_add(1, Ordering::Relaxed) + 1;
        let cell = JoinCell::new();
        cell.set_task_id(id);
        let cancelled = Arc::new(AtomicBool::new(false));
        if let Some(running) = &running {
            // Released when the handle resolves: when the job's result is
            // delivered, or at once if the job is aborted. (A loop that
            // awaits the handle is kept awake the same way at its poll.)
            cell.keep_loop_awake(running);
        }
        let ticket = Ticket {
            cell: cell.clone(),
            cancelled: cancelled.clone(),
            trace,
            id,
        };
        let job: Job = Box::new(move || ticket.run(f));

        let start_worker = {
            let mut state = lock(&self.shared.state);
            state.queue.push_back(job);
            if state.queue.len() > state.idle && state.started < self.size {
                state.started += 1;
                true
            } else {
                // An idle worker takes it; or, if all are busy and the pool
                // is full, the first worker to finish will.
                self.shared.work.notify_one();
                false
            }
        };
        if start_worker {
            self.start_worker();
        }
        JoinHandle::from_cell(cell, cancelled, id)
    }

    fn start_worker(&self) {
        // `submit` already counted it in `started` (under the state lock),
        // so two submits racing here never start more than `size`.
        let mut threads = lock(&self.threads);
        let index = threads.len();
        let shared = self.shared.clone();
        // Counted before the thread starts, so that `threads_alive` never
        // misses a thread that is running.
        self.shared.alive.fetch_add(1, Ordering::AcqRel);
        let spawned = thread::Builder::new()
            .name(format!("{THREAD_NAME_PREFIX}{index}"))
            .spawn(move || worker(shared));
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(error) => {
                self.shared.alive.fetch_sub(1, Ordering::AcqRel);
                let stranded = {
                    let mut state = lock(&self.shared.state);
                    state.started -= 1;
                    // With no worker at all, nobody would ever run what is
                    // queued: drop it, so every handle resolves "cancelled"
                    // (and lets go of its loop's KeepAwake) before we panic.
                    if state.started == 0 {
                        std::mem::take(&mut state.queue)
                    } else {
                        VecDeque::new()
                    }
                };
                drop(stranded);
                panic!("ThreadPool: the OS refused to start a worker thread: {error}");
            }
        }
    }
}

/// A worker: take the oldest job, run it, repeat; sleep while there is
/// none; exit when the pool shuts down and the queue is empty.
fn worker(shared: Arc<PoolShared>) {
    /// Counts the worker out however it leaves.
    struct Alive(Arc<PoolShared>);
    impl Drop for Alive {
        fn drop(&mut self) {
            self.0.alive.fetch_sub(1, Ordering::AcqRel);
        }
    }
    let alive = Alive(shared);
    let shared = &alive.0;
    loop {
        // 1. Get the next job, under the lock.
        let job = {
            let mut state = lock(&shared.state);
            loop {
                // 1a. The oldest queued job first: FIFO. (At shutdown the
                //     pool's `Drop` has already taken the queue away under
                //     this lock, so a worker never starts an unrun job then.)
                if let Some(job) = state.queue.pop_front() {
                    break job;
                }
                // 1b. Nothing queued and the pool is going away: leave. The
                //     `Alive` guard counts us out on the way.
                if state.shutdown {
                    return;
                }
                // 1c. Nothing queued: wait for `submit` (or `Drop`) to
                //     notify. While we wait we are `idle`, which `submit`
                //     reads to decide whether it needs a new worker. A
                //     spurious wake-up just goes round 1a again.
                state.idle += 1;
                state = shared
                    .work
                    .wait(state)
                    .unwrap_or_else(|poison| poison.into_inner());
                state.idle -= 1;
            }
        };
        // 2. Run it with the lock released, so that other workers take
        //    jobs and `submit` queues new ones meanwhile. The job is a
        //    `Ticket::run`: it checks the abort flag, runs the closure,
        //    fills the handle's cell, and so wakes the awaiting task.
        // The job catches the user's panic itself (to report it). This
        // second net catches the rare rest, such as a result whose `Drop`
        // panics, so that the worker always lives on to the next job.
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(job)) {
            eprintln!(
                "tiny-asyncio: a pool job panicked outside its closure: {}",
                crate::ch05_event_loop::panic_message(&*payload)
            );
        }
        // 3. Round again: the worker lives as long as the pool.
    }
}

/// The trace sink of the loop behind `handle`, if that loop is tracing: a
/// job records its start and end through it.
fn tracing(handle: &Handle) -> Option<TraceSink> {
    Some(handle.tracer()).filter(TraceSink::is_on)
}

/// A job's side of its `JoinHandle`: the cell to fill (which also holds
/// the loop's keep-awake guard until it is filled), the abort flag, and
/// the loop's trace sink (only if it was tracing).
///
/// Dropping a ticket resolves the cell "cancelled" (a no-op if the job
/// already filled it, or was aborted); the cell releases the guard only
/// after that, so a virtual clock never moves between the job's end and its
/// task seeing the result. The ticket is dropped when the job ends, when it
/// is skipped, and when an unrun job is thrown away at shutdown: every
/// handle resolves exactly once.
struct Ticket<T> {
    /// The handle's other end: filled exactly once, by `run` or by `drop`.
    cell: Arc<JoinCell<T>>,
    /// Set by the handle's `abort`; read before the job runs and after.
    cancelled: Arc<AtomicBool>,
    /// The submitting loop's trace sink, only if it was tracing then
    /// (`None` costs the job nothing).
    trace: Option<TraceSink>,
    /// The job's number in its pool, for the handle's errors and the trace.
    id: u64,
}

impl<T> Ticket<T> {
    fn run<F: FnOnce() -> T>(self, f: F) {
        if self.cancelled.load(Ordering::Acquire) {
            // Aborted while queued: never run. `self` drops: "cancelled".
            return;
        }
        // A job's records name task 0: which task submitted it is not known.
        let thread = self.trace.as_ref().map(|sink| {
            let thread = thread::current().name().unwrap_or("unnamed").to_owned();
            let start = Event::JobStart {
                thread: thread.clone(),
                job: self.id,
            };
            sink.record(0, start);
            thread
        });
        let outcome = panic::catch_unwind(AssertUnwindSafe(f));
        // Recorded before the cell is filled, so before the wake it sends.
        if let (Some(sink), Some(thread)) = (&self.trace, thread) {
            let end = Event::JobEnd {
                thread,
                job: self.id,
            };
            sink.record(0, end);
        }
        if self.cancelled.load(Ordering::Acquire) {
            // Aborted while running: nobody wants the result any more.
            drop(outcome);
            return;
        }
        let result = outcome.map_err(|payload| JoinError::panicked(self.id, payload));
        self.cell.complete(result);
    }
}

impl<T> Drop for Ticket<T> {
    fn drop(&mut self) {
        // A no-op if the job delivered its result (or was aborted); else,
        // say "cancelled". Either way the cell then lets go of the loop's
        // KeepAwake, and only now may a virtual clock move again.
        self.cell.complete(Err(JoinError::cancelled(self.id)));
    }
}

impl Drop for ThreadPool {
    /// Cancels the queued jobs, waits for the running ones, and joins every
    /// worker.
    fn drop(&mut self) {
        let never_ran = {
            let mut state = lock(&self.shared.state);
            state.shutdown = true;
            std::mem::take(&mut state.queue)
        };
        self.shared.work.notify_all();
        for job in never_ran {
            // Dropping the job drops its ticket: its handle gives
            // "cancelled". The user's closure is dropped too, and its
            // captures' `Drop` may panic; that must not stop the shutdown.
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| drop(job))) {
                eprintln!(
                    "tiny-asyncio: dropping a queued pool job panicked: {}",
                    crate::ch05_event_loop::panic_message(&*payload)
                );
            }
        }
        let threads = std::mem::take(&mut *lock(&self.threads));
        for thread in threads {
            // A job may drop the last `Arc<ThreadPool>` on its own worker; a
            // thread cannot join itself, so that worker just exits when the
            // job returns.
            if thread.thread().id() != thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let queued = lock(&self.shared.state).queue.len();
        f.debug_struct("ThreadPool")
            .field("size", &self.size)
            .field("threads_alive", &self.threads_alive())
            .field("queued", &queued)
            .finish()
    }
}

/// asyncio's default pool size: `min(32, cpus + 4)` (Python 3.8's
/// `ThreadPoolExecutor` default), counting the CPUs this process may use.
pub fn default_pool_size() -> usize {
    let cpus = thread::available_parallelism().map_or(1, NonZeroUsize::get);
    (cpus + 4).min(32)
}

/// A running loop's default thread pool: the executor asyncio uses when
/// `run_in_executor` is given `None`.
///
/// It lives in the loop as a per-loop resource
/// ([`Handle::resource`]): made by the first [`run_in_executor`] call, and
/// dropped (its queued jobs cancelled, its threads joined) when the loop
/// closes, after the loop's tasks.
pub struct DefaultPool {
    /// Sized by [`default_pool_size`]; dropped with the loop's resources.
    pool: ThreadPool,
}

impl DefaultPool {
    /// The default pool of the loop behind `handle`, made (with
    /// [`default_pool_size`] threads, none started yet) if it has none.
    pub fn of(handle: &Handle) -> Rc<DefaultPool> {
        handle.resource(|| DefaultPool {
            pool: ThreadPool::new(default_pool_size()),
        })
    }

    /// The pool itself.
    pub fn pool(&self) -> &ThreadPool {
        &self.pool
    }
}

impl fmt::Debug for DefaultPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DefaultPool").field(&self.pool).finish()
    }
}

/// Runs the blocking closure `f` on the running loop's default thread pool
/// and returns a handle to await: asyncio's
/// `loop.run_in_executor(None, f)` (E003-4), tokio's `spawn_blocking`.
///
/// ```
/// use std::time::Duration;
/// use tiny_asyncio::{run, run_in_executor};
///
/// let answer = run(async {
///     // `thread::sleep` would hold the loop; on the pool it holds a worker.
///     let job = run_in_executor(|| {
///         std::thread::sleep(Duration::from_millis(10));
///         "done"
///     });
///     job.await.unwrap()
/// });
/// assert_eq!(answer, "done");
/// ```
///
/// # Panics
/// Outside a running event loop ("no running event loop"): the default pool
/// belongs to a loop. Outside one, make a [`ThreadPool`] and use
/// [`ThreadPool::run_in_executor`].
pub fn run_in_executor<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let handle = expect_running_loop("run_in_executor");
    let trace = tracing(&handle);
    DefaultPool::of(&handle).pool.submit(f, Some(handle), trace)
}
