//! # The clock: what time it is, real or virtual
//!
//! The first of chapter 4's pieces, read before the [`Timer`](super::Timer)
//! in `mod.rs`. A timer only ever asks its clock two things: "what time is
//! it?" ([`Clock::now`]) and, on a real clock, "which `Instant` is that
//! loop time?" (so its thread can sleep until it). A virtual clock answers
//! the first from a counter that only its owner moves
//! ([`Clock::advance_to`], chapter 5's event loop when every task waits),
//! and has no answer to the second: nothing sleeps for real on it.
//!
//! Both kinds count from their own zero, in whole ticks
//! ([`TICK`](super::TICK)), so that two runs of the same program on a
//! virtual clock see the same times to the microsecond: that is what lets
//! the tests of the documents' examples (E002-5's two seconds, E004-5's
//! three) assert exact durations.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{tick_for, time_of};

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
            // `Instant` is monotonic: a real clock never runs backwards
            // either, even if someone sets the wall clock.
            ClockKind::Real { origin } => origin.elapsed(),
            // Acquire pairs with `advance_to`'s release: whoever sees the
            // new time also sees what its mover wrote before moving it.
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
                // `fetch_max`, not `store`: two movers racing (a loop and a
                // test, say) can only ever push time forward, never undo
                // each other. Rounded up by `tick_for`, like every deadline,
                // so a move to a deadline always reaches its tick.
                now.fetch_max(tick_for(time), Ordering::AcqRel);
            }
        }
    }

    /// The real `Instant` of a loop time, on a real clock (`None` on a
    /// virtual clock, or past what an `Instant` can hold).
    pub(super) fn instant_of(&self, time: Duration) -> Option<Instant> {
        match &self.kind {
            // `checked_add`: a `Duration::MAX` sleep has no `Instant`; the
            // timer thread then waits without a deadline.
            ClockKind::Real { origin } => origin.checked_add(time),
            // Virtual time has no wall-clock moment to sleep until.
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
