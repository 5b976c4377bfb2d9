//! # Chapter 4 — the timer wheel: one thread for every sleep
//!
//! **The question.** Chapter 3's [`ThreadSleep`](crate::ch03_waker::ThreadSleep)
//! spends an OS thread on every sleep. The documents' programs sleep a lot
//! (E003-1, E002-5, E004-5), and a server that waits on ten thousand
//! connections would need ten thousand timer threads. How do real runtimes
//! keep every sleep in the program with **one** thread?
//!
//! **The document.** Seed 003's `asyncio.sleep(1)` (E003-1), seed 002's two
//! sequential one-second waits (E002-5, total 2 s), and seed 004's
//! `say_after(1, 'hello')` then `say_after(2, 'world')` awaited in turn
//! (E004-5, total 3 s).
//!
//! **The idea.** Put every deadline in one data structure, owned by one
//! thread that sleeps until the earliest deadline, then wakes the wakers
//! whose time has come. The structure is a hierarchical timing wheel
//! ([`wheel`]): insert and cancel in constant time, "what is due now?" and
//! "when is the next deadline?" without scanning every timer.
//!
//! The pieces, from the bottom up:
//!
//! * [`Clock`]: what time it is. A **real** clock reads `Instant`; a
//!   **virtual** clock stands still until someone moves it. Both count from
//!   their own origin, so a loop's time starts at zero and a virtual run is
//!   reproducible to the microsecond. Tests of the documents' examples run on
//!   the virtual clock: three seconds of story in a millisecond of real time.
//! * [`Timer`]: a wheel of wakers behind a mutex, plus (on a real clock) the
//!   timer thread. Registering a deadline earlier than the one the thread is
//!   sleeping toward wakes the thread so it can sleep less; wakers are called
//!   outside the lock. The thread starts on the first registration and is
//!   joined when the last [`Timer`] handle is dropped. On a virtual clock
//!   there is no thread at all: whoever owns the clock (chapter 5's event
//!   loop) moves it with [`Clock::advance_to`] and calls [`Timer::fire_due`].
//! * [`Sleep`]: the future `sleep(d)` returns. Made inside an event loop,
//!   its deadline is fixed when it is made (made outside any, at its first
//!   poll: see below); its first poll registers the deadline with the timer;
//!   every later `Pending` poll hands the timer the latest waker; dropping it
//!   cancels the entry, so a dropped sleep wakes nobody.
//!
//! **Time units.** One wheel tick is one microsecond ([`TICK`]). A deadline
//! between two ticks is rounded *up*, so a timer never fires early; a sleep
//! overshoots by the operating system's wake-up latency, not by a whole
//! millisecond tick as in runtimes with coarser wheels. Durations too large
//! to represent (up to `Duration::MAX`) saturate to "never"; nothing panics.
//!
//! **Which timer does `sleep` use?** The one "entered" on this thread with
//! [`enter`] (chapter 5's event loop enters its own while it runs). A sleep
//! made where none is entered waits for its first poll to choose: the timer
//! entered there, or else a process-wide default timer on the real clock,
//! so that chapter 3's `block_on(sleep(d))` just works, and so does
//! `event_loop.run_until_complete(sleep(d))`, whose sleep is made before
//! the loop runs.
//!
//! **What the next chapter needs from this one.** An event loop needs two
//! things from the timer: wakers for sleeping tasks (the seam from chapter
//! 3), and on a virtual clock, "what is the next deadline?" so that it can
//! jump straight to it when every task is waiting.

pub mod wheel;

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::ch03_waker::lock;
use wheel::{TimerKey, Wheel};

/// One tick of the wheel: the resolution of every timer.
pub const TICK: Duration = Duration::from_micros(1);

/// How long before a deadline the timer thread stops sleeping and spins.
///
/// An OS thread asked to sleep until time T wakes some 50 to 100 µs late on
/// Linux (the kernel's timer slack, then scheduling). Sleeping until
/// `T - SPIN_BEFORE_DEADLINE` and spinning the rest brings a sleep's
/// oversleep down to the cost of one thread hand-off, at the price of up to
/// this much of one core per firing. Real runtimes choose differently
/// (tokio rounds deadlines to whole milliseconds and spins never); this
/// crate's benchmark measures the effect (`cargo run --release --example
/// bench -- precision`). Zero turns spinning off.
pub const SPIN_BEFORE_DEADLINE: Duration = Duration::from_micros(80);

