//! # Chapter 7 — waiting for many: `gather`, `wait`, `as_completed`
//!
//! **The question.** Chapter 6 can await one task at a time. Seed 002 awaits
//! *many* coroutines at once with `asyncio.gather` and gets all their results
//! back, in the order it passed them, in the time of the slowest one. What
//! does a future that waits for many futures look like, and what does it
//! cost when "many" is ten thousand?
//!
//! **The document.** Seed 002:
//!
//! * E002-2: `fetch_data_async("작업1")` and `("작업2")` gathered: `start1
//!   start2 done1 done2`, **2 s** (chapter 1's blocking version took 4 s);
//! * E002-6: three `fetch_url` coroutines gathered: the three "request sent"
//!   lines first, then the results **in input order**, **2 s**;
//! * E002-7: the same three awaited one by one in a list comprehension: each
//!   request is sent when the previous one is answered, **6 s**.
//!
//! asyncio's other two "many" tools come along: `asyncio.wait` (what
//! finished and what is still pending) and `asyncio.as_completed` (results
//! in the order they finish).
//!
//! **The idea.** A gathering future is a parent that polls its children
//! *inside its own poll*: the children are not tasks, they run while the
//! parent is polled, on the parent's task. The whole question is *which*
//! children to poll when the parent is woken.
//!
//! * The naive answer ([`NaiveJoinAll`], kept here to be measured) hands
//!   every child the parent's own waker and, whenever the parent is woken,
//!   polls **every** unfinished child, since it cannot tell which one woke
//!   it. With `n` children finishing at `n` different times that is `n`
//!   wakes of `O(n)` polls each: **`O(n²)` polls** in all, nearly all of
//!   them useless (a sleep asked "are you done?" long before its time).
//! * Ours ([`gather`]) gives each child **its own waker** ([`ChildWakers`]):
//!   a chapter 3 [`ArcWake`](crate::ch03_waker::ArcWake) that knows its
//!   child's index. Waking it puts the index on a shared "woken" list and
//!   wakes the parent; the parent's next poll takes the list and polls
//!   **only those children**, in the order they were woken. Every child is polled once at the start and then
//!   once per wake: **`O(n + wakes)` polls** in all, and a child is polled
//!   at most `wakes + 1` times. The example measures both.
//!
//! Results are stored by index, so the output is in input order whatever
//! the completion order (E002-6). A child woken twice before the parent
//! looks is listed once (a per-child `queued` flag), as chapter 5 queues a
//! task at most once.
//!
//! **The four tools, side by side** (all poll their children the same way):
//!
//! | asyncio | here | gives back |
//! |---|---|---|
//! | `gather(*aws)` | [`gather`], [`gather!`](crate::gather!) | every output, in input order (`Vec<T>`, or a tuple) |
//! | `gather(*aws)` on errors | [`try_gather`] | `Ok(Vec<T>)`, or the first error (the rest dropped) |
//! | `wait(aws, return_when=…)` | [`wait`] with [`ReturnWhen`] | [`Waited`]: what finished (index, output) and the still-pending futures |
//! | `as_completed(aws)` | [`as_completed`] | [`AsCompleted`]: outputs in completion order |
//!
//! **How asyncio differs, on purpose.**
//!
//! * asyncio wraps each coroutine in a Task, so the children start running
//!   as soon as the caller yields, even before the gather is awaited. Ours
//!   are plain futures: nothing runs until the gather is polled (chapter 2:
//!   futures are inert). To start work eagerly, [`spawn`](crate::spawn) it
//!   and gather the `JoinHandle`s. In return the children need not be `Send`
//!   or `'static` (they never leave the parent's task); the gathering future
//!   is `Send` when they are.
//! * Errors. asyncio's `gather` raises the first exception to the awaiter
//!   but lets the other tasks run on (or, with `return_exceptions=True`,
//!   returns exceptions as values). Our [`gather`] is the
//!   `return_exceptions=True` form: children returning `Result` just give
//!   `Result`s, in order. [`try_gather`] returns the first error (by
//!   completion order) and **drops the other children at once**, as tokio's
//!   `try_join!` does. "Let them run on" has no meaning for children that
//!   only run while someone polls them; dropping them is what cancellation
//!   is in Rust, and it frees their resources (timers, sockets) now rather
//!   than at some later drop.
//! * [`wait`] never raises (as asyncio's), and over nothing it returns an
//!   empty [`Waited`] at once, where asyncio raises `ValueError`. There is no
//!   `FIRST_EXCEPTION` (Rust outputs are values; use `try_gather`) and no
//!   `timeout=` (chapter 8's `timeout` wraps any future).
//!
//! **Limits, and what they cost.** Each child is boxed (`Pin<Box<F>>`: to
//! poll a child it must be pinned, and boxing pins without `unsafe`) and has
//! its waker in an `Arc`: two small allocations per child. A runtime that
//! allows itself `unsafe` (the `futures` crate's `FuturesUnordered`, behind
//! `futures::future::join_all` for long lists) puts the future inside its
//! waker's allocation:
//! one. A parent woken for many children polls them all in one go, with no
//! budget: a gather of a hundred thousand ready children is one long poll.
//! [`gather!`](crate::gather!) boxes its few children too. And the
//! bookkeeping is not free: when *every* child wakes at *every* turn, all
//! of the naive join's polls are useful and it is the cheaper of the two
//! (no waker to allocate, no list to lock; the example measures about a
//! third of gather's cost per child in that case). The per-child waker pays
//! for itself as soon as wakes are sparse, which is what waiting is.
//!
//! **What the next chapter needs from this one.** Nothing new: chapter 8's
//! `timeout` is "race a future against a sleep", a gather of two that stops
//! at the first, written directly. It relies on what this chapter relies on:
//! dropping a future cancels it.
//!
//! ## The files of this chapter, in reading order
//!
//! 1. `mod.rs` (this file): the story, then [`gather`] and [`try_gather`],
//!    the two a reader uses most.
//! 2. `children.rs`: the machinery under all four tools: [`ChildWakers`]
//!    (one waker per child, and the list of the children woken) and the
//!    shared core that polls only the woken children.
//! 3. `gather_macro.rs`: [`gather!`](crate::gather!), for futures of
//!    different types, and [`MaybeDone`], the child it keeps in a tuple.
//! 4. `wait.rs`: [`wait`] with [`ReturnWhen`] and [`Waited`], and
//!    [`as_completed`]: the other two "many" tools.
//! 5. `naive_join.rs`: **kept to be measured, not to be used.**
//!    [`NaiveJoinAll`], the naive join that polls every child at every
//!    wake, and [`PollCounter`], the instrument that counts the difference.

