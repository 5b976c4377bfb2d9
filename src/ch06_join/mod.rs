//! # Chapter 6 — `JoinHandle`: a task is a future of its result
//!
//! **The question.** Seed 003 says a Task *is* a Future: `await task1` gives
//! back what the coroutine returned (E003-3), and creating tasks first makes
//! `say_after(1, 'hello')` and `say_after(2, 'world')` overlap, 2 s instead
//! of 3 (E003-2, E004-6 against E004-5). Seed 004's sums do the same: A and B
//! awaited in turn take 5 s (E004-1), as tasks 3 s (E004-2). How does a
//! spawned task hand its result to whoever awaits it, and what if it never
//! finishes: it is cancelled, it panics, or the loop closes under it?
//!
//! **The idea.** Chapter 5's task already keeps its outcome: when its
//! future returns, the loop stores the output in the task and wakes whoever
//! registered interest; when it panics, the loop catches the panic
//! (`catch_unwind`) and stores the payload; when the task is dropped before
//! finishing (cancelled, or its loop closed), the loop stores "cancelled".
//! Chapter 5 promised that a task's future is dropped exactly once, so
//! exactly one of the three happens: **every handle resolves exactly once**.
//!
//! This chapter turns that into an API people can hold: [`spawn`] returns a
//! [`JoinHandle`], a `Future` whose output is `Ok(value)` or a [`JoinError`]
//! that tells cancelled from panicked, and whose `poll` is one call to
//! chapter 5's `TaskRef::poll_output`. Every other task runs on after a
//! panic: the loop caught it, and only the handle hears about it.
//!
//! [`JoinHandle::abort`] is chapter 5's `TaskRef::cancel`: on the loop's
//! next pass the task's future is dropped, which drops whatever it was
//! awaiting (a `Sleep` cancels its timer), and then the handle resolves
//! as cancelled. Dropping a `JoinHandle` *detaches* the task: it runs on, owned
//! by the loop, and its result is thrown away (asyncio keeps a task alive
//! only while someone references it; here the loop always does).
//!
//! **What the next chapter needs from this one.** `gather` (chapter 7)
//! awaits many futures, `JoinHandle`s among them; `timeout` (chapter 8)
//! relies on "dropping a future cancels it"; the thread pool (chapter 9)
//! resolves `JoinHandle`s from worker threads: for work that is not a
//! task on the loop, a [`JoinCell`] (a result and a waker under a lock)
//! plays the task's part.
//!
//! **Reading order.** [`spawn`] and [`JoinHandle`]'s `poll` first (the
//! whole chapter is in those two, a dozen lines), then [`JoinError`], what
//! a handle gives when there is no value. The handle's second source, a
//! cell that a worker thread fills ([`JoinHandle::from_cell`] and the file
//! `cell.rs`), can wait for chapter 9, its only user.

#![forbid(unsafe_code)]

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

mod cell;
pub use cell::JoinCell;

use crate::ch05_event_loop::{
    Handle, TaskFailure, TaskRef, expect_running_loop, panic_message, try_running_loop,
};

/// Why a task gave no result.
pub struct JoinError {
    /// Cancelled or panicked (with the payload).
    kind: JoinErrorKind,
    /// The task's number (or, for a pool job, the job's number in its
    /// pool): what the messages name, so that a reader can tell which of
    /// many handles failed.
    id: u64,
}

/// The two ways a task can end without a value, as asyncio has them: a
/// `CancelledError`, or the exception it raised.
enum JoinErrorKind {
    /// Aborted, or dropped when its loop closed (asyncio's `CancelledError`).
    Cancelled,
    /// It panicked; we keep the payload so it can be re-raised.
    Panic(Box<dyn Any + Send + 'static>),
}

impl JoinError {
    /// A "cancelled" error for task `id`.
    pub fn cancelled(id: u64) -> JoinError {
        JoinError {
            kind: JoinErrorKind::Cancelled,
            id,
        }
    }

    /// A "panicked" error for task `id`, with the panic's payload.
    pub fn panicked(id: u64, payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError {
            kind: JoinErrorKind::Panic(payload),
            id,
        }
    }

    /// Whether the task was cancelled (aborted, or its loop closed).
    pub fn is_cancelled(&self) -> bool {
        matches!(self.kind, JoinErrorKind::Cancelled)
    }

    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.kind, JoinErrorKind::Panic(_))
    }

    /// The panic's message if it panicked ("a non-string panic payload"
    /// when it panicked with something other than a string); `None` if it
    /// was cancelled.
    pub fn panic_message(&self) -> Option<String> {
        match &self.kind {
            JoinErrorKind::Panic(payload) => Some(panic_message(&**payload)),
            JoinErrorKind::Cancelled => None,
        }
    }

    /// The panic's payload, to re-raise it with `std::panic::resume_unwind`.
    ///
    /// # Panics
    /// If the task was cancelled rather than panicked.
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        // Moves the payload out (it is not `Clone`: a panic payload is any
        // value at all), so a `JoinError` re-raises at most once.
        match self.kind {
            JoinErrorKind::Panic(payload) => payload,
            JoinErrorKind::Cancelled => {
                panic!(
                    "JoinError::into_panic: task {} was cancelled, it did not panic",
                    self.id
                )
            }
        }
    }

    /// The number of the task it came from.
    pub fn task_id(&self) -> u64 {
        self.id
    }
}

