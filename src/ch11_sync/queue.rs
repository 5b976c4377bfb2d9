//! `Queue`: asyncio's `asyncio.Queue`, a buffer with two lines of waiters.
//!
//! A queue is two semaphores facing each other: getters wait for *items*,
//! putters (when the queue has a `maxsize`) wait for *free slots*, and each
//! side's progress gives the other side its turn. A third list, the
//! joiners, waits for the count of unfinished items to reach zero.
//!
//! **Handing on without moving items.** The lock and the semaphore hand
//! the freed thing to the first waiter. A queue must be more careful,
//! because items have an order: had `put` moved item A into getter 1's
//! node and item B into getter 2's, and getter 1 then been dropped (a
//! timeout), A could only go to a later getter, after B. So a put
//! *reserves* an item for the first getter instead (the count
//! `reserved_items` goes up and the getter is notified), and the item
//! stays in the buffer. A notified getter, when its task runs, pops the
//! front of the buffer, whatever item that is by then; a dropped notified
//! getter passes its reservation on. Items only ever leave from the front,
//! one per completed `get`, so **every item is got exactly once, in the
//! order it was put**, whatever gives up on the way. Putters waiting for a
//! slot work the same way with `reserved_slots`.
//!
//! The invariants, which make every fast path right:
//! * `reserved_items <= items.len()`, and if there is an unreserved item,
//!   no getter waits (a put with a getter waiting reserves the new item);
//! * `items.len() + reserved_slots <= maxsize` when bounded, and if there is
//!   an unreserved free slot, no putter waits;
//! * `unfinished` counts the items put and not yet marked done.
//!
//! **The life of one item, when a getter waits.** The consumer polls
//! `get()` on an empty queue: its waker joins `getters`, `Pending`. The
//! producer's `put(7)`: a slot is free, so 7 goes to the back of `items`,
//! `unfinished` goes up, and since a getter waits, one item is reserved
//! for it (`reserved_items` 0 → 1, the getter's node notified, its waker
//! woken after the mutex is released). Before the consumer's task runs, a
//! third task's `get_nowait()` finds every item reserved: `QueueEmpty`
//! (asyncio would let it take 7). The consumer's task runs, its `get`
//! sees its node notified, gives back the reservation and pops the front:
//! 7. A slot came free, so the first waiting putter, if any, is handed it.
//!
//! EX-4 is this file's example: a producer and a consumer over a
//! `Queue::new(2)`.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use super::{WaitList, WaiterId, wake, wake_all};
use crate::ch03_waker::lock;

/// asyncio's `asyncio.Queue(maxsize)`: first in, first out, between tasks.
///
/// `put(item).await` waits while the queue is full, `get().await` while it
/// is empty, each side served in the order it came; `task_done` and
/// `join().await` track the work the items stand for. `maxsize` 0 means
/// unbounded, as in asyncio. `Send + Sync` when `T: Send`: share it in an
/// `Arc`.
///
/// ```
/// use std::sync::Arc;
/// use tiny_asyncio::{EventLoop, Queue, spawn};
///
/// let event_loop = EventLoop::with_virtual_clock();
/// let got = event_loop.run_until_complete(async {
///     let queue = Arc::new(Queue::new(2));
///     let consumer = {
///         let queue = queue.clone();
///         spawn(async move {
///             let mut got = Vec::new();
///             for _ in 0..5 {
///                 got.push(queue.get().await);
///                 queue.task_done();
///             }
///             got
///         })
///     };
///     for i in 0..5 {
///         queue.put(i).await; // waits while two items are in the queue
///     }
///     queue.join().await; // every item put has been marked done
///     consumer.await.unwrap()
/// });
/// assert_eq!(got, [0, 1, 2, 3, 4]);
/// ```
pub struct Queue<T> {
    state: Mutex<QueueState<T>>,
    /// 0: unbounded.
    maxsize: usize,
}

struct QueueState<T> {
    items: VecDeque<T>,
    /// Items kept for getters that were notified and have not run yet; the
    /// first `reserved_items` items of the buffer are not free to take.
    reserved_items: usize,
    /// Slots kept for putters that were notified and have not run yet.
    reserved_slots: usize,
    /// Items put and not yet marked done (`task_done`).
    unfinished: usize,
    getters: WaitList,
    putters: WaitList,
    joiners: WaitList,
}

impl<T> QueueState<T> {
    /// Whether an item is free to take (not reserved for a notified getter).
    fn item_free(&self) -> bool {
        self.items.len() > self.reserved_items
    }

