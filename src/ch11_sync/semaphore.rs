//! `Semaphore`: asyncio's `asyncio.Semaphore`, the lock with a count.
//!
//! The lock's `locked` flag becomes a count of free permits. `acquire`
//! takes one if any is free, else queues. A permit given back while
//! someone waits is **handed to the first waiter** (the count does not go
//! up), exactly as the lock is handed on; so the same invariant holds:
//! *a free permit means nobody waits*, and a newcomer can never take a
//! permit ahead of a queued waiter. (asyncio's `Semaphore` hands permits
//! on the same way since 3.11; before, a newcomer could barge.)
//!
//! **Why hand over instead of counting up.** A release could simply add
//! one to the count and wake the first waiter, which would take the
//! permit when it runs; that is what asyncio did before 3.11. But between
//! the wake and the waiter's turn, any task that calls `acquire` finds a
//! free permit and takes it, and the woken waiter finds none and must
//! queue again, at the back: under load, a waiter can lose its place over
//! and over. Handing the permit to the waiter at the release closes that
//! window, and costs nothing: the count never went up, so nothing can be
//! taken from it.
//!
//! **Conservation.** Every permit is, at each moment, in exactly one place:
//! in the count, in a `SemaphorePermit`, or handed to a notified waiter.
//! A permit moves only under the semaphore's mutex, from one place to
//! another: a drop of a `SemaphorePermit` or of a notified `Acquire` hands it
//! on (`hand_on`), a poll of a notified `Acquire` turns it into a
//! `SemaphorePermit`. The property tests check the sum at the end of
//! random runs full of timeouts and aborts.
//!
//! EX-3 is this file's example: 100 fetches, each inside
//! `sem.acquire().await` of a `Semaphore::new(10)`, run ten at a time.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use super::{WaitList, WaiterId, wake};
use crate::ch03_waker::lock;

/// asyncio's `asyncio.Semaphore(n)`: at most `n` holders at a time, served
/// in the order they asked. `acquire().await` gives a [`SemaphorePermit`]
/// that gives the permit back when dropped (asyncio's `async with sem:`).
/// `Send + Sync`: share it in an `Arc`, or borrow it from tasks' children
/// gathered in one task (EX-3).
///
/// ```
/// use std::time::Duration;
/// use tiny_asyncio::{EventLoop, Semaphore, gather, sleep};
///
/// // EX-3 in small: 6 fetches of 2 s, at most 2 at a time: 3 rounds, 6 s.
/// let event_loop = EventLoop::with_virtual_clock();
/// let sem = Semaphore::new(2);
/// let results = event_loop.run_until_complete(gather((0..6).map(|i| {
///     let sem = &sem;
///     async move {
///         let _permit = sem.acquire().await;
///         sleep(Duration::from_secs(2)).await;
///         i
///     }
/// })));
/// assert_eq!(results, [0, 1, 2, 3, 4, 5]);
/// assert_eq!(event_loop.time(), Duration::from_secs(6));
/// ```
pub struct Semaphore {
    state: Mutex<SemaphoreState>,
}

struct SemaphoreState {
    /// Free permits. Never above 0 while anyone waits (see the module doc).
    permits: usize,
    /// The tasks waiting for a permit, first come first served.
    waiters: WaitList,
}

impl SemaphoreState {
    /// One permit comes back: to the first waiter if anyone waits (its
    /// waker is returned, to be woken after unlocking), else to the count.
    fn hand_on(&mut self) -> Option<Waker> {
        let waker = self.waiters.notify_first();
        if waker.is_none() {
            self.permits += 1;
        }
        waker
    }
}

impl Semaphore {
    /// The most permits a semaphore may count (tokio's limit too): far more
    /// than any program holds, and room enough that adding one never
    /// overflows.
    pub const MAX_PERMITS: usize = usize::MAX >> 3;

    /// A semaphore with `permits` free permits: asyncio's
    /// `asyncio.Semaphore(permits)`.
    ///
    /// # Panics
    /// If `permits` is above [`Semaphore::MAX_PERMITS`].
    pub const fn new(permits: usize) -> Semaphore {
        if permits > Semaphore::MAX_PERMITS {
            panic!(
                "Semaphore::new: the count is past Semaphore::MAX_PERMITS (usize::MAX >> 3); \
                 asyncio's Semaphore takes any value >= 0 (ValueError: Semaphore initial value \
                 must be >= 0), ours is a usize with room to count: ask for fewer permits"
            );
        }
        Semaphore {
            state: Mutex::new(SemaphoreState {
                permits,
                waiters: WaitList::new(),
            }),
        }
    }

