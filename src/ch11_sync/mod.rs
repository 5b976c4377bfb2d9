//! # Chapter 11 — taking turns: `Lock`, `Event`, `Semaphore`, `Queue`, `TaskGroup`
//!
//! **Part II begins here.** Part I followed the documents up to `gather`
//! and `wait_for`. The asyncio programs their readers write next share
//! things between tasks: a `Queue` between a producer and a consumer, a
//! `Semaphore` to fetch a few at a time, a `Lock` around a shared total, an
//! `Event` to say "ready", and since Python 3.11 a `TaskGroup` that waits
//! for its children and cancels them when one fails.
//!
//! **The question.** In a program with threads, "wait for your turn" means
//! *block*: the thread sleeps in the kernel until the lock is free. On an
//! event loop nobody may block, since one blocked task would stop every
//! task. So what does waiting for your turn mean when nobody blocks?
//!
//! **The idea.** It means what every wait in this book means: return
//! `Pending`, and leave a [`Waker`] with whoever will know
//! when your turn has come. Each primitive here is a little state (a flag, a
//! count, a buffer of items) plus a **FIFO list of the wakers of the tasks
//! waiting on it**, the `WaitList` below, under one `std::sync::Mutex`:
//!
//! | primitive | its state | who waits | what ends a wait |
//! |---|---|---|---|
//! | [`Lock`] (`lock.rs`) | locked or not | tasks that want it | a release hands it to the first |
//! | [`Event`] (`event.rs`) | set or not | tasks waiting for "set" | `set` wakes them all |
//! | [`Semaphore`] (`semaphore.rs`) | a count of permits | tasks that want one | a release hands it to the first |
//! | [`Queue`] (`queue.rs`) | a buffer of items, a count of unfinished ones | getters; putters (when full); joiners | a put, a get, the last `task_done` |
//! | [`TaskGroup`] (`task_group.rs`) | its children | the one that joins | the last child ending |
//!
//! Read the files in that order: the lock is the smallest case of the idea,
//! the event the broadcast case, the semaphore the lock with a count, the
//! queue two of those facing each other; the task group waits on tasks
//! rather than on a resource, through chapter 6's `JoinHandle`.
//!
//! ## The rules every primitive keeps
//!
//! 1. **First come, first served, and no barging.** Waiters are served in
//!    the order they started waiting. When a lock, a permit, an item or a
//!    slot becomes free while someone waits, it is *handed* to the first
//!    waiter on the spot (its node in the list is marked "notified"): a
//!    newcomer that arrives before the woken task gets its turn finds
//!    nothing free, and queues behind. (asyncio's `Lock`, and its
//!    `Semaphore` since 3.11, are fair the same way; its `Queue` is not.)
//! 2. **A waiter that gives up loses nothing and takes nothing.** A waiting
//!    future can be dropped at any time: a `timeout` around it ran out, or
//!    its task was aborted. Its `Drop` takes its node out of the list; if
//!    the node had already been handed something, the drop hands it on to
//!    the next waiter (or gives it back). Nothing is lost, nothing is given
//!    twice. What a waiter is handed is taken only when its future returns
//!    `Ready`, so a dropped waiter has not half-taken anything.
//! 3. **Wakes only enqueue.** A release, a `set` or a `put` calls `wake` on
//!    the chosen waiter's `Waker`, which (chapter 5) puts its task in the
//!    run queue. Nobody polls anybody inline.
//! 4. **No user code under our lock.** A `Waker` may be anyone's code: it
//!    may panic, or call back into the very primitive that is waking it.
//!    So the wakers to wake are taken out of the list under the lock and
//!    woken after it is released (`wake_all`), and the state is already
//!    consistent by then: a panicking waker cannot leave it half-changed,
//!    and the other wakers of the same batch are still woken.
//! 5. **Misuse says what went wrong**, in asyncio's words where asyncio has
//!    them: a lock released twice, `task_done` called too often.
//!
//! ## The cost of a wait
//!
//! A wait allocates nothing in the steady state: a waiter is a *node* in
//! a `Vec` owned by the list, found by its index, and freed nodes are
//! reused (a slab). The nodes are linked in FIFO order by index, so a
//! waiter that gives up leaves the middle of the list in constant time.
//! A waiting future stores its waker once, and again only when the task
//! polling it changes (`Waker::will_wake`, chapter 3's lesson from tokio's
//! tutorial: only the latest poll's waker is valid).
//!
//! ## Limits, on purpose
//!
//! * These are asyncio's primitives for tasks on *one* event loop. They are
//!   `Send + Sync` (shared through an `Arc`, woken from any thread), but
//!   they never block a thread: there is no blocking `lock()` for code
//!   outside the loop (use `std::sync::Mutex` there).
//! * A waiting task that nobody will ever wake (a consumer whose producers
//!   are all gone) waits for ever, as in asyncio. On the virtual clock the
//!   loop reports it as chapter 5's deadlock.
//! * Not here: `Condition`, `BoundedSemaphore`, `Barrier`, `shield`, and
//!   `Queue.shutdown` (3.13); see the chapter's section in `CHAPTERS.md`.
//!
//! **What the next chapter needs from this one.** Nothing: chapter 12
//! waits on sockets, through the same `Waker` seam.

