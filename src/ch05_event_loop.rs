//! # Chapter 5 — the event loop: one thread, many tasks
//!
//! **The question.** `block_on` (chapter 3) runs *one* future. Yet seed 000's
//! asynchronous users example (E000-4) runs three look-ups at once on one
//! thread and finishes in 3 seconds instead of 6. Who takes turns, and how
//! does a sleeping look-up get its turn back?
//!
//! **The documents.** E000-4 (three tasks created in the order 3, 2, 1,
//! interleaving `3-1 2-1 1-1 | 3-2 2-2 done1 | …`), E001-2 seen again (each
//! request now answered after its own 3, 2 and 1 s, where chapter 1's took
//! 3, 5 and 6), E001-3 (the same with
//! bare coroutines; the document warns the order is not guaranteed), and
//! E002-4 (`asyncio.get_running_loop()` inside a coroutine prints the loop;
//! outside any loop it raises `RuntimeError: no running event loop`).
//!
//! **The idea.** An event loop is `block_on` with a queue:
//!
//! * A **task** is a future the loop owns, plus a small state word.
//! * The **run queue** is a FIFO of tasks that asked to be polled.
//! * Each task's **waker** (an [`ArcWake`] on the task itself, chapter 3's
//!   seam) puts the task at the back of the queue and rouses the loop if it
//!   sleeps. A wake only enqueues; it never polls on the spot (polling inside
//!   `wake` would re-enter the loop from wherever `wake` was called).
//! * The loop takes **passes**: each pass polls the tasks that were queued
//!   when the pass began, in order. What they wake or spawn waits for the
//!   next pass (asyncio's rule), so a task that keeps waking itself cannot
//!   starve the others.
//! * When nothing is queued the loop **idles**: on a real clock it sleeps
//!   until a wake arrives (from the timer thread or any other thread); on a
//!   virtual clock it jumps straight to the next timer deadline and fires it.
//!
//! The main future given to [`EventLoop::run_until_complete`] takes turns in
//! the same FIFO queue as the tasks, as asyncio wraps it in a task too.
//!
//! ## The states of a task, and their rules
//!
//! A task's state is a few bits in one atomic byte ([`state`]); every rule
//! about when a task may be queued or polled is written beside them there.
//! In short: a task is in the queue **at most once**; a wake while it is
//! queued does nothing; a wake while it is being polled gives **exactly one
//! more poll**; a finished task is **never polled again**.
//!
//! ## Limits, on purpose
//!
//! * Spawned futures must be `Send`: a waker may travel to another thread,
//!   and ours holds the task itself. (tokio has `spawn_local` for `!Send`
//!   futures; we keep one kind of task.)
//! * Each task costs two allocations: the task, and its boxed future (see
//!   `Task` for why; runtimes that allow themselves `unsafe` need one).
//!
//! ## A task keeps its outcome
//!
//! When a task's future returns, the loop stores the output in the task
//! and wakes whoever asked for it through a [`TaskRef`]. When it panics, the
//! loop catches the panic (so every other task runs on) and stores the
//! payload. When it is dropped unfinished (cancelled, or the loop closes),
//! the loop stores [`TaskFailure::Cancelled`]. Since a task's future is
//! dropped exactly once, exactly one outcome is ever stored. (The plan of
//! the book gave this to chapter 6; keeping it in the task saves a second
//! allocation and a wrapper future per task, and makes "every handle
//! resolves exactly once" true by construction. Chapter 6 keeps the part
//! people hold: `JoinHandle`, `JoinError`, abort, detach.)
//!
//! ## Seams and speed-ups, skippable on a first reading
//!
//! * **Two halves of the run queue.** Wakes on the loop's own thread go to a
//!   thread-local queue with no lock; wakes from other threads take the
//!   shared queue's lock. Only a speed-up: reading the loop as if there were
//!   one FIFO queue is right (see `Shared` for how FIFO is kept).
//! * **The trace hooks** (`Shared::trace`) report to the appendix module
//!   [`trace`] when it is switched on, for the pictures.
//! * **[`KeepAwake`] and [`Handle::resource`]** exist for chapter 9: outside
//!   work that holds the virtual clock still, and a loop's own thread pool.
//!
//! **What the next chapter needs from this one.** [`Handle::spawn_task`]
//! and its [`TaskRef`]: cancel the task ([`TaskRef::cancel`]: its future is
//! dropped on the loop's next pass) and take its outcome
//! ([`TaskRef::poll_output`]). Chapter 6 wraps them into `JoinHandle`, a
//! future of the task's result.

#![forbid(unsafe_code)]

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::ch03_waker::{
    ArcWake, ExecutorGuard, Signal, enter_executor, lock, waker_from_arc, waker_ref,
};
use crate::ch04_timer::{self, Clock, Timer};
use crate::trace::{self, Event, Record, Recorder, Trace, WakeSource};

/// The state bits of a task, and the rules that govern them.
///
/// All five live in one `AtomicU8`, because wakes arrive from any thread
/// while the loop thread polls.
pub mod state {
    /// The task is in the run queue, or will be put back there when its
    /// current poll ends. *Rule:* set only by a wake that found it clear; a
    /// wake that finds it set does nothing (so a task is in the queue at most
    /// once). Cleared by the loop just before the poll starts, so a wake
    /// during the poll sets it again.
    pub const SCHEDULED: u8 = 1 << 0;
    /// The loop is polling the task right now. *Rule:* a wake while RUNNING
    /// sets SCHEDULED but does not enqueue; when the poll returns `Pending`
    /// the loop sees SCHEDULED and enqueues the task once: exactly one more
    /// poll, however many wakes came during this one.
    pub const RUNNING: u8 = 1 << 1;
    /// The task's future returned `Ready` or was dropped. *Rule:* final. A
    /// COMPLETE task is never polled again and wakes are ignored.
    pub const COMPLETE: u8 = 1 << 2;
    /// Someone asked to cancel the task. *Rule:* the next time the loop
    /// takes the task from the queue it drops the future instead of polling
    /// it, and the task becomes COMPLETE.
    pub const CANCELLED: u8 = 1 << 3;
    /// The task's outcome (output, panic or "cancelled") is stored and its
    /// future is gone. *Rule:* set last, after the future was dropped, so
    /// whoever sees it (a `JoinHandle`'s `is_finished`) knows that nothing
    /// of the task's future is still alive.
    pub const OUTCOME: u8 = 1 << 4;
}
use state::{CANCELLED, COMPLETE, OUTCOME, RUNNING, SCHEDULED};

