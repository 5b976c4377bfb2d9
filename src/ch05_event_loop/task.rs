//! The task: a future the loop owns, its header, and its outcome.
//!
//! Read it third, after [`state`](super::state). A task is one `Arc`: a
//! [`Header`] (the state word, its number, its place in the loop's list of
//! live tasks) and, under one lock, its [`Stage`] (first the future, then
//! the outcome) and the waker of whoever awaits that outcome. Its waker is
//! the task itself (chapter 3's [`ArcWake`]): waking it is "schedule me".
//! [`Runnable::run`] is the hot path: one poll, narrated step by step.
//! [`TaskRef`] is what the spawner keeps: cancel, ask, take the outcome.
//!
//! The file, top to bottom: the two traits the loop and the spawner see a
//! task through ([`Runnable`], [`Joinable`]); the parts of a task
//! ([`Header`], `Task`, `Body`, [`Stage`], and [`TaskFailure`]); how it is
//! queued (`Task::schedule`) and how it ends (`Task::end`, the one way
//! out); its waker; its turn ([`Runnable::run`]: read this one slowly);
//! how a waiter takes its outcome (`poll_output`); and last [`TaskRef`].
//! As in `mod.rs`, the `trace(…)` and `RunningAs::enter(…)` lines only
//! feed the pictures: read past them.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::ch03_waker::{ArcWake, lock, waker_ref};
use crate::trace::Event;

use super::LoopCore;
use super::run_queue::{Shared, Turn};
use super::running::RUNNING_LOOP;
use super::seams::{Runner, RunningAs, wake_source};
use super::state::{CANCELLED, COMPLETE, OUTCOME, RUNNING, SCHEDULED};

/// A spawned future as the loop sees it, with its type erased.
///
/// The run queue holds tasks of every future type side by side, so it
/// holds them as `Arc<dyn Runnable>`: one pointer to the task and one to a
/// table of these methods. This trait is also the seam for another kind of
/// task (chapter 13 builds one in a single allocation): the loop needs only
/// these four things of a task.
pub(crate) trait Runnable: Send + Sync {
    /// Polls the task once (or drops it if cancelled). Takes the `Arc` by
    /// value: the turn in the queue owned one reference, and the poll may
    /// hand it back to the queue (woken during its own poll).
    fn run(self: Arc<Self>, core: &LoopCore);
    /// Drops the future if it is still there (the loop is closing), with
    /// "cancelled" as the outcome.
    fn close(&self);
    /// The last [`TaskRef`] is gone: nobody can take the outcome any more,
    /// so drop it now if it is there (see [`Header::handles`]).
    fn drop_unclaimed_outcome(&self);
    /// The part every task has, whatever its future: state, number, place.
    fn header(&self) -> &Header;
}