/// The tick that means "never": saturated deadlines land here, and neither
/// the timer thread nor a virtual clock ever moves to it.
pub const NEVER: u64 = u64::MAX;

/// Converts loop time to a wheel tick, rounding up (never early) and
/// saturating at [`NEVER`].
pub fn tick_for(deadline: Duration) -> u64 {
    let tick_ns = TICK.as_nanos();
    let ticks = deadline.as_nanos().div_ceil(tick_ns);
    u64::try_from(ticks).unwrap_or(NEVER)
}

/// Converts loop time to the last tick that has fully begun (rounding down):
/// the tick the wheel may advance to at time `now`.
fn tick_at(now: Duration) -> u64 {
    u64::try_from(now.as_nanos() / TICK.as_nanos()).unwrap_or(NEVER)
}

/// Converts a tick back to loop time.
fn time_of(tick: u64) -> Duration {
    Duration::from_micros(tick)
}

/// What time it is, for a timer and an event loop.
///
/// Cloning a clock shares it: a virtual clock moved through one clone is
/// moved for all.
#[derive(Clone)]
pub struct Clock {
    kind: ClockKind,
}

#[derive(Clone)]
enum ClockKind {
    /// Real time, measured from `origin`.
    Real { origin: Instant },
    /// Virtual time in ticks since zero; moves only by `advance_to`.
    Virtual { now: Arc<AtomicU64> },
}

impl Clock {
    /// A real clock whose time zero is now.
    pub fn real() -> Clock {
        Clock {
            kind: ClockKind::Real {
                origin: Instant::now(),
            },
        }
    }

    /// A virtual clock at time zero. It stands still until
    /// [`Clock::advance_to`] moves it.
    pub fn new_virtual() -> Clock {
        Clock {
            kind: ClockKind::Virtual {
                now: Arc::new(AtomicU64::new(0)),
            },
        }
    }

    /// Whether this is a virtual clock.
    pub fn is_virtual(&self) -> bool {
        matches!(self.kind, ClockKind::Virtual { .. })
    }

    /// Time since this clock's origin.
    pub fn now(&self) -> Duration {
        match &self.kind {
            ClockKind::Real { origin } => origin.elapsed(),
            ClockKind::Virtual { now } => time_of(now.load(Ordering::Acquire)),
        }
    }

    /// Moves a virtual clock forward to `time` (rounded up to a tick). A time
    /// in the past leaves it where it is: time never runs backwards.
    ///
    /// # Panics
    /// On a real clock, which nobody can move.
    pub fn advance_to(&self, time: Duration) {
        match &self.kind {
            ClockKind::Real { .. } => {
                panic!("Clock::advance_to: a real clock follows the wall clock and cannot be moved")
            }
            ClockKind::Virtual { now } => {
                now.fetch_max(tick_for(time), Ordering::AcqRel);
            }
        }
    }

    /// The real `Instant` of a loop time, on a real clock (`None` on a
    /// virtual clock, or past what an `Instant` can hold).
    fn instant_of(&self, time: Duration) -> Option<Instant> {
        match &self.kind {
            ClockKind::Real { origin } => origin.checked_add(time),
            ClockKind::Virtual { .. } => None,
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.is_virtual() { "virtual" } else { "real" };
        write!(f, "Clock({kind}, now={:?})", self.now())
    }
}

/// A handle to a timer: a wheel of wakers and, on a real clock, the thread
/// that fires them. Cloning is cheap and shares the timer; the thread is
/// joined when the last handle is dropped.
#[derive(Clone)]
pub struct Timer {
    handle: Arc<TimerHandle>,
}

/// Owned by the user handles only: its `Drop` is "the last user is gone".
struct TimerHandle {
    shared: Arc<TimerShared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Shared by the user handles and the timer thread.
struct TimerShared {
    clock: Clock,
    state: Mutex<TimerState>,
    /// Rouses the timer thread: an earlier deadline, or shutdown.
    cond: Condvar,
    /// Set by a registration earlier than the deadline the thread is
    /// spinning toward (a spinning thread does not hear the condvar).
    earlier: AtomicBool,
}

struct TimerState {
    wheel: Wheel<Waker>,
    /// The tick the timer thread is sleeping toward (`NEVER`: no deadline,
    /// or no thread yet). A registration earlier than this must rouse it.
    sleeping_until: u64,
    thread_started: bool,
    shutdown: bool,
}

impl Timer {
    /// A timer on `clock`. On a real clock its thread starts with the first
    /// registration.
    pub fn new(clock: Clock) -> Timer {
        Timer {
            handle: Arc::new(TimerHandle {
                shared: Arc::new(TimerShared {
                    clock,
                    state: Mutex::new(TimerState {
                        wheel: Wheel::new(),
                        sleeping_until: NEVER,
                        thread_started: false,
                        shutdown: false,
                    }),
                    cond: Condvar::new(),
                    earlier: AtomicBool::new(false),
                }),
                thread: Mutex::new(None),
            }),
        }
    }