/// What the loop thread and waking threads share: the run queue.
///
/// The queue has two halves. Wakes from *other* threads (the timer thread,
/// a pool thread) go to `queue`, under its lock. Wakes on the loop's own
/// thread while it runs (a task waking another, a spawn, a virtual timer)
/// go to a thread-local queue that needs no lock at all (`LOCAL_QUEUE`).
/// Each pass of the loop takes both. The split is only a speed-up: most
/// wakes happen on the loop thread, and a lock per wake was the biggest
/// single cost of a wake.
struct Shared {
    queue: Mutex<Queue>,
    /// Whether `queue` may hold entries: lets a pass skip the lock when
    /// no other thread woke anything. Written under the lock.
    has_remote: AtomicBool,
    /// The main future is queued (at most once, like a task).
    main_scheduled: AtomicBool,
    /// Where the loop thread sleeps when it has nothing to do.
    signal: Signal,
    /// Outside work that has promised to wake a task (see [`KeepAwake`]).
    outside_work: AtomicUsize,
    /// The loop's clock, for timestamps of trace records.
    clock: Clock,
    /// The trace of what the loop did (appendix module `trace`); off by
    /// default, and then every hook below costs one atomic load.
    trace: Recorder,
}

struct Queue {
    entries: VecDeque<Entry>,
    /// The loop thread is asleep (or about to be) on `signal`; whoever
    /// enqueues must notify it. Kept under the queue's lock, so "queue is
    /// empty, I will sleep" and "I enqueued, is it asleep?" cannot miss each
    /// other: that is what makes a lost wake-up impossible.
    parked: bool,
    /// The loop is closed: wakes enqueue nothing any more.
    closed: bool,
}

/// One turn in the run queue: a task, or the main future.
enum Entry {
    Main,
    Task(Arc<dyn Runnable>),
}

impl Shared {
    /// Keeps a trace record, if tracing is on. The time is read under the
    /// recorder's lock, so records from several threads stay in time order.
    #[inline]
    fn trace(&self, task: u64, event: impl FnOnce() -> Event) {
        self.trace_if(task, || true, event);
    }

    /// [`Shared::trace`], if `keep` (checked under the recorder's lock)
    /// says so.
    #[inline]
    fn trace_if(&self, task: u64, keep: impl FnOnce() -> bool, event: impl FnOnce() -> Event) {
        if self.trace.is_on() {
            self.trace.record_with(|| {
                keep().then(|| Record {
                    at: self.clock.now(),
                    task,
                    event: event(),
                })
            });
        }
    }

    /// Puts an entry at the back of the queue and rouses the loop thread if
    /// it sleeps. Never blocks for long, never polls: safe from any thread.
    fn push(&self, entry: Entry) {
        // On the loop's own thread, while it runs: no lock, no wake-up.
        let Err(entry) = LOCAL_QUEUE.with(|local| local.try_push(self, entry)) else {
            return;
        };
        let wake_loop = {
            let mut queue = lock(&self.queue);
            if queue.closed {
                false
            } else {
                queue.entries.push_back(entry);
                self.has_remote.store(true, Ordering::Release);
                std::mem::take(&mut queue.parked)
            }
        };
        if wake_loop {
            self.signal.notify();
        }
    }

    /// Queues the main future's turn, unless it is queued already.
    fn push_main(&self) {
        if !self.main_scheduled.swap(true, Ordering::AcqRel) {
            self.push(Entry::Main);
        }
    }

    /// Moves everything other threads queued to the back of `batch`.
    fn take_remote(&self, batch: &mut VecDeque<Entry>) {
        if self.has_remote.load(Ordering::Acquire) {
            let mut queue = lock(&self.queue);
            batch.extend(queue.entries.drain(..));
            self.has_remote.store(false, Ordering::Release);
        }
    }
}

/// The lock-free half of the run queue, for the loop running on this
/// thread (one at most: loops do not nest).
struct LocalQueue {
    /// The address of the running loop's `Shared`, or 0.
    owner: Cell<usize>,
    entries: RefCell<VecDeque<Entry>>,
}

impl LocalQueue {
    fn try_push(&self, shared: &Shared, entry: Entry) -> Result<(), Entry> {
        if self.owner.get() == std::ptr::from_ref(shared) as usize {
            let mut entries = self.entries.borrow_mut();
            // Keep FIFO across the two halves: a wake from another thread
            // that happened before this one (so its flag is visible here)
            // must run first. It costs one atomic load per local wake.
            shared.take_remote(&mut entries);
            entries.push_back(entry);
            Ok(())
        } else {
            Err(entry)
        }
    }
}

thread_local! {
    /// See [`Shared`]: wakes on the loop's thread land here.
    static LOCAL_QUEUE: LocalQueue = const {
        LocalQueue {
            owner: Cell::new(0),
            entries: RefCell::new(VecDeque::new()),
        }
    };
}

/// Makes this thread's local queue serve a loop while it runs; afterwards,
/// hands what is left in it to the shared queue, so that nothing queued is
/// lost between two `run_until_complete` calls.
struct LocalQueueGuard<'a> {
    shared: &'a Shared,
}

