//! # Chapter 13 — a task in one allocation: how production runtimes spawn, and how we know it is sound
//!
//! **The question.** Chapter 5's task is safe and readable, and it costs two
//! allocations: the task (header, a `Mutex` around the stage, the awaiter's
//! waker) and, inside it, the future in a `Box`, because a boxed future can
//! be pinned without `unsafe`. tokio and async-task spawn with *one*
//! allocation and no lock. The benchmark's W1 (a million spawns) shows what
//! the second allocation and the lock cost: more memory per task, more page
//! faults, fewer tasks per second. What does it take to put the future in
//! the task itself, and how do we know the result is sound?
//!
//! **The documents.** None: Part II leaves asyncio's documents behind. In
//! CPython a task is one heap object too (`_asyncio.Task`, a C struct with
//! the coroutine pointer inside), but the coroutine's frame is its own
//! object; Rust can do better because a future's size is known when it is
//! spawned. The workload is the benchmark's W1 (`examples/bench.rs`).
//!
//! **The idea.** A [`RawTask`] is chapter 5's header followed, in the same
//! `Arc`, by two `UnsafeCell`s: the *stage* (the future, then its outcome)
//! and the awaiter's waker. Three promises replace the lock and the box:
//!
//! 1. **Pin kept by hand.** The future lives inside the `Arc`'s allocation,
//!    which never moves while any reference to it lives. We poll it through
//!    `Pin::new_unchecked`, and we never move it out: when it is done (or
//!    cancelled) it is dropped *where it lies* (`ptr::drop_in_place`), and
//!    only then is the outcome written over the same bytes. Chapter 2's Pin
//!    primer promised exactly this: pinning is a promise about a place, and
//!    the one who owns the place keeps it.
//! 2. **The state word is the lock.** Chapter 5's rules ([`state`]) already
//!    say who may touch the stage: until the outcome is in (`OUTCOME`),
//!    only the loop thread, and only while it polls the task (`RUNNING`) or
//!    ends it (`COMPLETE`, set by the loop itself). After `OUTCOME`, only
//!    the one awaiter, which takes the outcome. So no two threads ever
//!    touch the stage at once, and an `UnsafeCell` says so to the compiler
//!    instead of a `Mutex` proving it at run time.
//! 3. **The awaiter's waker changes hands by a bit.** The awaiter (on any
//!    thread) and the loop (at the task's end) both need the waker slot.
//!    Two more state bits arbitrate, as in tokio: `JOIN_WAKER` set means
//!    "the slot is the loop's: read it when you finish"; clear means "the
//!    slot is the awaiter's". The awaiter flips the bit with a
//!    compare-and-swap that fails once `OUTCOME` is set, so after the end
//!    the slot never changes owner again. `JOINING` makes sure there is
//!    only one awaiter at a time (a second one is a bug, caught loudly).
//!
//! Every drop of a user's value here (the future, the output, a panic
//! payload, a waker) runs under `catch_unwind`: a panicking `Drop` is
//! reported on stderr and the loop runs on, as chapter 5 promises.
//!
//! **Where it plugs in.** Nothing of chapter 5's loop changes. A `RawTask`
//! implements the same two traits as chapter 5's task (`Runnable`, what the
//! loop runs; `Joinable`, what a [`TaskRef`] awaits), is registered by the
//! same `LoopCore::register` (chapter 5's `seams.rs`), and is awaited
//! through chapter 6's [`JoinHandle`]. The crate root's `spawn` is this
//! chapter's [`spawn`]; chapter 6's `spawn` still builds chapter 5's task,
//! the first, readable version, and the benchmark runs both.
//!
//! **How we know it is sound.** The tests (`tests/ch13_raw_task.rs`) count
//! every poll and every drop, race wakes against polls from other threads,
//! check the task against chapter 5's on random programs (same traces, same
//! outcomes), and count allocations: one per spawn. They all run under Miri,
//! which checks every access of this file against Rust's aliasing and
//! initialisation rules and against data races, on the executions it
//! explores (see `CHAPTERS.md`, "What Miri checks and what it cannot").
//!
//! **Its limits.** The loop still sees the task as `Arc<dyn Runnable>` (a
//! fat pointer: 16 bytes in the run queue and in the list of live tasks),
//! and chapter 6's `JoinHandle` is two words (16 bytes). A task with its
//! own reference count and vtable pointer in the header (async-task,
//! tokio) makes each of them one pointer; that is the next step, and
//! `CHAPTERS.md` says what it adds.
//!
//! [`state`]: crate::ch05_event_loop::state