#![forbid(unsafe_code)]

use std::panic::{self, AssertUnwindSafe};
use std::task::Waker;

mod event;
mod lock;
mod queue;
mod semaphore;
mod task_group;

pub use event::{Event, EventWait};
pub use lock::{Lock, LockFuture, LockGuard};
pub use queue::{Queue, QueueEmpty, QueueFull, QueueGet, QueueJoin, QueuePut};
pub use semaphore::{Acquire, Semaphore, SemaphorePermit};
pub use task_group::{TaskGroup, TaskGroupError, TaskGroupJoin};

/// Where a waiter's node is in the list: its index in the list's `Vec`.
///
/// Only the waiting future that got the id ever frees its node (in its
/// `poll`, once served, or in its `Drop`), so an id never outlives its
/// node and can never name somebody else's node: no generation counter is
/// needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WaiterId(usize);

/// "No node": the end of a link.
const NIL: usize = usize::MAX;

/// The shared FIFO list of waiters that every primitive of this chapter
/// keeps, under its own lock.
///
/// A waiter is **waiting** (in the linked FIFO, in arrival order) or
/// **notified** (taken out of the FIFO and handed its turn, its waker
/// woken; the node stays allocated until its future comes back for it, so
/// the future can see that it was served). The primitive decides what a
/// turn means (a lock, a permit, an item, a wake-up); the list only keeps
/// the order and the wakers.
pub(crate) struct WaitList {
    /// Every node, waiting, notified or free (a slab).
    nodes: Vec<Node>,
    /// The first and last waiting node (`NIL` when none waits).
    head: usize,
    tail: usize,
    /// The first free node, the free nodes chained through `next`.
    free: usize,
    /// How many nodes are waiting (not notified, not free).
    waiting: usize,
}

struct Node {
    /// Waiting: the waker of the latest poll. Taken when the node is
    /// notified (to be woken outside the lock) or freed.
    waker: Option<Waker>,
    state: NodeState,
    /// Links to the neighbours in the FIFO while waiting; `next` also
    /// chains the free list.
    prev: usize,
    next: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeState {
    Free,
    Waiting,
    Notified,
}

impl WaitList {
    /// An empty list; allocates nothing until the first waiter.
    pub(crate) const fn new() -> WaitList {
        WaitList {
            nodes: Vec::new(),
            head: NIL,
            tail: NIL,
            free: NIL,
            waiting: 0,
        }
    }

    /// How many are waiting (notified nodes do not count: they have been
    /// served, and only wait for their task's turn to run).
    pub(crate) fn len(&self) -> usize {
        self.waiting
    }

    /// Adds a waiter at the back, with the waker of the poll that asked.
    pub(crate) fn push(&mut self, waker: &Waker) -> WaiterId {
        let node = Node {
            waker: Some(waker.clone()),
            state: NodeState::Waiting,
            prev: self.tail,
            next: NIL,
        };
        // Reuse a freed node if there is one: no allocation per wait once
        // the list has grown to the most waiters it ever had at once.
        let index = if self.free != NIL {
            let index = self.free;
            self.free = self.nodes[index].next;
            self.nodes[index] = node;
            index
        } else {
            self.nodes.push(node);
            self.nodes.len() - 1
        };
        // Link it in after the old tail.
        if self.tail == NIL {
            self.head = index;
        } else {
            self.nodes[self.tail].next = index;
        }
        self.tail = index;
        self.waiting += 1;
        WaiterId(index)
    }