    /// Whether a slot is free to fill (not reserved for a notified putter).
    fn slot_free(&self, maxsize: usize) -> bool {
        maxsize == 0 || self.items.len() + self.reserved_slots < maxsize
    }

    /// Puts `item` at the back (a slot is free: the caller checked or was
    /// handed one) and, if a getter waits, reserves the item for it.
    fn push(&mut self, item: T) -> Option<Waker> {
        self.items.push_back(item);
        self.unfinished += 1;
        self.reserve_item()
    }

    /// Hands a free item to the first waiting getter, if both exist.
    fn reserve_item(&mut self) -> Option<Waker> {
        if !self.item_free() {
            return None;
        }
        let waker = self.getters.notify_first();
        if waker.is_some() {
            self.reserved_items += 1;
        }
        waker
    }

    /// Pops the front item (the caller checked there is one for it) and,
    /// since a slot came free, hands the slot to the first waiting putter.
    fn pop(&mut self, maxsize: usize) -> (T, Option<Waker>) {
        let item = self
            .items
            .pop_front()
            .expect("a queue's reserved or free item is in its buffer");
        (item, self.reserve_slot(maxsize))
    }

    /// Hands a free slot to the first waiting putter, if both exist.
    fn reserve_slot(&mut self, maxsize: usize) -> Option<Waker> {
        if !self.slot_free(maxsize) {
            return None;
        }
        let waker = self.putters.notify_first();
        if waker.is_some() {
            self.reserved_slots += 1;
        }
        waker
    }
}

impl<T> Queue<T> {
    /// A queue that holds at most `maxsize` items (`0`: no limit), as
    /// asyncio's `asyncio.Queue(maxsize)`.
    pub const fn new(maxsize: usize) -> Queue<T> {
        Queue {
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                reserved_items: 0,
                reserved_slots: 0,
                unfinished: 0,
                getters: WaitList::new(),
                putters: WaitList::new(),
                joiners: WaitList::new(),
            }),
            maxsize,
        }
    }

    /// The `maxsize` it was made with (0: unbounded).
    pub fn maxsize(&self) -> usize {
        self.maxsize
    }

    /// Waits for a free slot (only while the queue is full), then puts
    /// `item` at the back: asyncio's `await queue.put(item)`. Dropped
    /// before it returns, the item was not put (and the future drops it).
    pub fn put(&self, item: T) -> QueuePut<'_, T> {
        QueuePut {
            queue: self,
            item: Some(item),
            waiter: None,
        }
    }

    /// Waits for an item (only while the queue is empty), then takes the
    /// front one: asyncio's `await queue.get()`. Dropped before it returns,
    /// it took nothing.
    pub fn get(&self) -> QueueGet<'_, T> {
        QueueGet {
            queue: self,
            waiter: None,
        }
    }

    /// Puts `item` if a slot is free: asyncio's `put_nowait`. Otherwise
    /// gives the item back in [`QueueFull`] (asyncio: `QueueFull`). A slot
    /// handed to a putter that was waiting first is not free.
    pub fn put_nowait(&self, item: T) -> Result<(), QueueFull<T>> {
        let waker = {
            let mut state = lock(&self.state);
            if !state.slot_free(self.maxsize) {
                return Err(QueueFull(item));
            }
            state.push(item)
        };
        wake(waker);
        Ok(())
    }

    /// Takes the front item if one is free: asyncio's `get_nowait`.
    /// Otherwise [`QueueEmpty`]. An item handed to a getter that was
    /// waiting first is not free (asyncio would let this call take it).
    pub fn get_nowait(&self) -> Result<T, QueueEmpty> {
        let (item, waker) = {
            let mut state = lock(&self.state);
            if !state.item_free() {
                return Err(QueueEmpty);
            }
            state.pop(self.maxsize)
        };
        wake(waker);
        Ok(item)
    }

    /// How many items are in the queue (those promised to a notified getter
    /// included): asyncio's `qsize()`.
    pub fn qsize(&self) -> usize {
        lock(&self.state).items.len()
    }

    /// Whether the queue holds no item: asyncio's `empty()`.
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Whether the queue holds `maxsize` items (never, unbounded):
    /// asyncio's `full()`.
    pub fn full(&self) -> bool {
        self.maxsize > 0 && self.qsize() >= self.maxsize
    }

    /// Marks one item as processed: asyncio's `task_done()`. When every
    /// item put has been marked, every `join` returns.
    ///
    /// The count is of items *put*, not got: a consumer calls this once it
    /// has finished with an item it got, and `join` waits for that, not
    /// merely for the queue to be empty (EX-4's join comes 3 s after the
    /// last get, when the consumer is done with the last item).
    ///
    /// # Panics
    /// If called more times than items were put, with asyncio's words:
    /// "task_done() called too many times".
    pub fn task_done(&self) {
        let mut wakers = Vec::new();
        {
            let mut state = lock(&self.state);
            if state.unfinished == 0 {
                drop(state);
                panic!(
                    "Queue::task_done: called more times than there were items put (asyncio: \
                     ValueError: task_done() called too many times); call it once per item got"
                );
            }
            state.unfinished -= 1;
            if state.unfinished == 0 {
                state.joiners.notify_all(&mut wakers);
            }
        }
        wake_all(wakers);
    }

    /// Waits until every item put has been marked done with
    /// [`task_done`](Queue::task_done) (at once if none is unfinished):
    /// asyncio's `await queue.join()`.
    pub fn join(&self) -> QueueJoin<'_, T> {
        QueueJoin {
            queue: self,
            waiter: None,
        }
    }

    /// Items put and not yet marked done.
    pub fn unfinished(&self) -> usize {
        lock(&self.state).unfinished
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("Queue")
            .field("maxsize", &self.maxsize)
            .field("qsize", &state.items.len())
            .field("unfinished", &state.unfinished)
            .field("getters", &state.getters.len())
            .field("putters", &state.putters.len())
            .finish()
    }
}

