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
//! **The idea, in one picture.** A sleep does not wait by itself. It hands
//! its deadline and its task's waker to one shared [`Timer`], and returns
//! `Pending`. The timer keeps every such pair in one data structure, and a
//! single thread sleeps until the earliest deadline, then wakes whatever is
//! due. A sleep now costs one entry, not one thread:
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
//! The timer asks its structure only two questions: *which deadlines are
//! due by now?* and *when is the next one?* A sorted list would answer both;
//! this chapter uses a faster one, a **timing wheel** ([`wheel`]). Picture a
//! clock face with a hand: a deadline close to now goes in the slot of its
//! exact tick; a deadline far away goes in a coarse slot that covers many
//! ticks, and is moved to a finer slot (a *cascade*) only when the hand
//! gets near it. Nothing is ever sorted, so adding or cancelling a sleep
//! costs the same with one sleep waiting or ten thousand:
//!
//! ```text
//!             now     200 ticks later (200 = 3·64 + 8)
//!              ▼              ▼
//!   level 1  [ 0 ][ 1 ][ 2 ][ 3 ][ 4 ] … [63]   each slot 64 ticks: filed in slot 3
//!   level 0  [0][1][2] … [63]                   each slot 1 tick: where it goes
//!                                               when slot 3 of level 1 comes due
//! ```
//!
//! That is all the wheel a first reading needs. `wheel.rs` explains the
//! rest (eight levels, which slot a deadline's bits pick, how the next busy
//! slot is found without a scan) and follows one deadline of E004-5
//! through it.
//!
//! **The life of one sleep.**
//!
//! 1. `sleep(d)` makes a [`Sleep`]: a deadline, nothing registered yet.
//!    (Like a coroutine, a future that is never polled does nothing.)
//! 2. Its first poll registers `(deadline, waker)` with the timer and gets a
//!    key back (a [`TimerKey`]: which entry is its own, to
//!    change or cancel later). The poll answers `Pending`.
//! 3. A later poll before the deadline (the task was woken for another
//!    reason) gives the timer this poll's waker under the same key. Only
//!    the waker of the latest poll is sure to wake the right task, and the
//!    key keeps the entry's place among equal deadlines.
//! 4. At the deadline the timer takes the entry out of the wheel and wakes
//!    the waker; the task is polled again, sees the time has come, and the
//!    sleep is `Ready`.
//! 5. A sleep dropped before then (its task cancelled, a `timeout` that won)
//!    cancels its entry: a dropped sleep wakes nobody.
//!
//! ## The files of this chapter, in reading order
//!
//! From the bottom up, one piece a file, except the timer, which lives here
//! in `mod.rs`:
//!
//! 1. `clock.rs`, [`Clock`]: what time it is. A **real** clock reads
//!    `Instant`; a **virtual** clock stands still until someone moves it.
//!    Both count from their own zero, so a loop's time starts at zero and a
//!    virtual run is reproducible to the microsecond. The tests of the
//!    documents' examples run on the virtual clock: three seconds of story
//!    in a millisecond of real time.
//! 2. `wheel.rs`, [`wheel::Wheel`]: the timing wheel, a plain value with no
//!    threads or clocks: ticks in, values out. (`wheel/tests.rs` checks its
//!    bookkeeping from inside; skip it on a first reading.)
//! 3. `mod.rs` (this file), [`Timer`]: the service. A wheel of wakers behind
//!    a mutex, plus, on a real clock, the timer thread. On a virtual clock
//!    there is no thread at all: whoever owns the clock (chapter 5's event
//!    loop) moves it with [`Clock::advance_to`] and calls
//!    [`Timer::fire_due`]. Also here: [`enter`], which tells `sleep` which
//!    timer to use.
//! 4. `sleep.rs`, [`Sleep`]: the future `sleep(d)` returns, living the five
//!    steps above.
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
//! **The timer thread's life.** It starts with the first registration on a
//! real clock (a loop that never sleeps costs no thread) and is joined when
//! the last [`Timer`] handle is dropped. Wakers are always called outside
//! the timer's lock, because a woken task may register its next sleep on
//! this same timer at once. A panicking waker is reported, not allowed to
//! kill the thread (every later sleep would hang).
//!
//! **Rousing it early.** The thread sleeps on a condvar toward the earliest
//! deadline it saw. A registration that comes *before* that deadline must
//! wake it, or the thread would oversleep the new one; a later registration
//! leaves it alone.
//!
//! **The spin.** An OS sleep until time T wakes some tens of microseconds
//! after T. So the thread sleeps only until [`SPIN_BEFORE_DEADLINE`] before
//! the deadline and spins the rest, trading a little CPU for punctuality.
//!
//! **Which timer does `sleep` use?** The one "entered" on this thread with
//! [`enter`]; chapter 5's event loop enters its own while it runs. A sleep
//! made where none is entered waits to choose: it *binds* at its first
//! poll, to the timer entered there, and a relative `sleep(d)` counts its
//! `d` from that moment. Why: `event_loop.run_until_complete(sleep(d))`
//! makes the sleep before the loop runs, yet it must sleep on that loop's
//! clock.
//!
//! **The default timer.** Where no timer is entered even at the first poll
//! (chapter 3's `block_on(sleep(d))`), the sleep uses a process-wide
//! default timer on the real clock. It is held weakly ([`current_timer`]):
//! it lives while some sleep uses it, and its thread exits when the last
//! one is gone, so that no thread outlives the sleeps it serves.
//!
//! **Two rules from asyncio** (both explained on [`Sleep`]). A sleep
//! already due at its first poll (`sleep(0)`) yields once instead of
//! finishing, as `asyncio.sleep(0)` does. A sleep polled by another event
//! loop than its own moves to that loop's timer, since an asyncio sleep
//! belongs to the loop that awaits it.
//!
//! ## Limits, on purpose
//!
//! * The timer is a thread of its own. asyncio (and tokio) have no timer
//!   thread: the loop's wait for I/O takes the next deadline as its
//!   timeout. There is no loop yet to do that; chapter 5's loop still lets
//!   this thread wake it.
//! * The spin costs up to [`SPIN_BEFORE_DEADLINE`] of one core per firing.
//!   Set it to zero and sleeps run a little late instead.
//! * The default timer, held weakly, is made afresh each time the program
//!   sleeps again after all its sleeps have ended (a new thread each time).
//!
//! **What the next chapter needs from this one.** An event loop needs two
//! things from the timer: wakers for sleeping tasks (the seam from chapter
//! 3), and on a virtual clock, "what is the next deadline?"
//! ([`Timer::next_deadline`]), so that when every task is waiting it can
//! jump the clock straight there ([`Clock::advance_to`]) and fire it
//! ([`Timer::fire_due`]).