#![forbid(unsafe_code)]

mod children;
mod gather_macro;
mod naive_join;
mod wait;

pub use children::ChildWakers;
pub use gather_macro::MaybeDone;
pub use naive_join::{Counted, NaiveJoinAll, PollCounter, naive_join_all};
pub use wait::{AsCompleted, ReturnWhen, Wait, Waited, as_completed, wait};

use std::fmt;
use std::future::{Future, IntoFuture};
use std::ops::ControlFlow;
use std::pin::Pin;
use std::task::{Context, Poll};

use children::Children;

// ---------------------------------------------------------------------------
// gather
// ---------------------------------------------------------------------------

/// Waits for every future and gives their outputs **in input order**:
/// asyncio's `await asyncio.gather(*aws)` (E002-2, E002-6).
///
/// The futures run concurrently, inside the gathering future's own polls
/// (they are not spawned, so they need not be `Send` or `'static`); each is
/// polled at its start and then only when its own waker is woken (see the
/// module docs). The whole takes as long as the slowest child. A gather of
/// nothing is an empty `Vec` at the first poll. Children that return
/// `Result` give `Result`s (asyncio's `return_exceptions=True`); for "stop
/// at the first error", see [`try_gather`]. Dropping the gather drops every
/// child still running.
///
/// ```
/// use std::time::Duration;
/// use tiny_asyncio::{EventLoop, gather, sleep};
///
/// async fn fetch_url(url: &str, secs: u64) -> String {
///     sleep(Duration::from_secs(secs)).await;
///     format!("{url} 데이터")
/// }
///
/// let event_loop = EventLoop::with_virtual_clock();
/// let results = event_loop.run_until_complete(gather([
///     fetch_url("google.com", 3),
///     fetch_url("naver.com", 1),
///     fetch_url("daum.net", 2),
/// ]));
/// // Input order, whatever the completion order; the slowest one's time.
/// assert_eq!(results, ["google.com 데이터", "naver.com 데이터", "daum.net 데이터"]);
/// assert_eq!(event_loop.time(), Duration::from_secs(3));
/// ```
pub fn gather<I>(futures: I) -> Gather<<I::Item as IntoFuture>::IntoFuture>
where
    I: IntoIterator,
    I::Item: IntoFuture,
{
    let children = Children::new(futures);
    let outputs = std::iter::repeat_with(|| None)
        .take(children.len())
        .collect();
    Gather {
        children,
        outputs,
        finished: false,
    }
}

/// The future [`gather`] returns.
#[must_use = "gather does nothing unless awaited"]
pub struct Gather<F: Future> {
    children: Children<F>,
    /// Outputs by input index, filled as children finish: `None` for a
    /// child still running. This is what makes the output come back in
    /// input order whatever the completion order (E002-6).
    outputs: Vec<Option<F::Output>>,
    /// It has returned `Ready`: a poll after that is the caller's bug.
    finished: bool,
}

// Children are boxed and outputs never pinned: moving a `Gather` is fine.
impl<F: Future> Unpin for Gather<F> {}

