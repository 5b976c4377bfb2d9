//! # Chapter 8 — giving up: `timeout` (asyncio's `wait_for`)
//!
//! **The question.** Seed 004 calls `await asyncio.wait_for(coro,
//! timeout=3)`: the result if the coroutine finishes within 3 seconds, else
//! `TimeoutError` at 3 seconds, and the coroutine is cancelled (E004-3). A
//! future cannot be interrupted from outside while it runs; how does anyone
//! "give up" on it?
//!
//! **The idea.** Nobody interrupts anything. A future only runs when it is
//! polled, so giving up is simply *not polling it any more* and dropping it.
//! [`Timeout`] is a race between two futures, written directly: the inner
//! future, and a chapter 4 [`Sleep`] to the deadline. Each poll:
//!
//! 1. polls the sleep; if the deadline has passed, the inner future is
//!    **dropped** (which cancels whatever it was waiting for: its own sleeps
//!    unregister, a `JoinHandle` lets go) and then `Err(`[`Elapsed`]`)` is
//!    returned. The deadline goes **first**, so at a tie (the inner future
//!    would be ready at the very instant of the deadline) the deadline
//!    wins, as in asyncio: `wait_for(sleep(0.05), 0.05)` raises
//!    `TimeoutError` on CPython 3.11, 3.12 and 3.13, on a real clock too;
//! 2. else polls the inner future; if it is ready, that is the answer, `Ok`;
//! 3. else `Pending`. Both were polled with the same waker, so whichever is
//!    ready first wakes us.
//!
//! Why the deadline first fits the virtual clock exactly: at the deadline's
//! instant asyncio pops every timer due into one iteration. The timeout's
//! callback was registered before the inner coroutine ran (its timers come
//! later), so it runs first, and by the time the coroutine could resume it
//! has been told to stop: in 3.12+ the task is cancelled
//! (`asyncio.timeout`), in 3.11 `wait_for` finds its inner task not done.
//! Our `Sleep` registers at the `Timeout`'s first poll, before the inner
//! future's first poll, so its timer fires first too, and our task, woken
//! by both, looks at the deadline first. (The one case where 3.11 lets the
//! inner win a tie, an inner *task* whose last timer was registered before
//! the `wait_for`'s own and which ends in one step, is not reproduced: the
//! deadline wins it here, as it does in 3.12 and 3.13.)
//!
//! **The choices, written down.**
//!
//! * The deadline is fixed when [`timeout`] is *called* (it makes its
//!   `Sleep` then, reading the current loop's time), not when it is first
//!   polled. [`timeout_at`] takes the deadline itself, in loop time, as
//!   chapter 4's `sleep_until` does. (A `Timeout` made outside any loop,
//!   as in `run_until_complete(timeout(d, f))`, is bound to the loop at its
//!   first poll, as any such `Sleep` is: see chapter 4.)
//! * A zero (or past) deadline gives `Elapsed` at the first poll, with no
//!   wait, and the inner future is never polled: asyncio's
//!   `wait_for(coro, 0)` never runs the coroutine either and raises
//!   `TimeoutError`, even for one that would return at once (3.11-3.13).
//!   `Duration::MAX`, or any deadline past what the clock can hold, means
//!   "never": chapter 4 saturates it, nothing panics or overflows.
//! * The inner future is held as `Option<Pin<Box<F>>>`: it must stay pinned
//!   while it runs, and we must be able to drop it early by setting the
//!   option to `None`. Boxing pins without `unsafe`; tokio's `Timeout`
//!   avoids the allocation with pin projection, which needs `unsafe` (or a
//!   macro crate) and which this crate does not allow itself.
//! * Cancellation is the drop itself: synchronous, complete, and done
//!   before `Elapsed` is returned. asyncio throws `CancelledError` into the
//!   coroutine, which may run `finally:` blocks, even `await` in them; a
//!   Rust future gets only its `Drop`, so a whole tree of nested futures is
//!   cancelled at once, where asyncio's handlers each take their turn.
//! * Wrapping a `JoinHandle` times out the *wait*, not the task: dropping a
//!   handle detaches the task (chapter 6). asyncio's `wait_for(task, t)`
//!   cancels the task instead. To do that here, lend the handle,
//!   `timeout(t, &mut handle)`, and on `Elapsed` call `handle.abort()`
//!   (or await the handle again, to wait longer).
//!
//! **Checked against asyncio.** `tests/differential.rs` runs random
//! programs with timeouts (ties at the deadline included) on CPython's
//! asyncio and on our loop, and compares what they print.
//!
//! **What the next chapter needs from this one.** Nothing: chapter 9 turns
//! to work that cannot be dropped halfway, blocking calls, and runs it on a
//! thread pool.

#![forbid(unsafe_code)]

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::ch04_timer::{self, Sleep, sleep, sleep_until};

/// The error of a [`Timeout`] whose deadline passed first: asyncio's
/// `TimeoutError`. Its `Display` reads "deadline has elapsed (asyncio:
/// TimeoutError) after 3s".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Elapsed {
    /// The length the caller gave (what the message prints).
    after: Duration,
    /// The loop time it ran out at (for a caller that wants to compare).
    deadline: Duration,
}

impl Elapsed {
    /// How long the timeout was: the duration given to [`timeout`], or for
    /// [`timeout_at`] the time from its call to the deadline.
    pub fn after(&self) -> Duration {
        self.after
    }

