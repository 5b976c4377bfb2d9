//! # Chapter 5 — the event loop: one thread, many tasks
//!
//! **The question.** `block_on` (chapter 3) runs *one* future. Yet seed 000's
//! asynchronous users example (E000-4) runs three look-ups at once on one
//! thread and finishes in 3 seconds instead of 6. Who takes turns, and how
//! does a sleeping look-up get its turn back?
//!
//! **The documents.** E000-4 (three tasks created in the order 3, 2, 1,
//! interleaving `3-1 2-1 1-1 | 3-2 2-2 done1 | …`), E001-3 (the same with
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
//! * `spawn` here gives back no result: a [`TaskRef`] can only cancel the
//!   task or ask whether it finished. Chapter 6 builds `JoinHandle` on it:
//!   a task as a future of its result.
//!
//! **What the next chapter needs from this one.** A way to spawn a future
//! (`spawn_detached`), to cancel it ([`TaskRef::cancel`]: its future is
//! dropped on the loop's next pass), and the guarantee that a task's future
//! is dropped exactly once: when it completes, when it is cancelled, or when
//! the loop closes. Chapter 6 hangs the result slot on exactly that drop.

#![forbid(unsafe_code)]

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::ch03_waker::{ArcWake, Signal, lock, waker_from_arc, waker_ref};
use crate::ch04_timer::{self, Clock, Timer};

/// The state bits of a task, and the rules that govern them.
///
/// All four live in one `AtomicU8`, because wakes arrive from any thread
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
}
use state::{CANCELLED, COMPLETE, RUNNING, SCHEDULED};

/// What the loop thread and waking threads share: the run queue.
struct Shared {
    queue: Mutex<Queue>,
    /// Where the loop thread sleeps when it has nothing to do.
    signal: Signal,
    /// Outside work that has promised to wake a task (see [`KeepAwake`]).
    outside_work: AtomicUsize,
}

struct Queue {
    entries: VecDeque<Entry>,
    /// The loop thread is asleep (or about to be) on `signal`; whoever
    /// enqueues must notify it. Kept under the queue's lock, so "queue is
    /// empty, I will sleep" and "I enqueued, is it asleep?" cannot miss each
    /// other: that is what makes a lost wake-up impossible.
    parked: bool,
    /// The main future was woken and is queued (at most once, like a task).
    main_scheduled: bool,
    /// The loop is closed: wakes enqueue nothing any more.
    closed: bool,
}

/// One turn in the run queue: a task, or the main future.
enum Entry {
    Main,
    Task(Arc<dyn Runnable>),
}

