//! The selector: who waits for which socket, and the one call that waits
//! for all of them.
//!
//! asyncio's loop keeps a `selectors.DefaultSelector` and, for every
//! socket a coroutine waits on, a callback per direction (`add_reader`,
//! `add_writer`). Ours keeps, per socket and per direction, the **waker**
//! of the task that waits: a readiness event is one more thing that calls
//! a waker, exactly like a timer firing (chapter 4) or a pool job ending
//! (chapter 9).
//!
//! Three rules, each tested (`tests/ch12_selector.rs`):
//!
//! * **Per socket, per direction, latest waker only.** A socket has at most
//!   one read waker and one write waker. Registering again replaces the
//!   old one (tokio's "only the waker from the latest poll is valid"):
//!   a task polled by a different waker (moved into a `gather`, say) must
//!   be the one woken.
//! * **A fired interest is gone.** When `poll(2)` says a socket is ready,
//!   the selector *takes* the waker out before waking it. The woken future
//!   tries its read or write again; if that still says `WouldBlock` (a
//!   spurious readiness: someone else drained the socket first), it simply
//!   registers again. No spin: a socket nobody waits on is not polled.
//! * **Forget before close.** A socket's owner removes its entry before
//!   the descriptor is closed, so a descriptor number the kernel reuses for
//!   a new socket never inherits a stale waker. A dropped socket future
//!   removes its own interest too (`deregister`), so a task that gave up
//!   waiting (a `timeout`, an `abort`) is never woken for it.
//!
//! **The self-pipe.** The loop sleeps *inside* `poll(2)`, so a wake from
//! another thread (the timer thread, a pool thread) cannot reach it through
//! a condition variable any more. asyncio's trick for
//! `call_soon_threadsafe`: the selector also watches one end of a pipe, and
//! whoever needs the loop awake writes a byte to the other end
//! ([`Selector::rouse`]). We use `UnixStream::pair()`, which std makes for
//! us, as the pipe.
//!
//! **Locks and wakers.** The registry is behind a mutex, because a socket
//! may be dropped on another thread. A waker is never woken *or dropped*
//! under that lock: dropping a waker may drop the last reference to a task,
//! whose future owns a socket, whose drop takes this very lock.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

use crate::ch05_event_loop::Idler;

use super::sys::{self, POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, PollFd};

/// Which way a task waits on a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Until there is something to read (or accept, or the peer closed).
    Read,
    /// Until there is room to write (or a connection is made).
    Write,
}

/// A loop's selector: the registry of interest and the self-pipe. Cloning
/// is cheap and shares it; `Send + Sync`, so a socket dropped on any thread
/// can still forget itself.
#[derive(Clone)]
pub struct Selector {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Mutex<Registry>,
    /// The end of the self-pipe the selector watches (non-blocking).
    wake_rx: UnixStream,
    /// The end other threads write a byte to (non-blocking: a full pipe
    /// means the loop is roused already, so a failed write is fine).
    wake_tx: UnixStream,
    /// A byte is in the pipe, or about to be, or the selector is between
    /// its drain and its look at the run queue: later rousers skip the
    /// write system call. Lowered by the selector *after* it drains the
    /// pipe (see step 3 of [`Selector::select`] for why in that order).
    roused: AtomicBool,
    /// What one `select` call reuses, so that the loop's idle allocates
    /// nothing in the steady state. Only the thread that selects (the
    /// loop's) locks it, so it is never contended.
    scratch: Mutex<Scratch>,
}

#[derive(Default)]
struct Scratch {
    /// The array handed to `poll(2)`: the self-pipe first, then one entry
    /// per socket somebody waits on. Rebuilt on every select (the registry
    /// may have changed since), but its allocation is kept.
    fds: Vec<PollFd>,
    /// The wakers of the sockets found ready, taken out of the registry
    /// under its lock and woken after it is released.
    wakers: Vec<Waker>,
}

/// Who waits for what. A socket with no waker in either direction has no
/// entry at all.
#[derive(Default)]
struct Registry {
    interests: HashMap<RawFd, Interest>,
    /// How many wakers (socket × direction) are registered: lets the loop
    /// tell "waiting for a socket" from "deadlocked" in O(1).
    watching: usize,
}

/// One socket's waiters: at most one per direction (the latest).
#[derive(Default)]
struct Interest {
    /// The task waiting to read (or accept), if any.
    read: Option<Waker>,
    /// The task waiting for room to write, if any.
    write: Option<Waker>,
}

impl Interest {
    fn slot(&mut self, direction: Direction) -> &mut Option<Waker> {
        match direction {
            Direction::Read => &mut self.read,
            Direction::Write => &mut self.write,
        }
    }

