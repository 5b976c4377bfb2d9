//! The seams: what later chapters and the appendices plug into the loop.
//!
//! **Skip this file on a first reading.** Nothing here changes how the loop
//! takes turns; it only lets other pieces attach to it:
//!
//! * [`KeepAwake`] ([`Handle::keep_awake`]): outside work (chapter 9's pool)
//!   that will wake a task holds the virtual clock still meanwhile.
//! * [`Handle::resource`]: a loop keeps one value per type, dropped when it
//!   closes (chapter 9's default thread pool).
//! * [`Handle::timer`]: the loop's timer, for chapter 4's `sleep`.
//! * [`Idler`] ([`Handle::set_idler`]): how the loop sleeps when nothing is
//!   queued, and how a wake from another thread rouses it. The default is
//!   chapter 3's condvar [`Signal`]; chapter 12 installs its selector, so
//!   that the loop's idle becomes a wait on sockets too.
//! * The trace hooks: the loop reports what it does to the appendix module
//!   [`trace`](crate::trace) when tracing is on, for the pictures. Off,
//!   each hook is one atomic load. `Shared::trace` keeps a record;
//!   `Runner` and `RunningAs` mark who runs on the loop thread right now
//!   (a task, the timer, the idler), so that a wake can say who woke
//!   (`wake_source`); [`TraceSink`] ([`Handle::tracer`]) lets other
//!   threads record too. These are the lines `mod.rs` and `task.rs` tell
//!   you to read past; this is where they lead.
//! * The task seam, for chapter 13's one-allocation task: `LoopCore::register`
//!   puts a task built elsewhere in the loop's list of live tasks, given the
//!   [`Header`] this loop made for it. Such a task implements `Runnable` (the
//!   loop runs it) and `Joinable` (its [`TaskRef`] takes its outcome), obeys
//!   the rules of [`state`](super::state), and reports to the trace as
//!   `task.rs` does. Those items are `pub(crate)` for it, re-exported from
//!   `mod.rs`; nothing outside the crate sees them. The small helpers at
//!   the end (`LoopCore::count_poll`, `Handle::core`,
//!   `TaskRef::from_joinable`, `on_loop_thread_of`) are the rest of what
//!   such a task needs from this chapter.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::ch03_waker::Signal;
use crate::ch04_timer::{Timer, on_timer_thread};
use crate::trace::{Event, Record, Trace, WakeSource};

use super::LoopCore;
use super::run_queue::Shared;
use super::running::{Handle, RUNNING_LOOP};
use super::task::{Header, Joinable, Runnable, TaskRef};

/// Who is running on the loop thread right now, as the trace sees it.
#[derive(Clone, Copy)]
pub(crate) enum Runner {
    /// The main future (trace number [`trace::MAIN`](crate::trace::MAIN)) or
    /// a task, by its number.
    Task(u64),
    /// The loop is firing virtual timers: their wakes come from the timer.
    Timer,
    /// The loop is in its [`Idler`] (chapter 12's selector): a wake now
    /// comes from a socket found ready.
    Idler,
}

thread_local! {
    /// On the loop thread, while tracing: who is running right now, so a
    /// wake can say who woke. `None` off the loop thread, or between turns.
    static NOW_RUNNING: Cell<Option<Runner>> = const { Cell::new(None) };
}

/// Who is waking, seen from the thread that calls `wake`.
///
/// On the loop thread the answer is whoever runs right now (a task, the
/// main future, or the loop firing virtual timers). Off it, it is the
/// thread: the timer thread, or a named thread such as a pool worker.
/// Called only while tracing, so its string allocations cost nothing when
/// tracing is off.
pub(crate) fn wake_source() -> WakeSource {
    // `try_with`: a wake may come from a thread-local destructor while this
    // thread exits, when NOW_RUNNING may already be gone.
    match NOW_RUNNING.try_with(Cell::get).ok().flatten() {
        Some(Runner::Timer) => WakeSource::Timer,
        Some(Runner::Task(task)) => WakeSource::Task(task),
        Some(Runner::Idler) => WakeSource::Socket,
        // Off the loop thread: the timer thread (chapter 4's real clock)
        // is known by a mark it sets on itself, not by its name.
        None if on_timer_thread() => WakeSource::Timer,
        // Any other thread is named in pictures by its own name.
        None => match std::thread::current().name() {
            Some(name) => WakeSource::Thread(name.to_string()),
            None => WakeSource::Thread("unnamed".to_string()),
        },
    }
}