use std::cell::UnsafeCell;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use crate::ch03_waker::{ArcWake, waker_ref};
use crate::ch05_event_loop::state::{CANCELLED, COMPLETE, OUTCOME, RUNNING, SCHEDULED};
use crate::ch05_event_loop::{
    Handle, Header, Joinable, LoopCore, Runnable, Runner, RunningAs, TaskFailure, TaskRef, Turn,
    catch_reporting, expect_running_loop, on_loop_thread_of, wake_source,
};
use crate::ch06_join::JoinHandle;
use crate::trace::Event;

/// The awaiter's waker slot is the loop's (set) or the awaiter's (clear).
/// *Rule:* only the awaiter sets or clears it, by a compare-and-swap that
/// fails once `OUTCOME` is set; the loop reads the slot only if the bit
/// was set at the moment it set `OUTCOME`.
pub const JOIN_WAKER: u8 = 1 << 5;
/// An awaiter is inside `poll_output` right now. *Rule:* set on entry,
/// cleared on exit; finding it already set means two awaiters at once,
/// which `JoinHandle` (polled through `&mut`) makes impossible, and which
/// is refused with a panic rather than trusted.
pub const JOINING: u8 = 1 << 6;
/// The last handle is gone: nobody will ever take the outcome. *Rule:* set
/// once, by the last [`TaskRef`] as it drops. Whichever of "set DETACHED"
/// and "set OUTCOME" comes second (the atomic word orders them) drops the
/// outcome: the loop, on its own thread, if the handle went first (a
/// detached task, chapter 5's rule); the handle, as it drops, otherwise.
pub const DETACHED: u8 = 1 << 7;

/// A task in one allocation: chapter 5's header, then the stage and the
/// awaiter's waker, each in an `UnsafeCell` (the state word says who may
/// touch them, see the module docs). Always lives in an `Arc`, which is
/// what keeps the future in place.
pub struct RawTask<F: Future> {
    /// State word, number, slot in the loop's list, the loop's queue.
    header: Header,
    /// The future, then its outcome. Touched only as the module docs'
    /// promise 2 says.
    stage: UnsafeCell<Stage<F>>,
    /// Whoever awaits the outcome (only its latest poll's waker); owned as
    /// `JOIN_WAKER` says (promise 3).
    joiner: UnsafeCell<Option<Waker>>,
}

/// A task's life, in place: its future, then its outcome, then nothing.
enum Stage<F: Future> {
    /// Pinned: never moved out, dropped where it lies.
    Future(F),
    /// The output, the panic's payload, or "cancelled".
    Finished(Result<F::Output, TaskFailure>),
    /// The outcome was handed to the awaiter.
    Taken,
}

// SAFETY: `RawTask` is shared between threads by its wakers and its
// handle. Its atomic header is `Sync` on its own; the two cells are the
// question. The stage is touched by one thread at a time (promise 2 of the
// module docs: the loop thread until `OUTCOME`, then the one awaiter, the
// hand-over ordered by the `AcqRel` write and `Acquire` read of
// `OUTCOME`), and the waker slot likewise (promise 3, by `JOIN_WAKER`).
// Values do move between threads that way (the output is made on the loop
// thread and taken on the awaiter's; the last reference may drop the task
// anywhere), which is why `F` and its output must be `Send`; nothing is
// ever used from two threads at once, so they need not be `Sync`.
#[allow(unsafe_code)]
unsafe impl<F> Sync for RawTask<F>
where
    F: Future + Send,
    F::Output: Send,
{
}