/// A task as whoever waits for its output sees it: the output type is
/// known, the future's type is erased. A [`TaskRef<T>`] holds one.
pub(crate) trait Joinable<T>: Runnable {
    /// The outcome if it is there (taken, so only once), or `Pending` with
    /// `cx`'s waker kept to be woken when it is.
    fn poll_output(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskFailure>>;
}

/// The part of a task that does not depend on its future's type.
pub(crate) struct Header {
    /// The state bits of [`state`](super::state), shared with every thread
    /// that may wake the task: the only field of a task that a wake from
    /// another thread reads or writes, besides the queue it pushes to.
    pub(crate) state: AtomicU8,
    /// Where this task sits in the loop's list of live tasks (an index into
    /// `LoopCore::tasks`, reused after the task ends). A `u32`: four billion
    /// live tasks are enough, and it packs beside `state`, which keeps
    /// chapter 13's task in a smaller heap block.
    pub(crate) slot: u32,
    /// A number for humans (printing, ordering): 1, 2, 3 … in spawn order.
    pub(crate) id: u64,
    /// How many [`TaskRef`]s (and so chapter 6's `JoinHandle`s, one
    /// `TaskRef` each) exist, starting at 1 for the spawner's. When none is
    /// left, nobody can ever take the outcome, so it is dropped as soon as
    /// it is stored, on the loop thread, where a panicking `Drop` of the
    /// output is caught and reported. Otherwise it would be dropped with
    /// the task's last reference, wherever that is: a waker on another
    /// thread, or the loop's list of live tasks mid-pass, where a panic
    /// would escape the loop and strand the pass.
    pub(crate) handles: AtomicUsize,
    /// The loop's run queue, where this task's wakes push it. An `Arc`,
    /// since a waker may outlive the loop: pushing to a closed queue is
    /// then harmless (it drops the turn).
    pub(crate) shared: Arc<Shared>,
}

/// Why a task has no output: it was cancelled (or its loop closed), or it
/// panicked. Chapter 6 turns this into `JoinError`.
pub enum TaskFailure {
    /// Its future was dropped before it finished.
    Cancelled,
    /// Its future panicked; this is the panic's payload.
    Panicked(Box<dyn Any + Send + 'static>),
}

// Written by hand: a panic payload is `dyn Any`, which has no `Debug`, so we
// show its message instead (what `panic!` was given, when it was text).
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
pub(super) struct Task<F: Future> {
    pub(super) header: Header,
    pub(super) body: Mutex<Body<F>>,
}

pub(super) struct Body<F: Future> {
    /// The future, then its outcome (see [`Stage`]).
    pub(super) stage: Stage<F>,
    /// Who waits for the outcome: the waker given to the latest
    /// `poll_output` that found it not there yet (an earlier one may be
    /// stale: the awaiter may have moved). `None`: nobody waits yet, or
    /// the waker was taken to be woken. `end` wakes it.
    pub(super) joiner: Option<Waker>,
}

/// A task's life: it runs, then holds its outcome until someone takes it.
pub(super) enum Stage<F: Future> {
    /// Not finished: the future, polled on each of the task's turns.
    Future(F),
    /// Ending: `end` has taken the future out, to drop it outside the
    /// lock, and has not stored the outcome yet. Every task passes here,
    /// whatever ended it (returned, panicked, cancelled, closed); a waiter
    /// that looks now gets `Pending`, and is woken when the outcome is in.
    Dropping,
    /// The outcome, waiting for a [`TaskRef`] to take it: the output, or
    /// why there is none.
    Finished(Result<F::Output, TaskFailure>),
    /// The outcome was handed out.
    Taken,
}

// The bounds, once for all the impls below: `Send` because a waker (which
// is the task) may travel to any thread; `'static` because the loop keeps
// the task for as long as it likes, so it may borrow nothing; `Unpin`
// because `F` is the boxed future (`Pin<Box<_>>`), so the task may pin it
// without `unsafe`.
impl<F> Task<F>
where
    F: Future + Send + Unpin + 'static,
    F::Output: Send + 'static,
{
    /// Sets SCHEDULED and enqueues, unless the rules say otherwise. Every
    /// way into the run queue goes through here (a wake, a spawn), except
    /// the two the rules add: a poll that was woken while RUNNING (step 4
    /// of `run`) and a cancellation.
    pub(super) fn schedule(this: &Arc<Self>) {
        // Always a read-modify-write (never a failed compare-exchange), so
        // that whatever the waker wrote before waking is visible to the
        // poll that this wake asks for.
        let previous = this.header.state.fetch_or(SCHEDULED, Ordering::AcqRel);
        // Enqueue only on the step "waiting -> scheduled": not if already
        // queued, not while running (the loop re-queues it after the poll),
        // not once complete.
        if previous & (SCHEDULED | RUNNING | COMPLETE) == 0 {
            this.header.shared.push(Turn::Task(this.clone()));
        }
    }

    /// Whether this thread is inside this task's own poll: the body is
    /// locked only while the loop polls the task (and for a few stores in
    /// `end`, which run no user code), and only the loop thread polls, one
    /// task at a time. So "locked, on the loop thread, RUNNING" means that
    /// the code asking is the task's own future.
    fn inside_own_poll(&self) -> bool {
        let on_loop_thread = RUNNING_LOOP
            .try_with(|running| {
                running
                    .borrow()
                    .as_ref()
                    .is_some_and(|core| Arc::ptr_eq(&core.shared, &self.header.shared))
            })
            .unwrap_or(false);
        on_loop_thread && self.header.state.load(Ordering::Acquire) & RUNNING != 0
    }

    /// Drops the future (if it is still there), then stores `outcome` and
    /// wakes whoever waits for it. In that order, always: when a handle
    /// resolves, nothing of the task's future is alive any more. The future
    /// is dropped outside the lock, since its `Drop` may do anything, even
    /// touch this task.
    pub(super) fn end(&self, outcome: Result<F::Output, TaskFailure>) {
        // 1. Take the future out (leaving `Dropping`), under the lock.
        let future = {
            let mut body = lock(&self.body);
            match body.stage {
                Stage::Future(_) => std::mem::replace(&mut body.stage, Stage::Dropping),
                // Ended already: there is exactly one outcome.
                _ => return,
            }
        };
        // 2. Drop it, outside the lock, with a panicking `Drop` caught.
        catch_reporting("a task's future panicked while being dropped", || {
            drop(future)
        });
        // 3. Store the outcome (or, if no handle is left, take it back to
        //    drop it) and take the awaiter's waker, under the lock.
        let (joiner, unclaimed) = {
            let mut body = lock(&self.body);
            // Read under the lock: a TaskRef dropped meanwhile either is
            // counted out already (so we drop the outcome here), or locks
            // after us and finds the outcome to drop (`drop_unclaimed_outcome`).
            let unclaimed = if self.header.handles.load(Ordering::Acquire) == 0 {
                body.stage = Stage::Taken;
                Some(outcome)
            } else {
                body.stage = Stage::Finished(outcome);
                None
            };
            (body.joiner.take(), unclaimed)
        };
        // 4. OUTCOME last: whoever sees it knows the future is gone.
        self.header.state.fetch_or(OUTCOME, Ordering::AcqRel);
        // 5. Outside the lock, the user code: drop what nobody can take,
        //    and wake whoever waits.
        if let Some(outcome) = unclaimed {
            catch_reporting(
                "a detached task's output panicked while being dropped",
                || drop(outcome),
            );
        }
        if let Some(joiner) = joiner {
            // The awaiter's waker may be anyone's code, and may panic. Out
            // of here, that panic would leave the loop mid-pass (stranding
            // the tasks queued behind) or, while the loop closes, abort
            // the process. Report it instead.
            catch_reporting("the waker of a task's awaiter panicked", || joiner.wake());
        }
    }
}

// The task *is* its waker (chapter 3's seam): the waker's data pointer is
// the task's `Arc`, and waking it is scheduling the task. Nothing else is
// allocated per wake or per waker clone.
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
        // The wake itself: one atomic step on the state word, and at most
        // one push. This runs on whatever thread calls `wake` (the timer
        // thread, a pool worker, another task on the loop thread), so it
        // never polls and never waits for the loop.
        Task::schedule(this);
    }
}