#![forbid(unsafe_code)]

// Read in the order of "the files of this chapter" above: the clock, the
// wheel, the `Timer` service (here, with its thread and `enter`), then the
// `Sleep` that uses them. (rustfmt sorts the lines below by name.)
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
///
/// Deadlines round up ([`tick_for`]), "now" rounds down (here): both err
/// toward late, so an entry fires only once the clock has truly reached it.
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
    /// for (and so must rouse it). A "never" deadline never does. Read a
    /// call `waits.is_after(tick)` as "the thread waits for something after
    /// `tick`".
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
    ///
    /// It holds the lock except while it wakes wakers, spins, or waits on
    /// the condvar (which releases the lock while it waits). Every turn of
    /// the loop starts with the lock held and looks at the wheel afresh.
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
            // 4. Wait, in one of four ways, by how far the deadline is:
            //    far (sleep on the condvar), close (spin), already passed
            //    (do not wait), or none at all (sleep until roused).
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
                    // the spin by setting `earlier` (a spinning thread does
                    // not hear the condvar). See SPIN_BEFORE_DEADLINE.
                    // The flag is cleared while we still hold the lock: a
                    // registration decides to set it under the same lock,
                    // so no "earlier" meant for this spin is wiped out.
                    self.earlier.store(false, Ordering::Release);
                    drop(state);
                    let at = until.expect("a duration left means a deadline");
                    while Instant::now() < at && !self.earlier.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                    lock(&self.state)
                }
                // The deadline passed while we looked: no wait, step 2 of
                // the next turn fires it.
                None if until.is_some() => state,
                // No deadline (or one too far for an `Instant`): sleep
                // until a registration or shutdown rouses us.
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