impl<F> RawTask<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    /// Sets SCHEDULED and enqueues, unless the rules say otherwise: the
    /// same as chapter 5's `Task::schedule`, word for word.
    fn schedule(this: &Arc<Self>) {
        let previous = this.header.state.fetch_or(SCHEDULED, Ordering::AcqRel);
        if previous & (SCHEDULED | RUNNING | COMPLETE) == 0 {
            this.header.shared.push(Turn::Task(this.clone()));
        }
    }

    /// Marks the task COMPLETE (no more polls, wakes ignored), clearing
    /// SCHEDULED, RUNNING and CANCELLED as chapter 5's `store(COMPLETE)`
    /// does, but keeping this chapter's two awaiter bits, which belong to
    /// the awaiter.
    fn mark_complete(&self) {
        let keep = JOIN_WAKER | JOINING | OUTCOME | DETACHED;
        let _ = self
            .header
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some((s & keep) | COMPLETE)
            });
    }

    /// Drops the future in place, writes `outcome` over it, sets OUTCOME and
    /// wakes the awaiter, in that order (as chapter 5's `end`): when the
    /// handle resolves, nothing of the future is alive. Called on the loop
    /// thread only, after [`RawTask::mark_complete`].
    #[allow(unsafe_code)]
    fn end(&self, outcome: Result<F::Output, TaskFailure>) {
        // Step 1: is the stage still ours? COMPLETE (set by this thread)
        // keeps every poll away; no OUTCOME yet means no awaiter has been
        // told it may look. Ended already: there is exactly one outcome.
        if self.header.state.load(Ordering::Acquire) & OUTCOME != 0 {
            catch_reporting("a task's outcome panicked while being dropped", || {
                drop(outcome)
            });
            return;
        }
        let stage = self.stage.get();
        // SAFETY: the loop thread set COMPLETE and OUTCOME is clear, so by
        // promise 2 nobody else reads or writes the stage now; reading its
        // variant through the raw pointer is a plain, unshared read.
        if !matches!(unsafe { &*stage }, Stage::Future(_)) {
            catch_reporting("a task's outcome panicked while being dropped", || {
                drop(outcome)
            });
            return;
        }

        // Step 2: drop the future where it lies. Pin's promise: the future
        // is never moved; its memory is reused (step 3) only after its
        // destructor ran. Its `Drop` is user code and may panic: caught.
        // SAFETY: as above, the stage is ours alone; it holds a live
        // `Stage::Future`, dropped exactly once here, and step 3 writes a
        // new value over it without reading (so without dropping) the old
        // one. If the drop panics, the value still counts as dropped.
        catch_reporting("a task's future panicked while being dropped", || unsafe {
            ptr::drop_in_place(stage)
        });

        // Step 3: the outcome goes where the future was.
        // SAFETY: the stage's old value was dropped in step 2, so `write`
        // (which does not drop what it overwrites) is right; still ours.
        unsafe { ptr::write(stage, Stage::Finished(outcome)) };

        // Step 4: publish. `AcqRel`: the awaiter that sees OUTCOME (with
        // `Acquire`) sees the outcome written above; and we see the waker it
        // wrote before it set JOIN_WAKER.
        let before = self.header.state.fetch_or(OUTCOME, Ordering::AcqRel);
        if before & DETACHED != 0 {
            // Nobody can take it (the last handle went before OUTCOME was
            // set, so it left the outcome to us): drop it here, on the loop.
            // SAFETY: with no handle left, no awaiter can ever reach the
            // stage again; it is still the loop thread's alone.
            let outcome = unsafe { std::mem::replace(&mut *stage, Stage::Taken) };
            catch_reporting(
                "a detached task's output panicked while being dropped",
                || drop(outcome),
            );
        }
        if before & JOIN_WAKER != 0 {
            // SAFETY: JOIN_WAKER was set when OUTCOME went in, so by
            // promise 3 the slot is the loop's, for good: the awaiter can
            // clear the bit only while OUTCOME is clear.
            let joiner = unsafe { (*self.joiner.get()).take() };
            if let Some(joiner) = joiner {
                // The awaiter's waker is anyone's code, and may panic.
                catch_reporting("the waker of a task's awaiter panicked", || joiner.wake());
            }
        }
    }

    /// Takes the outcome: the awaiter's side, once OUTCOME is seen.
    #[allow(unsafe_code)]
    fn take_outcome(&self) -> Poll<Result<F::Output, TaskFailure>> {
        // SAFETY: the caller saw OUTCOME (with `Acquire`) and holds
        // JOINING: the loop is done with the stage for good, and no other
        // awaiter is here (promise 2), so this `&mut` is the only access.
        let stage = unsafe { &mut *self.stage.get() };
        match stage {
            // The outcome is not pinned: moving it out is fine.
            Stage::Finished(_) => match std::mem::replace(stage, Stage::Taken) {
                Stage::Finished(outcome) => Poll::Ready(outcome),
                _ => unreachable!("matched Finished just above"),
            },
            Stage::Taken => panic!(
                "JoinHandle for task {} polled after it returned its result: a finished \
                 future must not be polled again",
                self.header.id
            ),
            Stage::Future(_) => unreachable!("OUTCOME is set only after the future was dropped"),
        }
    }

    /// The awaiter asks for its waker slot back: clears JOIN_WAKER unless
    /// the task has ended. `true`: the slot is the awaiter's now.
    fn reclaim_joiner_slot(&self) -> bool {
        self.header
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s & OUTCOME == 0).then_some(s & !JOIN_WAKER)
            })
            .is_ok()
    }

    /// The awaiter hands its waker slot to the loop: sets JOIN_WAKER unless
    /// the task has ended. `true`: the loop will wake the waker in it.
    fn give_joiner_slot(&self) -> bool {
        self.header
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s & OUTCOME == 0).then_some(s | JOIN_WAKER)
            })
            .is_ok()
    }
}