// What a user's `{}` or `.unwrap()` shows: which task, and why it gave
// nothing. The panic's own message is read from its payload (a `&str` or a
// `String`, as `panic!` makes them; anything else is named as such).
impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            JoinErrorKind::Cancelled => write!(f, "task {} was cancelled", self.id),
            JoinErrorKind::Panic(payload) => {
                write!(
                    f,
                    "task {} panicked: {}",
                    self.id,
                    panic_message(&**payload)
                )
            }
        }
    }
}

// Written by hand: a derived `Debug` could not print the payload, which
// is `dyn Any` and has no `Debug` of its own.
impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            JoinErrorKind::Cancelled => write!(f, "JoinError::Cancelled(task {})", self.id),
            JoinErrorKind::Panic(payload) => write!(
                f,
                "JoinError::Panic(task {}, {:?})",
                self.id,
                panic_message(&**payload)
            ),
        }
    }
}

impl std::error::Error for JoinError {}

/// The name [`JoinCell`] had before: kept so that code written against it
/// still compiles.
#[deprecated(note = "renamed JoinCell: 'slot' means a wheel bucket in this book")]
pub type JoinSlot<T> = JoinCell<T>;

/// An owned permission to await a task's result: asyncio's `Task` as a
/// future. Awaiting it gives `Ok(output)`, or a [`JoinError`] if the task was
/// cancelled or panicked. Dropping it detaches the task.
#[must_use = "dropping a JoinHandle detaches the task; await it to get its result"]
pub struct JoinHandle<T> {
    /// Where the result will come from: a task, or a cell. (The task's
    /// number is in its header, a pool job's beside its cell.)
    source: Source<T>,
}

/// Where the result comes from, and how to cancel the work behind it.
///
/// Kept to two words (16 bytes): a task's handle is just its `TaskRef`,
/// and the rarer pool job's parts sit behind one `Box`, which leaves the
/// compiler room to tell the two apart without a tag word. A program that
/// keeps a million handles keeps 16 MB less (chapter 13's W1).
enum Source<T> {
    /// A task on the loop, which keeps its own outcome.
    Task(TaskRef<T>),
    /// Other work (chapter 9's pool jobs): a cell to read, a flag to set.
    Cell(Box<CellSource<T>>),
}

/// A pool job's side of a handle (see [`JoinHandle::from_cell`]).
struct CellSource<T> {
    /// Filled by whoever does the work.
    cell: Arc<JoinCell<T>>,
    /// Set by `abort`; the worker reads it before running the job and
    /// again after, and skips (or drops the result of) aborted work.
    cancelled: Arc<AtomicBool>,
    /// The job's number, for messages and `id()`.
    id: u64,
}

impl<T> JoinHandle<T> {
    /// A handle for work that is not a task on the loop (chapter 9's thread
    /// pool): `abort` sets `cancelled`, and whoever does the work checks it
    /// and fills `cell`.
    pub fn from_cell(cell: Arc<JoinCell<T>>, cancelled: Arc<AtomicBool>, id: u64) -> Self {
        // No task behind it: the cell and the flag are all the handle
        // needs, and the worker keeps the other ends.
        JoinHandle {
            source: Source::Cell(Box::new(CellSource {
                cell,
                cancelled,
                id,
            })),
        }
    }

    /// A handle for a task on the loop, whoever built it: chapter 13's
    /// one-allocation task hands its [`TaskRef`] here, as [`spawn_on`] does
    /// chapter 5's.
    pub fn from_task(task: TaskRef<T>) -> Self {
        JoinHandle {
            source: Source::Task(task),
        }
    }

    /// The name [`JoinHandle::from_cell`] had before.
    #[deprecated(note = "renamed from_cell")]
    pub fn from_slot(cell: Arc<JoinCell<T>>, cancelled: Arc<AtomicBool>, id: u64) -> Self {
        Self::from_cell(cell, cancelled, id)
    }

    /// Cancels the task: asyncio's `task.cancel()`, tokio's `abort()`. On
    /// the loop's next pass its future is dropped (with whatever it awaits),
    /// and the handle gives `JoinError` "cancelled". Idempotent; a task that
    /// already finished keeps its result.
    pub fn abort(&self) {
        match &self.source {
            // A task: chapter 5 marks it cancelled and queues it, and its
            // next turn drops the future instead of polling it; the handle
            // resolves once that drop has happened.
            Source::Task(task) => task.cancel(),
            Source::Cell(job) => {
                // Whoever does the work checks the flag (a queued job never
                // runs); the handle resolves now. A job already running
                // finishes, and its result loses: the first result wins.
                job.cancelled.store(true, Ordering::Release);
                job.cell.complete(Err(JoinError::cancelled(job.id)));
            }
        }
    }

