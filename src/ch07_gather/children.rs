//! The machinery under all four tools: one waker per child, and the
//! children polled only when woken.
//!
//! Read it second, after the story and [`gather`](super::gather) in
//! `mod.rs`. [`ChildWakers`] gives each child its own waker (a chapter 3
//! [`ArcWake`] that knows its child's index) and keeps the list of the
//! children woken since the parent last looked; `Children` is the shared
//! core that [`gather`](super::gather), [`try_gather`](super::try_gather),
//! [`wait`](super::wait) and [`as_completed`](super::as_completed) are
//! built on: children of one type, each boxed, polled only when woken.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
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
        //
        // 1. Already queued: the poll this wake asks for is coming anyway.
        if this.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        // 2. Put our index at the back of the woken list, under its lock,
        //    and see whether the parent must be told.
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
        // 3. Outside the lock: waking runs the parent's waker, which may run
        //    arbitrary code (chapter 5's waker only queues the task, but a
        //    hand-written parent's may do anything, even wake us again).
        if let Some(parent) = parent {
            parent.wake();
        }
    }
}

impl ChildWakers {
    /// Wakers for `children` children, all of them woken.
    pub fn new(children: usize) -> ChildWakers {
        // Every index on the list, in input order, and every flag set: the
        // parent's first poll polls each child once, first to last, and a
        // wake before that first poll adds nothing (the child is listed).
        // No parent waker yet: nothing can be woken before the first poll.
        let list = Arc::new(WokenList {
            state: Mutex::new(WokenState {
                woken: (0..children).collect(),
                parent: None,
            }),
        });
        // One `Arc` per child, each holding the list too: a waker that
        // outlives the parent (left behind in a timer) still has a list to
        // write to, and finds no parent waker there (see `Drop`).
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
        // The indices were handled; only the allocation is worth keeping.
        batch.clear();
        // Keep the larger of the two buffers: after a burst of `k` wakes,
        // the next burst of that size swaps in room for `k` and allocates
        // nothing. (The list itself kept the spare we swapped in.)
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
// The shared core: children of one type, polled only when woken
// ---------------------------------------------------------------------------

/// Children of one type, each with its own waker. `gather`, `try_gather`,
/// `wait` and `as_completed` differ only in what they do with an output.
pub(super) struct Children<F: Future> {
    /// `None` once the child has finished (or was handed back by `wait`).
    /// Indexed like the input, so an index from the woken list finds its
    /// child in O(1), and a late wake for a finished child finds `None`.
    futures: Vec<Option<Pin<Box<F>>>>,
    /// Child `i`'s waker is `wakers`' waker `i`.
    wakers: ChildWakers,
    /// How many are still `Some`: the parent is done when this is 0,
    /// without scanning `futures`.
    pub(super) running: usize,
}

impl<F: Future> Children<F> {
    pub(super) fn new<I>(futures: I) -> Children<F>
    where
        I: IntoIterator,
        I::Item: IntoFuture<IntoFuture = F>,
    {
        // Box each child once, here: a boxed future is pinned for good, so
        // it is polled through `as_mut()` without `unsafe`, and moving the
        // `Vec` (or the parent that owns it) never moves a child.
        let futures: Vec<_> = futures
            .into_iter()
            .map(|future| Some(Box::pin(future.into_future())))
            .collect();
        // All of them run, and `ChildWakers::new` lists all of them as
        // woken: the first poll reaches every child.
        let running = futures.len();
        Children {
            wakers: ChildWakers::new(running),
            futures,
            running,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.futures.len()
    }

    /// Polls every child woken since the last call, in wake order, and
    /// hands each that finishes to `on_ready` with its index. If `on_ready`
    /// breaks, the remaining children are dropped at once.
    pub(super) fn poll_woken(
        &mut self,
        cx: &mut Context<'_>,
        mut on_ready: impl FnMut(usize, F::Output) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        // 1. Under one lock: the indices woken since the last poll (all of
        //    them at the first), and our waker for the wakes to come.
        let batch = self.wakers.take_woken(cx.waker());
        let mut flow = ControlFlow::Continue(());
        // 2. Those children only, in the order they were woken.
        for &index in &batch {
            // A finished (or handed back) child woken late, say by a waker
            // that sat in a timer, has nothing left to poll here.
            let Some(Some(future)) = self.futures.get_mut(index) else {
                continue;
            };
            // 3. Poll it with its own waker (never the parent's): when it
            //    can go on, it lists its own index, and only it is polled.
            if let Poll::Ready(output) = self.wakers.poll_child(index, future.as_mut()) {
                // Drop the finished child now: its resources go at once,
                // not when the whole group is done.
                self.futures[index] = None;
                self.running -= 1;
                // 4. The tool decides what an output means: stored by index
                //    (`gather`), or the end of everything (`try_gather`'s
                //    first error).
                if on_ready(index, output).is_break() {
                    flow = ControlFlow::Break(());
                    break;
                }
            }
        }
        // 5. The buffer back, for the next wakes; on a break, the children
        //    not yet done are cancelled (dropped) before we return.
        self.wakers.recycle(batch);
        if flow.is_break() {
            self.drop_all();
        }
        flow
    }

    /// Drops every child still running, in input order.
    fn drop_all(&mut self) {
        // Take the whole list, leaving an empty one: an index woken late
        // then finds no child at all (`get_mut` gives `None`), and a `Vec`
        // drops its elements first to last.
        let futures = std::mem::take(&mut self.futures);
        self.running = 0;
        drop(futures);
    }

    /// Takes the children still running, with their indices, in input order.
    pub(super) fn take_pending(&mut self) -> Vec<(usize, Pin<Box<F>>)> {
        // None is left running here: each pending child goes back to the
        // caller as it is, with its input position as its index, polled no
        // further by us.
        self.running = 0;
        std::mem::take(&mut self.futures)
            .into_iter()
            .enumerate()
            .filter_map(|(index, future)| future.map(|future| (index, future)))
            .collect()
    }
}