    fn is_empty(&self) -> bool {
        self.read.is_none() && self.write.is_none()
    }

    /// The `poll(2)` events this interest asks about.
    fn events(&self) -> i16 {
        let mut events = 0;
        if self.read.is_some() {
            events |= POLLIN;
        }
        if self.write.is_some() {
            events |= POLLOUT;
        }
        events
    }
}

impl Selector {
    /// A selector with an empty registry and a fresh self-pipe (two
    /// descriptors, closed when the last clone is dropped).
    pub fn new() -> io::Result<Selector> {
        let (wake_rx, wake_tx) = UnixStream::pair()?;
        wake_rx.set_nonblocking(true)?;
        wake_tx.set_nonblocking(true)?;
        Ok(Selector {
            inner: Arc::new(Inner {
                registry: Mutex::new(Registry::default()),
                wake_rx,
                wake_tx,
                roused: AtomicBool::new(false),
                scratch: Mutex::new(Scratch::default()),
            }),
        })
    }

    /// Whether two handles share one selector.
    pub fn same_selector(&self, other: &Selector) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        lock(&self.inner.registry)
    }

    /// Asks to be woken through `waker` when `fd` is ready in `direction`.
    /// Replaces the waker registered before for that socket and direction,
    /// if any: only the latest counts.
    pub fn register(&self, fd: RawFd, direction: Direction, waker: &Waker) {
        // Decide under the lock; drop whatever we replace after it.
        let replaced = {
            let mut registry = self.registry();
            // The socket's entry (made empty if it had none), then the slot
            // of the one direction asked for: the other is left alone.
            let slot = registry.interests.entry(fd).or_default().slot(direction);
            match slot {
                // The same task polled again with the same waker: nothing
                // to do, and no clone (the common case on a busy socket).
                Some(old) if old.will_wake(waker) => return,
                Some(old) => Some(std::mem::replace(old, waker.clone())),
                None => {
                    *slot = Some(waker.clone());
                    registry.watching += 1;
                    None
                }
            }
        };
        // Dropped outside the lock (see the module's doc).
        drop(replaced);
    }

    /// Removes the waker registered for `fd` in `direction`, if any: the
    /// future that waited is gone or done.
    pub fn deregister(&self, fd: RawFd, direction: Direction) {
        let removed = {
            let mut registry = self.registry();
            let Some(interest) = registry.interests.get_mut(&fd) else {
                return;
            };
            let removed = interest.slot(direction).take();
            // An entry with no waker in either direction would still be
            // handed to `poll(2)` (with no events): remove it.
            if interest.is_empty() {
                registry.interests.remove(&fd);
            }
            if removed.is_some() {
                registry.watching -= 1;
            }
            removed
        };
        drop(removed);
    }

    /// Forgets `fd` in both directions: its socket is about to be closed.
    pub fn forget(&self, fd: RawFd) {
        let removed = {
            let mut registry = self.registry();
            let removed = registry.interests.remove(&fd);
            if let Some(interest) = &removed {
                registry.watching -= usize::from(interest.read.is_some());
                registry.watching -= usize::from(interest.write.is_some());
            }
            removed
        };
        drop(removed);
    }

    /// How many wakers (socket × direction) are registered.
    pub fn watching(&self) -> usize {
        self.registry().watching
    }

    /// Whether a waker is registered for `fd` in `direction`.
    pub fn is_registered(&self, fd: RawFd, direction: Direction) -> bool {
        self.registry()
            .interests
            .get(&fd)
            .is_some_and(|interest| match direction {
                Direction::Read => interest.read.is_some(),
                Direction::Write => interest.write.is_some(),
            })
    }

    /// Rouses a `select` that waits (or the next one): writes a byte to
    /// the self-pipe, unless one is there already. Safe from any thread,
    /// never blocks. asyncio's `_write_to_self`.
    pub fn rouse(&self) {
        if !self.inner.roused.swap(true, Ordering::AcqRel) {
            // A full pipe (`WouldBlock`) still holds bytes that will rouse
            // the loop; nothing else can fail on a socket pair we own.
            let _ = (&self.inner.wake_tx).write(&[1]);
        }
    }

    /// Waits until a registered socket is ready, the self-pipe is written
    /// to, or `timeout` passes (`None`: no limit; zero: just look), then
    /// wakes the wakers of the ready sockets, each once, and forgets them.
    /// Returns how many wakers it woke (a rouse alone wakes none).
    ///
    /// Called by the loop's thread only (chapter 5's idle, through the
    /// seam); the wakers it calls only enqueue their tasks.
    pub fn select(&self, timeout: Option<Duration>) -> io::Result<usize> {
        let mut scratch = lock(&self.inner.scratch);
        let Scratch { fds, wakers } = &mut *scratch;

        // 1. The list for the kernel: the self-pipe first, then every
        //    socket somebody waits on, with the directions they wait in.
        fds.clear();
        fds.push(PollFd {
            fd: self.inner.wake_rx.as_raw_fd(),
            events: POLLIN,
            revents: 0,
        });
        {
            let registry = self.registry();
            fds.extend(registry.interests.iter().map(|(&fd, interest)| PollFd {
                fd,
                events: interest.events(),
                revents: 0,
            }));
        }

        // 2. Sleep in the kernel, without any lock held but our scratch:
        //    other threads register, forget and rouse meanwhile.
        let ready = sys::poll(fds, timeout)?;
        // Zero: the timeout passed (or a signal came): nobody to wake.
        if ready == 0 {
            return Ok(0);
        }

        // 3. A byte in the self-pipe only meant "wake up": drain it, then
        //    lower the flag, so that a rouse from now on writes again. In
        //    that order: lowered first, a rouse between the two would write
        //    a byte the drain swallows, and leave the flag up over an empty
        //    pipe, so that every later rouse skipped its write and the loop
        //    slept through them. Drained first, a rouse in between skips
        //    its write, and that is fine: the loop looks at its run queue
        //    as soon as this select returns. (`swap`, not `store`: reading
        //    the rouser's `true` makes the turn it queued visible to us.)
        if fds[0].revents != 0 {
            let mut sink = [0u8; 64];
            while let Ok(n) = (&self.inner.wake_rx).read(&mut sink) {
                if n == 0 {
                    break;
                }
            }
            self.inner.roused.swap(false, Ordering::AcqRel);
        }

        // 4. Take the wakers of the ready sockets out of the registry. An
        //    error or a hang-up wakes both directions: the next read or
        //    write reports it. A socket that was forgotten (or got a new
        //    waker) while we slept is looked up afresh, so a stale entry
        //    of the list wakes nobody.
        {
            let mut registry = self.registry();
            for entry in fds[1..].iter().filter(|entry| entry.revents != 0) {
                if entry.revents & POLLNVAL != 0 {
                    eprintln!(
                        "tiny-asyncio: the selector watched descriptor {} after it was closed; \
                         its waiters are woken to see the error (a socket must be forgotten \
                         before it is closed)",
                        entry.fd
                    );
                }
                let Some(interest) = registry.interests.get_mut(&entry.fd) else {
                    continue;
                };
                let broken = entry.revents & (POLLERR | POLLHUP | POLLNVAL) != 0;
                let mut taken = 0;
                if broken || entry.revents & POLLIN != 0 {
                    if let Some(waker) = interest.read.take() {
                        wakers.push(waker);
                        taken += 1;
                    }
                }
                if broken || entry.revents & POLLOUT != 0 {
                    if let Some(waker) = interest.write.take() {
                        wakers.push(waker);
                        taken += 1;
                    }
                }
                if interest.is_empty() {
                    registry.interests.remove(&entry.fd);
                }
                registry.watching -= taken;
            }
        }

        // 5. Wake them, outside every lock but the scratch (a waker only
        //    enqueues its task). A panicking waker is reported, and the
        //    others are still woken, as the timer does.
        let woken = wakers.len();
        for waker in wakers.drain(..) {
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| waker.wake())) {
                let message = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("a non-string panic payload");
                eprintln!("tiny-asyncio: a waker panicked when its socket was ready: {message}");
            }
        }
        Ok(woken)
    }
}

/// The selector as the loop's idler (chapter 5's seam): the loop's idle
/// *is* the select, as in asyncio's `_run_once`.
impl Idler for Selector {
    /// Sleeps in `poll(2)` until a socket is ready or someone rouses the
    /// loop. No timeout: on a real clock, chapter 4's timer thread fires the
    /// sleeps, and its wakes come in through the self-pipe like any other
    /// thread's (asyncio passes "time to the next timer" because its loop
    /// is its own timer).
    fn wait(&self) {
        if let Err(error) = self.select(None) {
            // `poll(2)` fails only for a bad array or no kernel memory:
            // nothing a retry would fix, and spinning would hide it.
            panic!("the event loop's selector could not wait: poll(2) failed: {error}");
        }
    }

    fn look(&self) -> usize {
        match self.select(Some(Duration::ZERO)) {
            Ok(woken) => woken,
            Err(error) => {
                panic!("the event loop's selector could not look: poll(2) failed: {error}")
            }
        }
    }

    fn is_watching(&self) -> bool {
        self.watching() > 0
    }

    fn rouse(&self) {
        Selector::rouse(self);
    }
}

/// Locks a mutex, shrugging off poison (our critical sections leave the
/// registry consistent even if a panic unwinds through them).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}