/// Marks (while tracing) who runs on the loop thread until dropped.
pub(crate) enum RunningAs {
    /// Tracing is off: nothing was marked, nothing to restore.
    Untraced,
    /// Tracing is on: `NOW_RUNNING` held `previous` before, and gets it
    /// back on drop (a task's poll may run inside the main future's turn).
    Traced { previous: Option<Runner> },
}

impl RunningAs {
    /// Marks `who` as running until the guard drops. Off, it does nothing:
    /// not even the thread-local is touched.
    pub(crate) fn enter(shared: &Shared, who: Runner) -> RunningAs {
        if shared.trace.is_on() {
            let previous = NOW_RUNNING.with(|n| n.replace(Some(who)));
            RunningAs::Traced { previous }
        } else {
            RunningAs::Untraced
        }
    }
}

impl Drop for RunningAs {
    fn drop(&mut self) {
        if let RunningAs::Traced { previous } = *self {
            NOW_RUNNING.with(|n| n.set(previous));
        }
    }
}

impl Handle {
    /// The loop's resource of type `T`, made by `make` on first use and
    /// dropped when the loop closes (after every task has been dropped).
    /// This is the seam later chapters use to give a loop something of its
    /// own, such as chapter 9's default thread pool.
    ///
    /// Found by type: a loop holds few resources (one per chapter that
    /// needs one), so a scan of a short list beats a map.
    pub fn resource<T: 'static>(&self, make: impl FnOnce() -> T) -> Rc<T> {
        // A closed loop has dropped its resources; one made now would never
        // be dropped at the right time.
        assert!(
            !self.is_closed(),
            "Handle::resource: the event loop is closed and keeps no new resources"
        );
        // Each resource is kept as `Rc<dyn Any>`; `downcast` finds the one
        // whose type is `T` (the clone is a count, not a copy).
        let found = self
            .core
            .resources
            .borrow()
            .iter()
            .find_map(|r| r.clone().downcast::<T>().ok());
        if let Some(found) = found {
            return found;
        }
        // Not there yet: make it. `make` runs outside any borrow of the
        // list, so it may itself ask the loop for another resource.
        let made = Rc::new(make());
        self.core.resources.borrow_mut().push(made.clone());
        made
    }

    /// The loop's trace recorder (see [`EventLoop::enable_trace`](super::EventLoop::enable_trace)): name a
    /// task for pictures, or record a job on a pool thread.
    pub fn tracer(&self) -> TraceSink {
        TraceSink {
            shared: self.core.shared.clone(),
        }
    }

    /// The loop's timer (the one `sleep` uses inside it).
    pub fn timer(&self) -> &Timer {
        &self.core.timer
    }

    /// Installs how this loop idles (see [`Idler`]): from now on it sleeps
    /// in `idler.wait()` when nothing is queued, and wakes from other
    /// threads call `idler.rouse()`. Once per loop; a second call gives the
    /// idler back. Call it on the loop's thread while the loop runs (from a
    /// task), or before it runs, never while it sleeps: a `Handle` is not
    /// `Send`, so nothing else can.
    pub fn set_idler(&self, idler: Box<dyn Idler>) -> Result<(), Box<dyn Idler>> {
        self.core.shared.idler.set(idler)
    }

    /// Announces work outside the loop (another thread) that will wake a
    /// task. While the returned guard lives, a virtual clock does not jump
    /// ahead: the loop waits for that wake instead, as time cannot pass
    /// "instantly" for real work. Chapter 9's thread pool holds one per job.
    ///
    /// On a real clock it changes nothing: the loop sleeps until a wake
    /// arrives anyway.
    pub fn keep_awake(&self) -> KeepAwake {
        // Counted, not flagged: several jobs may be out at once, and the
        // clock may move again only when the last of them is done.
        self.core.shared.outside_work.fetch_add(1, Ordering::AcqRel);
        KeepAwake {
            shared: self.core.shared.clone(),
        }
    }
}