    /// Whether the task has finished (its result, or its error, is ready).
    pub fn is_finished(&self) -> bool {
        // Asks without taking: the result stays for the handle's poll.
        match &self.source {
            Source::Task(task) => task.is_finished(),
            Source::Cell(job) => job.cell.is_finished(),
        }
    }

    /// The task's number (1 for the loop's first task …).
    pub fn id(&self) -> u64 {
        // A task's number lives in its header. A job has no header: its
        // pool numbers it, and the handle keeps that number by the cell.
        match &self.source {
            Source::Task(task) => task.id(),
            Source::Cell(job) => job.id,
        }
    }
}

impl<T: Send + 'static> JoinHandle<T> {
    /// A handle that can cancel the task but not take its result (tokio's
    /// `JoinHandle::abort_handle`). Chapter 11's `TaskGroup` keeps one per
    /// child, so that it can cancel children whose `JoinHandle`s it gave
    /// away.
    pub fn abort_handle(&self) -> AbortHandle {
        // The abort is captured as a closure, so that `AbortHandle` has no
        // type parameter: a group can keep the abort handles of children
        // with different output types in one list. Each closure owns a
        // second reference to what `abort` touches, never the result.
        let abort: Arc<dyn Fn() + Send + Sync> = match &self.source {
            Source::Task(task) => {
                let task = task.clone();
                Arc::new(move || task.cancel())
            }
            Source::Cell(source) => {
                let (cell, cancelled, id) =
                    (source.cell.clone(), source.cancelled.clone(), source.id);
                // The same two steps as `abort` on a cell handle: the flag
                // for the worker, then "cancelled" as the cell's first result.
                Arc::new(move || {
                    cancelled.store(true, Ordering::Release);
                    cell.complete(Err(JoinError::cancelled(id)));
                })
            }
        };
        AbortHandle {
            id: self.id(),
            abort,
        }
    }
}

/// Cancels a task without owning its result: what
/// [`JoinHandle::abort_handle`] gives. Cloning it is cheap; aborting
/// through it is [`JoinHandle::abort`].
#[derive(Clone)]
pub struct AbortHandle {
    /// The task's (or job's) number, kept apart from the closure so that
    /// `id()` and `Debug` can tell which task this handle cancels.
    id: u64,
    /// The handle's own `abort`, with the result type erased.
    abort: Arc<dyn Fn() + Send + Sync>,
}

impl AbortHandle {
    /// Cancels the task, as [`JoinHandle::abort`] does.
    pub fn abort(&self) {
        (self.abort)();
    }

    /// The task's number.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle").field("id", &self.id).finish()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // A handle holds no future of its own, so it needs nothing pinned:
        // `self` is only read.
        match &self.source {
            // A task on the loop. `poll_output` does the whole protocol in
            // chapter 5's task: if the task has ended, it takes the outcome
            // out (`Ok(value)`, or why there is none); if not, it stores
            // this poll's waker as the task's joiner, which the task wakes
            // when it ends. All that is left here is to translate chapter
            // 5's `TaskFailure` into the error users see.
            Source::Task(task) => task.poll_output(cx).map_err(|failure| match failure {
                TaskFailure::Cancelled => JoinError::cancelled(task.id()),
                TaskFailure::Panicked(payload) => JoinError::panicked(task.id(), payload),
            }),
            // Other work: the same protocol, over a cell that a worker
            // thread fills (see `JoinCell::poll_take`).
            Source::Cell(job) => {
                let cell = &job.cell;
                let poll = cell.poll_take(cx, job.id);
                if poll.is_pending() {
                    // Whoever fills the cell works outside any loop: the
                    // loop that waits here must stay awake for it, even
                    // when the work was started from another loop.
                    if let Ok(running) = try_running_loop() {
                        cell.keep_loop_awake(&running);
                    }
                }
                poll
            }
        }
    }
}

// Shows which task, and whether it has finished, without taking or
// requiring anything of `T`: a handle prints the same whatever it yields.
impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Spawns `future` as a task on the running loop and returns its handle:
/// asyncio's `asyncio.create_task(coro)`. The task runs nothing until the
/// spawner yields.
///
/// # Panics
/// Outside a running event loop: "there is no running event loop".
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn_on(&expect_running_loop("spawn"), future)
}

/// Spawns `future` on the loop behind `handle` (see [`spawn`]).
pub fn spawn_on<F>(handle: &Handle, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    // Chapter 5 makes the task (its header, the boxed future, and the
    // stage where its outcome will wait), puts it in the run queue, and
    // hands back a typed reference to it.
    // The task runs at the loop's next pass, not now: the spawner keeps the
    // thread until it awaits something, as asyncio's `create_task` does.
    JoinHandle::from_task(handle.spawn_task(future))
}
