//! # Chapter 12 — waiting on sockets: a selector, `TcpListener` and `TcpStream`
//!
//! **The question.** asyncio exists for I/O. The documents motivate every
//! chapter with a server whose requests wait on a database or an API, and
//! seed 002's running loop prints as `_UnixSelectorEventLoop` (E002-4): a
//! loop built around a *selector*. So far the book could only sleep, which
//! shows the idea but never uses it. What does it take for a task to wait
//! on a real socket, with the same machinery?
//!
//! **The examples.** EX-5: a "database" server on 127.0.0.1 that answers
//! each query after 1 s; ten queries one at a time over blocking sockets
//! (chapter 1's way) take 10 s, ten tasks on the loop over real sockets
//! take 1 s. Then E002-6 for real: three URLs fetched over HTTP from a
//! local server that delays each answer by 2 s take 2 s, not 6.
//!
//! **The idea.** A readiness event is one more thing that calls a waker.
//!
//! * std already has non-blocking sockets: `set_nonblocking(true)`, after
//!   which a read that would have to wait fails at once with `WouldBlock`.
//! * What std lacks is a way to wait for *many* sockets at once. The C
//!   library's `poll(2)` does that; [`sys`] declares it by hand, the book's
//!   only foreign function.
//! * The [`selector`] keeps, per socket and per direction, the waker of the
//!   task that waits (asyncio's `add_reader` / `add_writer`, with a waker
//!   where asyncio keeps a callback), and its `select` sleeps in `poll(2)`
//!   and wakes the wakers of the sockets that became ready.
//! * The socket futures in [`tcp`] all follow one pattern: try the
//!   operation; on `WouldBlock`, register the waker and return `Pending`;
//!   when woken, try again.
//!
//! **Where the loop waits.** When nothing is queued, chapter 5's loop
//! *idles*, and the idle is where the selector goes (asyncio's
//! `_run_once` calls `selector.select(timeout)` at exactly that point).
//! Chapter 5 leaves a seam for it, [`Idler`](crate::ch05_event_loop::Idler):
//! "how the loop sleeps, and how another thread rouses it". Its default is
//! chapter 3's condvar; the first socket operation on a loop installs the
//! loop's [`Selector`] instead ([`tcp::selector_of`]). From then on:
//!
//! * the loop sleeps inside `poll(2)`, on its sockets and on one end of a
//!   **self-pipe** (`UnixStream::pair()`);
//! * a wake from another thread (the timer thread, a pool thread) writes a
//!   byte to the other end of the pipe, which ends the `poll`: asyncio's
//!   `call_soon_threadsafe` trick (`_write_to_self`);
//! * on the virtual clock, before time may jump, the loop asks the selector
//!   to look with a zero timeout: time passes only when no task is ready
//!   *and* no socket has anything to say, so a test whose server and
//!   clients share one loop is exact ("answers after 1 s" takes exactly
//!   1 s of loop time) and takes microseconds.
//!
//! The other honest design was a **selector thread**, like chapter 4's
//! timer thread, which only calls wakers: no change to chapter 5, but a
//! thread hop (and a lock, and a wake of the loop) per readiness. With the
//! selector as the idle, a readiness costs nothing beyond the `poll(2)` the
//! loop would sleep in anyway.
//!
//! **Rules kept, each tested** (`tests/ch12_*.rs`): interest is per socket
//! and per direction; only the latest waker counts; a fired interest is
//! gone (a `WouldBlock` after a wake registers again: no spin, no hang); a
//! dropped future deregisters; a socket is forgotten by the selector before
//! it is closed, and closed exactly once (std's socket owns the
//! descriptor); a socket polled by another loop than the one it registered
//! with follows the polling loop, and one polled outside any loop panics
//! with a message that says so.
//!
//! **Limits, on purpose.**
//!
//! * `poll(2)` is O(registered sockets) per wait: the list is built and the
//!   kernel scans it every time. Fine for the book's hundreds; `epoll`
//!   (Linux) and `kqueue` (BSD, macOS) keep the interest list in the kernel
//!   and scale to hundreds of thousands. That is what tokio's mio does.
//! * The selector is looked at only when the loop idles. A task that never
//!   lets the run queue go empty (it yields forever) delays the sockets'
//!   news; asyncio's `_run_once` also calls `select(0)` on every pass.
//! * std has no non-blocking connect, so [`TcpStream::connect`] runs the
//!   (blocking) connect on chapter 9's thread pool, as asyncio runs
//!   `getaddrinfo` in its executor. Declaring `socket(2)` and `connect(2)`
//!   by hand would have doubled the FFI, with per-platform address layouts.
//! * **Unix only** (`#[cfg(unix)]`). Windows would need `WSAPoll` in
//!   [`sys`] (or, at scale, I/O completion ports, which report finished
//!   operations instead of readiness, and would change the futures' shape),
//!   and a socket pair for the self-pipe, which std does not make there.
//!
//! **What the next chapter needs from this one.** Nothing: chapter 13 is
//! about how a task is allocated, and every socket future here is an
//! ordinary future that registers a waker.
//!
//! The files, in reading order: [`sys`] (the FFI, short), [`selector`]
//! (the registry and the self-pipe), [`tcp`] (the sockets and their
//! futures).

#![deny(unsafe_code)]

pub mod selector;
pub mod sys;
pub mod tcp;

pub use selector::{Direction, Selector};
pub use tcp::{
    Accept, LINE_LIMIT, LineReader, ReadFuture, TcpListener, TcpStream, WriteAll, WriteFuture,
};
