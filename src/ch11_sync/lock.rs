//! `Lock`: asyncio's `asyncio.Lock`, one flag and the list of waiters.
//!
//! The smallest case of the chapter's idea. The state is one bool,
//! `locked`; a task that finds it set queues in the `WaitList` and
//! returns `Pending`. Releasing does not set the flag back while someone
//! waits: it **hands the lock** to the first waiter (the lock stays
//! locked, owned now by that waiter) and wakes it. So between the release
//! and the woken task's turn, a newcomer finds the lock taken and queues
//! behind: no barging, strict FIFO.
//!
//! One invariant makes the fast path right: *unlocked means nobody waits*
//! (a release with waiters never unlocks). So a `lock()` that finds the
//! lock free may take it at once without looking at the list.
//!
//! **One wait, step by step.** Task A holds the lock; B and C want it.
//!
//! 1. B polls `lock()`: locked, so B's waker goes to the back of the list
//!    (node 0) and B returns `Pending`. C does the same (node 1).
//! 2. A drops its guard. The list is not empty, so the lock is *not*
//!    unlocked: node 0 is marked notified, its waker taken out, the lock
//!    left locked (now B's), and only then, with our mutex released, B's
//!    waker is woken: B's task joins the back of the run queue.
//! 3. Meanwhile, before B's task runs, D calls `try_lock()`: locked, so
//!    `None`. (Had A's release unlocked, D would have taken the lock from
//!    B, which waited first: that is barging.)
//! 4. B's task runs, polls its `LockFuture` again, sees node 0 notified:
//!    frees the node and returns the guard. It never had to *take* the
//!    lock: it was given it.
//! 5. Had B been aborted before step 4, its `LockFuture` would have been
//!    dropped with node 0 notified, and its `Drop` would hand the lock on
//!    to node 1 (C), exactly as a release does.
//!
//! Like asyncio's, this lock guards no data: it is a turn to take, and
//! what it protects is whatever the tasks agree it protects (tokio's
//! `Mutex<T>` holds its data, which Rust usually prefers).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use super::{WaitList, WaiterId, wake};
use crate::ch03_waker::lock;

/// asyncio's `asyncio.Lock`: one task at a time, in the order they asked.
///
/// `lock.lock().await` gives a [`LockGuard`] that releases the lock when
/// dropped (asyncio's `async with lock:`); [`Lock::acquire`] and
/// [`Lock::release`] are asyncio's by-hand pair. `Send + Sync`: share it
/// between tasks in an `Arc`.
///
/// ```
/// use std::sync::Arc;
/// use tiny_asyncio::{EventLoop, Lock, spawn, yield_now};
///
/// let event_loop = EventLoop::with_virtual_clock();
/// event_loop.run_until_complete(async {
///     let lock = Arc::new(Lock::new());
///     let guard = lock.lock().await;
///     let other = {
///         let lock = lock.clone();
///         spawn(async move { drop(lock.lock().await) })
///     };
///     yield_now().await; // `other` runs, finds the lock taken, waits
///     assert!(!other.is_finished());
///     drop(guard); // hands the lock to `other`
///     other.await.unwrap();
///     assert!(!lock.locked());
/// });
/// ```
pub struct Lock {
    state: Mutex<LockState>,
}

struct LockState {
    /// Held by someone, or handed to a notified waiter who has not run yet.
    locked: bool,
    /// Counts the times the lock was taken or handed on, so a guard can
    /// tell that the turn it holds is over (its lock was released by hand
    /// meanwhile): the "released twice" misuse.
    turn: u64,
    /// The tasks waiting for the lock, first come first served.
    waiters: WaitList,
}

impl LockState {
    /// Lets go of the lock: to the first waiter if anyone waits (the lock
    /// stays locked, and its waker is returned to be woken after unlocking
    /// the state), else really unlocked.
    fn hand_on(&mut self) -> Option<Waker> {
        match self.waiters.notify_first() {
            Some(waker) => {
                self.turn += 1;
                Some(waker)
            }
            None => {
                self.locked = false;
                None
            }
        }
    }
}

impl Lock {
    /// An unlocked lock.
    pub const fn new() -> Lock {
        Lock {
            state: Mutex::new(LockState {
                locked: false,
                turn: 0,
                waiters: WaitList::new(),
            }),
        }
    }