impl<F> ArcWake for RawTask<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn wake_by_ref(this: &Arc<Self>) {
        // As chapter 5's task: a finished task ignores wakes, and so does
        // its trace.
        let header = &this.header;
        header.shared.trace_if(
            header.id,
            || header.state.load(Ordering::Acquire) & COMPLETE == 0,
            || Event::Woken { by: wake_source() },
        );
        RawTask::schedule(this);
    }
}

impl<F> Runnable for RawTask<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    #[allow(unsafe_code)]
    fn run(self: Arc<Self>, core: &LoopCore) {
        let header = &self.header;
        // Step 1: SCHEDULED -> RUNNING, unless complete or cancelled. From
        // here until the poll returns, the stage is this thread's alone.
        let start = header
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                if s & (COMPLETE | CANCELLED) != 0 {
                    None
                } else {
                    Some((s & !SCHEDULED) | RUNNING)
                }
            });
        if let Err(state) = start {
            if state & COMPLETE == 0 {
                // Cancelled: drop the future instead of polling it.
                self.mark_complete();
                header.shared.trace(header.id, || Event::Cancelled);
                let running_as = RunningAs::enter(&header.shared, Runner::Task(header.id));
                self.end(Err(TaskFailure::Cancelled));
                drop(running_as);
                core.forget_task(header.slot);
            }
            return;
        }

        // Step 2: poll the future where it lies. The waker borrows this
        // very `Arc` (chapter 3's `waker_ref`): no count, no allocation.
        let waker = waker_ref(&self);
        let mut cx = Context::from_waker(&waker);
        header.shared.trace(header.id, || Event::PollStart);
        let running_as = RunningAs::enter(&header.shared, Runner::Task(header.id));
        let poll = {
            // What the poll itself may reach (a wake, a spawn, the task's
            // own handle) touches the header and the waker slot, never the
            // stage.
            // SAFETY: this thread set RUNNING above, so by promise 2 no one
            // else touches the stage until the poll returns: the `&mut` is
            // unique.
            let stage = unsafe { &mut *self.stage.get() };
            let Stage::Future(future) = stage else {
                unreachable!("a task that is not COMPLETE still has its future");
            };
            // Pin's promise: the future is inside the `Arc`'s allocation,
            // which does not move while `self` keeps it alive, and this
            // file never moves a `Stage::Future` out (it is only ever
            // dropped in place, in `end` and `drop`).
            // SAFETY: so once pinned here, the future stays at this address
            // until its destructor runs.
            let future = unsafe { Pin::new_unchecked(future) };
            panic::catch_unwind(AssertUnwindSafe(|| future.poll(&mut cx)))
        };
        core.count_poll();
        header.shared.trace(header.id, || Event::PollEnd {
            ready: !matches!(poll, Ok(Poll::Pending)),
        });

        // Step 3: what the poll said.
        let outcome = match poll {
            Ok(Poll::Pending) => {
                // RUNNING -> waiting, or queued again if woken meanwhile.
                let before = header.state.fetch_and(!RUNNING, Ordering::AcqRel);
                if before & SCHEDULED != 0 {
                    header.shared.push(Turn::Task(self.clone()));
                }
                return;
            }
            Ok(Poll::Ready(output)) => Ok(output),
            Err(payload) => Err(TaskFailure::Panicked(payload)),
        };
        self.mark_complete();
        header.shared.trace(header.id, || Event::Done);
        self.end(outcome);
        drop(running_as);
        core.forget_task(header.slot);
    }

    fn close(&self) {
        // The loop is closing (on its own thread, between polls).
        self.mark_complete();
        self.header.shared.trace(self.header.id, || Event::Closed);
        let _running_as = RunningAs::enter(&self.header.shared, Runner::Task(self.header.id));
        self.end(Err(TaskFailure::Cancelled));
    }

    #[allow(unsafe_code)]
    fn drop_unclaimed_outcome(&self) {
        // The last handle is going (on whatever thread it was dropped).
        let before = self.header.state.fetch_or(DETACHED, Ordering::AcqRel);
        if before & OUTCOME == 0 {
            // Not ended: the loop will see DETACHED when it sets OUTCOME.
            return;
        }
        // SAFETY: OUTCOME was set before DETACHED, so the loop has left the
        // stage (and the outcome) to the handles, and this is the last one:
        // nobody else can reach the stage now.
        let stage = unsafe { &mut *self.stage.get() };
        if let Stage::Finished(_) = stage {
            let outcome = std::mem::replace(stage, Stage::Taken);
            catch_reporting(
                "a detached task's output panicked while being dropped",
                || drop(outcome),
            );
        }
    }

    fn header(&self) -> &Header {
        &self.header
    }
}