impl<F: Future> Future for Gather<F> {
    type Output = Vec<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<F::Output>> {
        // `Gather` is `Unpin` (its children are boxed), so it may be
        // reached through a plain `&mut`.
        let this = self.get_mut();
        assert!(
            !this.finished,
            "gather polled after it returned its outputs: a finished future must not be polled again"
        );
        // 1. Poll only the children woken since the last poll (at the first
        //    poll: all of them), each with its own waker; `poll_woken` also
        //    hands the list our waker, so the next child wake reaches us.
        // 2. Each child that finishes: its output goes into its input
        //    position, and the child itself is dropped at once.
        let outputs = &mut this.outputs;
        let _ = this.children.poll_woken(cx, |index, output| {
            outputs[index] = Some(output);
            ControlFlow::Continue(())
        });
        // 3. Some child still runs: it holds its own waker, and will wake
        //    us through the list when it can go on.
        if this.children.running > 0 {
            return Poll::Pending;
        }
        // 4. All done: every position is filled; hand them out in order.
        this.finished = true;
        let outputs = std::mem::take(&mut this.outputs)
            .into_iter()
            .map(|output| output.expect("every child of a finished gather has an output"))
            .collect();
        Poll::Ready(outputs)
    }
}

impl<F: Future> fmt::Debug for Gather<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gather")
            .field("children", &self.children.len())
            .field("running", &self.children.running)
            .finish()
    }
}

// ---------------------------------------------------------------------------
// try_gather
// ---------------------------------------------------------------------------

/// Waits for futures that return `Result`: `Ok` with every value in input
/// order, or the **first error by completion order**, at the moment it
/// happens, with every other child dropped at once (tokio's `try_join!`).
///
/// asyncio's `gather` also raises the first exception at once, but lets the
/// other children (tasks) run on; here they are plain futures that only run
/// while polled, so they are dropped (cancelled) instead. See the module
/// docs. Over nothing: `Ok(vec![])` at once.
///
/// ```
/// use std::time::Duration;
/// use tiny_asyncio::{EventLoop, sleep, try_gather};
///
/// async fn check(secs: u64, ok: bool) -> Result<u64, String> {
///     sleep(Duration::from_secs(secs)).await;
///     if ok { Ok(secs) } else { Err(format!("failed after {secs}s")) }
/// }
///
/// let event_loop = EventLoop::with_virtual_clock();
/// let result = event_loop.run_until_complete(try_gather([
///     check(5, true),
///     check(1, false),
///     check(2, false),
/// ]));
/// assert_eq!(result, Err("failed after 1s".to_string()));
/// // It returned at the first error, not after the 5-second child.
/// assert_eq!(event_loop.time(), Duration::from_secs(1));
/// ```
pub fn try_gather<I, T, E>(futures: I) -> TryGather<<I::Item as IntoFuture>::IntoFuture, T>
where
    I: IntoIterator,
    I::Item: IntoFuture<Output = Result<T, E>>,
{
    let children = Children::new(futures);
    let values = std::iter::repeat_with(|| None)
        .take(children.len())
        .collect();
    TryGather {
        children,
        values,
        finished: false,
    }
}

/// The future [`try_gather`] returns.
#[must_use = "try_gather does nothing unless awaited"]
pub struct TryGather<F: Future, T> {
    children: Children<F>,
    /// The `Ok` values by input index (`None`: not finished yet). Thrown
    /// away at the first error.
    values: Vec<Option<T>>,
    /// It has returned `Ready` (all values, or the first error).
    finished: bool,
}

impl<F: Future, T> Unpin for TryGather<F, T> {}

impl<F, T, E> Future for TryGather<F, T>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<Vec<T>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Vec<T>, E>> {
        let this = self.get_mut();
        assert!(
            !this.finished,
            "try_gather polled after it returned: a finished future must not be polled again"
        );
        let values = &mut this.values;
        let mut error = None;
        // On the first error, `poll_woken` drops every other child before
        // it returns, so they are gone by the time the caller sees `Err`.
        let _ = this.children.poll_woken(cx, |index, output| match output {
            Ok(value) => {
                values[index] = Some(value);
                ControlFlow::Continue(())
            }
            Err(e) => {
                error = Some(e);
                ControlFlow::Break(())
            }
        });
        if let Some(error) = error {
            this.finished = true;
            this.values = Vec::new();
            return Poll::Ready(Err(error));
        }
        if this.children.running > 0 {
            return Poll::Pending;
        }
        this.finished = true;
        let values = std::mem::take(&mut this.values)
            .into_iter()
            .map(|value| value.expect("every child of a finished try_gather has a value"))
            .collect();
        Poll::Ready(Ok(values))
    }
}

impl<F: Future, T> fmt::Debug for TryGather<F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryGather")
            .field("children", &self.children.len())
            .field("running", &self.children.running)
            .finish()
    }
}
