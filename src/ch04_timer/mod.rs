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
//! **The idea, in one picture.** Every sleep in the program hands its
//! deadline and its task's waker to one shared [`Timer`]. The timer keeps
//! them in one data structure, a timing wheel, and one thread sleeps until
//! the earliest deadline, then wakes whatever is due:
//!
//! ```text
//!   task A: sleep(1 s) ──┐  register(1 s, waker A)
//!   task B: sleep(3 s) ──┼─────────────────────────►  ┌─ Timer ────────────────────┐
//!   task C: sleep(3 s) ──┘                            │  Mutex<Wheel<Waker>>       │
//!                                                     │  timer thread:             │
//!         waker A.wake() at 1 s  ◄────────────────────│   sleep until the earliest │
//!         waker B, C .wake() at 3 s (B first)         │   deadline, advance, wake  │
//!                                                     └────────────────────────────┘
//! ```
//!
//! The wheel ([`wheel`]) is a clock face with several hands. Level 0 has 64
//! slots of one tick each; every slot of level 1 spans 64 ticks; of level 2,
//! 64 × 64; and so on, eight levels. A deadline is filed in the slot of the
//! coarsest level at which it differs from "now", found from its bits alone,
//! with no sorting:
//!
//! ```text
//!             now     200 ticks later
//!              ▼              ▼
//!   level 1  [ 0 ][ 1 ][ 2 ][ 3 ][ 4 ] … [63]   each slot 64 ticks: filed in slot 3
//!   level 0  [0][1][2] … [63]                   each slot 1 tick: where it goes
//!                                               when slot 3 of level 1 comes due
//! ```
//!
//! When the hand reaches a coarse slot, its entries are re-filed one level
//! finer (a *cascade*), until each sits in an exact tick and fires. Insert
//! and cancel cost the same however many sleeps wait, and "when is the next
//! deadline?" finds the earliest busy slot with a bit trick instead of a
//! scan. The wheel's own docs follow one deadline of E004-5 through it.
//!
//! **The life of one sleep.**
//!
//! 1. `sleep(d)` makes a [`Sleep`]: a deadline, nothing registered yet.
//! 2. Its first poll registers `(deadline, waker)` with the timer and gets a
//!    key back; the poll answers `Pending`.
//! 3. A later poll before the deadline (the task was woken for another
//!    reason) swaps in its newer waker under the same key: the place in line
//!    is kept.
//! 4. At the deadline the timer takes the entry out of the wheel and wakes
//!    the waker; the task is polled again, sees the time has come, and the
//!    sleep is `Ready`.
//! 5. A sleep dropped before then (its task cancelled, a `timeout` that won)
//!    cancels its entry: a dropped sleep wakes nobody.
//!
//! **The pieces**, from the bottom up:
//!
//! * [`Clock`]: what time it is. A **real** clock reads `Instant`; a
//!   **virtual** clock stands still until someone moves it. Both count from
//!   their own origin, so a loop's time starts at zero and a virtual run is
//!   reproducible to the microsecond. Tests of the documents' examples run on
//!   the virtual clock: three seconds of story in a millisecond of real time.
//! * [`wheel::Wheel`]: the timing wheel, a plain value with no threads or
//!   clocks: ticks in, values out.
//! * [`Timer`]: the service. A wheel of wakers behind a mutex, plus, on a
//!   real clock, the timer thread. On a virtual clock there is no thread at
//!   all: whoever owns the clock (chapter 5's event loop) moves it with
//!   [`Clock::advance_to`] and calls [`Timer::fire_due`].
//! * [`Sleep`]: the future `sleep(d)` returns, living the five steps above.
//!   Two rules come from asyncio: a sleep that is already due at its first
//!   poll (`sleep(0)`) yields once instead of finishing, and a sleep polled
//!   by another loop than the one it was made in moves to that loop's timer
//!   (see [`Sleep`]).
//!
//! ## Details, for a second reading
//!
//! **Time units.** One wheel tick is one microsecond ([`TICK`]). A deadline
//! between two ticks is rounded *up*, so a timer never fires early; a sleep
//! overshoots by the operating system's wake-up latency, not by a whole
//! millisecond tick as in runtimes with coarser wheels. Durations too large
//! to represent (up to `Duration::MAX`) saturate to [`NEVER`], a tick no
//! clock reaches; nothing panics.
//!
//! **The timer thread.** It starts with the first registration on a real
//! clock and is joined when the last [`Timer`] handle is dropped. A
//! registration earlier than the deadline the thread is sleeping toward
//! rouses it through a condvar, so it can sleep less. For the last
//! [`SPIN_BEFORE_DEADLINE`] before a deadline it spins instead of sleeping,
//! because an OS sleep wakes tens of microseconds late. Wakers are always
//! called outside the lock, and a panicking waker is reported, not allowed
//! to kill the thread.
//!
//! **Which timer does `sleep` use?** The one "entered" on this thread with
//! [`enter`] (chapter 5's event loop enters its own while it runs). A sleep
//! made where none is entered does not choose yet: it *binds* at its first
//! poll, to the timer entered there, and a relative `sleep(d)` counts its
//! `d` from that moment. This is what makes
//! `event_loop.run_until_complete(sleep(d))` work, whose sleep is made
//! before the loop runs. If no timer is entered even then, the sleep uses a
//! process-wide **default timer** on the real clock, so that chapter 3's
//! `block_on(sleep(d))` just works. The default timer is held weakly (see
//! [`current_timer`]): it lives while some sleep uses it, and its thread
//! exits when the last one is gone.
//!
//! **What the next chapter needs from this one.** An event loop needs two
//! things from the timer: wakers for sleeping tasks (the seam from chapter
//! 3), and on a virtual clock, "what is the next deadline?" so that it can
//! jump straight to it when every task is waiting.

