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
//!   a chapter 3 [`ArcWake`] that knows its child's index. Waking it puts
//!   the index on a shared "woken" list and wakes the parent; the parent's
//!   next poll takes the list and polls **only those children**, in the
//!   order they were woken. Every child is polled once at the start and then
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

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, IntoFuture, poll_fn};
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::ch03_waker::{ArcWake, lock, waker_ref};

// ---------------------------------------------------------------------------
// One waker per child
// ---------------------------------------------------------------------------

/// One waker per child, and the list of children woken since the parent
/// last looked: the machinery that lets a parent poll only the children
/// that asked for it.
///
/// Every child starts out woken (it has never been polled). The parent's
/// poll calls [`take_woken`](ChildWakers::take_woken) to get the indices
/// woken since its last poll (in wake order), polls those children with
/// [`poll_child`](ChildWakers::poll_child), and hands the list back with
/// [`recycle`](ChildWakers::recycle) so that its allocation is reused.
///
/// Public because [`gather!`](crate::gather!) expands to code that uses it;
/// a reader can use it to write other combinators.
pub struct ChildWakers {
    /// The list the children's wakers write to; the parent reads it.
    list: Arc<WokenList>,
    /// One waker per child, by index: what `poll_child` hands child `i`.
    wakers: Vec<Arc<ChildWaker>>,
    /// The other half of a double buffer: the parent swaps it with the
    /// shared list, so a steady state allocates nothing.
    spare: Vec<usize>,
}

/// What the children's wakers and the parent share.
struct WokenList {
    /// Locked by a waking child (to push its index) and by the parent (to
    /// take the list and store its waker): never for longer than that.
    state: Mutex<WokenState>,
}

struct WokenState {
    /// Indices of the children woken since the parent last took the list,
    /// in wake order, each at most once.
    woken: Vec<usize>,
    /// The parent's waker from its latest poll (`None` before the first
    /// poll and after the parent is gone).
    parent: Option<Waker>,
}

/// A child's waker: an index and a flag, and the shared list to put the
/// index on.
struct ChildWaker {
    /// Which child this waker belongs to: what it puts on the list.
    index: usize,
    /// The index is on the woken list (or the parent is about to poll this
    /// child). A wake that finds it set does nothing: the poll it asks for
    /// is already coming.
    queued: AtomicBool,
    /// Shared with the parent and every sibling: where the index goes.
    list: Arc<WokenList>,
}

impl ArcWake for ChildWaker {
    fn wake_by_ref(this: &Arc<Self>) {
        // A read-modify-write, so the parent's own swap of this flag (just
        // before the poll) sees whatever the waker wrote before waking.
        if this.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let parent = {
            let mut state = lock(&this.list.state);
            state.woken.push(this.index);
            // Only the first index on an empty list needs to wake the
            // parent: while the list is non-empty, a wake to the parent's
            // latest waker is already on its way.
            if state.woken.len() == 1 {
                state.parent.clone()
            } else {
                None
            }
        };
        // Outside the lock: waking runs the parent's waker, which may run
        // arbitrary code.
        if let Some(parent) = parent {
            parent.wake();
        }
    }
}

impl ChildWakers {
    /// Wakers for `children` children, all of them woken.
    pub fn new(children: usize) -> ChildWakers {
        let list = Arc::new(WokenList {
            state: Mutex::new(WokenState {
                woken: (0..children).collect(),
                parent: None,
            }),
        });
        let wakers = (0..children)
            .map(|index| {
                Arc::new(ChildWaker {
                    index,
                    queued: AtomicBool::new(true),
                    list: Arc::clone(&list),
                })
            })
            .collect();
        ChildWakers {
            list,
            wakers,
            spare: Vec::new(),
        }
    }

    /// How many children there are.
    pub fn len(&self) -> usize {
        self.wakers.len()
    }

    /// Whether there are no children at all.
    pub fn is_empty(&self) -> bool {
        self.wakers.is_empty()
    }

    /// Remembers `parent` as the waker to wake from now on, and takes the
    /// indices of the children woken since the last call, in wake order.
    /// Both happen under one lock: a child woken after this call wakes
    /// `parent`, so no wake falls between the two.
    pub fn take_woken(&mut self, parent: &Waker) -> Vec<usize> {
        {
            // One lock for both steps: a child woken after it sees the new
            // parent waker and an empty list, so it wakes the parent; one
            // woken before is in the batch we take. No wake falls between.
            let mut state = lock(&self.list.state);
            match &state.parent {
                Some(old) if old.will_wake(parent) => {}
                _ => state.parent = Some(parent.clone()),
            }
            // Swap, not copy: the list gets our empty spare buffer, and we
            // get the woken indices without allocating.
            std::mem::swap(&mut state.woken, &mut self.spare);
        }
        std::mem::take(&mut self.spare)
    }