    /// The deadline that passed, in loop time.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deadline has elapsed (asyncio: TimeoutError) after {:?}",
            self.after
        )
    }
}

impl std::error::Error for Elapsed {}

/// Waits for `future` for at most `duration`: asyncio's
/// `await asyncio.wait_for(future, timeout=duration)` (E004-3).
///
/// Gives `Ok(output)` if the future finishes before the deadline (fixed
/// now, at this call), else `Err(Elapsed)` at the deadline, after dropping
/// the future; at a tie the deadline wins, as in asyncio. See the module
/// docs for the choices.
///
/// ```
/// use std::time::Duration;
/// use tiny_asyncio::{EventLoop, sleep, timeout};
///
/// let secs = Duration::from_secs;
/// let event_loop = EventLoop::with_virtual_clock();
/// // Made inside the loop, so the deadline is in this loop's time.
/// let quick = event_loop.run_until_complete(async {
///     timeout(secs(3), async {
///         sleep(secs(2)).await;
///         "done"
///     })
///     .await
/// });
/// assert_eq!(quick, Ok("done"));
/// assert_eq!(event_loop.time(), secs(2));
///
/// let slow = event_loop.run_until_complete(async { timeout(secs(3), sleep(secs(5))).await });
/// let error = slow.unwrap_err();
/// assert_eq!(error.to_string(), "deadline has elapsed (asyncio: TimeoutError) after 3s");
/// assert_eq!(event_loop.time(), secs(2 + 3));
/// ```
pub fn timeout<F: IntoFuture>(duration: Duration, future: F) -> Timeout<F::IntoFuture> {
    let sleep = sleep(duration);
    Timeout {
        future: Some(Box::pin(future.into_future())),
        after: Some(duration),
        sleep,
    }
}

/// Waits for `future` until loop time `deadline` (like [`sleep_until`]):
/// `Ok(output)` if it finishes before then, else `Err(Elapsed)` at the
/// deadline, after dropping the future. A deadline in the past gives
/// `Elapsed` at the first poll, without polling the future.
pub fn timeout_at<F: IntoFuture>(deadline: Duration, future: F) -> Timeout<F::IntoFuture> {
    // Measured on the loop's clock: now if we are in a loop, else at the
    // first poll (when the sleep, too, learns which loop it belongs to).
    let after = ch04_timer::entered_timer().map(|timer| deadline.saturating_sub(timer.now()));
    Timeout {
        future: Some(Box::pin(future.into_future())),
        after,
        sleep: sleep_until(deadline),
    }
}

/// The future [`timeout`] and [`timeout_at`] return.
#[must_use = "a timeout does nothing unless awaited"]
pub struct Timeout<F> {
    /// The inner future while it runs; `None` once it finished or was
    /// dropped at the deadline.
    future: Option<Pin<Box<F>>>,
    /// The deadline, as chapter 4's sleep: it registers with the loop's
    /// timer at the first poll and cancels its entry when dropped.
    sleep: Sleep,
    /// How long the caller gave the future (for `Elapsed`); `None` until
    /// the first poll for a `timeout_at` made outside any loop.
    after: Option<Duration>,
}

// The inner future is boxed, and `Sleep` is `Unpin`: moving a `Timeout`
// never moves anything pinned.
impl<F> Unpin for Timeout<F> {}

impl<F> Timeout<F> {
    /// The deadline, in loop time.
    pub fn deadline(&self) -> Duration {
        self.sleep.deadline()
    }

    /// Whether the inner future is still held (not finished, not dropped).
    pub fn is_running(&self) -> bool {
        self.future.is_some()
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // A race of two, run inside this one poll: the inner future and
        // the sleep both get `cx`, so whichever can progress wakes us.
        let this = self.get_mut();
        // 0. No inner future: we already answered. Polling again is a bug.
        let Some(future) = this.future.as_mut() else {
            panic!("Timeout polled after it returned: a finished future must not be polled again");
        };
        // 1. Fix the deadline. A timeout made outside any loop counts from
        //    now, its first poll, not from after the inner future's first
        //    poll (which might take a while). A no-op once bound.
        this.sleep.bind();
        let deadline = this.sleep.deadline();
        let after = *this
            .after
            .get_or_insert_with(|| deadline.saturating_sub(ch04_timer::now()));
        // 2. The deadline first: at a tie it wins, as in asyncio. Asked
        //    directly first: a sleep that is due at its first poll yields
        //    once (asyncio's `sleep(0)`, chapter 4), but a deadline that has
        //    passed must give `Elapsed` now, not after a yield. Not due: the
        //    sleep's poll registers its timer, before the inner future's
        //    first poll registers any, so at the deadline's instant ours
        //    fires first; a later poll (re)registers our waker, so a
        //    `Pending` here is a promise the timer will wake us.
        if this.sleep.is_elapsed() || Pin::new(&mut this.sleep).poll(cx).is_ready() {
            // Cancel by dropping, before anyone hears about the timeout.
            this.future = None;
            return Poll::Ready(Err(Elapsed {
                after,
                deadline: this.sleep.deadline(),
            }));
        }
        // 3. The deadline is still ahead: the inner future's turn. Done
        //    means done: the sleep is dropped with us, cancelling its timer
        //    entry.
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            this.future = None;
            return Poll::Ready(Ok(output));
        }
        // 4. Neither yet: both hold our waker, the first to fire wakes us.
        Poll::Pending
    }
}

impl<F> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("deadline", &self.deadline())
            .field("running", &self.is_running())
            .finish()
    }
}
