//! The task: a future the loop owns, its header, and its outcome.
//!
//! Read it third, after [`state`](super::state). A task is one `Arc`: a
//! [`Header`] (the state word, its number, its place in the loop's list of
//! live tasks) and, under one lock, its [`Stage`] (first the future, then
//! the outcome) and the waker of whoever awaits that outcome. Its waker is
//! the task itself (chapter 3's [`ArcWake`]): waking it is "schedule me".
//! [`Runnable::run`] is the hot path: one poll, narrated step by step.
//! [`TaskRef`] is what the spawner keeps: cancel, ask, take the outcome.

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
pub(super) trait Runnable: Send + Sync {
    /// Polls the task once (or drops it if cancelled).
    fn run(self: Arc<Self>, core: &LoopCore);
    /// Drops the future if it is still there (the loop is closing).
    fn close(&self);
    /// The last [`TaskRef`] is gone: nobody can take the outcome any more,
    /// so drop it now if it is there (see [`Header::handles`]).
    fn drop_unclaimed_outcome(&self);
    fn header(&self) -> &Header;
}

/// A task as whoever waits for its output sees it: the output type is
/// known, the future's type is erased.
pub(super) trait Joinable<T>: Runnable {
    fn poll_output(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskFailure>>;
}

/// The part of a task that does not depend on its future's type.
pub(super) struct Header {
    pub(super) state: AtomicU8,
    /// Where this task sits in the loop's list of live tasks.
    pub(super) slot: usize,
    /// A number for humans (printing, ordering): 1, 2, 3 … in spawn order.
    pub(super) id: u64,
    /// How many [`TaskRef`]s (and so `JoinHandle`s) exist. When none is
    /// left, nobody can ever take the outcome, so it is dropped as soon as
    /// it is stored, on the loop thread, where a panicking `Drop` of the
    /// output is caught and reported. Otherwise it would be dropped with
    /// the task's last reference, wherever that is: a waker on another
    /// thread, or the loop's list of live tasks mid-pass, where a panic
    /// would escape the loop and strand the pass.
    pub(super) handles: AtomicUsize,
    pub(super) shared: Arc<Shared>,
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
pub(super) struct Task<F: Future> {
    pub(super) header: Header,
    pub(super) body: Mutex<Body<F>>,
}

pub(super) struct Body<F: Future> {
    pub(super) stage: Stage<F>,
    /// Who waits for the output (only the latest poll's waker).
    pub(super) joiner: Option<Waker>,
}

/// A task's life: it runs, then holds its outcome until someone takes it.
pub(super) enum Stage<F: Future> {
    Future(F),
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
    pub(super) fn schedule(this: &Arc<Self>) {
        // Always a read-modify-write (never a failed compare-exchange), so
        // that whatever the waker wrote before waking is visible to the
        // poll that this wake asks for.
        let previous = this.header.state.fetch_or(SCHEDULED, Ordering::AcqRel);
        // Enqueue only on the step "idle -> scheduled": not if already
        // queued, not while running (the loop re-queues it after the poll),
        // not once complete.
        if previous & (SCHEDULED | RUNNING | COMPLETE) == 0 {
            this.header.shared.push(Turn::Task(this.clone()));
        }
    }

    /// Drops the future (if it is still there), then stores `outcome` and
    /// wakes whoever waits for it. In that order, always: when a handle
    /// resolves, nothing of the task's future is alive any more. The future
    /// is dropped outside the lock, since its `Drop` may do anything, even
    /// touch this task.
    pub(super) fn end(&self, outcome: Result<F::Output, TaskFailure>) {
        let future = {
            let mut body = lock(&self.body);
            match body.stage {
                Stage::Future(_) => std::mem::replace(&mut body.stage, Stage::Dropping),
                // Ended already: there is exactly one outcome.
                _ => return,
            }
        };
        catch_reporting("a task's future panicked while being dropped", || {
            drop(future)
        });
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
        self.header.state.fetch_or(OUTCOME, Ordering::AcqRel);
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
                let running_as = RunningAs::enter(&header.shared, Runner::Task(header.id));
                self.end(Err(TaskFailure::Cancelled));
                drop(running_as);
                core.forget_task(header.slot);
            }
            return;
        }

        let waker = waker_ref(&self);
        let mut cx = Context::from_waker(&waker);
        header.shared.trace(header.id, || Event::PollStart);
        let running_as = RunningAs::enter(&header.shared, Runner::Task(header.id));
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

        let outcome = match poll {
            Ok(Poll::Pending) => {
                // RUNNING -> idle, or -> queued again if woken meanwhile.
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
        let _running_as = RunningAs::enter(&self.header.shared, Runner::Task(self.header.id));
        self.end(Err(TaskFailure::Cancelled));
    }

    fn drop_unclaimed_outcome(&self) {
        let outcome = {
            let mut body = lock(&self.body);
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

/// Runs `user_code` (a `Drop` of an output or a future, somebody's waker),
/// catching a panic and reporting it as `what`, so that it cannot escape
/// the loop. The panic's payload is user code too: if *its* `Drop` panics,
/// that second payload is leaked rather than dropped again.
pub(super) fn catch_reporting(what: &str, user_code: impl FnOnce()) {
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
        // Mark it, and queue it (if idle) so the loop gets round to it.
        let previous = header
            .state
            .fetch_or(CANCELLED | SCHEDULED, Ordering::AcqRel);
        if previous & (SCHEDULED | RUNNING | COMPLETE) == 0 {
            let runnable: Arc<dyn Runnable> = self.task.clone();
            header.shared.push(Turn::Task(runnable));
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
