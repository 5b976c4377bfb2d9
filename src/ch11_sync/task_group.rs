//! `TaskGroup`: asyncio 3.11's `asyncio.TaskGroup`, tasks that end together.
//!
//! The other primitives wait for a resource; a group waits for *tasks*. It
//! spawns its children with chapter 6's `spawn` (so each child is an
//! ordinary task, and the caller gets its ordinary `JoinHandle`), and keeps
//! three things of its own:
//!
//! * a count of the children still running, and the waker of the one task
//!   that [`join`](TaskGroup::join)s, woken when the count reaches zero;
//! * an [`AbortHandle`] per running child (chapter 6), to cancel them;
//! * the failures so far.
//!
//! **What counts as a failure.** A child that *panics*, and nothing else:
//! a panic is Rust's exception, and asyncio's group reacts only to
//! exceptions. A child that returns `Err(e)` has returned a value, which
//! waits in its `JoinHandle` like any other (asyncio: a coroutine that
//! *returns* an exception object has not failed either). A child cancelled
//! from outside (its handle's `abort`) is not a failure, as in asyncio.
//!
//! **How a child reports.** Each child runs inside a small wrapper: its
//! poll is wrapped in `catch_unwind`, so the group hears of a panic the
//! moment it happens, keeps the payload (for [`TaskGroupError`]), cancels
//! every other child at once, and then lets the panic go on (with the
//! message as its payload) so that the child's own `JoinHandle` says
//! "panicked" as usual. A guard in the wrapper counts the child out when
//! its future is dropped, which covers every way a task can end: returned,
//! panicked, cancelled, or dropped with its loop.
//!
//! **Where this differs from asyncio** (see the chapter's "Where asyncio
//! differs" box): there is no `async with` body to cancel, so the task
//! that joins is never cancelled, it only hears the failures from `join`;
//! siblings are cancelled the moment a child panics, where asyncio cancels
//! them from a callback one turn later (so two children failing in the
//! same turn are both reported by asyncio, the first only here); a child
//! spawned into a failing group is cancelled before it runs, where asyncio
//! raises `RuntimeError` in the spawner; and dropping a group that was
//! never joined cancels its children, a case asyncio does not have since
//! `async with` always exits.

use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::{self, AssertUnwindSafe};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::wake;
use crate::ch03_waker::lock;
use crate::ch05_event_loop::{expect_running_loop, panic_message};
use crate::ch06_join::{AbortHandle, JoinError, JoinHandle, spawn_on};

/// asyncio's `asyncio.TaskGroup`: spawn children with
/// [`spawn`](TaskGroup::spawn), wait for all of them with
/// [`join`](TaskGroup::join). The first child to panic cancels the others
/// at once, and `join` reports every panic. Dropping a group that was not
/// joined cancels its children. `Send + Sync`: children may spawn into it
/// through an `Arc`.
///
/// ```
/// use std::time::Duration;
/// use tiny_asyncio::{EventLoop, TaskGroup, sleep};
///
/// let event_loop = EventLoop::with_virtual_clock();
/// event_loop.run_until_complete(async {
///     let group = TaskGroup::new();
///     let slow = group.spawn(async { sleep(Duration::from_secs(5)).await });
///     group.spawn(async {
///         sleep(Duration::from_secs(1)).await;
///         panic!("planned: the child fails")
///     });
///     let error = group.join().await.unwrap_err();
///     assert_eq!(error.failures().len(), 1);
///     // The sibling was cancelled at 1 s, when the other child failed.
///     assert!(slow.await.unwrap_err().is_cancelled());
/// });
/// assert_eq!(event_loop.time(), Duration::from_secs(1));
/// ```
pub struct TaskGroup {
    shared: Arc<Mutex<GroupState>>,
}

struct GroupState {
    /// The running children: task number and a handle to cancel it, by
    /// the slot their wrapper knows (`None`: a free slot).
    children: Vec<Option<(u64, AbortHandle)>>,
    free_slots: Vec<usize>,
    /// Children whose future has not been dropped yet.
    running: usize,
    /// The panics so far, in the order they happened.
    failures: Vec<JoinError>,
    /// Cancelling: a child failed, or the join was given up, or the group
    /// dropped. A child spawned from now on is cancelled at once.
    aborting: bool,
    /// A `join` is waiting (one at a time).
    joining: bool,
    /// A `join` has returned: the group is finished, and takes no children.
    joined: bool,
    /// The waker of the task in `join`.
    joiner: Option<Waker>,
}

impl GroupState {
    /// Starts cancelling every running child: gives back their handles,
    /// to be aborted after unlocking.
    fn abort_all(&mut self) -> Vec<AbortHandle> {
        self.aborting = true;
        self.children
            .iter()
            .flatten()
            .map(|(_, handle)| handle.clone())
            .collect()
    }
}