/// Keeps a virtual clock from jumping while outside work is under way (see
/// [`Handle::keep_awake`]). `Send`: give it to the thread doing the work.
pub struct KeepAwake {
    /// The loop's shared half, which holds the count and the loop's sleep:
    /// an `Arc`, since the guard lives on another thread.
    pub(super) shared: Arc<Shared>,
}

// The order matters. Outside work wakes its task *first*, then drops this
// guard: so when the loop reads a count of 0, whatever the work woke is
// already in the queue, and the clock cannot jump past it.
impl Drop for KeepAwake {
    fn drop(&mut self) {
        self.shared.outside_work.fetch_sub(1, Ordering::AcqRel);
        // The loop may be idle waiting for exactly this: let it look again.
        self.shared.idler().rouse();
    }
}

/// How a loop waits when nothing is queued, and how it is roused: the seam
/// chapter 12 uses to make the loop's idle a wait on sockets (asyncio's
/// `_run_once`, whose idle is `selector.select(timeout)`).
///
/// The loop calls the methods on its own thread, except `rouse`, which any
/// thread calls after queueing a task while the loop sleeps. The contract
/// that makes a lost wake-up impossible: a `rouse` that happens before or
/// during a `wait` ends that `wait` (or the next one); a spurious end is
/// fine, the loop just looks again.
///
/// Without one installed, the loop uses chapter 3's [`Signal`] (a flag and
/// a condition variable), which watches nothing else.
pub trait Idler: Send + Sync {
    /// Sleeps until [`Idler::rouse`] is called, or until something the
    /// idler watches is ready: then it wakes the wakers of what is ready
    /// (they only queue their tasks) and returns.
    fn wait(&self);

    /// Wakes the wakers of whatever it watches that is ready now, without
    /// waiting, and returns how many. The virtual clock asks this before
    /// jumping: time may not pass while a socket has something to say.
    fn look(&self) -> usize {
        0
    }

    /// Whether it watches something that may still wake a task (a socket
    /// somebody waits on). A virtual loop with no timer left then waits in
    /// [`Idler::wait`] instead of reporting a deadlock.
    fn is_watching(&self) -> bool {
        false
    }

    /// Ends a [`Idler::wait`] in progress, or the next one. Any thread;
    /// never blocks.
    fn rouse(&self);
}

/// The default idler: chapter 3's condvar.
impl Idler for Signal {
    fn wait(&self) {
        Signal::wait(self);
    }

    fn rouse(&self) {
        self.notify();
    }
}

impl Shared {
    /// The idler in charge: the installed one, or the condvar `signal`.
    /// (One atomic load: the `OnceLock` is set at most once.)
    #[inline]
    pub(super) fn idler(&self) -> &dyn Idler {
        match self.idler.get() {
            Some(idler) => &**idler,
            None => &self.signal,
        }
    }
}

/// A `Send` handle to a loop's trace recorder, for threads other than the
/// loop's (chapter 9's pool threads record their jobs through it).
#[derive(Clone)]
pub struct TraceSink {
    /// The loop's shared half, where its recorder and clock live: records
    /// from any thread are stamped with the loop's time.
    pub(super) shared: Arc<Shared>,
}

impl TraceSink {
    /// Whether the loop is tracing.
    pub fn is_on(&self) -> bool {
        self.shared.trace.is_on()
    }

    /// Records `event` for task `task` at the loop's current time.
    pub fn record(&self, task: u64, event: Event) {
        self.shared.trace(task, || event);
    }

    /// Names task `task` in pictures.
    pub fn name(&self, task: u64, name: impl Into<String>) {
        self.shared.trace.name(task, name);
    }

    /// Everything traced so far, as [`EventLoop::take_trace`](super::EventLoop::take_trace); a sink
    /// outlives its loop, so this also reads the `Closed` records that
    /// closing the loop leaves.
    pub fn take(&self) -> Trace {
        self.shared.trace.take()
    }
}

/// The trace hooks of the run queue's shared half: every place the loop
/// reports to the trace calls one of these.
impl Shared {
    /// Keeps a trace record, if tracing is on. The time is read under the
    /// recorder's lock, so records from several threads stay in time order.
    #[inline]
    pub(crate) fn trace(&self, task: u64, event: impl FnOnce() -> Event) {
        self.trace_if(task, || true, event);
    }