#![forbid(unsafe_code)]

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
/// the timer thread nor a virtual clock ever moves to it. It is a real
/// deadline to the wheel (the last tick there is), not a marker: nothing
/// asks "is this NEVER?" except to avoid waiting for it.
pub const NEVER: u64 = u64::MAX;

/// Converts loop time to a wheel tick, rounding up (never early) and
/// saturating at [`NEVER`].
pub fn tick_for(deadline: Duration) -> u64 {
    // In nanoseconds (u128, so `Duration::MAX` fits), rounded up to whole
    // ticks, then saturated into the wheel's u64.
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
    /// Real or virtual; clones share a virtual clock's `now`.
    kind: ClockKind,
}

/// The two kinds of clock. Private, so that a virtual clock can only be
/// moved through [`Clock::advance_to`] (which never goes backwards).
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
///
/// (The wheel's own entries are `wheel::WheelEntry`s; a `Timer` is the whole
/// service, one per event loop plus the process-wide default.)
#[derive(Clone)]
pub struct Timer {
    /// Shared by every clone; the last clone's drop stops the thread.
    handle: Arc<TimerOwners>,
}

/// What the user handles own together, and the timer thread does not: its
/// `Drop` means "the last user is gone", and stops the thread.
///
/// Two layers of `Arc` because the thread must reach the shared state too:
/// if it held the same `Arc` as the users, the count would never reach zero
/// while the thread lives, and the thread would never be told to stop.
struct TimerOwners {
    /// The half the thread holds too.
    shared: Arc<TimerShared>,
    /// The timer thread, to join at the end; `None` on a virtual clock, and
    /// on a real clock until the first registration starts it.
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Shared by the user handles and the timer thread.
struct TimerShared {
    /// What "now" means for this timer: the thread reads it on a real
    /// clock, the loop moves it on a virtual one.
    clock: Clock,
    /// The wheel and the thread's bookkeeping, under one lock, so that "is
    /// this deadline earlier than what the thread sleeps toward?" and the
    /// insert are decided together.
    state: Mutex<TimerState>,
    /// Rouses the timer thread: an earlier deadline, or shutdown.
    cond: Condvar,
    /// Set by a registration earlier than the deadline the thread is
    /// spinning toward (a spinning thread does not hear the condvar).
    earlier: AtomicBool,
}

struct TimerState {
    /// Every registered deadline, with the waker to call at it.
    wheel: Wheel<Waker>,
    /// What the timer thread waits for, so that a registration can tell
    /// whether it must rouse it.
    thread_waits: ThreadWaits,
    /// Set once, by the first registration on a real clock, which starts
    /// the thread (lazily: a loop that never sleeps costs no thread).
    thread_started: bool,
    /// Set by the last handle's drop; the thread exits when it sees it.
    shutdown: bool,
}

/// What the timer thread is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ThreadWaits {
    /// It sleeps (or spins) toward this tick: a registration due earlier
    /// must rouse it, or the thread would oversleep the new deadline.
    ForTick(u64),
    /// No deadline at all: it is not started yet, or it is awake and will
    /// look at the wheel before it sleeps again, or it sleeps with nothing
    /// registered but "never" deadlines. Any real registration rouses it.
    ForNoDeadline,
}

