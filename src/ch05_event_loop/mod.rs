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
//! 3, 5 and 6), E001-3 (the same with bare coroutines; the document warns
//! the order is not guaranteed), and E002-4 (`asyncio.get_running_loop()`
//! inside a coroutine prints the loop; outside any loop it raises
//! `RuntimeError: no running event loop`). [`run`] is seed 004's
//! `asyncio.run` (E004-4): make a loop, run main to its end, close the loop.
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
//! the same FIFO queue as the tasks, as asyncio wraps it in a task too. It is
//! not a task here, though: it may borrow from the caller (it need be
//! neither `'static` nor `Send`), so the loop keeps it on its own stack and
//! queues a plain marker for its turn.
//!
//! ## The files of this chapter, in reading order
//!
//! 1. `mod.rs` (this file): the loop itself: [`EventLoop`], its passes in
//!    [`EventLoop::run_until_complete`], its idle, and [`run`].
//! 2. [`state`]: the task's state bits, and the rule beside each.
//! 3. `task.rs`: the task: its header, its stage (future, then outcome), how
//!    it runs one poll, and [`TaskRef`], what the spawner keeps.
//! 4. `run_queue.rs`: the FIFO run queue that wakes push to, from any thread.
//!    It has two halves (a lock-free one for wakes on the loop's own thread,
//!    a locked one for other threads). That is only a speed-up: reading it
//!    as one FIFO queue is right.
//! 5. `running.rs`: the running loop: [`Handle`], [`get_running_loop`],
//!    [`yield_now`].
//! 6. `seams.rs`: **skip it on a first reading.** What later chapters and
//!    the appendices plug in: [`KeepAwake`] (outside work that holds the
//!    virtual clock still, for chapter 9), [`Handle::resource`] (a loop's own
//!    thread pool), [`Idler`] (how the loop sleeps; chapter 12's selector),
//!    the trace hooks that feed the pictures, and how chapter 13's task
//!    joins the loop.
//!
//! This file uses names from later files before you reach them: `Shared`
//! and `Turn` (the run queue and one entry in it, `run_queue.rs`),
//! `Runnable` (a task with its future's type erased, `task.rs`). Each is
//! named in a few words where it first appears. And one tip for a first reading: lines
//! that call `trace(…)` or `RunningAs::enter(…)` only report what happens
//! to the pictures' trace (`seams.rs`). With tracing off, the default,
//! each costs one atomic load and changes nothing: read past them.
//!
//! ## The end of a run
//!
//! When the main future returns, asyncio does not stop on the spot: the
//! main task's "done" callback is queued like any other turn, runs in the
//! *next* iteration, and stops the loop when that iteration ends. So the
//! current pass runs to its end, and **one more pass** runs, before
//! `run_until_complete` returns. We do the same.
//!
//! What that means for a program: a task created in main's last step still
//! runs its first step (up to its first `await`); a task created in that
//! extra pass does not run, and waits in the queue for the next
//! `run_until_complete` (or is dropped when the loop closes). A panic in the
//! main future ends the run the same way before it reaches the caller.
//!
//! ## The states of a task, and their rules
//!
//! A task's state is five bits in one atomic byte ([`state`]). In short: a
//! task is in the queue **at most once**; a wake while it is queued does
//! nothing; a wake while it is being polled gives **exactly one more poll**;
//! a finished task is **never polled again**.
//!
//! ## A task keeps its outcome
//!
//! When a task's future returns, the loop stores the output in the task and
//! wakes whoever asked for it through a [`TaskRef`]. When it panics, the loop
//! catches the panic (so every other task runs on) and stores the payload.
//! When it is dropped unfinished (cancelled, or the loop closes), the loop
//! stores [`TaskFailure::Cancelled`]. Since a task's future is dropped
//! exactly once, exactly one outcome is ever stored, and every handle
//! resolves exactly once by construction.
//!
//! Keeping the outcome in the task also spares a separate result cell (one
//! more allocation per task) and a wrapper future around the task's own.
//! Chapter 6 builds the part people hold on this: `JoinHandle`, `JoinError`,
//! abort, detach.
//!
//! ## Limits, on purpose
//!
//! * Spawned futures must be `Send`: a waker may travel to another thread,
//!   and ours holds the task itself. (tokio has `spawn_local` for `!Send`
//!   futures; we keep one kind of task.)
//! * Each task costs two allocations: the task, and its boxed future (see
//!   `task.rs` for why). Chapter 13 builds the task in one allocation, with
//!   the `unsafe` code that takes.
//! * One thread polls every task, one poll at a time, and a pass waits for
//!   each poll to return. A task that computes for a long time without an
//!   `await` holds the whole loop, timers included (EX-1). Chapter 9 gives
//!   such work threads of its own.
//!
//! **What the next chapter needs from this one.** [`Handle::spawn_task`]
//! and its [`TaskRef`]: cancel the task ([`TaskRef::cancel`]: its future is
//! dropped on the loop's next pass) and take its outcome
//! ([`TaskRef::poll_output`]). Chapter 6 wraps them into `JoinHandle`, a
//! future of the task's result.

