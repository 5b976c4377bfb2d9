//! # `Sleep`: the future that every wait in the book is made of
//!
//! The last of chapter 4's pieces, read after the [`Timer`](super::Timer)
//! in `mod.rs`: the future `asyncio.sleep(d)` becomes. It holds no thread
//! and no clock of its own, only a deadline, the timer that will fire it,
//! and the key of its entry in that timer's wheel. Its `poll` is the life
//! of one sleep from the chapter's story, step by step: bind to a timer,
//! finish if the time has come, else keep the timer holding the latest
//! waker. Its `Drop` takes the entry back out, so a cancelled sleep (a
//! task aborted, a `timeout` that won, chapter 8) wakes nobody.
//!
//! It needs two things from `mod.rs`: the timer entered on this thread
//! (`CURRENT`, set by [`enter`](super::enter)) and the timer's four calls
//! `register`, `update_waker`, `cancel` and `now`. Chapter 8's `timeout`
//! wraps a `Sleep` and calls [`Sleep::bind`] to fix its deadline first.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::wheel::TimerKey;
use super::{CURRENT, Timer, current_timer, entered_timer};

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
///   virtual loop whose own timer looked empty. Polled
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
///   `await asyncio.sleep(0)` is then the same program.
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
        // Remember whether this is the first poll (and mark it done): step
        // 2b treats a sleep due at its first poll differently.
        let first_poll = !std::mem::replace(&mut this.polled, true);
        let timer = this.timer.as_ref().expect("bind() picked a timer");
        // 2. The clock has reached the deadline.
        if timer.now() >= this.deadline {
            // 2a. Our entry may still be in the wheel: we were polled for
            //     another reason just as it came due, or a virtual clock
            //     was moved and `fire_due` not called yet. Cancel it, so
            //     that it wakes nobody later.
            if let Some(key) = this.key.take() {
                timer.cancel(key);
            }
            // 2b. Due already at the *first* poll: that is asyncio's
            //     `sleep(0)`, a bare yield. Wake ourselves (the task goes
            //     to the back of the run queue) and say `Pending` this
            //     once; the next poll reaches 2c.
            if first_poll {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            // 2c. Done.
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
            //    from the timer. (A stale key with the deadline still ahead
            //    should not happen, since an entry fires only once the
            //    clock has reached it; registering again is the safe reply.)
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