impl Shared {
    /// Puts an entry at the back of the queue and rouses the loop thread if
    /// it sleeps. Never blocks for long, never polls: safe from any thread.
    fn push(&self, entry: Entry) {
        let wake_loop = {
            let mut queue = lock(&self.queue);
            if queue.closed {
                false
            } else {
                if matches!(entry, Entry::Main) {
                    if queue.main_scheduled {
                        return;
                    }
                    queue.main_scheduled = true;
                }
                queue.entries.push_back(entry);
                std::mem::take(&mut queue.parked)
            }
        };
        if wake_loop {
            self.signal.notify();
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

/// The part of a task that does not depend on its future's type.
struct Header {
    state: AtomicU8,
    /// Where this task sits in the loop's list of live tasks.
    slot: usize,
    /// A number for humans (printing, ordering): 1, 2, 3 … in spawn order.
    id: u64,
    shared: Arc<Shared>,
}

/// A task: its header and its future. The future sits in a `Mutex` only
/// because wakers make the task shared across threads; only the loop thread
/// ever locks it, so the lock is never contended.
///
/// `F` is always a `Pin<Box<_>>`: polling needs the future pinned, and a
/// boxed future can be pinned without `unsafe` (the box never moves what it
/// points to). The price is a second allocation per task; a runtime that
/// allows itself `unsafe` (tokio, async-task) puts the future in the task's
/// own allocation.
struct Task<F> {
    header: Header,
    future: Mutex<Option<F>>,
}

impl<F: Future<Output = ()> + Send + Unpin + 'static> Task<F> {
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

    /// Takes the future out and drops it, outside the lock (a future's
    /// `Drop` may do anything, including wake this very task).
    fn drop_future(&self) {
        let future = lock(&self.future).take();
        if future.is_some() {
            let result = panic::catch_unwind(AssertUnwindSafe(|| drop(future)));
            if let Err(payload) = result {
                report_panic("a task's future panicked while being dropped", &*payload);
            }
        }
    }
}

impl<F: Future<Output = ()> + Send + Unpin + 'static> ArcWake for Task<F> {
    fn wake_by_ref(this: &Arc<Self>) {
        Task::schedule(this);
    }
}

impl<F: Future<Output = ()> + Send + Unpin + 'static> Runnable for Task<F> {
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
                self.drop_future();
                core.forget_task(header.slot);
            }
            return;
        }

        let waker = waker_ref(&self);
        let mut cx = Context::from_waker(&waker);
        let poll = {
            let mut slot = lock(&self.future);
            let Some(future) = slot.as_mut() else {
                unreachable!("a task that is not COMPLETE still has its future");
            };
            // `F` is `Unpin` (a `Pin<Box<_>>`, see `Handle::spawn_detached`),
            // so pinning it is free and needs no `unsafe`.
            let future = Pin::new(future);
            panic::catch_unwind(AssertUnwindSafe(|| future.poll(&mut cx)))
        };
        core.polls.set(core.polls.get() + 1);

        match poll {
            Ok(Poll::Pending) => {
                // RUNNING -> idle, or -> queued again if woken meanwhile.
                let before = header.state.fetch_and(!RUNNING, Ordering::AcqRel);
                if before & SCHEDULED != 0 {
                    header.shared.push(Entry::Task(self.clone()));
                }
            }
            Ok(Poll::Ready(())) => {
                header.state.store(COMPLETE, Ordering::Release);
                self.drop_future();
                core.forget_task(header.slot);
            }
            Err(payload) => {
                header.state.store(COMPLETE, Ordering::Release);
                report_panic(&format!("task {} panicked", header.id), &*payload);
                self.drop_future();
                core.forget_task(header.slot);
            }
        }
    }

    fn close(&self) {
        self.header.state.store(COMPLETE, Ordering::Release);
        self.drop_future();
    }

    fn header(&self) -> &Header {
        &self.header
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
    fn spawn<F: Future<Output = ()> + Send + Unpin + 'static>(&self, future: F) -> TaskRef {
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
            future: Mutex::new(Some(future)),
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
    pub fn with_virtual_clock() -> EventLoop {
        EventLoop::with_clock(Clock::new_virtual())
    }

    /// A loop on the given clock.
    pub fn with_clock(clock: Clock) -> EventLoop {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                entries: VecDeque::new(),
                parked: false,
                main_scheduled: false,
                closed: false,
            }),
            signal: Signal::new(),
            outside_work: AtomicUsize::new(0),
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
        self.core.shared.push(Entry::Main);

        let core = &*self.core;
        let mut batch = VecDeque::new();
        loop {
            // One pass: everything queued now, in order; later wakes wait.
            {
                let mut queue = lock(&core.shared.queue);
                std::mem::swap(&mut batch, &mut queue.entries);
            }
            if batch.is_empty() {
                self.idle();
                continue;
            }
            core.passes.set(core.passes.get() + 1);
            while let Some(entry) = batch.pop_front() {
                match entry {
                    Entry::Task(task) => task.run(core),
                    Entry::Main => {
                        lock(&core.shared.queue).main_scheduled = false;
                        if let Poll::Ready(output) = future.as_mut().poll(&mut main_cx) {
                            // Put back what this pass had not run yet, in order.
                            let mut queue = lock(&core.shared.queue);
                            while let Some(entry) = batch.pop_back() {
                                queue.entries.push_front(entry);
                            }
                            return output;
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
}

impl RunningGuard {
    fn enter(core: &Rc<LoopCore>) -> RunningGuard {
        RUNNING_LOOP.with(|running| {
            let mut running = running.borrow_mut();
            assert!(
                running.is_none(),
                "run_until_complete: an event loop is already running on this thread, and a loop \
                 cannot block inside itself (asyncio: RuntimeError: This event loop is already \
                 running). Await the future, or spawn it, instead"
            );
            *running = Some(core.clone());
        });
        core.running.set(true);
        RunningGuard { core: core.clone() }
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
        this.shared.push(Entry::Main);
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
    /// Spawns a task that nobody waits for (see the module docs): it runs
    /// from the loop's next turn on. Chapter 6 builds `spawn` on this.
    pub fn spawn_detached<F: Future<Output = ()> + Send + 'static>(&self, future: F) -> TaskRef {
        self.core.spawn(Box::pin(future))
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

/// A reference to a spawned task: cancel it, or ask whether it finished.
#[derive(Clone)]
pub struct TaskRef {
    task: Arc<dyn Runnable>,
}

impl TaskRef {
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
            header.shared.push(Entry::Task(self.task.clone()));
        }
    }

    /// Whether the task has finished (completed, cancelled, or closed).
    pub fn is_finished(&self) -> bool {
        self.task.header().state.load(Ordering::Acquire) & COMPLETE != 0
    }

    /// The task's number: 1 for the loop's first task, 2 for the next …
    pub fn id(&self) -> u64 {
        self.task.header().id
    }
}

impl fmt::Debug for TaskRef {
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