impl TaskGroup {
    /// An empty group.
    pub fn new() -> TaskGroup {
        TaskGroup {
            shared: Arc::new(Mutex::new(GroupState {
                children: Vec::new(),
                free_slots: Vec::new(),
                running: 0,
                failures: Vec::new(),
                aborting: false,
                joining: false,
                joined: false,
                joiner: None,
            })),
        }
    }

    /// Spawns `future` as a child task on the running loop: asyncio's
    /// `tg.create_task(coro)`. Its `JoinHandle` is the caller's; the group
    /// keeps only the right to cancel it. Into a group that is cancelling
    /// (a child failed), the child is cancelled before it runs.
    ///
    /// # Panics
    /// Outside a running loop, or once the group has been joined (asyncio:
    /// `RuntimeError: TaskGroup is finished`).
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handle = expect_running_loop("TaskGroup::spawn");
        // Step 1: count the child in before it exists, so a join cannot
        // return between the spawn and the bookkeeping, and give it a slot
        // (a free one if any: no allocation once the group has grown).
        let slot = {
            let mut state = lock(&self.shared);
            if state.joined {
                drop(state);
                panic!(
                    "TaskGroup::spawn: this group has been joined and takes no new tasks (asyncio: \
                     RuntimeError: TaskGroup is finished); make a new TaskGroup"
                );
            }
            state.running += 1;
            match state.free_slots.pop() {
                Some(slot) => slot,
                None => {
                    state.children.push(None);
                    state.children.len() - 1
                }
            }
        };
        // Step 2: spawn the wrapped child. It runs nothing yet (a spawn
        // only queues the task), so it cannot fail before step 3.
        let guard = ChildGuard {
            group: self.shared.clone(),
            slot,
        };
        let join = spawn_on(&handle, child(future, guard));
        // Step 3: keep the right to cancel it; if the group is already
        // cancelling (a child failed), use it at once.
        let cancel_now = {
            let mut state = lock(&self.shared);
            state.children[slot] = Some((join.id(), join.abort_handle()));
            state.aborting
        };
        if cancel_now {
            join.abort();
        }
        join
    }

    /// Waits for every child to end: asyncio's exit from `async with
    /// TaskGroup()`. `Ok(())` if none panicked, else [`TaskGroupError`]
    /// with every panic (its payload, to re-raise). Children returning
    /// `Err`, and children cancelled by their handle, are not failures.
    /// Giving up on the join (dropping it before it returns: a timeout, an
    /// abort) cancels the children, as cancelling the task inside asyncio's
    /// `async with` does.
    ///
    /// # Panics
    /// If the group was joined already, or another join is waiting.
    pub fn join(&self) -> TaskGroupJoin<'_> {
        TaskGroupJoin {
            group: self,
            started: false,
            done: false,
        }
    }

    /// How many children have not ended yet.
    pub fn running(&self) -> usize {
        lock(&self.shared).running
    }
}

impl Default for TaskGroup {
    fn default() -> Self {
        TaskGroup::new()
    }
}

impl Drop for TaskGroup {
    /// The case asyncio does not have: a group dropped without a join that
    /// returned (never joined, or its join given up).
    fn drop(&mut self) {
        // Never joined (or the join was given up): nobody will hear these
        // children's results through the group, so they stop here.
        let handles = {
            let mut state = lock(&self.shared);
            if state.joined {
                return;
            }
            state.abort_all()
        };
        for handle in handles {
            handle.abort();
        }
    }
}

impl fmt::Debug for TaskGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared);
        f.debug_struct("TaskGroup")
            .field("running", &state.running)
            .field("failures", &state.failures.len())
            .field("aborting", &state.aborting)
            .field("joined", &state.joined)
            .finish()
    }
}

/// Counts a child out of its group when the child's future is dropped,
/// however it ended.
struct ChildGuard {
    group: Arc<Mutex<GroupState>>,
    /// The child's slot in `GroupState::children`.
    slot: usize,
}

impl ChildGuard {
    /// The child panicked: keep the payload, cancel every other child.
    fn failed(&self, payload: Box<dyn std::any::Any + Send>) {
        let handles = {
            let mut state = lock(&self.group);
            let id = state.children[self.slot].as_ref().map_or(0, |(id, _)| *id);
            state.failures.push(JoinError::panicked(id, payload));
            if state.aborting {
                Vec::new()
            } else {
                let mut handles = state.abort_all();
                handles.retain(|handle| handle.id() != id);
                handles
            }
        };
        // Outside the lock: an abort queues the task, nothing more.
        for handle in handles {
            handle.abort();
        }
    }
}