impl<'a> LocalQueueGuard<'a> {
    fn enter(shared: &'a Shared) -> Self {
        LOCAL_QUEUE.with(|local| local.owner.set(std::ptr::from_ref(shared) as usize));
        LocalQueueGuard { shared }
    }
}

impl Drop for LocalQueueGuard<'_> {
    fn drop(&mut self) {
        let leftovers = LOCAL_QUEUE.with(|local| {
            local.owner.set(0);
            std::mem::take(&mut *local.entries.borrow_mut())
        });
        if !leftovers.is_empty() {
            let mut queue = lock(&self.shared.queue);
            queue.entries.extend(leftovers);
            self.shared.has_remote.store(true, Ordering::Release);
        }
    }
}

/// A spawned future as the loop sees it, with its type erased.
trait Runnable: Send + Sync {
    /// Polls the task once (or drops it if cancelled).
    fn run(self: Arc<Self>, core: &LoopCore);
    /// Drops the future if it is still there (the loop is closing).
    fn close(&self);
    fn header(&self) -> &Header;
}

/// A task as whoever waits for its output sees it: the output type is
/// known, the future's type is erased.
trait Joinable<T>: Runnable {
    fn poll_output(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskFailure>>;
}

/// The part of a task that does not depend on its future's type.
struct Header {
    state: AtomicU8,
    /// Where this task sits in the loop's list of live tasks.
    slot: usize,
    /// A number for humans (printing, ordering): 1, 2, 3 … in spawn order.
    id: u64,
    shared: Arc<Shared>,
}

/// Why a task has no output: it was cancelled (or its loop closed), or it
/// panicked. Chapter 6 turns this into `JoinError`.
pub enum TaskFailure {
    /// Its future was dropped before it finished.
    Cancelled,
    /// Its future panicked; this is the panic's payload.
    Panicked(Box<dyn Any + Send + 'static>),
}

impl fmt::Debug for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskFailure::Cancelled => f.write_str("Cancelled"),
            TaskFailure::Panicked(payload) => {
                write!(f, "Panicked({:?})", panic_message(&**payload))
            }
        }
    }
}

/// A task: its header, then, under one lock, its future (later its
/// output) and the waker of whoever waits for that output. The lock is
/// there because wakers make the task shared across threads; the loop
/// thread is the only one that polls, so it is rarely contended.
///
/// `F` is always a `Pin<Box<_>>`: polling needs the future pinned, and a
/// boxed future can be pinned without `unsafe` (the box never moves what it
/// points to). The price is a second allocation per task; a runtime that
/// allows itself `unsafe` (tokio, async-task) puts the future in the task's
/// own allocation.
struct Task<F: Future> {
    header: Header,
    body: Mutex<Body<F>>,
}

struct Body<F: Future> {
    stage: Stage<F>,
    /// Who waits for the output (only the latest poll's waker).
    joiner: Option<Waker>,
}

/// A task's life: it runs, then holds its outcome until someone takes it.
enum Stage<F: Future> {
    Running(F),
    /// Being dropped (cancelled or closed): the outcome is not there yet.
    Dropping,
    Finished(Result<F::Output, TaskFailure>),
    /// The outcome was handed out.
    Taken,
}

impl<F> Task<F>
where
    F: Future + Send + Unpin + 'static,
    F::Output: Send + 'static,
{
    /// Sets SCHEDULED and enqueues, unless the rules say otherwise.
    fn schedule(this: &Arc<Self>) {
        // Always a read-modify-write (never a failed compare-exchange), so
        // that whatever the waker wrote before waking is visible to the
        // poll that this wake asks for.
        let previous = this.header.state.fetch_or(SCHEDULED, Ordering::AcqRel);
        // Enqueue only on the step "idle -> scheduled": not if already
        // queued, not while running (the loop re-queues it after the poll),
        // not once complete.
        if previous & (SCHEDULED | RUNNING | COMPLETE) == 0 {
            this.header.shared.push(Entry::Task(this.clone()));
        }
    }

    /// Drops the future (if it is still there), then stores `outcome` and
    /// wakes whoever waits for it. In that order, always: when a handle
    /// resolves, nothing of the task's future is alive any more. The future
    /// is dropped outside the lock, since its `Drop` may do anything, even
    /// touch this task.
    fn end(&self, outcome: Result<F::Output, TaskFailure>) {
        let future = {
            let mut body = lock(&self.body);
            match body.stage {
                Stage::Running(_) => std::mem::replace(&mut body.stage, Stage::Dropping),
                // Ended already: there is exactly one outcome.
                _ => return,
            }
        };
        let dropped = panic::catch_unwind(AssertUnwindSafe(|| drop(future)));
        if let Err(payload) = dropped {
            report_panic("a task's future panicked while being dropped", &*payload);
        }
        let joiner = {
            let mut body = lock(&self.body);
            body.stage = Stage::Finished(outcome);
            body.joiner.take()
        };
        self.header.state.fetch_or(OUTCOME, Ordering::AcqRel);
        if let Some(joiner) = joiner {
            // The awaiter's waker may be anyone's code, and may panic. Out
            // of here, that panic would leave the loop mid-pass (stranding
            // the tasks queued behind) or, while the loop closes, abort
            // the process. Report it instead.
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| joiner.wake())) {
                report_panic("the waker of a task's awaiter panicked", &*payload);
            }
        }
    }
}

impl<F> ArcWake for Task<F>
where
    F: Future + Send + Unpin + 'static,
    F::Output: Send + 'static,
{
    fn wake_by_ref(this: &Arc<Self>) {
        // A finished task ignores wakes (a stale waker), and so does its
        // trace: its end stays its last record. The end is recorded after
        // COMPLETE is set, and this check runs under the recorder's lock,
        // so the two cannot cross.
        let header = &this.header;
        header.shared.trace_if(
            header.id,
            || header.state.load(Ordering::Acquire) & COMPLETE == 0,
            || Event::Woken { by: wake_source() },
        );
        Task::schedule(this);
    }
}

