//! # tiny-asyncio
//!
//! A small async executor, written on `std` alone, that teaches what Python's
//! `asyncio` does under the hood: why waiting blocks, what a coroutine is, who
//! drives it, how one thread serves many tasks, and what `create_task`,
//! `gather`, `wait_for` and `run_in_executor` really do.
//!
//! The crate is a book. Read it in chapter order, each module beside its
//! section in `CHAPTERS.md` and its example (`cargo run --example chNN`):
//! every chapter adds one piece of machinery and uses only the chapters
//! before it.
//!
//! The finished pieces are re-exported here, so a user of the runtime writes
//! `use tiny_asyncio::{run, spawn, sleep, gather, timeout, run_in_executor};`
//! and never needs the chapter paths.
#![warn(missing_docs)]
// The fence: `unsafe` is refused everywhere in the crate, and allowed item by
// item only where it is the lesson (chapter 3's waker vtable, chapter 2's
// do-nothing waker). Each such item says `#[allow(unsafe_code)]`, each unsafe
// block carries a `// SAFETY:` comment, and each `unsafe fn` a `# Safety`
// section. Modules with no unsafe at all say `#![forbid(unsafe_code)]`, which
// not even an `allow` inside them can undo.
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(clippy::missing_safety_doc)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod ch01_blocking;
pub mod ch02_futures;
pub mod ch03_waker;
pub mod ch04_timer;
pub mod ch05_event_loop;
pub mod ch06_join;
pub mod ch07_gather;
pub mod ch08_timeout;
pub mod ch09_pool;
pub mod ch10_measure;
pub mod ch11_sync;
#[cfg(unix)]
pub mod ch12_net;
pub mod ch13_raw_task;

// Appendix modules, outside the chapter order. They depend on no chapter:
// `trace` records what an event loop does (chapter 5 reports to it),
// `timeline` draws pictures, and `cli` reads the examples' command line, so
// every chapter's example may use them.
pub mod cli;
pub mod timeline;
pub mod trace;

pub use ch03_waker::block_on;
pub use ch04_timer::{Sleep, sleep, sleep_until};
pub use ch05_event_loop::{
    EventLoop, Handle, NoRunningLoop, get_running_loop, run, try_running_loop, yield_now,
};
pub use ch06_join::{JoinError, JoinHandle};
// The crate root's `spawn` builds chapter 13's one-allocation task;
// chapter 6's `spawn` builds chapter 5's safe task (the same behaviour).
pub use ch07_gather::{ReturnWhen, as_completed, gather, try_gather, wait};
pub use ch08_timeout::{Elapsed, timeout, timeout_at};
pub use ch09_pool::{ThreadPool, run_in_executor};
pub use ch11_sync::{
    Event, Lock, LockGuard, Queue, QueueEmpty, QueueFull, Semaphore, SemaphorePermit, TaskGroup,
    TaskGroupError,
};
#[cfg(unix)]
pub use ch12_net::{LineReader, TcpListener, TcpStream};
pub use ch13_raw_task::spawn;

/// The Rust snippets in `CHAPTERS.md` are compiled and run as doctests, so
/// the reading guide cannot drift away from the code.
#[cfg(doctest)]
#[doc = include_str!("../CHAPTERS.md")]
pub struct ChaptersGuide;

/// The README's Rust snippets are compiled and run as doctests too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoc;