    /// Waits for a permit: asyncio's `async with sem:` (or `await
    /// sem.acquire()`). Waiters are served in the order they first polled.
    /// Dropping the future while it waits leaves the queue; if a permit had
    /// already been handed to it, the permit goes on to the next waiter.
    pub fn acquire(&self) -> Acquire<'_> {
        Acquire {
            semaphore: self,
            waiter: None,
        }
    }

    /// Takes a permit if one is free, without waiting; `None` if none is
    /// (a permit handed to a waiter that has not run yet is not free).
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        let mut state = lock(&self.state);
        if state.permits == 0 {
            return None;
        }
        state.permits -= 1;
        Some(SemaphorePermit { semaphore: self })
    }

    /// How many permits are free now.
    pub fn available_permits(&self) -> usize {
        lock(&self.state).permits
    }

    /// Whether `acquire` would wait (asyncio's `locked()`).
    pub fn locked(&self) -> bool {
        lock(&self.state).permits == 0
    }

    /// asyncio's `sem.release()`: adds one permit (handed to the first
    /// waiter, if any), whether or not it was ever acquired. Pairs with
    /// [`SemaphorePermit::forget`].
    ///
    /// # Panics
    /// If the count would go past [`Semaphore::MAX_PERMITS`].
    pub fn release(&self) {
        let waker = {
            let mut state = lock(&self.state);
            if state.permits >= Semaphore::MAX_PERMITS {
                drop(state);
                panic!(
                    "Semaphore::release: the count would go past Semaphore::MAX_PERMITS \
                     (usize::MAX >> 3); a release without an acquire adds a permit each time \
                     (asyncio's too): release only what you acquired"
                );
            }
            state.hand_on()
        };
        wake(waker);
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("Semaphore")
            .field("permits", &state.permits)
            .field("waiters", &state.waiters.len())
            .finish()
    }
}

/// The future [`Semaphore::acquire`] returns.
#[must_use = "a permit is taken only when the future is awaited"]
pub struct Acquire<'a> {
    semaphore: &'a Semaphore,
    /// Our node in the list, from the first `Pending` until served or dropped.
    waiter: Option<WaiterId>,
}

impl<'a> Future for Acquire<'a> {
    type Output = SemaphorePermit<'a>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<SemaphorePermit<'a>> {
        let this = self.get_mut();
        let mut state = lock(&this.semaphore.state);
        // Three cases: the first poll (take a free permit or queue), a
        // later poll after a release handed us a permit (take it), or a
        // later poll for some other reason (keep waiting).
        let Some(id) = this.waiter else {
            // First poll: a free permit means nobody waits, so take it.
            if state.permits > 0 {
                state.permits -= 1;
                return Poll::Ready(SemaphorePermit {
                    semaphore: this.semaphore,
                });
            }
            this.waiter = Some(state.waiters.push(cx.waker()));
            return Poll::Pending;
        };
        if state.waiters.is_notified(id) {
            // A release handed us its permit: it is ours already.
            let (_, stale) = state.waiters.remove(id);
            this.waiter = None;
            drop(state);
            drop(stale);
            Poll::Ready(SemaphorePermit {
                semaphore: this.semaphore,
            })
        } else {
            let old = state.waiters.update_waker(id, cx.waker());
            drop(state);
            drop(old);
            Poll::Pending
        }
    }
}

impl Drop for Acquire<'_> {
    /// A waiter that gives up: out of the list if it was still waiting; if
    /// a permit had been handed to it, the permit goes on to the next
    /// waiter (or back to the count), so none is lost.
    fn drop(&mut self) {
        let Some(id) = self.waiter else { return };
        let (waker, stale) = {
            let mut state = lock(&self.semaphore.state);
            let (was_notified, stale) = state.waiters.remove(id);
            // Handed a permit but never took it: hand it on.
            let waker = if was_notified { state.hand_on() } else { None };
            (waker, stale)
        };
        drop(stale);
        wake(waker);
    }
}

impl fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("waiting", &self.waiter.is_some())
            .finish()
    }
}

/// One permit of a [`Semaphore`]; dropping it gives the permit back
/// (to the first waiter, if anyone waits).
#[must_use = "dropping the permit gives it back at once"]
pub struct SemaphorePermit<'a> {
    semaphore: &'a Semaphore,
}

impl SemaphorePermit<'_> {
    /// Keeps the permit taken for good: dropping nothing gives it back.
    /// [`Semaphore::release`] adds one again.
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphorePermit<'_> {
    /// Gives the permit back: to the first waiter if anyone waits (woken
    /// after the mutex is released), else to the count.
    fn drop(&mut self) {
        let waker = lock(&self.semaphore.state).hand_on();
        wake(waker);
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SemaphorePermit")
    }
}
