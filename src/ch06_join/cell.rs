//! The job's cell: where a result made on another thread waits for the
//! `JoinHandle` that will take it.
//!
//! **Skip this file until chapter 9**, its only user. A task on the loop
//! keeps its own outcome (chapter 5's `Stage`), so a task's `JoinHandle`
//! needs nothing from here. A pool job is not a task: it runs on a worker
//! thread, outside any loop, and its result has to cross threads to reach
//! whoever awaits it. [`JoinCell`] is that crossing: a result and the
//! awaiter's waker under one lock, filled once by the worker, emptied once
//! by the handle's poll. [`JoinHandle::from_cell`](super::JoinHandle::from_cell)
//! wraps a cell in the same `JoinHandle` type that `spawn` returns.
//!
//! It lives in chapter 6 because the handle's poll reads it and chapters
//! only use what comes before them; chapter 9 tells its story.
//!
//! The cell also holds what must live exactly until the result is in: the
//! [`KeepAwake`](crate::ch05_event_loop::KeepAwake) guard of each loop
//! waiting for it, so a virtual clock cannot jump while a job runs.

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::JoinError;
use crate::ch03_waker::lock;
use crate::ch04_timer::Timer;
use crate::ch05_event_loop::Handle;

/// Where the result of work that is *not* a task on the loop (chapter 9's
/// pool jobs) waits for its `JoinHandle`: asyncio's `Future` that someone
/// else sets, tokio's `oneshot`. Shared by the thread that fills it and the
/// handle that empties it. (A task on the loop needs none: chapter 5's task
/// keeps its own outcome.)
///
/// A cell is filled once: the first [`complete`](JoinCell::complete) wins,
/// so "cancelled" (from `abort`, or from a job dropped unrun) and the job's
/// own result may race, and exactly one of them is what the handle sees.
pub struct JoinCell<T> {
    /// The result and the awaiter's waker, changed together under one lock.
    inner: Mutex<CellInner<T>>,
    /// Whether a result was ever put in, read without the lock by
    /// `is_finished`. Needed beside `inner.result`, which goes back to
    /// `None` once the handle takes the result: `result: None` alone could
    /// not tell "not yet" from "already taken".
    finished: AtomicBool,
    /// The number of the task (or job) that fills it, for messages.
    id: AtomicU64,
}

/// What the lock guards: the result, and who to tell about it.
struct CellInner<T> {
    /// `Some` from `complete` until the handle's poll takes it; read it with
    /// `JoinCell::finished` to tell "not yet" (`None`, not finished) from
    /// "taken" (`None`, finished).
    result: Option<Result<T, JoinError>>,
    /// The waker of whoever awaits the handle (latest poll only); `None`
    /// before the first poll, and after `complete` took it to wake it.
    waker: Option<Waker>,
    /// Kept alive until the result is in (see [`JoinCell::hold_until_complete`]):
    /// chapter 9's pool parks the loop's `KeepAwake` guard here.
    held: Vec<Box<dyn Any + Send>>,
    /// The loops kept awake for this result, each by its own `KeepAwake`
    /// (in `held`) and named here by its timer (every loop has its own), so
    /// that a loop is counted once however often it polls the handle (see
    /// [`JoinCell::keep_loop_awake`]).
    awake_loops: Vec<Timer>,
}

impl<T> JoinCell<T> {
    /// An empty cell.
    pub fn new() -> Arc<JoinCell<T>> {
        Arc::new(JoinCell {
            inner: Mutex::new(CellInner {
                result: None,
                waker: None,
                held: Vec::new(),
                awake_loops: Vec::new(),
            }),
            finished: AtomicBool::new(false),
            id: AtomicU64::new(0),
        })
    }

    /// The number of the task or job that fills this cell.
    pub fn task_id(&self) -> u64 {
        self.id.load(Ordering::Acquire)
    }

    /// Records the number of the task or job that fills this cell.
    pub fn set_task_id(&self, id: u64) {
        self.id.store(id, Ordering::Release);
    }