/// The error of [`Queue::put_nowait`] on a full queue: asyncio's
/// `QueueFull`, with the item given back.
#[derive(PartialEq, Eq)]
pub struct QueueFull<T>(pub T);

impl<T> QueueFull<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for QueueFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueFull(..)")
    }
}

impl<T> fmt::Display for QueueFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "Queue::put_nowait: the queue is full (asyncio: QueueFull); await put() to wait for a slot",
        )
    }
}

impl<T> std::error::Error for QueueFull<T> {}

/// The error of [`Queue::get_nowait`] when no item is free: asyncio's
/// `QueueEmpty`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueEmpty;

impl fmt::Display for QueueEmpty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "Queue::get_nowait: no item to take (asyncio: QueueEmpty); await get() to wait for one",
        )
    }
}

impl std::error::Error for QueueEmpty {}

/// The future [`Queue::put`] returns.
#[must_use = "an item is put only when the future is awaited"]
pub struct QueuePut<'a, T> {
    queue: &'a Queue<T>,
    /// The item, until it is put.
    item: Option<T>,
    /// Our node among the putters, from the first `Pending` until served or
    /// dropped.
    waiter: Option<WaiterId>,
}

// Nothing in a `QueuePut` is pinned (the item is only ever moved out by
// value), so it may move freely whatever `T` is.
impl<T> Unpin for QueuePut<'_, T> {}

impl<T> Future for QueuePut<'_, T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let maxsize = this.queue.maxsize;
        let mut state = lock(&this.queue.state);
        // Step 1: may we put? Either a free slot on the first poll, or a
        // slot a get kept for us since; otherwise queue (first poll) or
        // keep waiting (later polls), and return `Pending`.
        let stale = match this.waiter {
            // First poll: a free slot means no putter waits, so fill it.
            None if state.slot_free(maxsize) => None,
            None => {
                this.waiter = Some(state.putters.push(cx.waker()));
                return Poll::Pending;
            }
            // A get handed us a slot: it is kept for us.
            Some(id) if state.putters.is_notified(id) => {
                let (_, stale) = state.putters.remove(id);
                this.waiter = None;
                state.reserved_slots -= 1;
                stale
            }
            Some(id) => {
                let old = state.putters.update_waker(id, cx.waker());
                drop(state);
                drop(old);
                return Poll::Pending;
            }
        };
        // Step 2: put it. Only now does the item enter the queue, in the
        // same poll that returns `Ready`: a put dropped before this line
        // has put nothing, so a timeout around it never half-puts.
        let item = this.item.take().expect(
            "QueuePut polled after it returned: a finished future must not be polled again",
        );
        // Step 3: the new item may be a getter's turn; its waker (if any)
        // is woken once the mutex is released, and the stale one of our
        // own node dropped then too.
        let waker = state.push(item);
        drop(state);
        drop(stale);
        wake(waker);
        Poll::Ready(())
    }
}