    /// The clock this timer reads.
    pub fn clock(&self) -> &Clock {
        &self.handle.shared.clock
    }

    /// The clock's time now.
    pub fn now(&self) -> Duration {
        self.clock().now()
    }

    /// How many deadlines are registered.
    pub fn pending(&self) -> usize {
        lock(&self.handle.shared.state).wheel.len()
    }

    /// Whether two handles share one timer.
    pub fn same_timer(&self, other: &Timer) -> bool {
        Arc::ptr_eq(&self.handle, &other.handle)
    }

    /// Registers `waker` to be woken at loop time `deadline` (rounded up to a
    /// tick). Returns the key to update or cancel it.
    pub fn register(&self, deadline: Duration, waker: Waker) -> TimerKey {
        let tick = tick_for(deadline);
        let shared = &self.handle.shared;
        let mut state = lock(&shared.state);
        let key = state.wheel.insert(tick, waker);
        if !shared.clock.is_virtual() {
            if !state.thread_started {
                state.thread_started = true;
                self.start_thread();
            } else if tick < state.sleeping_until {
                // Decided under the same lock as the insert, so the thread
                // cannot pick a later wake-up after we looked.
                shared.earlier.store(true, Ordering::Release);
                shared.cond.notify_one();
            }
        }
        key
    }

    /// Replaces the waker of a registered deadline. Returns `false` if the
    /// key is stale (the entry already fired or was cancelled).
    pub fn update_waker(&self, key: TimerKey, waker: &Waker) -> bool {
        let old = {
            let mut state = lock(&self.handle.shared.state);
            match state.wheel.get_mut(key) {
                Some(slot) if slot.will_wake(waker) => return true,
                Some(slot) => std::mem::replace(slot, waker.clone()),
                None => return false,
            }
        };
        // Drop the old waker outside the lock: it may be the last reference
        // to a task whose drop cancels a sleep on this very timer.
        drop(old);
        true
    }

    /// Cancels a registered deadline (in O(1)); its waker is dropped, not
    /// woken. A stale key is ignored.
    pub fn cancel(&self, key: TimerKey) {
        let removed = lock(&self.handle.shared.state).wheel.cancel(key);
        // Drop the waker outside the lock: dropping may run arbitrary code.
        drop(removed);
    }

    /// The earliest registered deadline in loop time, if any ("never"
    /// deadlines are not counted: nobody should wait for them).
    pub fn next_deadline(&self) -> Option<Duration> {
        let state = lock(&self.handle.shared.state);
        state
            .wheel
            .next_deadline()
            .filter(|&tick| tick != NEVER)
            .map(time_of)
    }

    /// Fires every deadline that the clock has reached: the wheel advances
    /// to now and the expired wakers are woken (outside the lock), in
    /// (deadline, registration) order. Returns how many were woken.
    ///
    /// On a real clock the timer thread does this by itself; on a virtual
    /// clock the owner of the clock calls it after moving the clock.
    pub fn fire_due(&self) -> usize {
        let mut expired = Vec::new();
        self.handle.shared.take_due(&mut expired);
        let fired = expired.len();
        for (_, waker) in expired {
            wake_reporting_panics(waker);
        }
        fired
    }

