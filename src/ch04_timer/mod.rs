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
//! **The pieces**, from the bottom up, one file each in this folder except
//! the timer, which lives here in `mod.rs`:
//!
//! * [`Clock`] (`clock.rs`): what time it is. A **real** clock reads
//!   `Instant`; a **virtual** clock stands still until someone moves it.
//!   Both count from their own origin, so a loop's time starts at zero and
//!   a virtual run is reproducible to the microsecond. Tests of the
//!   documents' examples run on the virtual clock: three seconds of story
//!   in a millisecond of real time.
//! * [`wheel::Wheel`] (`wheel.rs`): the timing wheel, a plain value with no
//!   threads or clocks: ticks in, values out.
//! * [`Timer`] (`mod.rs`): the service. A wheel of wakers behind a mutex,
//!   plus, on a real clock, the timer thread. On a virtual clock there is
//!   no thread at all: whoever owns the clock (chapter 5's event loop)
//!   moves it with [`Clock::advance_to`] and calls [`Timer::fire_due`].
//! * [`Sleep`] (`sleep.rs`): the future `sleep(d)` returns, living the five
//!   steps above. Two rules come from asyncio: a sleep that is already due
//!   at its first poll (`sleep(0)`) yields once instead of finishing, and a
//!   sleep polled by another loop than the one it was made in moves to that
//!   loop's timer (see [`Sleep`]).
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

// The folder reads in the order of "the pieces" above: the clock, the
// wheel, the `Timer` service (here, with its thread and `enter`), then the
// `Sleep` that uses them.
mod clock;
mod sleep;
pub mod wheel;

pub use clock::Clock;
pub use sleep::{Sleep, sleep, sleep_until};

use std::cell::RefCell;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::task::Waker;
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