impl<F> Runnable for Task<F>
where
    F: Future + Send + Unpin + 'static,
    F::Output: Send + 'static,
{
    /// One turn of this task: the hot path of the whole loop, in five steps.
    fn run(self: Arc<Self>, core: &LoopCore) {
        let header = &self.header;

        // Step 1: claim the poll. One atomic step turns SCHEDULED into
        // RUNNING, so that a wake from here on sets SCHEDULED again and
        // means "poll once more" (see `state`). One step, not a load and a
        // store: a wake from another thread may land between the two and
        // be lost. It refuses when the task is COMPLETE (a stale turn:
        // never poll a finished future) or CANCELLED (then we drop the
        // future instead).
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
                // Cancelled: drop the future instead of polling it, and end
                // the task as if it had finished, with "cancelled" as its
                // outcome. Whoever awaits it is woken by it.
                header.state.store(COMPLETE, Ordering::Release);
                header.shared.trace(header.id, || Event::Cancelled);
                let running_as = RunningAs::enter(&header.shared, Runner::Task(header.id));
                self.end(Err(TaskFailure::Cancelled));
                drop(running_as);
                core.forget_task(header.slot);
            }
            return;
        }

        // Step 2: a waker for this poll. It borrows our own `Arc` (chapter
        // 3's `waker_ref`): no reference count moves unless the future
        // keeps a clone of it.
        let waker = waker_ref(&self);
        let mut cx = Context::from_waker(&waker);
        header.shared.trace(header.id, || Event::PollStart);
        let running_as = RunningAs::enter(&header.shared, Runner::Task(header.id));

        // Step 3: poll the future once, with its panic caught, so that one
        // task's panic is its own outcome and every other task runs on.
        // The lock is held for the poll; only this thread ever polls, so
        // nobody waits for it. The one exception is the task itself asking
        // for its own outcome inside this poll (awaiting its own
        // `TaskRef`): `poll_output` refuses that clearly, rather than wait
        // for a lock this very poll holds.
        let poll = {
            let mut body = lock(&self.body);
            let Stage::Future(future) = &mut body.stage else {
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

        // Step 4: still waiting? Let go of RUNNING. If a wake came during
        // the poll, SCHEDULED is set again, and this is where the task goes
        // back in the queue: once, however many wakes there were. (A cancel
        // during the poll sets SCHEDULED too, so it comes back this way,
        // and its next turn's step 1 ends it.) With no wake, the task is
        // now waiting: in no queue, held by `LoopCore::tasks` and by
        // whoever kept a clone of its waker (a timer, say).
        let outcome = match poll {
            Ok(Poll::Pending) => {
                let before = header.state.fetch_and(!RUNNING, Ordering::AcqRel);
                if before & SCHEDULED != 0 {
                    header.shared.push(Turn::Task(self.clone()));
                }
                return;
            }
            Ok(Poll::Ready(output)) => Ok(output),
            // The panic hook has already printed the message; the outcome
            // keeps the payload for whoever waits (chapter 6's JoinError).
            Err(payload) => Err(TaskFailure::Panicked(payload)),
        };

        // Step 5: finished. COMPLETE first (from now on every wake is
        // ignored), then `end` drops the future, stores the outcome and
        // wakes whoever awaits it. We are still "running as" this task, so
        // the trace says that wake came from it. Last, the loop forgets the
        // task: its list of live tasks no longer holds it.
        header.state.store(COMPLETE, Ordering::Release);
        header.shared.trace(header.id, || Event::Done);
        self.end(outcome);
        drop(running_as);
        core.forget_task(header.slot);
    }

    // The loop is closing: the task will never get another turn. Its future
    // is dropped (exactly once: `end` does nothing to an ended task) and its
    // outcome is "cancelled", so whoever awaits it is answered.
    fn close(&self) {
        self.header.state.store(COMPLETE, Ordering::Release);
        self.header.shared.trace(self.header.id, || Event::Closed);
        let _running_as = RunningAs::enter(&self.header.shared, Runner::Task(self.header.id));
        self.end(Err(TaskFailure::Cancelled));
    }

    // Called by the last `TaskRef` to go. It races with `end` only in a
    // harmless way: both look at the stage under the body's lock, so
    // whichever comes second finds the outcome and drops it, exactly once.
    fn drop_unclaimed_outcome(&self) {
        let outcome = {
            // A task may drop the last handle to itself inside its own
            // poll (chapter 11's `TaskGroup` child does, as it counts
            // itself out): the body is locked by that very poll, so
            // waiting for the lock would wait for ever. Its outcome is not
            // stored yet, and `end` will find no handle left and drop it.
            let mut body = match self.body.try_lock() {
                Ok(body) => body,
                Err(std::sync::TryLockError::Poisoned(poison)) => poison.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) if self.inside_own_poll() => return,
                Err(std::sync::TryLockError::WouldBlock) => lock(&self.body),
            };
            match std::mem::replace(&mut body.stage, Stage::Taken) {
                Stage::Finished(outcome) => Some(outcome),
                other => {
                    body.stage = other;
                    None
                }
            }
        };
        // Outside the lock: the output's `Drop` is user code.
        if let Some(outcome) = outcome {
            catch_reporting(
                "a detached task's output panicked while being dropped",
                || drop(outcome),
            );
        }
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
    // Called from `TaskRef::poll_output`, so from whoever awaits the task:
    // another task, the main future, or any thread polling by hand.
    fn poll_output(&self, cx: &mut Context<'_>) -> Poll<Result<F::Output, TaskFailure>> {
        // The body is locked only while the loop polls this very task; if we
        // cannot lock it here, on the loop thread, the task is awaiting its
        // own output, which could never arrive.
        let mut body = match self.body.try_lock() {
            Ok(body) => body,
            Err(std::sync::TryLockError::Poisoned(poison)) => poison.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                if self.inside_own_poll() {
                    panic!(
                        "task {} awaits its own output: a task cannot wait for itself to finish",
                        self.header.id
                    );
                }
                lock(&self.body)
            }
        };
        // Take the stage out to look at it: the outcome leaves with us, and
        // anything else is put back as it was.
        match std::mem::replace(&mut body.stage, Stage::Taken) {
            Stage::Finished(outcome) => Poll::Ready(outcome),
            Stage::Taken => panic!(
                "JoinHandle for task {} polled after it returned its result: a finished \
                 future must not be polled again",
                self.header.id
            ),
            unfinished => {
                body.stage = unfinished;
                // Keep only the latest poll's waker (the awaiter may have
                // moved to another task since). Cloning is skipped when
                // the kept one would wake the same task anyway.
                let replaced = match &body.joiner {
                    Some(old) if old.will_wake(cx.waker()) => None,
                    _ => body.joiner.replace(cx.waker().clone()),
                };
                drop(body);
                // The old waker is somebody's code: dropped outside the lock.
                drop(replaced);
                Poll::Pending
            }
        }
    }
}