    /// Gives back a list from [`take_woken`](ChildWakers::take_woken), so
    /// its allocation serves the next wakes.
    pub fn recycle(&mut self, mut batch: Vec<usize>) {
        batch.clear();
        if batch.capacity() > self.spare.capacity() {
            self.spare = batch;
        }
    }

    /// Polls child `index` with its own waker. Its `queued` flag is cleared
    /// first, so a wake during this poll (or after it) lists it again.
    ///
    /// # Panics
    /// If `index` is not a child's index.
    pub fn poll_child<F: Future + ?Sized>(
        &self,
        index: usize,
        child: Pin<&mut F>,
    ) -> Poll<F::Output> {
        let Some(waker) = self.wakers.get(index) else {
            panic!(
                "ChildWakers::poll_child: child {index} does not exist (there are {} children)",
                self.wakers.len()
            );
        };
        // Clear the flag *before* the poll: a wake that the child arranges
        // during this very poll (or any time after) must list it again.
        waker.queued.swap(false, Ordering::AcqRel);
        // Borrowed, not cloned: a child that keeps its waker clones it.
        let waker = waker_ref(waker);
        child.poll(&mut Context::from_waker(&waker))
    }
}

impl Drop for ChildWakers {
    fn drop(&mut self) {
        // The parent is gone (finished, or dropped): a child that wakes late
        // (its waker was still in a timer, say) must not wake the parent's
        // task for nothing, nor keep that task alive.
        let parent = lock(&self.list.state).parent.take();
        drop(parent);
    }
}

impl fmt::Debug for ChildWakers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildWakers")
            .field("children", &self.len())
            .field("woken", &lock(&self.list.state).woken.len())
            .finish()
    }
}

// ---------------------------------------------------------------------------
// A child's two lives: still running, or done with its output
// ---------------------------------------------------------------------------

/// A child future that is still running, or its output once it is done.
///
/// Used by [`NaiveJoinAll`] and by the code [`gather!`](crate::gather!)
/// expands to. The future is boxed so it can be polled without `unsafe`
/// (see the module docs); it is dropped as soon as it finishes.
pub enum MaybeDone<F: Future> {
    /// Still running.
    Running(Pin<Box<F>>),
    /// Finished; the output waits to be taken.
    Done(F::Output),
    /// The output was taken.
    Taken,
}

// The output is never pinned (only the boxed future is), so moving a
// `MaybeDone` is fine whatever the output's type.
impl<F: Future> Unpin for MaybeDone<F> {}

impl<F: Future> MaybeDone<F> {
    /// A running child.
    pub fn new<I: IntoFuture<IntoFuture = F>>(future: I) -> MaybeDone<F> {
        MaybeDone::Running(Box::pin(future.into_future()))
    }

    /// Polls the child with `cx` if it is still running. Returns whether it
    /// is done.
    pub fn poll_with(&mut self, cx: &mut Context<'_>) -> bool {
        if let MaybeDone::Running(future) = self {
            match future.as_mut().poll(cx) {
                Poll::Ready(output) => *self = MaybeDone::Done(output),
                Poll::Pending => return false,
            }
        }
        true
    }

    /// Polls the child with its own waker from `wakers` if it is still
    /// running (a finished child woken late is left alone). Returns whether
    /// it is done.
    pub fn poll_child(&mut self, wakers: &ChildWakers, index: usize) -> bool {
        if let MaybeDone::Running(future) = self {
            match wakers.poll_child(index, future.as_mut()) {
                Poll::Ready(output) => *self = MaybeDone::Done(output),
                Poll::Pending => return false,
            }
        }
        true
    }

    /// Whether the child has finished (its output may have been taken).
    pub fn is_done(&self) -> bool {
        !matches!(self, MaybeDone::Running(_))
    }

    /// Takes the output.
    ///
    /// # Panics
    /// If the child has not finished, or its output was already taken.
    pub fn take_output(&mut self) -> F::Output {
        match std::mem::replace(self, MaybeDone::Taken) {
            MaybeDone::Done(output) => output,
            MaybeDone::Running(future) => {
                *self = MaybeDone::Running(future);
                panic!("MaybeDone::take_output: the child has not finished yet")
            }
            MaybeDone::Taken => panic!("MaybeDone::take_output: the output was already taken"),
        }
    }
}