impl<F> Runnable for Task<F>
where
    F: Future + Send + Unpin + 'static,
    F::Output: Send + 'static,
{
    fn run(self: Arc<Self>, core: &LoopCore) {
        let header = &self.header;
        // SCHEDULED -> RUNNING, unless it is complete or cancelled.
        let start = header
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                if s & (COMPLETE | CANCELLED) != 0 {
                    None
                } else {
                    Some((s & !SCHEDULED) | RUNNING)
                }
            });
        if let Err(state) = start {
            if state & COMPLETE == 0 {
                // Cancelled: drop the future instead of polling it.
                header.state.store(COMPLETE, Ordering::Release);
                header.shared.trace(header.id, || Event::Cancelled);
                // Whoever awaits it is woken by it, as when it finishes.
                let running_as = RunningAs::enter(&header.shared, header.id);
                self.end(Err(TaskFailure::Cancelled));
                drop(running_as);
                core.forget_task(header.slot);
            }
            return;
        }

        let waker = waker_ref(&self);
        let mut cx = Context::from_waker(&waker);
        header.shared.trace(header.id, || Event::PollStart);
        let running_as = RunningAs::enter(&header.shared, header.id);
        let poll = {
            let mut body = lock(&self.body);
            let Stage::Running(future) = &mut body.stage else {
                unreachable!("a task that is not COMPLETE still has its future");
            };
            // `F` is `Unpin` (a `Pin<Box<_>>`, see `Handle::spawn_task`),
            // so pinning it is free and needs no `unsafe`.
            let future = Pin::new(future);
            panic::catch_unwind(AssertUnwindSafe(|| future.poll(&mut cx)))
        };
        core.polls.set(core.polls.get() + 1);
        header.shared.trace(header.id, || Event::PollEnd {
            ready: !matches!(poll, Ok(Poll::Pending)),
        });

        let outcome = match poll {
            Ok(Poll::Pending) => {
                // RUNNING -> idle, or -> queued again if woken meanwhile.
                let before = header.state.fetch_and(!RUNNING, Ordering::AcqRel);
                if before & SCHEDULED != 0 {
                    header.shared.push(Entry::Task(self.clone()));
                }
                return;
            }
            Ok(Poll::Ready(output)) => Ok(output),
            // The panic hook has already printed the message; the outcome
            // keeps the payload for whoever waits (chapter 6's JoinError).
            Err(payload) => Err(TaskFailure::Panicked(payload)),
        };
        header.state.store(COMPLETE, Ordering::Release);
        header.shared.trace(header.id, || Event::Done);
        // Still "running as" this task: the wake of whoever awaits its
        // outcome is traced as coming from it.
        self.end(outcome);
        drop(running_as);
        core.forget_task(header.slot);
    }

    fn close(&self) {
        self.header.state.store(COMPLETE, Ordering::Release);
        self.header.shared.trace(self.header.id, || Event::Closed);
        let _running_as = RunningAs::enter(&self.header.shared, self.header.id);
        self.end(Err(TaskFailure::Cancelled));
    }

    fn header(&self) -> &Header {
        &self.header
    }
}