    /// Whether the waiter has been notified (handed its turn).
    pub(crate) fn is_notified(&self, id: WaiterId) -> bool {
        self.nodes[id.0].state == NodeState::Notified
    }

    /// Keeps the waker of the latest poll of a waiting node. Cloning a
    /// waker costs an atomic increment, so it is done only when the waker
    /// changed (the future moved to another task, or a combinator such as
    /// chapter 7's `gather` polls it with a waker of its own). Gives back
    /// the old waker, for the caller to drop after unlocking.
    #[must_use = "drop the old waker after releasing the lock"]
    pub(crate) fn update_waker(&mut self, id: WaiterId, waker: &Waker) -> Option<Waker> {
        let node = &mut self.nodes[id.0];
        match &node.waker {
            Some(old) if old.will_wake(waker) => None,
            _ => node.waker.replace(waker.clone()),
        }
    }

    /// Hands the first waiter its turn: it leaves the FIFO, is marked
    /// notified, and its waker is given back to be woken outside the lock.
    /// `None` if nobody waits.
    #[must_use = "wake the waker after releasing the lock"]
    pub(crate) fn notify_first(&mut self) -> Option<Waker> {
        let index = self.head;
        if index == NIL {
            return None;
        }
        self.unlink(index);
        let node = &mut self.nodes[index];
        node.state = NodeState::Notified;
        node.waker.take()
    }

    /// Hands every waiter its turn (an `Event` being set), adding their
    /// wakers to `wakers` in FIFO order.
    pub(crate) fn notify_all(&mut self, wakers: &mut Vec<Waker>) {
        wakers.reserve(self.waiting);
        while let Some(waker) = self.notify_first() {
            wakers.push(waker);
        }
    }

    /// Frees a waiter's node, waiting or notified; says whether it had
    /// been notified (so that the primitive can hand the turn on), and
    /// gives back its waker, for the caller to drop after unlocking.
    pub(crate) fn remove(&mut self, id: WaiterId) -> (bool, Option<Waker>) {
        let index = id.0;
        let state = self.nodes[index].state;
        debug_assert_ne!(state, NodeState::Free, "a waiter id outlived its node");
        if state == NodeState::Waiting {
            self.unlink(index);
        }
        let node = &mut self.nodes[index];
        node.state = NodeState::Free;
        let waker = node.waker.take();
        node.next = self.free;
        self.free = index;
        (state == NodeState::Notified, waker)
    }

    /// Takes a waiting node out of the FIFO (its state is the caller's).
    fn unlink(&mut self, index: usize) {
        let (prev, next) = (self.nodes[index].prev, self.nodes[index].next);
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.nodes[next].prev = prev;
        }
        self.waiting -= 1;
    }
}

/// Wakes every waker, in order, *after* the caller released its lock.
///
/// A waker is somebody else's code and may panic. If one does, the others
/// are still woken (the primitive's state is already consistent, and their
/// tasks must not be stranded), and then the first panic is passed on to
/// whoever released, set or put. If that code is itself unwinding from a
/// panic (a guard dropped during a panic), a second panic would abort the
/// process, so the waker's panic is only reported on stderr.
pub(crate) fn wake_all(wakers: impl IntoIterator<Item = Waker>) {
    let mut first_panic = None;
    for waker in wakers {
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| waker.wake())) {
            first_panic.get_or_insert(payload);
        }
    }
    if let Some(payload) = first_panic {
        if std::thread::panicking() {
            eprintln!(
                "tiny-asyncio: a waker panicked while a guard was dropped during a panic: {}",
                crate::ch05_event_loop::panic_message(&*payload)
            );
        } else {
            panic::resume_unwind(payload);
        }
    }
}

/// [`wake_all`] for at most one waker (the common case: a lock handed on).
pub(crate) fn wake(waker: Option<Waker>) {
    if waker.is_some() {
        wake_all(waker);
    }
}