/// Runs `user_code` (a `Drop` of an output or a future, somebody's waker),
/// catching a panic and reporting it as `what`, so that it cannot escape
/// the loop. The panic's payload is user code too: if *its* `Drop` panics,
/// that second payload is leaked rather than dropped again.
pub(crate) fn catch_reporting(what: &str, user_code: impl FnOnce()) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(user_code)) {
        report_panic(what, &*payload);
        if let Err(inner) = panic::catch_unwind(AssertUnwindSafe(|| drop(payload))) {
            std::mem::forget(inner);
        }
    }
}

/// Writes a panic's message to stderr: the loop reports it and carries on.
pub(super) fn report_panic(what: &str, payload: &(dyn std::any::Any + Send)) {
    eprintln!("tiny-asyncio: {what}: {}", panic_message(payload));
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a
/// `String`; anything else is "a non-string panic payload").
///
/// Every place in the book that reports or shows a panic uses this one
/// function, so the same payload always reads the same.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    }
}

/// A reference to a spawned task: cancel it, ask whether it finished, and
/// take its output once it has.
///
/// It is one `Arc` to the task (a fat pointer: the task, and the table of
/// its `Joinable<T>` methods). Clones share the task; the count of them is
/// kept in the header (see `Header::handles`), because when the last one
/// goes, nobody can take the outcome any more. Chapter 6's `JoinHandle` is
/// a `TaskRef` with the manners of a future.
pub struct TaskRef<T = ()> {
    pub(super) task: Arc<dyn Joinable<T>>,
}

