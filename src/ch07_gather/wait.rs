//! asyncio's other two "many" tools: `wait` and `as_completed`.
//!
//! Read it fourth. Both are built on the same core as
//! [`gather`](super::gather) (`children.rs`) and differ only in what they
//! do with an output: [`wait`] stops when [`ReturnWhen`] says and hands
//! back what finished and what is still pending ([`Waited`]);
//! [`as_completed`] yields outputs in the order they finish.

use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, IntoFuture, poll_fn};
use std::ops::ControlFlow;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::children::Children;

// ---------------------------------------------------------------------------
// wait
// ---------------------------------------------------------------------------

/// When [`wait`] returns: asyncio's `return_when`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReturnWhen {
    /// As soon as at least one future has finished (`FIRST_COMPLETED`).
    /// Every future that finished in that same turn is reported.
    FirstCompleted,
    /// When every future has finished (`ALL_COMPLETED`, asyncio's default).
    AllCompleted,
}

/// What [`wait`] gives back: asyncio's `(done, pending)`.
#[must_use = "the pending futures are dropped (cancelled) with it"]
pub struct Waited<F: Future> {
    /// The futures that finished: (input index, output), in the order they
    /// finished.
    pub done: Vec<(usize, F::Output)>,
    /// The futures still running: (input index, future), in input order.
    /// Each is exactly as `wait` left it, polled no further: await them,
    /// `wait` on them again, or drop them to cancel them.
    pub pending: Vec<(usize, Pin<Box<F>>)>,
}

impl<F: Future> fmt::Debug for Waited<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let done: Vec<usize> = self.done.iter().map(|(index, _)| *index).collect();
        let pending: Vec<usize> = self.pending.iter().map(|(index, _)| *index).collect();
        f.debug_struct("Waited")
            .field("done", &done)
            .field("pending", &pending)
            .finish()
    }
}

/// Runs the futures until `return_when` says to stop, and gives back what
/// finished and what is still pending: asyncio's `asyncio.wait(aws,
/// return_when=…)`.
///
/// Like asyncio's, it never fails: a future's output, `Result` or not, is
/// just reported in [`Waited::done`]. Unlike asyncio's, over nothing it
/// returns an empty [`Waited`] at once (asyncio raises `ValueError`).
///
/// ```
/// use std::time::Duration;
/// use tiny_asyncio::{EventLoop, ReturnWhen, gather, sleep, wait};
///
/// async fn answer(secs: u64) -> u64 {
///     sleep(Duration::from_secs(secs)).await;
///     secs
/// }
///
/// let event_loop = EventLoop::with_virtual_clock();
/// event_loop.run_until_complete(async {
///     let waited = wait([answer(3), answer(1), answer(2)], ReturnWhen::FirstCompleted).await;
///     assert_eq!(waited.done, [(1, 1)]);
///     assert_eq!(tiny_asyncio::get_running_loop().time(), Duration::from_secs(1));
///     // The others were only put aside: await them later.
///     let rest = gather(waited.pending.into_iter().map(|(_, fut)| fut)).await;
///     assert_eq!(rest, [3, 2]);
/// });
/// assert_eq!(event_loop.time(), Duration::from_secs(3));
/// ```
pub fn wait<I>(futures: I, return_when: ReturnWhen) -> Wait<<I::Item as IntoFuture>::IntoFuture>
where
    I: IntoIterator,
    I::Item: IntoFuture,
{
    Wait {
        children: Children::new(futures),
        done: Vec::new(),
        return_when,
        finished: false,
    }
}

/// The future [`wait`] returns.
#[must_use = "wait does nothing unless awaited"]
pub struct Wait<F: Future> {
    children: Children<F>,
    /// Finished children as (input index, output), in completion order.
    done: Vec<(usize, F::Output)>,
    /// When to stop: at the first completion, or when all are done.
    return_when: ReturnWhen,
    /// It has returned its `Waited`.
    finished: bool,
}

impl<F: Future> Unpin for Wait<F> {}