    /// [`Shared::trace`], if `keep` (checked under the recorder's lock)
    /// says so.
    #[inline]
    pub(crate) fn trace_if(
        &self,
        task: u64,
        keep: impl FnOnce() -> bool,
        event: impl FnOnce() -> Event,
    ) {
        // Off (the default): one relaxed load, and the closures never run.
        // On: `record_with` takes the recorder's lock, and only then are
        // the time read and the event built, so two threads' records can
        // never be stored out of time order.
        if self.trace.is_on() {
            self.trace.record_with(|| {
                keep().then(|| Record {
                    at: self.clock.now(),
                    task,
                    event: event(),
                })
            });
        }
    }
}

/// The task seam: how a task is registered with the loop, whoever built it.
impl LoopCore {
    /// Gives a new task its [`Header`] (its number, its slot in the list of
    /// live tasks, a zero state), lets `make` build the task around it, and
    /// keeps the task in the list, so that closing the loop drops it.
    /// The caller schedules it and makes the one [`TaskRef`] the header
    /// counts (`handles`). Chapter 5's `spawn` uses this, and so does
    /// chapter 13's one-allocation task.
    ///
    /// # Panics
    /// If the loop is closed.
    pub(crate) fn register<T: Runnable + 'static>(
        &self,
        make: impl FnOnce(Header) -> Arc<T>,
    ) -> Arc<T> {
        // Refused before anything is taken: a task registered on a closed
        // loop would never run and never be dropped by it.
        assert!(
            !self.closed.get(),
            "spawn: the event loop is closed; a closed loop runs no new tasks"
        );
        // 1. An index in the list of live tasks. A finished task's index is
        //    reused first, so a loop that spawns and finishes tasks forever
        //    keeps a list as long as its most tasks alive at once.
        let slot = self.free_slots.borrow_mut().pop().unwrap_or_else(|| {
            let next = self.tasks.borrow().len();
            u32::try_from(next).expect("spawn: more than 2^32 live tasks on one loop")
        });
        // 2. A number for the trace and for messages, never reused: 0 is
        //    the main future (`trace::MAIN`), so tasks count from 1, and
        //    the last number given is also how many were ever spawned.
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        // 3. The task itself, built by the caller around its header.
        let task = make(Header {
            state: AtomicU8::new(0),
            slot,
            id,
            // The TaskRef the caller makes from it.
            handles: AtomicUsize::new(1),
            shared: self.shared.clone(),
        });
        // 4. Kept in the list: the loop's own strong reference, the one
        //    `close` drops. A reused index is overwritten; a new one is the
        //    list's next entry.
        {
            let mut tasks = self.tasks.borrow_mut();
            let slot = slot as usize;
            if slot == tasks.len() {
                tasks.push(Some(task.clone()));
            } else {
                tasks[slot] = Some(task.clone());
            }
        }
        // 5. Counted and reported; the caller schedules it next, so a
        //    picture shows it spawned before it is first queued.
        self.live_tasks.set(self.live_tasks.get() + 1);
        self.shared.trace(id, || Event::Spawned);
        task
    }

    /// Counts one poll of a task (for [`EventLoop::stats`](super::EventLoop::stats)).
    pub(crate) fn count_poll(&self) {
        self.polls.set(self.polls.get() + 1);
    }
}

impl Handle {
    /// The loop behind this handle, for a task built outside chapter 5.
    pub(crate) fn core(&self) -> &LoopCore {
        &self.core
    }
}

impl<T> TaskRef<T> {
    /// A reference to a task built outside chapter 5 (chapter 13's).
    pub(crate) fn from_joinable(task: Arc<dyn Joinable<T>>) -> TaskRef<T> {
        TaskRef { task }
    }
}

/// Whether this thread is running the loop that `shared` belongs to (a
/// task that finds its own state RUNNING from there is awaiting itself).
pub(crate) fn on_loop_thread_of(shared: &Arc<Shared>) -> bool {
    // Compared by address: two loops never share a `Shared`, and a task's
    // header holds its own loop's, so the same pointer means the same loop.
    RUNNING_LOOP.with(|running| {
        running
            .borrow()
            .as_ref()
            .is_some_and(|core| Arc::ptr_eq(&core.shared, shared))
    })
}