impl<F> Joinable<F::Output> for Task<F>
where
    F: Future + Send + Unpin + 'static,
    F::Output: Send + 'static,
{
    fn poll_output(&self, cx: &mut Context<'_>) -> Poll<Result<F::Output, TaskFailure>> {
        // The body is locked only while the loop polls this very task; if we
        // cannot lock it here, on the loop thread, the task is awaiting its
        // own output, which could never arrive.
        let mut body = match self.body.try_lock() {
            Ok(body) => body,
            Err(std::sync::TryLockError::Poisoned(poison)) => poison.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                let on_loop_thread = RUNNING_LOOP.with(|running| {
                    running
                        .borrow()
                        .as_ref()
                        .is_some_and(|core| Arc::ptr_eq(&core.shared, &self.header.shared))
                });
                // Only the loop thread polls, one task at a time: if this
                // task is RUNNING and we are on the loop thread, we are
                // inside its own poll.
                if on_loop_thread && self.header.state.load(Ordering::Acquire) & RUNNING != 0 {
                    panic!(
                        "task {} awaits its own output: a task cannot wait for itself to finish",
                        self.header.id
                    );
                }
                lock(&self.body)
            }
        };
        match std::mem::replace(&mut body.stage, Stage::Taken) {
            Stage::Finished(outcome) => Poll::Ready(outcome),
            Stage::Taken => panic!(
                "JoinHandle for task {} polled after it returned its result: a finished \
                 future must not be polled again",
                self.header.id
            ),
            running => {
                body.stage = running;
                match &body.joiner {
                    Some(old) if old.will_wake(cx.waker()) => {}
                    _ => body.joiner = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

thread_local! {
    /// On the loop thread, while tracing: who is running right now, so a
    /// wake can say who woke (a task's number, or `TIMER_FIRING`).
    static NOW_RUNNING: Cell<Option<u64>> = const { Cell::new(None) };
}

/// `NOW_RUNNING` while the loop fires virtual timers.
const TIMER_FIRING: u64 = u64::MAX;

/// Who is waking, seen from the thread that calls `wake`.
fn wake_source() -> WakeSource {
    match NOW_RUNNING.with(Cell::get) {
        Some(TIMER_FIRING) => WakeSource::Timer,
        Some(task) => WakeSource::Task(task),
        None => match std::thread::current().name() {
            Some(name) if name.starts_with("tiny-asyncio-timer") => WakeSource::Timer,
            Some(name) => WakeSource::Thread(name.to_string()),
            None => WakeSource::Thread("unnamed".to_string()),
        },
    }
}

/// Marks (while tracing) who runs on the loop thread until dropped.
struct RunningAs {
    previous: Option<Option<u64>>,
}

impl RunningAs {
    fn enter(shared: &Shared, who: u64) -> RunningAs {
        let previous = shared
            .trace
            .is_on()
            .then(|| NOW_RUNNING.with(|n| n.replace(Some(who))));
        RunningAs { previous }
    }
}

impl Drop for RunningAs {
    fn drop(&mut self) {
        if let Some(previous) = self.previous {
            NOW_RUNNING.with(|n| n.set(previous));
        }
    }
}

/// Writes a panic's message to stderr: the loop reports it and carries on.
fn report_panic(what: &str, payload: &(dyn std::any::Any + Send)) {
    eprintln!("tiny-asyncio: {what}: {}", panic_message(payload));
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a
/// `String`; anything else is "a non-string panic payload").
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    }
}

/// The loop's own state, used only on the loop thread.
struct LoopCore {
    shared: Arc<Shared>,
    timer: Timer,
    /// Every live task, so that closing the loop can drop them all.
    tasks: RefCell<Vec<Option<Arc<dyn Runnable>>>>,
    free_slots: RefCell<Vec<usize>>,
    live_tasks: Cell<usize>,
    next_id: Cell<u64>,
    running: Cell<bool>,
    closed: Cell<bool>,
    polls: Cell<u64>,
    passes: Cell<u64>,
    /// Things later chapters attach to a loop (chapter 9's default thread
    /// pool), one per type, dropped when the loop closes, after its tasks.
    resources: RefCell<Vec<Rc<dyn Any>>>,
}

impl LoopCore {
    fn spawn<F>(&self, future: F) -> TaskRef<F::Output>
    where
        F: Future + Send + Unpin + 'static,
        F::Output: Send + 'static,
    {
        assert!(
            !self.closed.get(),
            "spawn: the event loop is closed; a closed loop runs no new tasks"
        );
        let slot = self
            .free_slots
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| self.tasks.borrow().len());
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        let task = Arc::new(Task {
            header: Header {
                state: AtomicU8::new(0),
                slot,
                id,
                shared: self.shared.clone(),
            },
            body: Mutex::new(Body {
                stage: Stage::Running(future),
                joiner: None,
            }),
        });
        {
            let mut tasks = self.tasks.borrow_mut();
            if slot == tasks.len() {
                tasks.push(Some(task.clone()));
            } else {
                tasks[slot] = Some(task.clone());
            }
        }
        self.live_tasks.set(self.live_tasks.get() + 1);
        self.shared.trace(id, || Event::Spawned);
        // A new task is simply "woken": it joins the back of the queue and
        // runs nothing until the spawner's poll ends (asyncio's create_task).
        Task::schedule(&task);
        TaskRef { task }
    }

    /// Removes a finished task from the list of live tasks.
    fn forget_task(&self, slot: usize) {
        let task = self.tasks.borrow_mut()[slot].take();
        if task.is_some() {
            self.free_slots.borrow_mut().push(slot);
            self.live_tasks.set(self.live_tasks.get() - 1);
        }
        // `task` (maybe the last reference) drops here, after the borrow.
    }

    fn close(&self) {
        if self.closed.replace(true) {
            return;
        }
        let leftovers = {
            let mut queue = lock(&self.shared.queue);
            queue.closed = true;
            std::mem::take(&mut queue.entries)
        };
        drop(leftovers);
        // Drop every unfinished task's future, exactly once. Take the list
        // out first: a future's `Drop` may touch the loop.
        let tasks = std::mem::take(&mut *self.tasks.borrow_mut());
        self.free_slots.borrow_mut().clear();
        self.live_tasks.set(0);
        for task in tasks.iter().flatten() {
            task.close();
        }
        drop(tasks);
        // Then what later chapters attached (a thread pool joins its
        // threads here), newest first.
        let resources = std::mem::take(&mut *self.resources.borrow_mut());
        for resource in resources.into_iter().rev() {
            drop(resource);
        }
    }
}

thread_local! {
    /// The loop running on this thread, if any: asyncio's "running loop".
    static RUNNING_LOOP: RefCell<Option<Rc<LoopCore>>> = const { RefCell::new(None) };
}

/// An event loop: asyncio's `asyncio.new_event_loop()`.
///
/// It belongs to the thread that made it (it is neither `Send` nor `Sync`).
/// Closing it (dropping it, or [`EventLoop::close`]) drops every unfinished
/// task and joins its timer thread.
pub struct EventLoop {
    core: Rc<LoopCore>,
}

impl EventLoop {
    /// A loop on the real clock. Its time starts at zero now.
    pub fn new() -> EventLoop {
        EventLoop::with_clock(Clock::real())
    }

    /// A loop on a virtual clock: time stands still while anything can run,
    /// and jumps to the next timer deadline when every task is waiting on a
    /// timer. Three seconds of sleeps take microseconds of real time, and
    /// every run is the same to the microsecond.
    ///
    /// The loop cannot see work on other threads: a thread that will wake a
    /// task must hold a [`KeepAwake`] ([`Handle::keep_awake`]) while it
    /// works (chapter 9's pool does), or the clock jumps ahead meanwhile, and
    /// with no timer left the loop reports a deadlock. Chapter 3's
    /// `ThreadSleep` holds none: use `sleep` on a virtual loop.
    pub fn with_virtual_clock() -> EventLoop {
        EventLoop::with_clock(Clock::new_virtual())
    }

    /// A loop on the given clock.
    pub fn with_clock(clock: Clock) -> EventLoop {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                entries: VecDeque::new(),
                parked: false,
                closed: false,
            }),
            has_remote: AtomicBool::new(false),
            main_scheduled: AtomicBool::new(false),
            signal: Signal::new(),
            outside_work: AtomicUsize::new(0),
            clock: clock.clone(),
            trace: Recorder::new(),
        });
        EventLoop {
            core: Rc::new(LoopCore {
                shared,
                timer: Timer::new(clock),
                tasks: RefCell::new(Vec::new()),
                free_slots: RefCell::new(Vec::new()),
                live_tasks: Cell::new(0),
                next_id: Cell::new(0),
                running: Cell::new(false),
                closed: Cell::new(false),
                polls: Cell::new(0),
                passes: Cell::new(0),
                resources: RefCell::new(Vec::new()),
            }),
        }
    }

    /// Loop time: how long since the loop was made (asyncio's `loop.time()`,
    /// counted from zero).
    pub fn time(&self) -> Duration {
        self.core.timer.now()
    }

    /// A handle to this loop, as [`get_running_loop`] would give inside it.
    pub fn handle(&self) -> Handle {
        Handle {
            core: self.core.clone(),
        }
    }

    /// Whether the loop has been closed.
    pub fn is_closed(&self) -> bool {
        self.core.closed.get()
    }

    /// Runs `future` to completion, with every task it spawns taking turns,
    /// and returns its output: asyncio's `loop.run_until_complete(fut)`.
    /// Tasks still unfinished when it returns stay in the loop (a later
    /// `run_until_complete` runs them on).
    ///
    /// # Panics
    /// If an event loop is already running on this thread (a loop cannot
    /// wait inside itself: await the future, or spawn it), or if this loop
    /// is closed. A panic in `future` itself is passed on to the caller, with
    /// the loop left in a usable state.
    pub fn run_until_complete<F: Future>(&self, future: F) -> F::Output {
        assert!(
            !self.is_closed(),
            "run_until_complete: this event loop is closed (asyncio: RuntimeError: Event loop is closed)"
        );
        let _running = RunningGuard::enter(&self.core);
        let _timer = ch04_timer::enter(self.core.timer.clone());
        let mut future = pin!(future);
        let main_waker = waker_from_arc(Arc::new(MainWaker {
            shared: self.core.shared.clone(),
        }));
        let mut main_cx = Context::from_waker(&main_waker);
        let core = &*self.core;
        let _local_queue = LocalQueueGuard::enter(&core.shared);
        core.shared.push_main();

        let mut batch = VecDeque::new();
        loop {
            // One pass: everything queued now, in order; later wakes wait.
            LOCAL_QUEUE.with(|local| std::mem::swap(&mut batch, &mut *local.entries.borrow_mut()));
            core.shared.take_remote(&mut batch);
            if batch.is_empty() {
                self.idle();
                continue;
            }
            core.passes.set(core.passes.get() + 1);
            while let Some(entry) = batch.pop_front() {
                match entry {
                    Entry::Task(task) => task.run(core),
                    Entry::Main => {
                        core.shared.main_scheduled.store(false, Ordering::Release);
                        core.shared.trace(trace::MAIN, || Event::PollStart);
                        let running_as = RunningAs::enter(&core.shared, trace::MAIN);
                        // A panic is caught only to leave the loop as a return
                        // does: the tasks this pass had not run yet are still
                        // SCHEDULED, so they must go back in the queue, or no
                        // wake could ever queue them again.
                        let poll = panic::catch_unwind(AssertUnwindSafe(|| {
                            future.as_mut().poll(&mut main_cx)
                        }));
                        drop(running_as);
                        core.shared.trace(trace::MAIN, || Event::PollEnd {
                            ready: !matches!(poll, Ok(Poll::Pending)),
                        });
                        if let Ok(Poll::Pending) = poll {
                            continue;
                        }
                        // Put back what this pass had not run yet, in order.
                        {
                            let mut queue = lock(&core.shared.queue);
                            while let Some(entry) = batch.pop_back() {
                                queue.entries.push_front(entry);
                            }
                            core.shared.has_remote.store(true, Ordering::Release);
                        }
                        match poll {
                            Ok(Poll::Ready(output)) => return output,
                            Err(payload) => panic::resume_unwind(payload),
                            Ok(Poll::Pending) => unreachable!("handled above"),
                        }
                    }
                }
            }
        }
    }

    /// Nothing is queued: wait for a wake, or (virtual clock) jump to the
    /// next deadline.
    fn idle(&self) {
        let core = &*self.core;
        let clock = core.timer.clock();
        if clock.is_virtual() && core.shared.outside_work.load(Ordering::Acquire) == 0 {
            // Outside work wakes its task *before* it lets go of its
            // KeepAwake, so once we have read 0 above, whatever it woke is
            // already queued: look before jumping, or the clock would leap
            // past a task that is ready to run (it may have been queued
            // after this pass found the queue empty).
            if !lock(&core.shared.queue).entries.is_empty() {
                return;
            }
            {
                match core.timer.next_deadline() {
                    Some(deadline) => {
                        clock.advance_to(deadline);
                        let _firing = RunningAs::enter(&core.shared, TIMER_FIRING);
                        core.timer.fire_due();
                        return;
                    }
                    None => {
                        let queue = lock(&core.shared.queue);
                        if queue.entries.is_empty() {
                            drop(queue);
                            panic!(
                                "event loop deadlock: the main future is waiting, no task can run, \
                                 no timer is set (a Duration::MAX sleep never ends) and no outside \
                                 work holds a KeepAwake: nothing can ever wake this loop"
                            );
                        }
                        return;
                    }
                }
            }
        }
        // Sleep until someone enqueues. `parked` is set under the queue's
        // lock after checking that the queue is empty, so no wake is missed.
        {
            let mut queue = lock(&core.shared.queue);
            if !queue.entries.is_empty() {
                return;
            }
            queue.parked = true;
        }
        core.shared.signal.wait();
    }

    /// Closes the loop: drops every unfinished task's future (exactly once)
    /// and, when the last user of its timer is gone, joins the timer thread.
    /// asyncio's `loop.close()`. Dropping the loop does the same.
    pub fn close(self) {
        drop(self);
    }

    /// Starts recording a trace of what the loop does (see the appendix
    /// module [`trace`]): spawns, polls, wakes and who woke,
    /// ends. Off by default.
    pub fn enable_trace(&self) {
        self.core.shared.trace.set_on(true);
    }

    /// Everything traced so far (the recording starts over).
    pub fn take_trace(&self) -> Trace {
        self.core.shared.trace.take()
    }

    /// How many tasks are alive (spawned and not yet finished).
    pub fn live_tasks(&self) -> usize {
        self.core.live_tasks.get()
    }

    /// Counters for tests and the benchmark: polls of tasks, and passes
    /// of the loop.
    pub fn stats(&self) -> LoopStats {
        LoopStats {
            task_polls: self.core.polls.get(),
            passes: self.core.passes.get(),
            spawned: self.core.next_id.get(),
        }
    }
}