impl<F> Joinable<F::Output> for RawTask<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    #[allow(unsafe_code)]
    fn poll_output(&self, cx: &mut Context<'_>) -> Poll<Result<F::Output, TaskFailure>> {
        let state = &self.header.state;
        // Step 1: one awaiter at a time (JOINING), cleared however we leave.
        let before = state.fetch_or(JOINING, Ordering::AcqRel);
        assert!(
            before & JOINING == 0,
            "JoinHandle for task {}: polled from two places at once",
            self.header.id
        );
        struct Leave<'a>(&'a std::sync::atomic::AtomicU8);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.fetch_and(!JOINING, Ordering::AcqRel);
            }
        }
        let _leave = Leave(state);

        // Step 2: ended? Take the outcome.
        if before & OUTCOME != 0 {
            return self.take_outcome();
        }
        // Only the loop thread polls, one task at a time: if this task is
        // RUNNING and we are on its loop's thread, we are inside its own
        // poll, waiting for an outcome that could never arrive.
        if before & RUNNING != 0 && on_loop_thread_of(&self.header.shared) {
            panic!(
                "task {} awaits its own output: a task cannot wait for itself to finish",
                self.header.id
            );
        }

        // Step 3: get the waker slot (it is ours unless JOIN_WAKER is set,
        // and we can take it back only while the task has not ended).
        if before & JOIN_WAKER != 0 && !self.reclaim_joiner_slot() {
            // It ended meanwhile; the slot stays the loop's.
            return self.take_outcome();
        }
        // SAFETY: JOIN_WAKER is clear and we hold JOINING, so by promise 3
        // the slot is ours alone: the loop reads it only if JOIN_WAKER was
        // set when it set OUTCOME.
        let slot = unsafe { &mut *self.joiner.get() };
        let stale = match slot {
            Some(old) if old.will_wake(cx.waker()) => None,
            _ => slot.replace(cx.waker().clone()),
        };
        catch_reporting(
            "the stale waker of a task's awaiter panicked while being dropped",
            || drop(stale),
        );

        // Step 4: hand the slot to the loop, unless it ended meanwhile.
        if self.give_joiner_slot() {
            return Poll::Pending;
        }
        // It ended before we could: the slot is still ours; empty it.
        // SAFETY: the compare-and-swap failed, so JOIN_WAKER is still clear
        // and the slot still ours (promise 3).
        let unused = unsafe { (*self.joiner.get()).take() };
        catch_reporting(
            "the waker of a task's awaiter panicked while being dropped",
            || drop(unused),
        );
        self.take_outcome()
    }
}