impl<F: Future> fmt::Debug for MaybeDone<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MaybeDone::Running(_) => "MaybeDone::Running",
            MaybeDone::Done(_) => "MaybeDone::Done",
            MaybeDone::Taken => "MaybeDone::Taken",
        })
    }
}

// ---------------------------------------------------------------------------
// The shared core: children of one type, polled only when woken
// ---------------------------------------------------------------------------

/// Children of one type, each with its own waker. `gather`, `try_gather`,
/// `wait` and `as_completed` differ only in what they do with an output.
struct Children<F: Future> {
    /// `None` once the child has finished (or was handed back by `wait`).
    /// Indexed like the input, so an index from the woken list finds its
    /// child in O(1), and a late wake for a finished child finds `None`.
    futures: Vec<Option<Pin<Box<F>>>>,
    /// Child `i`'s waker is `wakers`' waker `i`.
    wakers: ChildWakers,
    /// How many are still `Some`: the parent is done when this is 0,
    /// without scanning `futures`.
    running: usize,
}

impl<F: Future> Children<F> {
    fn new<I>(futures: I) -> Children<F>
    where
        I: IntoIterator,
        I::Item: IntoFuture<IntoFuture = F>,
    {
        let futures: Vec<_> = futures
            .into_iter()
            .map(|future| Some(Box::pin(future.into_future())))
            .collect();
        let running = futures.len();
        Children {
            wakers: ChildWakers::new(running),
            futures,
            running,
        }
    }

    fn len(&self) -> usize {
        self.futures.len()
    }

    /// Polls every child woken since the last call, in wake order, and
    /// hands each that finishes to `on_ready` with its index. If `on_ready`
    /// breaks, the remaining children are dropped at once.
    fn poll_woken(
        &mut self,
        cx: &mut Context<'_>,
        mut on_ready: impl FnMut(usize, F::Output) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let batch = self.wakers.take_woken(cx.waker());
        let mut flow = ControlFlow::Continue(());
        for &index in &batch {
            // A finished (or handed back) child woken late, say by a waker
            // that sat in a timer, has nothing left to poll here.
            let Some(Some(future)) = self.futures.get_mut(index) else {
                continue;
            };
            if let Poll::Ready(output) = self.wakers.poll_child(index, future.as_mut()) {
                // Drop the finished child now: its resources go at once,
                // not when the whole group is done.
                self.futures[index] = None;
                self.running -= 1;
                if on_ready(index, output).is_break() {
                    flow = ControlFlow::Break(());
                    break;
                }
            }
        }
        self.wakers.recycle(batch);
        if flow.is_break() {
            self.drop_all();
        }
        flow
    }

    /// Drops every child still running, in input order.
    fn drop_all(&mut self) {
        let futures = std::mem::take(&mut self.futures);
        self.running = 0;
        drop(futures);
    }

    /// Takes the children still running, with their indices, in input order.
    fn take_pending(&mut self) -> Vec<(usize, Pin<Box<F>>)> {
        self.running = 0;
        std::mem::take(&mut self.futures)
            .into_iter()
            .enumerate()
            .filter_map(|(index, future)| future.map(|future| (index, future)))
            .collect()
    }
}

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

/// Waits for futures **of different types** and gives their outputs as a
/// tuple, in argument order: asyncio's `await asyncio.gather(a, b, c)`
/// where the coroutines return different things. tokio's `join!`.
///
/// `gather!(a, b, …)` is a future; await it. Each child gets its own waker
/// and is polled only when woken, as with [`gather()`](crate::gather()).
/// `gather!()` is `()` at once; `gather!(a)` is a one-element tuple.
///
/// ```
/// use std::time::Duration;
/// use tiny_asyncio::{EventLoop, gather, sleep};
///
/// let event_loop = EventLoop::with_virtual_clock();
/// let (number, text) = event_loop.run_until_complete(async {
///     gather!(
///         async {
///             sleep(Duration::from_secs(2)).await;
///             42
///         },
///         async {
///             sleep(Duration::from_secs(1)).await;
///             "hello"
///         },
///     )
///     .await
/// });
/// assert_eq!((number, text), (42, "hello"));
/// assert_eq!(event_loop.time(), Duration::from_secs(2));
/// ```
#[macro_export]
macro_rules! gather {
    () => {
        ::std::future::ready(())
    };
    ($($future:expr),+ $(,)?) => {
        $crate::__gather_munch!([] [] $($future,)+)
    };
}