impl<T> Drop for QueuePut<'_, T> {
    /// A put that gives up: it put nothing (its item is dropped with the
    /// future). Still queued: leave the list. Handed a slot: hand the slot
    /// on to the next waiting putter, or leave it free.
    fn drop(&mut self) {
        let Some(id) = self.waiter else { return };
        let (waker, stale) = {
            let mut state = lock(&self.queue.state);
            let (was_notified, stale) = state.putters.remove(id);
            // Handed a slot but never filled it: hand it on.
            let waker = if was_notified {
                state.reserved_slots -= 1;
                state.reserve_slot(self.queue.maxsize)
            } else {
                None
            };
            (waker, stale)
        };
        drop(stale);
        wake(waker);
    }
}

impl<T> fmt::Debug for QueuePut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueuePut")
            .field("waiting", &self.waiter.is_some())
            .finish()
    }
}

/// The future [`Queue::get`] returns.
#[must_use = "an item is taken only when the future is awaited"]
pub struct QueueGet<'a, T> {
    queue: &'a Queue<T>,
    /// Our node among the getters, from the first `Pending` until served or
    /// dropped.
    waiter: Option<WaiterId>,
}

impl<T> Future for QueueGet<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        let mut state = lock(&this.queue.state);
        // Step 1: may we take? A free item on the first poll, or one a put
        // kept for us since; otherwise queue, or keep waiting.
        let stale = match this.waiter {
            // First poll: a free item means no getter waits, so take it.
            None if state.item_free() => None,
            None => {
                this.waiter = Some(state.getters.push(cx.waker()));
                return Poll::Pending;
            }
            // A put kept an item for us: the front one is ours to pop.
            Some(id) if state.getters.is_notified(id) => {
                let (_, stale) = state.getters.remove(id);
                this.waiter = None;
                state.reserved_items -= 1;
                stale
            }
            Some(id) => {
                let old = state.getters.update_waker(id, cx.waker());
                drop(state);
                drop(old);
                return Poll::Pending;
            }
        };
        // Step 2: take the front item, in the poll that returns it (so a
        // dropped get has taken nothing), and hand the slot it frees to the
        // first waiting putter, woken after the mutex is released.
        let (item, waker) = state.pop(this.queue.maxsize);
        drop(state);
        drop(stale);
        wake(waker);
        Poll::Ready(item)
    }
}

impl<T> Drop for QueueGet<'_, T> {
    /// A get that gives up: it took nothing. Still queued: leave the list.
    /// An item reserved for it: the reservation goes to the next waiting
    /// getter, or the item becomes free again; the item never moved.
    fn drop(&mut self) {
        let Some(id) = self.waiter else { return };
        let (waker, stale) = {
            let mut state = lock(&self.queue.state);
            let (was_notified, stale) = state.getters.remove(id);
            // An item was kept for us and we never took it: it stays at the
            // front of the buffer, kept for the next getter if one waits.
            let waker = if was_notified {
                state.reserved_items -= 1;
                state.reserve_item()
            } else {
                None
            };
            (waker, stale)
        };
        drop(stale);
        wake(waker);
    }
}

impl<T> fmt::Debug for QueueGet<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueGet")
            .field("waiting", &self.waiter.is_some())
            .finish()
    }
}

/// The future [`Queue::join`] returns.
#[must_use = "a join does nothing unless awaited"]
pub struct QueueJoin<'a, T> {
    queue: &'a Queue<T>,
    /// Our node among the joiners, from the first `Pending` until served or
    /// dropped.
    waiter: Option<WaiterId>,
}

impl<T> Future for QueueJoin<'_, T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut state = lock(&this.queue.state);
        match this.waiter {
            None if state.unfinished == 0 => Poll::Ready(()),
            None => {
                this.waiter = Some(state.joiners.push(cx.waker()));
                Poll::Pending
            }
            // Notified by the last task_done: returns even if more items
            // were put since (asyncio's join, through its Event, does too).
            Some(id) if state.joiners.is_notified(id) => {
                let (_, stale) = state.joiners.remove(id);
                this.waiter = None;
                drop(state);
                drop(stale);
                Poll::Ready(())
            }
            Some(id) => {
                let old = state.joiners.update_waker(id, cx.waker());
                drop(state);
                drop(old);
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for QueueJoin<'_, T> {
    fn drop(&mut self) {
        if let Some(id) = self.waiter {
            let (_, stale) = lock(&self.queue.state).joiners.remove(id);
            drop(stale);
        }
    }
}

impl<T> fmt::Debug for QueueJoin<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueJoin")
            .field("waiting", &self.waiter.is_some())
            .finish()
    }
}