    fn start_thread(&self) {
        let shared = Arc::clone(&self.handle.shared);
        let thread = thread::Builder::new()
            .name("tiny-asyncio-timer".into())
            .spawn(move || {
                ON_TIMER_THREAD.with(|flag| flag.set(true));
                shared.run_thread()
            })
            .expect("tiny-asyncio: the OS refused to start the timer thread");
        *lock(&self.handle.thread) = Some(thread);
    }
}

thread_local! {
    /// Set once, at the start of a timer thread: lets [`on_timer_thread`]
    /// answer without comparing thread names.
    static ON_TIMER_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the calling thread is a timer thread. The loop's trace uses it
/// to say that a wake came from the timer (rather than from some thread).
pub fn on_timer_thread() -> bool {
    ON_TIMER_THREAD
        .try_with(std::cell::Cell::get)
        .unwrap_or(false)
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer")
            .field("clock", self.clock())
            .field("pending", &self.pending())
            .finish()
    }
}

impl TimerShared {
    /// Advances the wheel to the clock's now and moves what expired into
    /// `expired`.
    fn take_due(&self, expired: &mut Vec<(u64, Waker)>) {
        let now = tick_at(self.clock.now());
        lock(&self.state).wheel.advance(now, expired);
    }

    /// The timer thread: fire what is due, then sleep until the next
    /// deadline or until a registration or shutdown rouses us.
    fn run_thread(&self) {
        let mut expired = Vec::new();
        let mut state = lock(&self.state);
        loop {
            if state.shutdown {
                return;
            }
            let now = self.clock.now();
            state.wheel.advance(tick_at(now), &mut expired);
            if !expired.is_empty() {
                drop(state);
                for (_, waker) in expired.drain(..) {
                    wake_reporting_panics(waker);
                }
                state = lock(&self.state);
                continue;
            }
            let next = state.wheel.next_deadline().unwrap_or(NEVER);
            state.sleeping_until = next;
            let until = (next != NEVER)
                .then(|| self.clock.instant_of(time_of(next)))
                .flatten();
            state = match until.and_then(|at| at.checked_duration_since(Instant::now())) {
                Some(left) if left > SPIN_BEFORE_DEADLINE => {
                    // Sleep until shortly before the deadline; a new, earlier
                    // registration or shutdown wakes us sooner.
                    self.cond
                        .wait_timeout(state, left - SPIN_BEFORE_DEADLINE)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                Some(_) => {
                    // The last stretch: spin, without the lock, so that
                    // registrations are not held up; an earlier one ends
                    // the spin. See SPIN_BEFORE_DEADLINE.
                    self.earlier.store(false, Ordering::Release);
                    drop(state);
                    let at = until.expect("a duration left means a deadline");
                    while Instant::now() < at && !self.earlier.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                    lock(&self.state)
                }
                // Already due (the loop above fires it), or nothing to wait for.
                None if until.is_some() => state,
                None => self.cond.wait(state).unwrap_or_else(|p| p.into_inner()),
            };
            state.sleeping_until = NEVER;
        }
    }
}

/// Wakes `waker`, catching a panic in it. A waker can be anyone's code (a
/// hand-written combinator's, say); if its panic got out, it would kill the
/// timer thread, so that no sleep of the loop ever ended again, or, on a
/// virtual clock, leave the wakers due at the same moment unwoken. The
/// panic is reported on stderr instead, and the next waker is woken.
fn wake_reporting_panics(waker: Waker) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| waker.wake())) {
        let message = match (
            payload.downcast_ref::<&str>(),
            payload.downcast_ref::<String>(),
        ) {
            (Some(s), _) => s,
            (_, Some(s)) => s.as_str(),
            _ => "a non-string panic payload",
        };
        eprintln!("tiny-asyncio: a waker panicked when its timer fired: {message}");
    }
}