/// The engine of [`gather!`]: pairs each future with a list of `_` that
/// picks it out of a tuple by pattern (`(_, _, child, ..)` is the third),
/// then expands to a `poll_fn` over a tuple of [`MaybeDone`]s.
#[doc(hidden)]
#[macro_export]
macro_rules! __gather_munch {
    // One more future: it sits after as many `_` as came before it.
    ([$($done:tt)*] [$($skip:tt)*] $future:expr, $($rest:expr,)*) => {
        $crate::__gather_munch!([$($done)* ([$($skip)*] $future)] [$($skip)* _] $($rest,)*)
    };
    // All munched: `$skip` for each child, `$all` one `_` per child.
    //
    // For `gather!(a, b, c)` the pairs are `([] a)`, `([_] b)`, `([_ _] c)`
    // and `$all` is `_ _ _`. What follows expands, roughly, to:
    //
    //     let mut children = (MaybeDone::new(a), MaybeDone::new(b), MaybeDone::new(c));
    //     let mut wakers = ChildWakers::new(3);
    //     poll_fn(move |cx| {
    //         let batch = wakers.take_woken(cx.waker());
    //         for &index in &batch {
    //             if index == 0 { let (child, ..) = &mut children; child.poll_child(&wakers, 0); }
    //             if index == 1 { let (_, child, ..) = &mut children; child.poll_child(&wakers, 1); }
    //             if index == 2 { let (_, _, child, ..) = &mut children; child.poll_child(&wakers, 2); }
    //         }
    //         wakers.recycle(batch);
    //         if all three are done { Ready((out0, out1, out2)) } else { Pending }
    //     })
    //
    // A tuple, not a `Vec`, because the children have different types; the
    // `_` patterns reach into it by position, and counting the `_` gives
    // each child's index as a constant.
    ([$(([$($skip:tt)*] $future:expr))+] [$($all:tt)+]) => {{
        // The children, each boxed and pinned inside its `MaybeDone`, and
        // one waker per child (their count is the number of `_` in `$all`).
        let mut children = ( $( $crate::ch07_gather::MaybeDone::new($future), )+ );
        let mut wakers = $crate::ch07_gather::ChildWakers::new(
            <[()]>::len(&[$($crate::__gather_unit!($all)),+]),
        );
        // The future itself: a closure polled by `poll_fn`, owning both.
        ::std::future::poll_fn(move |cx| {
            // 1. The indices woken since the last poll (all, at the first),
            //    and from now on wake this parent's latest waker.
            let batch = wakers.take_woken(cx.waker());
            for &index in &batch {
                // 2. One `if` per child, comparing with its constant index:
                //    only the woken ones are polled, each with its own
                //    waker. A child already done ignores the poll.
                $(
                    if index == <[()]>::len(&[$($crate::__gather_unit!($skip)),*]) {
                        let ( $($skip,)* child, .. ) = &mut children;
                        child.poll_child(&wakers, index);
                    }
                )+
            }
            // 3. Give the list's buffer back, for the next wakes.
            wakers.recycle(batch);
            // 4. Done when every child is: `a && b && c`, unrolled.
            let all_done = $( {
                let ( $($skip,)* child, .. ) = &children;
                child.is_done()
            } )&&+;
            // 5. Then the outputs, taken in argument order into a tuple.
            if all_done {
                ::std::task::Poll::Ready(( $( {
                    let ( $($skip,)* child, .. ) = &mut children;
                    child.take_output()
                }, )+ ))
            } else {
                ::std::task::Poll::Pending
            }
        })
    }};
}

/// Turns any token into `()`, to count tokens with `[(), (), …].len()`.
#[doc(hidden)]
#[macro_export]
macro_rules! __gather_unit {
    ($token:tt) => {
        ()
    };
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

// ---------------------------------------------------------------------------
// The naive join, kept to be measured
// ---------------------------------------------------------------------------

/// The naive way to wait for many futures, kept to be measured against
/// [`gather`]: every child gets the **parent's** waker, so when the parent
/// is woken it cannot tell which child woke it, and it polls **every**
/// unfinished child. Correct, same outputs, but `O(n)` polls per wake and
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
/// input order, like [`gather`], at a much higher price in polls.
pub fn naive_join_all<I>(futures: I) -> NaiveJoinAll<<I::Item as IntoFuture>::IntoFuture>
where
    I: IntoIterator,
    I::Item: IntoFuture,
{
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
        // Every unfinished child, every time: this loop is the O(n) per wake.
        let mut all_done = true;
        for child in &mut this.children {
            all_done &= child.poll_with(cx);
        }
        if !all_done {
            return Poll::Pending;
        }
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
/// measures [`NaiveJoinAll`] against [`gather`] with. Clones share the count.
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
        self.polls.fetch_add(1, Ordering::Relaxed);
        Pin::new(&mut self.future).poll(cx)
    }
}
