//! The run queue: a FIFO of turns that wakes push to, from any thread.
//!
//! Read it fourth. A wake only ever calls [`Shared::push`]; the loop takes
//! everything queued at the start of a pass ([`Shared::take_remote`] and the
//! local half) and polls it in order.
//!
//! The queue has two halves, and reading them as one FIFO queue is right:
//! wakes on the loop's own thread land in a thread-local queue without a
//! lock; wakes from other threads take the shared queue's lock. Each local
//! push first moves whatever other threads queued before it, which is what
//! keeps the two halves in one order.
//!
//! A wake's path, [`Shared::push`], step by step:
//!
//! 1. On the loop's thread, while that loop runs: move the remote turns
//!    queued so far to the local half, then append this turn there. No
//!    lock, and no rousing: the loop is awake, it is the one waking.
//! 2. Anywhere else (another thread, or a thread-local's destructor): lock
//!    the remote half. If the loop is closed, drop the turn; otherwise
//!    append it, raise `has_remote`, and take the `parked` flag.
//! 3. After unlocking, if `parked` was set, rouse the sleeping loop.
//!
//! A pass's path, in `run_until_complete`: swap the local half out, then
//! [`Shared::take_remote`] appends the remote half (skipping its lock when
//! `has_remote` is down). Between two runs, [`LocalQueueGuard`] hands what
//! is left in the local half to the front of the remote half.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::ch03_waker::{Signal, lock};
use crate::ch04_timer::Clock;
use crate::trace::Recorder;

use super::task::Runnable;

/// What the loop thread and waking threads share: the run queue, and what
/// a wake needs besides (how to rouse the loop, the trace).
///
/// The queue has two halves. Wakes from *other* threads (the timer thread,
/// a pool thread) go to `queue`, under its lock. Wakes on the loop's own
/// thread while it runs (a task waking another, a spawn, a virtual timer)
/// go to a thread-local queue that needs no lock at all (`LOCAL_QUEUE`).
/// Each pass of the loop takes both. The split is only a speed-up: most
/// wakes happen on the loop thread, and a lock per wake was the biggest
/// single cost of a wake.
///
/// Every task's header holds an `Arc` of this, and so does every waker
/// through its task: a wake from any thread reaches the queue without
/// going through the loop, which is not `Send`.
pub(crate) struct Shared {
    /// The half of the run queue that other threads push to.
    pub(super) queue: Mutex<RemoteQueue>,
    /// Whether `queue` may hold turns: lets a pass skip the lock when
    /// no other thread woke anything. Written under the lock, read without
    /// it. A stale `false` only delays a turn: the next pass (or the next
    /// local push) takes it, and the idle looks under the lock before it
    /// sleeps, so the turn is never left behind.
    pub(super) has_remote: AtomicBool,
    /// The main future's turn is queued: its SCHEDULED bit (at most once
    /// in the queue, like a task). Set by `push_main`, cleared by the loop
    /// just before it polls the main future.
    pub(super) main_scheduled: AtomicBool,
    /// Where the loop thread sleeps when it has nothing to do, unless an
    /// idler is installed below.
    pub(super) signal: Signal,
    /// How the loop idles, if not on `signal`: set at most once (chapter
    /// 12's selector, see [`Idler`](super::Idler)); read through
    /// `Shared::idler`.
    pub(super) idler: OnceLock<Box<dyn super::Idler>>,
    /// Outside work that has promised to wake a task (see [`KeepAwake`]).
    pub(super) outside_work: AtomicUsize,
    /// The loop's clock, for timestamps of trace records.
    pub(super) clock: Clock,
    /// The trace of what the loop did (appendix module `trace`); off by
    /// default, and then every hook below costs one atomic load.
    pub(super) trace: Recorder,
}

/// The locked half of the run queue, and the two flags that must change
/// together with it.
pub(super) struct RemoteQueue {
    /// Turns queued by other threads, oldest first.
    pub(super) turns: VecDeque<Turn>,
    /// The loop thread is asleep (or about to be) on `signal`; whoever
    /// enqueues must notify it. Kept under the queue's lock, so "queue is
    /// empty, I will sleep" and "I enqueued, is it asleep?" cannot miss each
    /// other: that is what makes a lost wake-up impossible.
    pub(super) parked: bool,
    /// The loop is closed: wakes enqueue nothing any more.
    pub(super) closed: bool,
}

/// One turn in the run queue: a task, or the main future.
pub(crate) enum Turn {
    /// Poll the future given to `run_until_complete`. It has no task of its
    /// own (it may borrow from the caller, so it cannot be `'static`), so
    /// its turn is this marker, and `Shared::main_scheduled` keeps it
    /// queued at most once.
    Main,
    /// Run one turn of this task (the turn owns one reference to it).
    Task(Arc<dyn Runnable>),
}

