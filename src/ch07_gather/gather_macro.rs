//! `gather!`: waiting for a few futures of different types, as a tuple.
//!
//! Read it third, after `children.rs`: the macro expands to the same
//! "poll only the woken children" loop, written out for a tuple instead of
//! a `Vec`, with one [`MaybeDone`] per child. The macro is exported at the
//! crate root (`tiny_asyncio::gather!`); its expansion reaches the helpers
//! through their public paths (`tiny_asyncio::ch07_gather::MaybeDone`).

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};

use super::ChildWakers;

// ---------------------------------------------------------------------------
// A child's two lives: still running, or done with its output
// ---------------------------------------------------------------------------

/// A child future that is still running, or its output once it is done.
///
/// Used by [`NaiveJoinAll`](super::NaiveJoinAll) and by the code
/// [`gather!`](crate::gather!) expands to. The future is boxed so it can be
/// polled without `unsafe` (see the chapter's docs, in `mod.rs`); it is
/// dropped as soon as it finishes.
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