#![forbid(unsafe_code)]

pub mod state;

mod run_queue;
mod running;
mod seams;
mod task;

pub use running::{
    Handle, NoRunningLoop, YieldNow, expect_running_loop, get_running_loop, spawn_detached,
    try_running_loop, yield_now,
};
pub use seams::{Idler, KeepAwake, TraceSink};
pub use task::{TaskFailure, TaskRef, panic_message};

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::ch03_waker::{ArcWake, Signal, lock, waker_from_arc};
use crate::ch04_timer::{self, Clock, Timer};
use crate::trace::{self, Event, Recorder, Trace};

use run_queue::{LOCAL_QUEUE, LocalQueueGuard, RemoteQueue};
use running::RunningGuard;
use task::{Body, Stage, Task};

// Chapter 13's seam (see `seams.rs`): what a task built in another module
// needs in order to run on this loop, visible to the crate only.
pub(crate) use run_queue::{Shared, Turn};
pub(crate) use seams::{Runner, RunningAs, on_loop_thread_of, wake_source};
pub(crate) use task::{Header, Joinable, Runnable, catch_reporting};

/// The loop's own state, used only on the loop thread.
///
/// `Cell`s and `RefCell`s, not atomics and locks: only the loop's thread
/// ever touches this part (the `EventLoop` and its `Handle`s are not
/// `Send`). What other threads need lives in `shared`.
///
/// Its methods are the loop's bookkeeping: `spawn` (called by
/// `Handle::spawn_task`), `forget_task` (at a task's end, in
/// `Runnable::run`) and `close` (when the `EventLoop` is dropped).
pub(crate) struct LoopCore {
    /// The run queue and what wakes from any thread need (`run_queue.rs`).
    /// An `Arc`, since every task's header and every waker point to it too.
    shared: Arc<Shared>,
    /// Chapter 4's timer, on this loop's clock: `sleep` registers here.
    timer: Timer,
    /// Every live task, so that closing the loop can drop them all (a
    /// `Runnable` is a task with its future's type erased, `task.rs`). This
    /// is the loop's own reference to each task: a task that waits for a
    /// wake is in no queue, and this list keeps it alive. A task knows its
    /// index (`Header::slot`); `None` marks an index that is free.
    tasks: RefCell<Vec<Option<Arc<dyn Runnable>>>>,
    /// The free indices of `tasks`, reused before the list grows (`u32`s,
    /// as `Header::slot`).
    free_slots: RefCell<Vec<u32>>,
    /// How many entries of `tasks` are `Some` (what `live_tasks()` says).
    live_tasks: Cell<usize>,
    /// The number of the last task spawned (the next one gets one more).
    next_id: Cell<u64>,
    /// Inside `run_until_complete` right now: what `Handle::is_running`
    /// and the loop's repr (`running=true`) say.
    running: Cell<bool>,
    /// Closed: no new tasks or resources, every task dropped.
    closed: Cell<bool>,
    /// How many times a task was polled, for `stats()`.
    polls: Cell<u64>,
    /// How many passes the loop has taken, for `stats()`; also the clock
    /// `run_until_complete` reads to know which pass is the run's last.
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
        // `register` (in `seams.rs`, shared with chapter 13's task; no need
        // to read it now) gives the task its header, a number and a slot in
        // `tasks`, and keeps it there. We only build the task around it.
        let task = self.register(|header| {
            Arc::new(Task {
                header,
                body: Mutex::new(Body {
                    stage: Stage::Future(future),
                    joiner: None,
                }),
            })
        });
        // A new task is simply "woken": it joins the back of the queue and
        // runs nothing until the spawner's poll ends (asyncio's create_task).
        Task::schedule(&task);
        TaskRef { task }
    }

    /// Removes a finished task from the list of live tasks: the loop's own
    /// reference goes, and the slot is free for the next spawn. Called once
    /// per task, at the end of its last turn (`Runnable::run`).
    pub(crate) fn forget_task(&self, slot: u32) {
        let task = self.tasks.borrow_mut()[slot as usize].take();
        // A task ends once, so its entry is here. The check keeps a slot
        // from ever going on the free list twice.
        if task.is_some() {
            self.free_slots.borrow_mut().push(slot);
            self.live_tasks.set(self.live_tasks.get() - 1);
        }
        // `task` (maybe the last reference) drops here, after the borrow.
    }

    /// Closes the loop (the work of `EventLoop`'s `Drop`, which
    /// `EventLoop::close` calls), in three steps. It runs outside
    /// `run_until_complete`, so the local half of the queue has already
    /// been handed to the shared half.
    fn close(&self) {
        // A second call would find nothing left to do: it does nothing.
        if self.closed.replace(true) {
            return;
        }
        // 1. Close the queue: from now on a wake (a timer thread late to
        //    fire, a future's `Drop` below) enqueues nothing. The turns
        //    still queued are only references; the tasks themselves are
        //    still in `tasks`, dropped next.
        let leftovers = {
            let mut queue = lock(&self.shared.queue);
            queue.closed = true;
            std::mem::take(&mut queue.turns)
        };
        drop(leftovers);
        // 2. Drop every unfinished task's future, exactly once, with
        //    "cancelled" as its outcome. Take the list out first: a
        //    future's `Drop` may touch the loop.
        let tasks = std::mem::take(&mut *self.tasks.borrow_mut());
        self.free_slots.borrow_mut().clear();
        self.live_tasks.set(0);
        for task in tasks.iter().flatten() {
            task.close();
        }
        drop(tasks);
        // 3. Then what later chapters attached (a thread pool joins its
        //    threads here), newest first, after the tasks that used them.
        let resources = std::mem::take(&mut *self.resources.borrow_mut());
        for resource in resources.into_iter().rev() {
            drop(resource);
        }
    }
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
            queue: Mutex::new(RemoteQueue {
                turns: VecDeque::new(),
                parked: false,
                closed: false,
            }),
            has_remote: AtomicBool::new(false),
            main_scheduled: AtomicBool::new(false),
            signal: Signal::new(),
            idler: OnceLock::new(),
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
    /// When `future` is done, the loop finishes the pass it is in and runs
    /// one more pass before it returns, as asyncio's loop does (see "The end
    /// of a run" in the chapter's doc): a task spawned in the main future's
    /// last step runs its first step.
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
        // Setting up, in five steps. Each guard (`_running`, `_timer`,
        // `_local_queue`) undoes its step on every way out, a panic too.
        // 1. Mark this loop as this thread's running loop (`running.rs`):
        //    `get_running_loop()` finds it, and a loop inside it is refused.
        let _running = RunningGuard::enter(&self.core);
        // 2. Make this loop's timer the one chapter 4's `sleep` registers
        //    with, on this thread, while the loop runs.
        let _timer = ch04_timer::enter(self.core.timer.clone());
        // 3. Pin the main future here, on this call's stack. It is polled
        //    in place and never moved into a task, which is why it may
        //    borrow from the caller.
        let mut future = pin!(future);
        // 4. Its waker queues its turn, `Turn::Main`, as a task's waker
        //    queues the task (`MainWaker`, at the end of this file).
        let main_waker = waker_from_arc(Arc::new(MainWaker {
            shared: self.core.shared.clone(),
        }));
        let mut main_cx = Context::from_waker(&main_waker);
        let core = &*self.core;
        // 5. Claim this thread's lock-free half of the run queue for this
        //    loop (`run_queue.rs`), and queue the main future's first turn.
        let _local_queue = LocalQueueGuard::enter(&core.shared);
        core.shared.push_main();

        // The main future's outcome, once it has one, and the pass after
        // which `run_until_complete` returns it (see "The end of a run").
        // `u64::MAX` means "not known yet": no pass is that one.
        let mut main_outcome: Option<std::thread::Result<F::Output>> = None;
        let mut last_pass = u64::MAX;
        // The turns of the current pass. Made once and reused: each pass
        // swaps it with the local queue, which gets this emptied buffer
        // back, so the two buffers serve pass after pass (no new one each).
        let mut batch = VecDeque::new();
        loop {
            // 1. Take the batch: everything queued now, in order. What its
            //    polls wake or spawn lands in the queues just emptied, and
            //    waits for the next pass. The local half first: every local
            //    push moved the remote turns queued before it, so what is
            //    left in the remote half came later.
            LOCAL_QUEUE.with(|local| std::mem::swap(&mut batch, &mut *local.turns.borrow_mut()));
            core.shared.take_remote(&mut batch);
            // 2. Nothing queued. Either the run is over (the main future is
            //    done, and nothing would run in the extra pass), or the loop
            //    idles until something is queued, then takes a batch again.
            if batch.is_empty() {
                if let Some(outcome) = main_outcome.take() {
                    return Self::hand_out(outcome);
                }
                self.idle();
                continue;
            }
            // 3. The pass: each turn, front to back. A task's turn is its
            //    `Runnable::run` (`task.rs`, one poll in five steps); the
            //    main future's turn is polled right here.
            core.passes.set(core.passes.get() + 1);
            while let Some(turn) = batch.pop_front() {
                match turn {
                    Turn::Task(task) => task.run(core),
                    Turn::Main => {
                        // Cleared before the poll, as a task's SCHEDULED is:
                        // a wake during this poll queues the next turn.
                        core.shared.main_scheduled.store(false, Ordering::Release);
                        if main_outcome.is_some() {
                            // A stale wake of a main future that has
                            // finished: a finished future is never polled.
                            continue;
                        }
                        core.shared.trace(trace::MAIN, || Event::PollStart);
                        let running_as = RunningAs::enter(&core.shared, Runner::Task(trace::MAIN));
                        // A panic is caught so that the loop ends the run as
                        // a return does, and then passes it on.
                        let poll = panic::catch_unwind(AssertUnwindSafe(|| {
                            future.as_mut().poll(&mut main_cx)
                        }));
                        drop(running_as);
                        core.shared.trace(trace::MAIN, || Event::PollEnd {
                            ready: !matches!(poll, Ok(Poll::Pending)),
                        });
                        main_outcome = match poll {
                            Ok(Poll::Pending) => continue,
                            Ok(Poll::Ready(output)) => Some(Ok(output)),
                            Err(payload) => Some(Err(payload)),
                        };
                        // The end of a run, as asyncio's: this pass runs to
                        // its end, and so does the next one, then we return.
                        last_pass = core.passes.get() + 1;
                    }
                }
            }
            // 4. Was that the extra pass after the main future finished?
            //    Then the run is over. (A panic in main ends it the same way,
            //    and `hand_out` passes the panic on.)
            if core.passes.get() == last_pass {
                let outcome = main_outcome.take().expect("the main future finished");
                return Self::hand_out(outcome);
            }
        }
    }

    /// The main future's output, or its panic passed on to the caller.
    fn hand_out<T>(outcome: std::thread::Result<T>) -> T {
        match outcome {
            Ok(output) => output,
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    /// Nothing is queued: wait for a wake, or (virtual clock) jump to the
    /// next deadline. Returns when something may be queued; the caller
    /// looks, and calls again if nothing is (a spurious return is fine).
    ///
    /// The virtual clock may jump only when nothing at all can happen
    /// without it: the queue is empty *and* no outside work is under way
    /// (no [`KeepAwake`] is held). Then, step by step:
    ///
    /// 1. Look at the queue once more: outside work may have queued a task
    ///    since the pass found it empty.
    /// 2. Ask the [`Idler`] to look, without waiting (chapter 12's selector
    ///    checks its sockets; the default idler has nothing to look at).
    /// 3. Jump to the earliest deadline and fire the timers due there; their
    ///    wakes land in the local queue, and the next pass runs them.
    /// 4. No deadline, but the idler watches a socket: wait for it below,
    ///    as a real clock would.
    /// 5. No deadline and nothing watched: nothing could ever wake the loop.
    ///    That is a deadlock, and it panics saying so.
    ///
    /// Otherwise (a real clock, or outside work holding a virtual one), the
    /// loop sleeps in its idler (chapter 3's `Signal`, or chapter 12's
    /// selector, which also wakes the tasks whose sockets are ready) until a
    /// push from another thread rouses it.
    fn idle(&self) {
        let core = &*self.core;
        let clock = core.timer.clock();
        if clock.is_virtual() && core.shared.outside_work.load(Ordering::Acquire) == 0 {
            // 1. Outside work wakes its task *before* it lets go of its
            //    KeepAwake, so once we have read 0 above, whatever it woke
            //    is already queued: look before jumping, or the clock would
            //    leap past a task that is ready to run (it may have been
            //    queued after this pass found the queue empty).
            if !lock(&core.shared.queue).turns.is_empty() {
                return;
            }
            // 2. Nor may time pass while a socket has something to say: ask
            //    the idler to look, without waiting. Its wakes are drawn as
            //    socket waits: mark the idler as the one running meanwhile.
            let looked = {
                let _looking = RunningAs::enter(&core.shared, Runner::Idler);
                core.shared.idler().look()
            };
            if looked > 0 {
                return;
            }
            {
                match core.timer.next_deadline() {
                    // 3. Jump, and fire what is due (on this thread: the
                    //    trace credits those wakes to the timer).
                    Some(deadline) => {
                        clock.advance_to(deadline);
                        let _firing = RunningAs::enter(&core.shared, Runner::Timer);
                        core.timer.fire_due();
                        return;
                    }
                    // 4. No timer, but a socket may still wake a task: fall
                    //    through to the wait below.
                    None if core.shared.idler().is_watching() => {}
                    // 5. Nothing to jump to, nothing watched. One last look,
                    //    under the lock: a thread holding no KeepAwake (a
                    //    waker sent off by hand) may still have queued a
                    //    task. Only an empty queue is a deadlock.
                    None => {
                        let queue = lock(&core.shared.queue);
                        if queue.turns.is_empty() {
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
        // Sleep until someone enqueues. No wake may fall between "the
        // queue is empty" and "asleep", so, in order:
        // a. Under the queue's lock, check it is empty and set `parked`. A
        //    push from another thread takes the same lock: it comes either
        //    before (we see its turn and return) or after (it sees `parked`).
        // b. Unlock, then wait. A push that saw `parked` clears it and
        //    rouses the idler after unlocking; if that lands before our
        //    `wait` begins, the idler remembers it (chapter 3's `Signal` is
        //    a flag, not a bare `thread::park`) and the wait ends at once.
        {
            let mut queue = lock(&core.shared.queue);
            if !queue.turns.is_empty() {
                return;
            }
            queue.parked = true;
        }
        // Whatever the idler wakes while it waits (a ready socket's task),
        // the trace credits to the idler. A `KeepAwake` let go also rouses
        // it (see `seams.rs`): the virtual clock may move again, so the
        // caller's next empty batch brings us back here to look.
        let _waiting = RunningAs::enter(&core.shared, Runner::Idler);
        core.shared.idler().wait();
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
    ///
    /// Switched on while tasks are alive, or from inside a run, the
    /// recording begins mid-life: its trace says so, and is checked as one
    /// that meets its tasks where their first records put them.
    pub fn enable_trace(&self) {
        if self.core.live_tasks.get() > 0 || self.core.running.get() {
            self.core.shared.trace.begin_mid_life();
        }
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

/// The main future's waker: queues the main future's turn.
///
/// The main future is no task (it lives on `run_until_complete`'s stack),
/// so its waker cannot be the task itself, as a task's is. It is this
/// small `Arc` instead, made once per run; `Shared::main_scheduled` plays
/// the part of a task's SCHEDULED bit, so the turn is queued at most once.
struct MainWaker {
    /// The run queue to push `Turn::Main` to: an `Arc`, since the waker may
    /// be cloned to another thread (a real timer's) and outlive the run.
    shared: Arc<Shared>,
}

impl ArcWake for MainWaker {
    fn wake_by_ref(this: &Arc<Self>) {
        this.shared
            .trace(trace::MAIN, || Event::Woken { by: wake_source() });
        this.shared.push_main();
    }
}

/// asyncio's `asyncio.run(main())`: a fresh event loop on the real clock
/// runs `future` to completion, then closes (unfinished tasks are dropped),
/// and the output is returned (E004-4).
///
/// The run ends as asyncio's does: when `future` is done, the current pass
/// and one more run first, so a task created in main's last step runs its
/// first step. Then the close drops what is left. (asyncio's `run` instead
/// cancels the leftovers and runs the loop until their `CancelledError`
/// handlers finish; ours are dropped at once, without another turn.)
///
/// # Panics
/// Inside a running event loop (asyncio: `asyncio.run() cannot be called
/// from a running event loop`). A panic in `future` reaches the caller after
/// the loop has been closed cleanly.
pub fn run<F: Future>(future: F) -> F::Output {
    // Refused before a loop is made, with asyncio.run's own words (not
    // run_until_complete's "This event loop is already running").
    assert!(
        try_running_loop().is_err(),
        "run: an event loop is already running on this thread, and a loop cannot block inside \
         itself (asyncio: RuntimeError: asyncio.run() cannot be called from a running event \
         loop). Await the future, or spawn it, instead"
    );
    let event_loop = EventLoop::new();
    let output = panic::catch_unwind(AssertUnwindSafe(|| event_loop.run_until_complete(future)));
    event_loop.close();
    match output {
        Ok(output) => output,
        Err(payload) => panic::resume_unwind(payload),
    }
}