impl Default for EventLoop {
    fn default() -> Self {
        EventLoop::new()
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        self.core.close();
    }
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.handle(), f)
    }
}

/// Counters of what a loop has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopStats {
    /// How many times a task's future was polled (the main future not counted).
    pub task_polls: u64,
    /// How many passes over the run queue the loop has taken.
    pub passes: u64,
    /// How many tasks were spawned.
    pub spawned: u64,
}

/// Marks the loop as running on this thread while it runs.
struct RunningGuard {
    core: Rc<LoopCore>,
    /// Chapter 3's "an executor runs here" mark: `block_on` inside a task
    /// (or this loop inside a `block_on`) is refused with a clear message.
    _executor: ExecutorGuard,
}

impl RunningGuard {
    fn enter(core: &Rc<LoopCore>) -> RunningGuard {
        RUNNING_LOOP.with(|running| {
            let running = running.borrow_mut();
            assert!(
                running.is_none(),
                "run_until_complete: an event loop is already running on this thread, and a loop \
                 cannot block inside itself (asyncio: RuntimeError: This event loop is already \
                 running). Await the future, or spawn it, instead"
            );
        });
        // May refuse (inside a `block_on`) before anything is marked.
        let executor = enter_executor("run_until_complete");
        RUNNING_LOOP.with(|running| *running.borrow_mut() = Some(core.clone()));
        core.running.set(true);
        RunningGuard {
            core: core.clone(),
            _executor: executor,
        }
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.core.running.set(false);
        RUNNING_LOOP.with(|running| running.borrow_mut().take());
    }
}