    /// Waits for the lock, then holds it until the guard is dropped:
    /// asyncio's `async with lock:`. Waiters are served in the order they
    /// first polled this future. Dropping the future while it waits (a
    /// timeout, an abort) leaves the queue; if the lock had already been
    /// handed to it, the lock goes on to the next waiter.
    pub fn lock(&self) -> LockFuture<'_> {
        LockFuture {
            lock: self,
            waiter: None,
        }
    }

    /// Takes the lock if it is free, without waiting. `None` if it is held,
    /// or handed to a waiter that has not run yet.
    pub fn try_lock(&self) -> Option<LockGuard<'_>> {
        let mut state = lock(&self.state);
        if state.locked {
            return None;
        }
        state.locked = true;
        state.turn += 1;
        Some(LockGuard {
            lock: self,
            turn: state.turn,
        })
    }

    /// Whether the lock is held (asyncio's `locked()`). A lock handed to a
    /// waiter whose task has not run yet counts as held.
    pub fn locked(&self) -> bool {
        lock(&self.state).locked
    }

    /// asyncio's `await lock.acquire()`: waits for the lock and keeps it,
    /// with no guard, until [`Lock::release`] is called.
    pub async fn acquire(&self) {
        std::mem::forget(self.lock().await);
    }

    /// asyncio's `lock.release()`: lets go of a lock taken with
    /// [`Lock::acquire`] (handing it to the first waiter, if any).
    ///
    /// # Panics
    /// If the lock is not locked, with asyncio's words: "Lock is not
    /// acquired".
    pub fn release(&self) {
        let waker = {
            let mut state = lock(&self.state);
            if !state.locked {
                drop(state);
                panic!(
                    "Lock::release: the lock is not locked (asyncio: RuntimeError: Lock is not \
                     acquired.); release a lock once, after acquire(), or let a LockGuard \
                     release it when dropped"
                );
            }
            state.hand_on()
        };
        wake(waker);
    }
}

impl Default for Lock {
    fn default() -> Self {
        Lock::new()
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("Lock")
            .field("locked", &state.locked)
            .field("waiters", &state.waiters.len())
            .finish()
    }
}

/// The future [`Lock::lock`] returns.
#[must_use = "a lock is taken only when the future is awaited"]
pub struct LockFuture<'a> {
    lock: &'a Lock,
    /// Our node in the wait list, from the first `Pending` until served or
    /// dropped.
    waiter: Option<WaiterId>,
}

impl<'a> Future for LockFuture<'a> {
    type Output = LockGuard<'a>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<LockGuard<'a>> {
        // Every field is `Unpin`, so the future is too: no pinning to mind.
        let this = self.get_mut();
        // Everything below happens under the lock's own mutex, held for a
        // few instructions: no waker is woken or dropped while it is held
        // (stale wakers are dropped after it, see `remove`).
        let mut state = lock(&this.lock.state);
        let Some(id) = this.waiter else {
            // First poll. Free means nobody waits (the invariant), so take
            // it; else queue at the back. Queuing is the whole of
            // "waiting": the waker is the only thing that will bring this
            // task back, and only a release will wake it.
            if !state.locked {
                state.locked = true;
                state.turn += 1;
                let turn = state.turn;
                return Poll::Ready(LockGuard {
                    lock: this.lock,
                    turn,
                });
            }
            this.waiter = Some(state.waiters.push(cx.waker()));
            return Poll::Pending;
        };
        if state.waiters.is_notified(id) {
            // A release handed us the lock: it is already ours.
            let (_, stale) = state.waiters.remove(id);
            this.waiter = None;
            let turn = state.turn;
            drop(state);
            drop(stale);
            Poll::Ready(LockGuard {
                lock: this.lock,
                turn,
            })
        } else {
            // Woken for some other reason (a timeout racing us, say):
            // still waiting; keep the latest waker.
            let old = state.waiters.update_waker(id, cx.waker());
            drop(state);
            drop(old);
            Poll::Pending
        }
    }
}

impl Drop for LockFuture<'_> {
    /// A waiter that gives up (a timeout, an abort, a `select`-like race
    /// that chose another branch). Never polled or already served: nothing
    /// to do. Still queued: leave the list. Notified but not yet run: the
    /// lock is ours and nobody else can have it, so it must be handed on
    /// here, or every task behind us would wait for ever.
    fn drop(&mut self) {
        let Some(id) = self.waiter else { return };
        let (waker, stale) = {
            let mut state = lock(&self.lock.state);
            let (was_notified, stale) = state.waiters.remove(id);
            // Handed the lock but never took it: hand it on, so that the
            // next waiter is not stranded behind a lock nobody holds.
            let waker = if was_notified { state.hand_on() } else { None };
            (waker, stale)
        };
        drop(stale);
        wake(waker);
    }
}

impl fmt::Debug for LockFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockFuture")
            .field("waiting", &self.waiter.is_some())
            .finish()
    }
}

/// Holds a [`Lock`]; dropping it releases the lock, handing it to the first
/// waiter if anyone waits.
#[must_use = "dropping the guard releases the lock at once"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
    /// The turn this guard holds (see `LockState::turn`).
    turn: u64,
}

impl Drop for LockGuard<'_> {
    /// Releasing: check that this guard's turn is still the lock's (the
    /// misuse of releasing by hand as well), then hand the lock on, and wake
    /// the next holder once our mutex is released.
    fn drop(&mut self) {
        let waker = {
            let mut state = lock(&self.lock.state);
            if !state.locked || state.turn != self.turn {
                drop(state);
                if std::thread::panicking() {
                    return;
                }
                panic!(
                    "LockGuard dropped after its lock was released by hand: the lock was \
                     released twice (asyncio: RuntimeError: Lock is not acquired.); use either \
                     the guard or acquire()/release(), not both"
                );
            }
            state.hand_on()
        };
        wake(waker);
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("turn", &self.turn)
            .finish()
    }
}