impl<F: Future> Future for Wait<F> {
    type Output = Waited<F>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Waited<F>> {
        let this = self.get_mut();
        assert!(
            !this.finished,
            "wait polled after it returned: a finished future must not be polled again"
        );
        let done = &mut this.done;
        let _ = this.children.poll_woken(cx, |index, output| {
            done.push((index, output));
            ControlFlow::Continue(())
        });
        let stop = match this.return_when {
            ReturnWhen::FirstCompleted => !this.done.is_empty() || this.children.running == 0,
            ReturnWhen::AllCompleted => this.children.running == 0,
        };
        if !stop {
            return Poll::Pending;
        }
        this.finished = true;
        Poll::Ready(Waited {
            done: std::mem::take(&mut this.done),
            pending: this.children.take_pending(),
        })
    }
}

impl<F: Future> fmt::Debug for Wait<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait")
            .field("children", &self.children.len())
            .field("running", &self.children.running)
            .field("return_when", &self.return_when)
            .finish()
    }
}

// ---------------------------------------------------------------------------
// as_completed
// ---------------------------------------------------------------------------

/// Runs the futures concurrently and yields their outputs **in the order
/// they finish**: asyncio's `for coro in asyncio.as_completed(aws)`.
///
/// Call [`AsCompleted::next`] in a loop; it gives `None` once every output
/// has been yielded. Futures that finish in the same turn (say, two sleeps
/// with the same deadline) come out in the order they were woken, which for
/// timers is the order they were registered. To know which input an output
/// came from, make the futures return their index (tokio's
/// `FuturesUnordered` works the same way).
///
/// ```
/// use std::time::Duration;
/// use tiny_asyncio::{EventLoop, as_completed, sleep};
///
/// let event_loop = EventLoop::with_virtual_clock();
/// let order = event_loop.run_until_complete(async {
///     let mut results = as_completed([3, 1, 2].map(|secs| async move {
///         sleep(Duration::from_secs(secs)).await;
///         secs
///     }));
///     let mut order = Vec::new();
///     while let Some(secs) = results.next().await {
///         order.push(secs);
///     }
///     order
/// });
/// assert_eq!(order, [1, 2, 3]);
/// ```
pub fn as_completed<I>(futures: I) -> AsCompleted<<I::Item as IntoFuture>::IntoFuture>
where
    I: IntoIterator,
    I::Item: IntoFuture,
{
    AsCompleted {
        children: Children::new(futures),
        ready: VecDeque::new(),
    }
}

/// Outputs in completion order (see [`as_completed`]): a small stream with
/// an `async fn next`.
pub struct AsCompleted<F: Future> {
    children: Children<F>,
    /// Outputs that finished in one turn, waiting their turn to be yielded.
    ready: VecDeque<F::Output>,
}

impl<F: Future> Unpin for AsCompleted<F> {}

impl<F: Future> AsCompleted<F> {
    /// The next output to finish, or `None` when all have been yielded.
    pub async fn next(&mut self) -> Option<F::Output> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// The poll behind [`next`](AsCompleted::next), for hand-written
    /// futures: `Ready(Some(output))`, `Ready(None)` when all are done, or
    /// `Pending` (the waker in `cx` is woken when one more finishes).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        if let Some(output) = self.ready.pop_front() {
            return Poll::Ready(Some(output));
        }
        if self.children.running == 0 {
            return Poll::Ready(None);
        }
        let ready = &mut self.ready;
        let _ = self.children.poll_woken(cx, |_, output| {
            ready.push_back(output);
            ControlFlow::Continue(())
        });
        match self.ready.pop_front() {
            Some(output) => Poll::Ready(Some(output)),
            None => Poll::Pending,
        }
    }

    /// How many outputs are still to be yielded.
    pub fn remaining(&self) -> usize {
        self.children.running + self.ready.len()
    }
}

impl<F: Future> fmt::Debug for AsCompleted<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("children", &self.children.len())
            .field("remaining", &self.remaining())
            .finish()
    }
}