impl Drop for ChildGuard {
    /// The child's future is being dropped: it returned, panicked, was
    /// cancelled, or its loop closed. In every case it is no longer running;
    /// the last one out wakes the join.
    fn drop(&mut self) {
        let joiner = {
            let mut state = lock(&self.group);
            state.children[self.slot] = None;
            state.free_slots.push(self.slot);
            state.running -= 1;
            if state.running == 0 {
                state.joiner.take()
            } else {
                None
            }
        };
        wake(joiner);
    }
}

/// A child's task: `future`, its poll watched for panics, and the guard
/// that counts it out when the task drops it.
async fn child<F: Future>(future: F, guard: ChildGuard) -> F::Output {
    // `pin!` pins the child inside this task's own future: no allocation.
    let mut future = pin!(future);
    poll_fn(|cx| {
        match panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(payload) => {
                // The panic hook has printed the message already. The group
                // keeps the payload; the task's own handle gets the message.
                let message = panic_message(&*payload);
                guard.failed(payload);
                panic::resume_unwind(Box::new(message))
            }
        }
    })
    .await
}

/// The future [`TaskGroup::join`] returns.
#[must_use = "a join does nothing unless awaited; dropping it cancels the children"]
pub struct TaskGroupJoin<'a> {
    group: &'a TaskGroup,
    /// It has been polled, so it is *the* join of the group.
    started: bool,
    /// It returned.
    done: bool,
}

impl Future for TaskGroupJoin<'_> {
    type Output = Result<(), TaskGroupError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut state = lock(&this.group.shared);
        // The first poll makes this *the* join: a group is joined once,
        // by one task (its one waker slot, `joiner`, says so).
        if !this.started {
            let complaint = if state.joined {
                Some(
                    "the group was joined already; a group is joined once, as an `async with` block exits once",
                )
            } else if state.joining {
                Some("another join of this group is waiting; only one task may join a group")
            } else {
                None
            };
            if let Some(complaint) = complaint {
                drop(state);
                panic!("TaskGroup::join: {complaint}");
            }
            state.joining = true;
            this.started = true;
        }
        assert!(
            !this.done,
            "TaskGroupJoin polled after it returned: a finished future must not be polled again"
        );
        // Children still running (cancelled ones too, until the loop has
        // dropped them): wait for the last `ChildGuard` to wake us.
        if state.running > 0 {
            match &state.joiner {
                Some(old) if old.will_wake(cx.waker()) => {}
                _ => state.joiner = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        // All ended: the group is finished; hand over every failure.
        this.done = true;
        state.joining = false;
        state.joined = true;
        state.joiner = None;
        let failures = std::mem::take(&mut state.failures);
        Poll::Ready(if failures.is_empty() {
            Ok(())
        } else {
            Err(TaskGroupError { failures })
        })
    }
}

impl Drop for TaskGroupJoin<'_> {
    /// A join given up before it returned (its task aborted, a timeout
    /// around it): nobody will hear the children's failures now, so they
    /// are cancelled, as asyncio cancels a group's children when the task
    /// waiting in `__aexit__` is cancelled. A later `join` may still wait
    /// for them to finish cancelling.
    fn drop(&mut self) {
        if !self.started || self.done {
            return;
        }
        // Given up before the children ended: cancel them.
        let handles = {
            let mut state = lock(&self.group.shared);
            state.joining = false;
            state.joiner = None;
            state.abort_all()
        };
        for handle in handles {
            handle.abort();
        }
    }
}

impl fmt::Debug for TaskGroupJoin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroupJoin")
            .field("started", &self.started)
            .field("done", &self.done)
            .finish()
    }
}

/// The children of a [`TaskGroup`] that panicked: asyncio's
/// `ExceptionGroup` from a task group.
pub struct TaskGroupError {
    failures: Vec<JoinError>,
}

impl TaskGroupError {
    /// Every panic, in the order they happened; each a [`JoinError`] with
    /// its task's number, its message and its payload.
    pub fn failures(&self) -> &[JoinError] {
        &self.failures
    }

    /// The failures, to re-raise one with `std::panic::resume_unwind`.
    pub fn into_failures(self) -> Vec<JoinError> {
        self.failures
    }
}

impl fmt::Display for TaskGroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.failures.len();
        write!(
            f,
            "unhandled errors in a TaskGroup ({n} sub-exception{})",
            if n == 1 { "" } else { "s" }
        )?;
        for failure in &self.failures {
            write!(f, "; {failure}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for TaskGroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroupError")
            .field("failures", &self.failures)
            .finish()
    }
}

impl std::error::Error for TaskGroupError {}
