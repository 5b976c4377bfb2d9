//! The running loop: [`Handle`], [`get_running_loop`], and [`yield_now`].
//!
//! Read it fifth. asyncio keeps "the running loop" per thread, so that a
//! coroutine can find it without being handed it; so do we, in
//! `RUNNING_LOOP`, set while `run_until_complete` runs. A [`Handle`] is
//! what `get_running_loop()` gives: spawn on it, read its time, print it.
//!
//! The file, top to bottom: `RUNNING_LOOP` and the guard that sets it
//! (`RunningGuard`, step 1 of `run_until_complete`'s setup); [`Handle`];
//! the three ways to ask for the running loop ([`try_running_loop`] gives
//! a `Result`, [`get_running_loop`] is asyncio's and panics,
//! [`expect_running_loop`] panics naming the operation that needed it);
//! [`spawn_detached`]; and [`yield_now`], the smallest use of the rules in
//! [`state`](super::state).

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::ch03_waker::{ExecutorGuard, enter_executor};

use super::LoopCore;
use super::task::TaskRef;

thread_local! {
    /// The loop running on this thread, if any: asyncio's "running loop".
    /// An `Rc`: the loop's core belongs to this thread (it is not `Send`),
    /// and a [`Handle`] taken from here may outlive the run, or the loop.
    pub(super) static RUNNING_LOOP: RefCell<Option<Rc<LoopCore>>> = const { RefCell::new(None) };
}

/// Marks the loop as running on this thread while it runs, and unmarks it
/// when dropped: on return, and on a panic passed on to the caller alike.
pub(super) struct RunningGuard {
    /// The loop it marked, to unmark it again.
    pub(super) core: Rc<LoopCore>,
    /// Chapter 3's "an executor runs here" mark: `block_on` inside a task
    /// (or this loop inside a `block_on`) is refused with a clear message.
    pub(super) _executor: ExecutorGuard,
}

impl RunningGuard {
    /// Marks `core` as this thread's running loop.
    ///
    /// # Panics
    /// If a loop already runs on this thread: one loop cannot wait for a
    /// future inside another's turn (it would block every task of the
    /// outer loop), so we refuse, as asyncio does.
    pub(super) fn enter(core: &Rc<LoopCore>) -> RunningGuard {
        // Look before marking anything, so that a refusal leaves no trace.
        RUNNING_LOOP.with(|running| {
            let running = running.borrow_mut();
            assert!(
                running.is_none(),
                "run_until_complete: an event loop is already running on this thread, and a loop \
                 cannot block inside itself (asyncio: RuntimeError: This event loop is already \
                 running; for another loop: Cannot run the event loop while another loop is \
                 running). Await the future, or spawn it, instead"
            );
        });
        // May refuse (inside a `block_on`) before anything is marked.
        let executor = enter_executor("run_until_complete");
        // Two marks, for two askers: the thread-local answers
        // `get_running_loop()` from a task; the core's flag answers
        // `is_running()` through any handle, even one kept after the run.
        RUNNING_LOOP.with(|running| *running.borrow_mut() = Some(core.clone()));
        core.running.set(true);
        RunningGuard {
            core: core.clone(),
            _executor: executor,
        }
    }
}

// Runs on every way out of `run_until_complete`, a panic included, so a
// loop that panicked is not left marked as running (the next run, or
// `get_running_loop()` outside, would be refused or misled).
impl Drop for RunningGuard {
    fn drop(&mut self) {
        // Both marks undone, in the reverse order of `enter`. The `take`
        // also drops this thread's extra `Rc` to the core, so a loop that
        // is dropped after its run is really freed.
        self.core.running.set(false);
        RUNNING_LOOP.with(|running| running.borrow_mut().take());
    }
}

/// A handle to a running (or at least existing) event loop, as asyncio's
/// `get_running_loop()` returns. It prints like asyncio's loop repr.
///
/// A handle is a second owner of the loop's core, not a borrow: it stays
/// valid after the loop is closed (then it can only say so: spawning on a
/// closed loop panics clearly). It is not `Send`, like the loop: to reach a
/// loop from another thread, wake one of its tasks.
#[derive(Clone)]
pub struct Handle {
    /// The loop's core, shared with the `EventLoop` and every other handle.
    pub(super) core: Rc<LoopCore>,
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
        // Boxed and pinned here, once: the task needs its future pinned to
        // poll it, and a `Box` pins without `unsafe` (see `task.rs`).
        self.core.spawn(Box::pin(future))
    }

    /// Spawns a task whose output nobody wants (see [`Handle::spawn_task`]).
    pub fn spawn_detached<F: Future<Output = ()> + Send + 'static>(&self, future: F) -> TaskRef {
        self.spawn_task(future)
    }

    /// The loop's time (see [`EventLoop::time`](super::EventLoop::time)).
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
}

// Prints as asyncio's loop repr does (`<_UnixSelectorEventLoop running=True
// closed=False debug=False>`, E002-4), with our loop's name in front.
impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Rust's `true`, not Python's `True`: the fields are asyncio's, the
        // values are printed as this language prints them. `debug` is always
        // false: the loop has no debug mode (its trace is the appendix's).
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

/// The error [`try_running_loop`] gives outside a running loop.
///
/// It prints asyncio's own words (`RuntimeError: no running event loop`,
/// E002-4), so a reader of the documents recognises it.
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
        // `try_with`: asked from a thread-local's destructor, after this
        // thread's RUNNING_LOOP is gone, the answer is "no running loop".
        .try_with(|running| running.borrow().clone())
        // No thread-local any more, or no loop in it: the same answer.
        .ok()
        .flatten()
        // A loop is running: the handle is one more owner of its core.
        .map(|core| Handle { core })
        .ok_or(NoRunningLoop)
}

/// The loop running on this thread: asyncio's `get_running_loop()` (E002-4).
///
/// # Panics
/// Outside a running loop, with asyncio's message: "no running event loop".
///
/// Inside a task this is the loop that runs it; a task cannot be moved to
/// another loop, so the answer never changes during a task's life.
pub fn get_running_loop() -> Handle {
    expect_running_loop("get_running_loop")
}

/// The running loop, for an `operation` that cannot work without one.
///
/// # Panics
/// Outside a running loop, with a message that names `operation` and says
/// there is no running event loop.
///
/// Every operation of the book that needs the running loop (`spawn`,
/// `run_in_executor`, …) asks through here, so they all fail alike: with
/// their own name, asyncio's error, and what to do instead.
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
///
/// Chapter 5 has no `JoinHandle` yet: this is how its examples and tests
/// start tasks. Chapter 6's `spawn` is the one to use afterwards.
pub fn spawn_detached<F: Future<Output = ()> + Send + 'static>(future: F) -> TaskRef {
    expect_running_loop("spawn_detached").spawn_detached(future)
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
    /// Whether the one `Pending` was given: if so, this poll is the turn
    /// after, and the future is done.
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Second poll: the other tasks had their turn. Done.
        if self.yielded {
            return Poll::Ready(());
        }
        // First poll: wake ourselves *before* saying Pending. The wake
        // lands while the task is RUNNING, so it only sets SCHEDULED, and
        // the task goes to the back of the queue when this poll ends: it
        // runs again in the next pass, after everyone queued before it.
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