    /// Fills the cell (the first result wins; later ones are ignored) and
    /// wakes the awaiter, outside the lock.
    pub fn complete(&self, result: Result<T, JoinError>) {
        let (waker, held, awake_loops) = {
            // 1. Under the lock, so two completions cannot both win.
            let mut inner = lock(&self.inner);
            // 2. Someone was first (a job's result after its abort, say):
            //    this result is dropped, unseen.
            if self.finished.load(Ordering::Acquire) {
                return;
            }
            // 3. Store it and mark the cell, still under the lock, so a
            //    poll sees either both or neither.
            inner.result = Some(result);
            self.finished.store(true, Ordering::Release);
            // 4. Take out the awaiter's waker, whatever was held, and the
            //    loops kept awake.
            (
                inner.waker.take(),
                std::mem::take(&mut inner.held),
                std::mem::take(&mut inner.awake_loops),
            )
        };
        // 5. Wake outside the lock: the wake may run the awaiting loop's
        //    code, which polls the handle, which takes this lock.
        if let Some(waker) = waker {
            waker.wake();
        }
        // Let go of what was held only once the result is delivered.
        drop(held);
        drop(awake_loops);
    }

    /// Keeps `thing` alive until the cell gets its result (at once if it
    /// has one), then drops it. Chapter 9's pool hands it the loop's
    /// `KeepAwake`, so that a virtual clock stays put while a job runs, and
    /// moves on as soon as the job's handle resolves, aborted or not.
    pub fn hold_until_complete(&self, thing: Box<dyn Any + Send>) {
        // Checked under the lock `complete` takes, so `thing` is either
        // held before the result arrives (and dropped by `complete`) or
        // dropped here at once: never kept forever.
        let mut inner = lock(&self.inner);
        if self.is_finished() {
            drop(inner);
            drop(thing);
        } else {
            inner.held.push(thing);
        }
    }

    /// Keeps the loop `running` awake (its [`KeepAwake`](crate::ch05_event_loop::KeepAwake))
    /// until the cell gets its result, once per loop: calling it again for
    /// the same loop does nothing, and so does calling it on a finished cell.
    ///
    /// Chapter 9's pool calls it for the loop that submits a job; the
    /// handle's `poll` calls it for the loop that awaits it. They are
    /// usually one loop, but a handle made in one loop may be awaited in
    /// another, and then the awaiting loop is the one
    /// that must not jump its virtual clock, or declare a deadlock, while
    /// the job runs.
    pub fn keep_loop_awake(&self, running: &Handle) {
        let mut inner = lock(&self.inner);
        if self.is_finished()
            || inner
                .awake_loops
                .iter()
                .any(|timer| timer.same_timer(running.timer()))
        {
            return;
        }
        inner.awake_loops.push(running.timer().clone());
        inner.held.push(Box::new(running.keep_awake()));
    }

    /// Whether a result has been put in the cell (taken or not).
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Takes the result if there is one, else remembers `cx`'s waker.
    pub fn poll_take(&self, cx: &mut Context<'_>, task_id: u64) -> Poll<Result<T, JoinError>> {
        let mut inner = lock(&self.inner);
        // 1. The result is in: hand it over (the cell keeps `finished`).
        if let Some(result) = inner.result.take() {
            return Poll::Ready(result);
        }
        // 2. No result, yet finished: it was taken by an earlier poll. A
        //    finished future polled again is the caller's bug; say so.
        assert!(
            !self.is_finished(),
            "JoinHandle for task {task_id} polled after it returned its result: \
             a finished future must not be polled again"
        );
        // 3. Not yet: remember this poll's waker (under the same lock that
        //    `complete` takes, so a result arriving now will see it), and
        //    skip the clone when it is the same waker as last time.
        match &inner.waker {
            Some(old) if old.will_wake(cx.waker()) => {}
            _ => inner.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}