/// The main future's waker: queues the main future's turn.
struct MainWaker {
    shared: Arc<Shared>,
}

impl ArcWake for MainWaker {
    fn wake_by_ref(this: &Arc<Self>) {
        this.shared
            .trace(trace::MAIN, || Event::Woken { by: wake_source() });
        this.shared.push_main();
    }
}

/// asyncio's `asyncio.run(main)`: a fresh event loop on the real clock runs
/// `future` to completion, then closes (unfinished tasks are dropped), and
/// the output is returned.
///
/// # Panics
/// Inside a running event loop (asyncio: `asyncio.run() cannot be called
/// from a running event loop`). A panic in `future` reaches the caller after
/// the loop has been closed cleanly.
pub fn run<F: Future>(future: F) -> F::Output {
    let event_loop = EventLoop::new();
    let output = panic::catch_unwind(AssertUnwindSafe(|| event_loop.run_until_complete(future)));
    event_loop.close();
    match output {
        Ok(output) => output,
        Err(payload) => panic::resume_unwind(payload),
    }
}

/// A handle to a running (or at least existing) event loop, as asyncio's
/// `get_running_loop()` returns. It prints like asyncio's loop repr.
#[derive(Clone)]
pub struct Handle {
    core: Rc<LoopCore>,
}

impl Handle {
    /// Spawns `future` as a task: it joins the back of the run queue and
    /// runs nothing until the spawner's poll ends (asyncio's
    /// `create_task`). The [`TaskRef`] can cancel it and, once it has
    /// finished, hand out its output. Chapter 6 builds `spawn` on this.
    ///
    /// # Panics
    /// If the loop is closed.
    pub fn spawn_task<F>(&self, future: F) -> TaskRef<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.core.spawn(Box::pin(future))
    }

    /// Spawns a task whose output nobody wants (see [`Handle::spawn_task`]).
    pub fn spawn_detached<F: Future<Output = ()> + Send + 'static>(&self, future: F) -> TaskRef {
        self.spawn_task(future)
    }

    /// The loop's time (see [`EventLoop::time`]).
    pub fn time(&self) -> Duration {
        self.core.timer.now()
    }

    /// Whether the loop is running right now.
    pub fn is_running(&self) -> bool {
        self.core.running.get()
    }

    /// Whether the loop is closed.
    pub fn is_closed(&self) -> bool {
        self.core.closed.get()
    }

    /// The loop's resource of type `T`, made by `make` on first use and
    /// dropped when the loop closes (after every task has been dropped).
    /// This is the seam later chapters use to give a loop something of its
    /// own, such as chapter 9's default thread pool.
    pub fn resource<T: 'static>(&self, make: impl FnOnce() -> T) -> Rc<T> {
        assert!(
            !self.is_closed(),
            "Handle::resource: the event loop is closed and keeps no new resources"
        );
        let found = self
            .core
            .resources
            .borrow()
            .iter()
            .find_map(|r| r.clone().downcast::<T>().ok());
        if let Some(found) = found {
            return found;
        }
        let made = Rc::new(make());
        self.core.resources.borrow_mut().push(made.clone());
        made
    }

    /// The loop's trace recorder (see [`EventLoop::enable_trace`]): name a
    /// task for pictures, or record a job on a pool thread.
    pub fn tracer(&self) -> TraceSink {
        TraceSink {
            shared: self.core.shared.clone(),
        }
    }

    /// The loop's timer (the one `sleep` uses inside it).
    pub fn timer(&self) -> &Timer {
        &self.core.timer
    }

    /// Announces work outside the loop (another thread) that will wake a
    /// task. While the returned guard lives, a virtual clock does not jump
    /// ahead: the loop waits for that wake instead, as time cannot pass
    /// "instantly" for real work. Chapter 9's thread pool holds one per job.
    pub fn keep_awake(&self) -> KeepAwake {
        self.core.shared.outside_work.fetch_add(1, Ordering::AcqRel);
        KeepAwake {
            shared: self.core.shared.clone(),
        }
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<EventLoop running={} closed={} debug=false>",
            self.is_running(),
            self.is_closed()
        )
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Keeps a virtual clock from jumping while outside work is under way (see
/// [`Handle::keep_awake`]). `Send`: give it to the thread doing the work.
pub struct KeepAwake {
    shared: Arc<Shared>,
}

impl Drop for KeepAwake {
    fn drop(&mut self) {
        self.shared.outside_work.fetch_sub(1, Ordering::AcqRel);
        // The loop may be idle waiting for exactly this: let it look again.
        self.shared.signal.notify();
    }
}

/// A `Send` handle to a loop's trace recorder, for threads other than the
/// loop's (chapter 9's pool threads record their jobs through it).
#[derive(Clone)]
pub struct TraceSink {
    shared: Arc<Shared>,
}

impl TraceSink {
    /// Whether the loop is tracing.
    pub fn is_on(&self) -> bool {
        self.shared.trace.is_on()
    }

    /// Records `event` for task `task` at the loop's current time.
    pub fn record(&self, task: u64, event: Event) {
        self.shared.trace(task, || event);
    }

    /// Names task `task` in pictures.
    pub fn name(&self, task: u64, name: impl Into<String>) {
        self.shared.trace.name(task, name);
    }

    /// Everything traced so far, as [`EventLoop::take_trace`]; a sink
    /// outlives its loop, so this also reads the `Closed` records that
    /// closing the loop leaves.
    pub fn take(&self) -> Trace {
        self.shared.trace.take()
    }
}

/// The error [`try_running_loop`] gives outside a running loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRunningLoop;

impl fmt::Display for NoRunningLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no running event loop")
    }
}