impl Drop for TimerHandle {
    fn drop(&mut self) {
        lock(&self.shared.state).shutdown = true;
        self.shared.cond.notify_one();
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread {
            // A waker run by the timer thread may drop the last handle; a
            // thread cannot join itself, so it just exits on its own.
            if thread.thread().id() != thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

thread_local! {
    /// The timer that `sleep` uses on this thread (set by [`enter`]).
    static CURRENT: RefCell<Option<Timer>> = const { RefCell::new(None) };
}

/// The process-wide real-clock timer used outside any event loop. Held
/// weakly: its thread exits when its last sleep is gone.
static DEFAULT_TIMER: Mutex<Weak<TimerHandle>> = Mutex::new(Weak::new());

/// Makes `timer` the one `sleep` uses on this thread until the guard is
/// dropped (then the previous one is back).
pub fn enter(timer: Timer) -> EnterGuard {
    let previous = CURRENT.with(|c| c.borrow_mut().replace(timer));
    EnterGuard { previous }
}

/// Restores the previously entered timer when dropped.
pub struct EnterGuard {
    previous: Option<Timer>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// The timer entered on this thread with [`enter`], if any.
pub fn entered_timer() -> Option<Timer> {
    // `try_with`: from a thread-local's destructor, there is none.
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

/// The timer `sleep` would use here: the entered one, or the process-wide
/// real-clock default.
pub fn current_timer() -> Timer {
    if let Some(timer) = entered_timer() {
        return timer;
    }
    let mut default = lock(&DEFAULT_TIMER);
    if let Some(handle) = default.upgrade() {
        return Timer { handle };
    }
    let timer = Timer::new(Clock::real());
    *default = Arc::downgrade(&timer.handle);
    timer
}

/// The current timer's time (loop time inside an event loop).
pub fn now() -> Duration {
    current_timer().now()
}

/// A future that completes at a deadline: `asyncio.sleep`.
///
/// Made by [`sleep`] or [`sleep_until`]. Made where a timer is entered (in
/// an event loop), its deadline is fixed when it is made, not when it is
/// first polled. Made anywhere else (`loop.run_until_complete(sleep(d))`
/// builds the sleep before the loop runs), it cannot know which timer
/// will drive it, so it binds at its first poll to the timer entered there,
/// and a relative sleep counts from that moment.
#[must_use = "a Sleep does nothing unless it is awaited"]
pub struct Sleep {
    /// The timer it registers with; `None` until the first poll for a
    /// sleep made outside any timer.
    timer: Option<Timer>,
    /// Loop time of the end; for an unbound `sleep(d)`, the `d` still to
    /// be added to the time of binding.
    deadline: Duration,
    relative_until_bound: bool,
    key: Option<TimerKey>,
}

/// Sleeps for `duration` of the current timer's time: `asyncio.sleep(d)`.
/// `Duration::MAX` (or anything past what the clock can hold) sleeps
/// forever, without panicking.
pub fn sleep(duration: Duration) -> Sleep {
    match entered_timer() {
        Some(timer) => Sleep {
            deadline: timer.now().saturating_add(duration),
            timer: Some(timer),
            relative_until_bound: false,
            key: None,
        },
        None => Sleep {
            timer: None,
            deadline: duration,
            relative_until_bound: true,
            key: None,
        },
    }
}

/// Sleeps until loop time `deadline` (like scheduling with asyncio's
/// `loop.call_at`): a deadline in the past completes at the first poll.
pub fn sleep_until(deadline: Duration) -> Sleep {
    Sleep {
        timer: entered_timer(),
        deadline,
        relative_until_bound: false,
        key: None,
    }
}

impl Sleep {
    /// The loop time at which this sleep ends. (For a `sleep(d)` made
    /// outside any event loop and not polled yet, that time is not known:
    /// this returns `d`, the length still to run from the first poll.)
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Whether the deadline has passed (never, before the first poll of a
    /// sleep made outside any event loop).
    pub fn is_elapsed(&self) -> bool {
        match &self.timer {
            Some(timer) if !self.relative_until_bound => timer.now() >= self.deadline,
            _ => false,
        }
    }

    /// Picks the timer (and, for `sleep(d)`, the deadline) of a sleep made
    /// outside any timer: the one current here. The first poll does this by
    /// itself; a future that wraps a sleep calls it to fix the deadline
    /// before doing anything else (chapter 8's `timeout`). A no-op once bound.
    pub fn bind(&mut self) {
        let timer = self.timer.get_or_insert_with(current_timer);
        if std::mem::take(&mut self.relative_until_bound) {
            self.deadline = timer.now().saturating_add(self.deadline);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        this.bind();
        let timer = this.timer.as_ref().expect("bind() picked a timer");
        if timer.now() >= this.deadline {
            if let Some(key) = this.key.take() {
                timer.cancel(key);
            }
            return Poll::Ready(());
        }
        let registered = match this.key {
            Some(key) => timer.update_waker(key, cx.waker()),
            None => false,
        };
        if !registered {
            if this.key.is_some() && timer.now() >= this.deadline {
                // Fired between our clock check and the update.
                this.key = None;
                return Poll::Ready(());
            }
            this.key = Some(timer.register(this.deadline, cx.waker().clone()));
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let (Some(key), Some(timer)) = (self.key.take(), &self.timer) {
            timer.cancel(key);
        }
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("registered", &self.key.is_some())
            .finish()
    }
}
