//! `Event`: asyncio's `asyncio.Event`, a flag and everybody waiting for it.
//!
//! The broadcast case of the chapter's idea: `set` hands *every* waiter its
//! turn at once, in the order they came, and the flag stays set so that
//! later `wait`s return at once. `clear` lowers the flag again; a waiter
//! that had already been notified still returns (it was notified while the
//! flag was up), as in asyncio, where `wait()` returns `True` once its
//! future is resolved even if `clear()` came in between.
//!
//! A dropped waiter has nothing to hand on: an event's wake-up is not a
//! thing that only one task may have.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use super::{WaitList, WaiterId, wake_all};
use crate::ch03_waker::lock;

/// asyncio's `asyncio.Event`: [`set`](Event::set) wakes every task in
/// [`wait`](Event::wait), and `wait` returns at once while the flag is set.
/// `Send + Sync`: share it in an `Arc`.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tiny_asyncio::{Event, EventLoop, sleep, spawn};
///
/// let event_loop = EventLoop::with_virtual_clock();
/// event_loop.run_until_complete(async {
///     let ready = Arc::new(Event::new());
///     let waiter = {
///         let ready = ready.clone();
///         spawn(async move { ready.wait().await })
///     };
///     sleep(Duration::from_secs(1)).await;
///     ready.set();
///     waiter.await.unwrap();
///     assert!(ready.is_set());
/// });
/// assert_eq!(event_loop.time(), Duration::from_secs(1));
/// ```
pub struct Event {
    /// The flag, readable without the lock (`is_set`, and `wait`'s fast
    /// path); written only under the lock, so a `set` cannot slip between
    /// a waiter's look at the flag and its joining the list.
    flag: AtomicBool,
    waiters: Mutex<WaitList>,
}

impl Event {
    /// An event that is not set.
    pub const fn new() -> Event {
        Event {
            flag: AtomicBool::new(false),
            waiters: Mutex::new(WaitList::new()),
        }
    }

    /// Sets the flag and wakes every waiter, in the order they came.
    /// Setting a set event does nothing.
    ///
    /// The wakers are collected under the lock and woken after it: a
    /// hundred waiters cost one `Vec` and a hundred run-queue pushes, and
    /// none of their wakers runs while we hold the list.
    pub fn set(&self) {
        let mut wakers = Vec::new();
        {
            let mut waiters = lock(&self.waiters);
            self.flag.store(true, Ordering::Release);
            waiters.notify_all(&mut wakers);
        }
        // Outside the lock: a waker may be anyone's code (see `wake_all`).
        wake_all(wakers);
    }

    /// Lowers the flag: later `wait`s wait for the next `set`.
    pub fn clear(&self) {
        let _waiters = lock(&self.waiters);
        self.flag.store(false, Ordering::Release);
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Waits until the flag is set (at once if it is): asyncio's
    /// `await event.wait()`.
    pub fn wait(&self) -> EventWait<'_> {
        EventWait {
            event: self,
            waiter: None,
        }
    }
}

impl Default for Event {
    fn default() -> Self {
        Event::new()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waiters = lock(&self.waiters);
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .field("waiters", &waiters.len())
            .finish()
    }
}

/// The future [`Event::wait`] returns.
#[must_use = "an event wait does nothing unless awaited"]
pub struct EventWait<'a> {
    event: &'a Event,
    /// Our node in the list, from the first `Pending` until served or dropped.
    waiter: Option<WaiterId>,
}

impl Future for EventWait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // The first poll looks at the flag and, if it is down, queues; a
        // later poll looks only at its own node: notified means a `set`
        // came while it waited, whatever the flag says now.
        let Some(id) = this.waiter else {
            // Set already: no lock at all.
            if this.event.is_set() {
                return Poll::Ready(());
            }
            let mut waiters = lock(&this.event.waiters);
            // Look again under the lock: a `set` may have come in between.
            if this.event.is_set() {
                return Poll::Ready(());
            }
            this.waiter = Some(waiters.push(cx.waker()));
            return Poll::Pending;
        };
        let mut waiters = lock(&this.event.waiters);
        if waiters.is_notified(id) {
            let (_, stale) = waiters.remove(id);
            this.waiter = None;
            drop(waiters);
            drop(stale);
            Poll::Ready(())
        } else {
            let old = waiters.update_waker(id, cx.waker());
            drop(waiters);
            drop(old);
            Poll::Pending
        }
    }
}

impl Drop for EventWait<'_> {
    /// A waiter that gives up only leaves the list: a `set` wakes everyone,
    /// so there is no turn to hand on.
    fn drop(&mut self) {
        if let Some(id) = self.waiter {
            let (_, stale) = lock(&self.event.waiters).remove(id);
            drop(stale);
        }
    }
}

impl fmt::Debug for EventWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventWait")
            .field("waiting", &self.waiter.is_some())
            .finish()
    }
}