impl Shared {
    /// Puts a turn at the back of the queue and rouses the loop thread if
    /// it sleeps. Never blocks for long, never polls: safe from any thread.
    /// (The three steps are in the module's doc.)
    pub(crate) fn push(&self, turn: Turn) {
        // 1. On the loop's own thread, while it runs: no lock, no wake-up.
        // `try_with`, not `with`: a wake may come from a thread-local's
        // destructor while its thread exits, after LOCAL_QUEUE is gone; then
        // it is simply a wake from another thread, and takes the lock below.
        let mut turn = Some(turn);
        let _ = LOCAL_QUEUE.try_with(|local| local.try_push(self, &mut turn));
        let Some(turn) = turn else {
            return;
        };
        // 2. From another thread (or a thread-local destructor): lock,
        // push, and learn under the same lock whether the loop is asleep.
        // Taking `parked` (leaving it false) means one rouse per sleep.
        let wake_loop = {
            let mut queue = lock(&self.queue);
            if queue.closed {
                false
            } else {
                queue.turns.push_back(turn);
                self.has_remote.store(true, Ordering::Release);
                std::mem::take(&mut queue.parked)
            }
        };
        // 3. Notify after unlocking: the loop, once awake, wants the lock
        // first.
        if wake_loop {
            self.idler().rouse();
        }
    }

    /// Queues the main future's turn, unless it is queued already.
    pub(super) fn push_main(&self) {
        if !self.main_scheduled.swap(true, Ordering::AcqRel) {
            self.push(Turn::Main);
        }
    }

    /// Moves everything other threads queued to the back of `batch`. When
    /// no other thread woke anything (the common case), this is one atomic
    /// load and no lock.
    pub(super) fn take_remote(&self, batch: &mut VecDeque<Turn>) {
        if self.has_remote.load(Ordering::Acquire) {
            let mut queue = lock(&self.queue);
            batch.extend(queue.turns.drain(..));
            self.has_remote.store(false, Ordering::Release);
        }
    }
}

/// The lock-free half of the run queue, for the loop running on this
/// thread (one at most: loops do not nest).
pub(super) struct LocalQueue {
    /// The address of the running loop's `Shared`, or 0. An address, not a
    /// reference: only compared, never followed, so the local queue needs
    /// no lifetime and no reference count for it.
    pub(super) owner: Cell<usize>,
    /// Turns queued on this thread while its loop runs, oldest first.
    pub(super) turns: RefCell<VecDeque<Turn>>,
}

impl LocalQueue {
    /// Takes `turn` into this local queue if it belongs to the loop that
    /// runs on this thread; otherwise leaves it in place for the shared
    /// queue.
    pub(super) fn try_push(&self, shared: &Shared, turn: &mut Option<Turn>) {
        if self.owner.get() == std::ptr::from_ref(shared) as usize {
            let mut turns = self.turns.borrow_mut();
            // Keep FIFO across the two halves: a wake from another thread
            // that happened before this one (so its flag is visible here)
            // must run first. It costs one atomic load per local wake.
            shared.take_remote(&mut turns);
            turns.extend(turn.take());
        }
    }
}

thread_local! {
    /// See [`Shared`]: wakes on the loop's thread land here.
    pub(super) static LOCAL_QUEUE: LocalQueue = const {
        LocalQueue {
            owner: Cell::new(0),
            turns: RefCell::new(VecDeque::new()),
        }
    };
}

/// Makes this thread's local queue serve a loop while it runs; afterwards,
/// hands what is left in it to the shared queue, so that nothing queued is
/// lost between two `run_until_complete` calls, and the order is kept.
pub(super) struct LocalQueueGuard<'a> {
    pub(super) shared: &'a Shared,
}

impl<'a> LocalQueueGuard<'a> {
    pub(super) fn enter(shared: &'a Shared) -> Self {
        LOCAL_QUEUE.with(|local| local.owner.set(std::ptr::from_ref(shared) as usize));
        LocalQueueGuard { shared }
    }
}

impl Drop for LocalQueueGuard<'_> {
    fn drop(&mut self) {
        let leftovers = LOCAL_QUEUE.with(|local| {
            local.owner.set(0);
            std::mem::take(&mut *local.turns.borrow_mut())
        });
        if !leftovers.is_empty() {
            // The leftovers go in *front* of what other threads queued: every
            // local push first moved the remote turns queued before it, so
            // whatever is still in the shared queue came after all of them.
            let mut leftovers = leftovers;
            let mut queue = lock(&self.shared.queue);
            leftovers.append(&mut queue.turns);
            queue.turns = leftovers;
            self.shared.has_remote.store(true, Ordering::Release);
        }
    }
}