impl<T> Clone for TaskRef<T> {
    fn clone(&self) -> Self {
        self.task.header().handles.fetch_add(1, Ordering::Relaxed);
        TaskRef {
            task: self.task.clone(),
        }
    }
}

impl<T> Drop for TaskRef<T> {
    fn drop(&mut self) {
        // The last one out drops an outcome nobody took (see `Header::handles`).
        if self.task.header().handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.task.drop_unclaimed_outcome();
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
        // Mark it, and queue it (if waiting) so the loop gets round to it: the
        // cancellation happens on the loop thread, in the task's next turn,
        // because only the loop thread may drop the future (it may be
        // polling it right now). Queued already, or running: the mark is
        // seen when that turn comes. Complete: nothing to do.
        let previous = header
            .state
            .fetch_or(CANCELLED | SCHEDULED, Ordering::AcqRel);
        if previous & (SCHEDULED | RUNNING | COMPLETE) == 0 {
            // The same `Arc`, seen as the loop sees it: the queue's turn
            // owns this new reference.
            let runnable: Arc<dyn Runnable> = self.task.clone();
            header.shared.push(Turn::Task(runnable));
        }
    }

    /// Whether the task has finished (completed, cancelled, or closed) and
    /// its outcome is ready to take; by then its future has been dropped.
    ///
    /// It reads OUTCOME, not COMPLETE: COMPLETE is set before the future is
    /// dropped, and a caller that sees `true` here may rely on the future's
    /// `Drop` having run.
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
    ///
    /// A poll after `Ready` panics rather than answer again: the outcome
    /// moved out with the first answer. (asyncio lets a task be awaited
    /// twice, giving the result each time; a Rust future is done once.)
    pub fn poll_output(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskFailure>> {
        self.task.poll_output(cx)
    }
}

// Shows what a reader debugging a program wants to know of a task: which
// one, and whether it is done. (The future inside has no `Debug`.)
impl<T> fmt::Debug for TaskRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskRef")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}