impl<F: Future> Drop for RawTask<F> {
    /// The last reference is gone (on any thread): drop what is left, each
    /// user value under `catch_unwind`. Normally the stage holds an outcome
    /// nobody took (a detached task) or nothing.
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        let stage = self.stage.get_mut();
        // The outcome is not pinned and may simply be moved out; a future
        // that is somehow still here (a leaked loop, say) is dropped in
        // place, never moved.
        if let Stage::Finished(_) = stage {
            let outcome = std::mem::replace(stage, Stage::Taken);
            catch_reporting("a task's output panicked while being dropped", || {
                drop(outcome)
            });
        } else if let Stage::Future(_) = stage {
            let stage: *mut Stage<F> = stage;
            // SAFETY: `&mut self`: nobody else can reach this task. The
            // future is dropped in place exactly once, and `write` puts a
            // value with no destructor over it without dropping it again,
            // so the field's own drop afterwards does nothing.
            catch_reporting("a task's future panicked while being dropped", || unsafe {
                ptr::drop_in_place(stage)
            });
            // SAFETY: as above; the old value counts as dropped either way.
            unsafe { ptr::write(stage, Stage::Taken) };
        }
        let joiner = self.joiner.get_mut().take();
        catch_reporting(
            "the waker of a task's awaiter panicked while being dropped",
            || drop(joiner),
        );
    }
}

/// Spawns `future` as a one-allocation task on the running loop: the crate
/// root's `spawn` (asyncio's `asyncio.create_task(coro)`). Behaves exactly
/// as chapter 6's [`spawn`](crate::ch06_join::spawn), which builds chapter
/// 5's task: same order, same trace, same outcomes.
///
/// # Panics
/// Outside a running event loop: "there is no running event loop".
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn_on(&expect_running_loop("spawn"), future)
}

/// Spawns `future` as a one-allocation task on the loop behind `handle`.
///
/// # Panics
/// If the loop is closed.
pub fn spawn_on<F>(handle: &Handle, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    JoinHandle::from_task(spawn_task(handle, future))
}

/// Spawns `future` as a one-allocation task and gives chapter 5's
/// [`TaskRef`] (cancel it, take its outcome), as `Handle::spawn_task` does
/// for chapter 5's task.
///
/// # Panics
/// If the loop is closed.
pub fn spawn_task<F>(handle: &Handle, future: F) -> TaskRef<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    // The one allocation: header, future and waker slot in one `Arc`.
    let task = handle.core().register(|header| {
        Arc::new(RawTask {
            header,
            stage: UnsafeCell::new(Stage::Future(future)),
            joiner: UnsafeCell::new(None),
        })
    });
    // A new task is simply "woken" (asyncio's create_task).
    RawTask::schedule(&task);
    TaskRef::from_joinable(task)
}

/// The bytes one task takes on the heap for a future of type `F`: the
/// `Arc`'s two counts and the [`RawTask`] (header, stage, waker slot).
/// Chapter 5's task takes more, in two allocations (see the example).
pub fn task_bytes<F: Future>() -> usize {
    2 * size_of::<usize>() + size_of::<RawTask<F>>()
}

/// The bytes of chapter 5's task header, shared by both tasks.
pub fn header_bytes() -> usize {
    size_of::<Header>()
}