impl std::error::Error for NoRunningLoop {}

/// The loop running on this thread, or [`NoRunningLoop`]: the fallible form
/// of asyncio's `get_running_loop()` (E002-4).
pub fn try_running_loop() -> Result<Handle, NoRunningLoop> {
    RUNNING_LOOP
        .with(|running| running.borrow().clone())
        .map(|core| Handle { core })
        .ok_or(NoRunningLoop)
}

/// The loop running on this thread: asyncio's `get_running_loop()` (E002-4).
///
/// # Panics
/// Outside a running loop, with asyncio's message: "no running event loop".
pub fn get_running_loop() -> Handle {
    expect_running_loop("get_running_loop")
}

/// The running loop, for an `operation` that cannot work without one.
///
/// # Panics
/// Outside a running loop, with a message that names `operation` and says
/// there is no running event loop.
pub fn expect_running_loop(operation: &str) -> Handle {
    match try_running_loop() {
        Ok(handle) => handle,
        Err(_) => panic!(
            "{operation}: there is no running event loop on this thread (asyncio: RuntimeError: \
             no running event loop); call it from inside run(...) or run_until_complete(...)"
        ),
    }
}

/// Spawns a task that nobody waits for on the running loop.
///
/// # Panics
/// Outside a running loop: "there is no running event loop".
pub fn spawn_detached<F: Future<Output = ()> + Send + 'static>(future: F) -> TaskRef {
    expect_running_loop("spawn_detached").spawn_detached(future)
}

/// A reference to a spawned task: cancel it, ask whether it finished, and
/// take its output once it has.
pub struct TaskRef<T = ()> {
    task: Arc<dyn Joinable<T>>,
}

impl<T> Clone for TaskRef<T> {
    fn clone(&self) -> Self {
        TaskRef {
            task: self.task.clone(),
        }
    }
}

impl<T> TaskRef<T> {
    /// Asks the loop to cancel the task: on the loop's next pass its future
    /// is dropped instead of polled (asyncio's `task.cancel()` likewise only
    /// schedules the cancellation). A task that already finished is left
    /// alone; cancelling twice is the same as once.
    pub fn cancel(&self) {
        let header = self.task.header();
        // Mark it, and queue it (if idle) so the loop gets round to it.
        let previous = header
            .state
            .fetch_or(CANCELLED | SCHEDULED, Ordering::AcqRel);
        if previous & (SCHEDULED | RUNNING | COMPLETE) == 0 {
            let runnable: Arc<dyn Runnable> = self.task.clone();
            header.shared.push(Entry::Task(runnable));
        }
    }

    /// Whether the task has finished (completed, cancelled, or closed) and
    /// its outcome is ready to take; by then its future has been dropped.
    pub fn is_finished(&self) -> bool {
        self.task.header().state.load(Ordering::Acquire) & OUTCOME != 0
    }

    /// The task's number: 1 for the loop's first task, 2 for the next …
    pub fn id(&self) -> u64 {
        self.task.header().id
    }

    /// Takes the task's outcome if it has finished; otherwise remembers
    /// `cx`'s waker, to be woken when it does.
    ///
    /// # Panics
    /// If the outcome was already taken, or if a task waits for itself.
    pub fn poll_output(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskFailure>> {
        self.task.poll_output(cx)
    }
}

impl<T> fmt::Debug for TaskRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskRef")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Gives other tasks a turn: asyncio's `await asyncio.sleep(0)`. The task
/// goes to the back of the queue and runs again on the loop's next pass.
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future [`yield_now`] returns.
#[derive(Debug)]
#[must_use = "yield_now does nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