impl ThreadWaits {
    /// Whether a new deadline at `tick` comes before what the thread waits
    /// for (and so must rouse it). A "never" deadline never does.
    fn is_after(self, tick: u64) -> bool {
        match self {
            ThreadWaits::ForTick(until) => tick < until,
            ThreadWaits::ForNoDeadline => tick != NEVER,
        }
    }
}

impl Timer {
    /// A timer on `clock`. On a real clock its thread starts with the first
    /// registration.
    pub fn new(clock: Clock) -> Timer {
        Timer {
            handle: Arc::new(TimerOwners {
                shared: Arc::new(TimerShared {
                    clock,
                    state: Mutex::new(TimerState {
                        wheel: Wheel::new(),
                        thread_waits: ThreadWaits::ForNoDeadline,
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
        // 1. Loop time to a wheel tick, rounded up: never early.
        let tick = tick_for(deadline);
        let shared = &self.handle.shared;
        // 2. File it in the wheel, under the lock the thread also takes.
        let mut state = lock(&shared.state);
        let key = state.wheel.insert(tick, waker);
        // 3. On a virtual clock that is all: the loop asks `next_deadline`
        //    when it is idle. On a real clock the thread must know.
        if !shared.clock.is_virtual() {
            if !state.thread_started {
                // The first registration ever starts the thread, which
                // reads the wheel (this deadline included) before it sleeps.
                state.thread_started = true;
                self.start_thread();
            } else if state.thread_waits.is_after(tick) {
                // The thread sleeps toward a later tick: rouse it. Decided
                // under the same lock as the insert, so the thread cannot
                // pick a later wake-up after we looked. The condvar reaches
                // a sleeping thread, the flag a spinning one.
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
                // The same task polled again: nothing to change (the common
                // case, and it costs no clone).
                Some(stored) if stored.will_wake(waker) => return true,
                // Another waker (the sleep moved to another task, say): swap
                // it in, keeping the entry's place in line.
                Some(stored) => std::mem::replace(stored, waker.clone()),
                // Already fired or cancelled: the caller must register anew.
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
        // Take what is due under the lock; wake with the lock released,
        // since a waker may register a new sleep on this very timer.
        let mut expired = Vec::new();
        self.handle.shared.take_due(&mut expired);
        let fired = expired.len();
        for (_, waker) in expired {
            wake_reporting_panics(waker);
        }
        fired
    }

    fn start_thread(&self) {
        // The thread gets the shared state only, not the owners: see
        // `TimerOwners` for why.
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
            // 1. The last handle is gone: stop (its drop joins us).
            if state.shutdown {
                return;
            }
            // 2. Fire everything due by now. The wakers run with the lock
            //    released (a woken task's loop may register at once), and
            //    then we look again from the top: time has passed.
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
            // 3. Nothing due: note what we wait for (so that `register`
            //    knows when to rouse us) and turn it into an `Instant`.
            //    A "never" deadline is no deadline.
            state.thread_waits = match state.wheel.next_deadline() {
                Some(next) if next != NEVER => ThreadWaits::ForTick(next),
                _ => ThreadWaits::ForNoDeadline,
            };
            let until = match state.thread_waits {
                ThreadWaits::ForTick(next) => self.clock.instant_of(time_of(next)),
                ThreadWaits::ForNoDeadline => None,
            };
            // 4. Wait, in one of four ways, by how far the deadline is.
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
                // No deadline: sleep until a registration or shutdown.
                None => self.cond.wait(state).unwrap_or_else(|p| p.into_inner()),
            };
            // 5. Awake (on time, roused, or spuriously): we hold the lock and
            //    go round to step 1, looking at the wheel before any sleep.
            state.thread_waits = ThreadWaits::ForNoDeadline;
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

impl Drop for TimerOwners {
    fn drop(&mut self) {
        // Tell the thread under the lock (so it cannot miss it between its
        // check and its wait), rouse it, then wait for it to finish.
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
///
/// Weakly, because a strong static would keep the timer thread alive until
/// the process exits, and no test could check that threads are cleaned up.
/// The cost: a program that sleeps, stops, and sleeps again outside a loop
/// starts a fresh timer (and thread) the second time.
static DEFAULT_TIMER: Mutex<Weak<TimerOwners>> = Mutex::new(Weak::new());

/// Makes `timer` the one `sleep` uses on this thread until the guard is
/// dropped (then the previous one is back).
pub fn enter(timer: Timer) -> EnterGuard {
    let previous = CURRENT.with(|c| c.borrow_mut().replace(timer));
    EnterGuard { previous }
}

/// Restores the previously entered timer when dropped.
pub struct EnterGuard {
    /// The timer entered before this one (`None`: none was), put back on
    /// drop, so that nested loops restore each other's timers in order.
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
    // Inside an event loop (or anything that entered a timer): that one.
    if let Some(timer) = entered_timer() {
        return timer;
    }
    // Outside: the default timer, if some sleep still keeps it alive...
    // (the lock makes "upgrade, else make one" a single step, so two
    // threads never start two defaults).
    let mut default = lock(&DEFAULT_TIMER);
    if let Some(handle) = default.upgrade() {
        return Timer { handle };
    }
    // ...or a new one, remembered weakly for the next sleep to share.
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
///
/// **Two rules from asyncio.**
///
/// * *A sleep belongs to the loop that awaits it.* asyncio's `sleep` reads
///   the running loop when it is awaited, so it can only ever wait on that
///   loop's clock. Ours may be made in one loop and polled in another (sent
///   through a channel, kept across two `run_until_complete` calls of two
///   loops). Each poll looks at the timer entered on the polling thread; if
///   it is not the sleep's own, the sleep moves: it cancels its entry on
///   the old timer and registers on the new one, with the time it still
///   had to run (its deadline was a moment on the old loop's clock, and
///   each loop counts from its own zero). Without this it waited on a timer
///   nothing would ever fire: on a virtual clock that no loop moves, or a
///   virtual loop whose own timer looked empty (issue 12, fault 5). Polled
///   where no timer is entered (a plain thread, `block_on`), it keeps its
///   own timer: a real one fires by itself, a virtual one when its loop
///   next jumps.
/// * *A sleep that is already due at its first poll yields once.*
///   `asyncio.sleep(0)` (and any `delay <= 0`) is a bare yield: the task
///   goes to the back of the ready queue and resumes on the loop's next
///   iteration. So `sleep(Duration::ZERO)`, a `sleep_until` in the past,
///   or a sleep whose deadline passed before it was first polled, returns
///   `Pending` once (after waking itself, so it is queued again at the
///   back) and is ready at the next poll. A translated
///   `await asyncio.sleep(0)` is then the same program (issue 14).
///   `yield_now()` is the explicit spelling of the same thing.
#[must_use = "a Sleep does nothing unless it is awaited"]
pub struct Sleep {
    /// The timer it registers with; `None` until the first poll for a
    /// sleep made outside any timer. Replaced when a poll comes from a loop
    /// with another timer (see "a sleep belongs to the loop that awaits it").
    timer: Option<Timer>,
    /// Read it together with `relative_until_bound`: while that is `true`
    /// this is the *length* `d` of a `sleep(d)` made outside any loop, still
    /// to be added to the time of binding; once it is `false`, it is the
    /// loop time at which the sleep ends, on `timer`'s clock.
    deadline: Duration,
    /// `true` only for a `sleep(d)` made outside any timer and not bound
    /// yet: `deadline` is a length, not a time. `bind` turns it into a time
    /// and clears this, once. (`sleep_until` never sets it: its deadline is
    /// a time from the start.)
    relative_until_bound: bool,
    /// The wheel entry, once the first `Pending` poll registered one; taken
    /// back (`None`) when the sleep completes, so that `Drop` cancels only
    /// what is still registered.
    key: Option<TimerKey>,
    /// Whether `poll` has run once: a sleep due at its *first* poll yields
    /// instead of finishing (asyncio's `sleep(0)`); later polls do not.
    polled: bool,
}

/// Sleeps for `duration` of the current timer's time: `asyncio.sleep(d)`.
/// `Duration::MAX` (or anything past what the clock can hold) sleeps
/// forever, without panicking. `sleep(Duration::ZERO)` yields once, as
/// `asyncio.sleep(0)` does (see [`Sleep`]).
pub fn sleep(duration: Duration) -> Sleep {
    match entered_timer() {
        Some(timer) => Sleep {
            deadline: timer.now().saturating_add(duration),
            timer: Some(timer),
            relative_until_bound: false,
            key: None,
            polled: false,
        },
        None => Sleep {
            timer: None,
            deadline: duration,
            relative_until_bound: true,
            key: None,
            polled: false,
        },
    }
}

/// Sleeps until loop time `deadline` (like scheduling with asyncio's
/// `loop.call_at`): a deadline now or in the past yields once, then is
/// ready (see [`Sleep`]).
pub fn sleep_until(deadline: Duration) -> Sleep {
    Sleep {
        timer: entered_timer(),
        deadline,
        relative_until_bound: false,
        key: None,
        polled: false,
    }
}

impl Sleep {
    /// The loop time at which this sleep ends, on the clock of the loop it
    /// belongs to now (after a move to another loop, on that loop's clock).
    /// (For a `sleep(d)` made outside any event loop and not polled yet,
    /// that time is not known: this returns `d`, the length still to run
    /// from the first poll.)
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

    /// Picks the timer this sleep waits on, here and now. Made outside any
    /// timer: the one current here (and, for `sleep(d)`, the deadline `d`
    /// from now). Bound to one timer but polled under another one entered
    /// on this thread (another event loop): moves to it, keeping the time
    /// still to run (see [`Sleep`]). Otherwise a no-op.
    ///
    /// Every poll does this first; a future that wraps a sleep calls it to
    /// fix the deadline before doing anything else (chapter 8's `timeout`).
    pub fn bind(&mut self) {
        let Some(own) = &self.timer else {
            let timer = self.timer.insert(current_timer());
            // A relative sleep starts counting now, on that timer's clock.
            if std::mem::take(&mut self.relative_until_bound) {
                self.deadline = timer.now().saturating_add(self.deadline);
            }
            return;
        };
        // The usual case, on every poll: the entered timer is our own. Look
        // without cloning it (a clone is an atomic increment).
        let moved_to = CURRENT.with(|current| match &*current.borrow() {
            Some(here) if !here.same_timer(own) => Some(here.clone()),
            _ => None,
        });
        if let Some(here) = moved_to {
            // What was left to run on the old clock (nothing, if it is due
            // there), carried to the new one.
            let left = self.deadline.saturating_sub(own.now());
            if let Some(key) = self.key.take() {
                own.cancel(key);
            }
            self.deadline = here.now().saturating_add(left);
            self.timer = Some(here);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // `Sleep` is `Unpin` (no field is pinned), so a plain `&mut` will do.
        let this = &mut *self;
        // 1. Know our timer and our deadline. At the first poll of a sleep
        //    made outside any loop, this picks the timer entered here and
        //    starts a relative sleep's count; polled by another loop than
        //    its own, the sleep moves to that loop's timer; else a no-op.
        this.bind();
        let first_poll = !std::mem::replace(&mut this.polled, true);
        let timer = this.timer.as_ref().expect("bind() picked a timer");
        // 2. The clock has reached the deadline: done. The entry may still
        //    be in the wheel (we are polled for another reason just as it
        //    came due, or on a virtual clock moved before `fire_due`):
        //    cancel it, so that it wakes nobody later. Due already at the
        //    *first* poll, that is asyncio's `sleep(0)`: a bare yield. Wake
        //    ourselves (the task goes to the back of the run queue) and say
        //    `Pending` this once; the next poll finishes.
        if timer.now() >= this.deadline {
            if let Some(key) = this.key.take() {
                timer.cancel(key);
            }
            if first_poll {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            return Poll::Ready(());
        }
        // 3. Not yet. If we hold an entry, give it this poll's waker: the
        //    task that polls us now is the one to wake (it may not be the
        //    one that polled us first). `false` means the entry is gone.
        let registered = match this.key {
            Some(key) => timer.update_waker(key, cx.waker()),
            None => false,
        };
        if !registered {
            // 4. The entry was gone although step 2 saw the deadline ahead:
            //    it fired in between (the timer thread does not wait for
            //    us). If the clock now agrees, we are done; its wake to the
            //    old waker was already sent.
            if this.key.is_some() && timer.now() >= this.deadline {
                this.key = None;
                return Poll::Ready(());
            }
            // 5. First poll (or a stale key): register the deadline with a
            //    clone of this poll's waker. From here on, the wake comes
            //    from the timer.
            this.key = Some(timer.register(this.deadline, cx.waker().clone()));
        }
        // 6. The promise `Pending` makes: the timer holds our latest waker.
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        // Dropped before its deadline (cancelled, a lost `timeout` race):
        // take the entry out, so that its waker is released now and the
        // timer does not wake a task that no longer waits.
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
