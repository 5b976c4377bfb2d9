//! The naive join and the poll counter: **kept to be measured, not to be
//! used.**
//!
//! Read it last, or when you run the example. [`NaiveJoinAll`] is the
//! answer the chapter's story starts from: every child polled at every
//! wake, `O(n²)` polls in all. [`PollCounter`] counts the polls of the
//! futures it wraps, so that the example (and the tests) can set those
//! polls against [`gather`](super::gather)'s `O(n + wakes)`. No other
//! chapter uses either.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use super::MaybeDone;

// ---------------------------------------------------------------------------
// The naive join, kept to be measured
// ---------------------------------------------------------------------------

/// The naive way to wait for many futures, kept to be measured against
/// [`gather`](super::gather): every child gets the **parent's** waker, so
/// when the parent is woken it cannot tell which child woke it, and it
/// polls **every** unfinished child. Correct, same outputs, but `O(n)` polls per wake and
/// `O(n²)` in all when `n` children finish at `n` different times.
///
/// Small fixed groups are fine this way (tokio's `join!` polls all of its
/// few children); long lists are not. The example counts the polls.
#[must_use = "naive_join_all does nothing unless awaited"]
pub struct NaiveJoinAll<F: Future> {
    /// Every child, running or done, in input order. No per-child waker:
    /// that is the whole difference from `Gather`.
    children: Vec<MaybeDone<F>>,
    /// It has returned its outputs.
    finished: bool,
}

/// Waits for every future the naive way (see [`NaiveJoinAll`]): outputs in
/// input order, like [`gather`](super::gather), at a much higher price in
/// polls.
pub fn naive_join_all<I>(futures: I) -> NaiveJoinAll<<I::Item as IntoFuture>::IntoFuture>
where
    I: IntoIterator,
    I::Item: IntoFuture,
{
    // Each child boxed in its `MaybeDone` (pinned without `unsafe`, as in
    // `gather`); nothing else to set up: no wakers, no woken list.
    NaiveJoinAll {
        children: futures.into_iter().map(MaybeDone::new).collect(),
        finished: false,
    }
}

impl<F: Future> Unpin for NaiveJoinAll<F> {}

impl<F: Future> Future for NaiveJoinAll<F> {
    type Output = Vec<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<F::Output>> {
        let this = self.get_mut();
        assert!(
            !this.finished,
            "naive_join_all polled after it returned: a finished future must not be polled again"
        );
        // 1. Every unfinished child, every time: this loop is the O(n) per
        //    wake. Each gets the parent's own waker (`cx`), so any child's
        //    wake brings us back here to poll all of them again; a child
        //    already done is skipped by `poll_with`, but still visited.
        let mut all_done = true;
        for child in &mut this.children {
            all_done &= child.poll_with(cx);
        }
        // 2. Some child still waits: it holds our waker, and will wake us.
        if !all_done {
            return Poll::Pending;
        }
        // 3. All done: the outputs, taken in input order.
        this.finished = true;
        Poll::Ready(
            this.children
                .iter_mut()
                .map(MaybeDone::take_output)
                .collect(),
        )
    }
}

impl<F: Future> fmt::Debug for NaiveJoinAll<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No counter is kept (the poll never needs one): count here.
        let running = self.children.iter().filter(|c| !c.is_done()).count();
        f.debug_struct("NaiveJoinAll")
            .field("children", &self.children.len())
            .field("running", &running)
            .finish()
    }
}

// ---------------------------------------------------------------------------
// The instrument: counting polls
// ---------------------------------------------------------------------------

/// Counts the polls of every future it wraps: the instrument this chapter
/// measures [`NaiveJoinAll`] against [`gather`](super::gather) with.
/// Clones share the count.
#[derive(Clone, Debug, Default)]
pub struct PollCounter {
    /// Shared with every `Counted` it made. `Relaxed` is enough: only the
    /// total matters, and an atomic add never loses one, whatever the order.
    polls: Arc<AtomicU64>,
}

impl PollCounter {
    /// A counter at zero.
    pub fn new() -> PollCounter {
        PollCounter::default()
    }

    /// Wraps `future` so that each of its polls adds one to this counter.
    /// The future must be `Unpin` (a `Sleep` is; `Box::pin` anything else),
    /// so the wrapper costs no allocation of its own.
    pub fn count<F: Future + Unpin>(&self, future: F) -> Counted<F> {
        // The wrapper shares our count: one `Arc` clone per wrapped future.
        Counted {
            future,
            polls: Arc::clone(&self.polls),
        }
    }

    /// How many polls so far.
    pub fn get(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }
}

/// A future whose polls are counted by a [`PollCounter`].
#[derive(Debug)]
pub struct Counted<F> {
    /// The future being counted (`Unpin`, so no box is needed).
    future: F,
    /// Its counter's count, one more per poll.
    polls: Arc<AtomicU64>,
}

impl<F: Future + Unpin> Future for Counted<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Count first, then poll: every poll is counted, whether it ends in
        // `Ready`, `Pending` or a panic. The count is what the chapter's
        // O(n²) against O(n + wakes) is measured in.
        self.polls.fetch_add(1, Ordering::Relaxed);
        // `Unpin`, so pinning a plain `&mut` to it is safe, and the poll
        // passes straight through with the same waker: counting changes
        // nothing about who is woken.
        Pin::new(&mut self.future).poll(cx)
    }
}
