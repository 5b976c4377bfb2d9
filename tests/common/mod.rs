//! Helpers that several test binaries share: short durations, panic
//! messages, notes (lines stamped with loop time), drop counters, a
//! countdown and a gate for tasks, waiting on real time with a limit, and
//! (in `xml.rs`) the XML well-formedness check of the SVG pictures.
//!
//! Cargo does not build `tests/common/mod.rs` as a test binary of its own;
//! a test file takes it in with `mod common;` and `use common::*;`.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::future::{Future, poll_fn};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use tiny_asyncio::ch05_event_loop::panic_message;
use tiny_asyncio::{EventLoop, get_running_loop};

pub mod xml;

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Locks a mutex, shrugging off poison (a planned panic may poison it):
/// chapter 3's `lock`, the crate's one.
pub use tiny_asyncio::ch03_waker::lock;

/// The soak multiplier of the long-running tests (`tests/model.rs`,
/// `tests/stress.rs`): 1 normally; `TINY_ASYNCIO_SOAK=1` gives 20, and
/// `TINY_ASYNCIO_SOAK=N` (N ≥ 2) gives N.
pub fn soak() -> u32 {
    match std::env::var("TINY_ASYNCIO_SOAK") {
        Err(_) => 1,
        Ok(v) => match v.trim().parse::<u32>() {
            Ok(0) => 1,
            Ok(n) if n >= 2 => n,
            _ => 20,
        },
    }
}

/// Planned panics ("planned: ...") are the test's own; keep them off the
/// terminal. Every other panic is printed as usual.
pub fn quiet_planned_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !panic_message(info.payload()).starts_with("planned:") {
                default(info);
            }
        }));
    });
}

pub fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// Runs `f` and returns the message it panicked with.
pub fn panic_text(f: impl FnOnce()) -> String {
    let payload = panic::catch_unwind(AssertUnwindSafe(f)).expect_err("it should have panicked");
    panic_message(&*payload)
}

// ---------------------------------------------------------------------------
// What tasks write, and when
// ---------------------------------------------------------------------------

/// Lines written by tasks, each with the loop time at which it was written
/// (`Send`, so that spawned tasks can share it). Not chapter 2's `Journal`,
/// which has no loop to ask the time.
#[derive(Clone, Default)]
pub struct Notes(Arc<Mutex<Vec<(Duration, String)>>>);

impl Notes {
    pub fn note(&self, line: impl Into<String>) {
        let at = get_running_loop().time();
        self.0.lock().unwrap().push((at, line.into()));
    }

    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, line)| line.clone())
            .collect()
    }

    /// Every line with its loop time, in the order they were written.
    pub fn timed(&self) -> Vec<(Duration, String)> {
        self.0.lock().unwrap().clone()
    }

    /// The loop time of the first line that reads `line`.
    pub fn at(&self, line: &str) -> Duration {
        let entries = self.0.lock().unwrap();
        let found = entries.iter().find(|(_, l)| l == line);
        found.unwrap_or_else(|| panic!("no line {line:?}")).0
    }

    /// The documents' notation: the lines written at one loop time joined by
    /// spaces, one time step from the next by " | ".
    pub fn steps(&self) -> String {
        let entries = self.0.lock().unwrap();
        let mut out = String::new();
        let mut last: Option<Duration> = None;
        for (at, line) in entries.iter() {
            match last {
                None => {}
                Some(t) if t == *at => out.push(' '),
                Some(_) => out.push_str(" | "),
            }
            out.push_str(line);
            last = Some(*at);
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Drop counters
// ---------------------------------------------------------------------------

/// Counts the drops of the probes it hands out.
#[derive(Clone, Default)]
pub struct Tally(Arc<AtomicUsize>);

/// Adds one to its counter when dropped: moved into a future (or returned
/// as a job's result), it shows when and how often that is dropped.
#[derive(Debug)]
pub struct Probe(pub Arc<AtomicUsize>);

impl Drop for Probe {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

impl Tally {
    pub fn probe(&self) -> Probe {
        Probe(self.0.clone())
    }
    pub fn count(&self) -> usize {
        self.0.load(SeqCst)
    }
}

// ---------------------------------------------------------------------------
// Waiting for tasks without a JoinHandle (chapter 5 has none yet)
// ---------------------------------------------------------------------------

/// Counts down as tasks finish; the last one wakes whoever waits.
pub struct Countdown {
    inner: Mutex<(usize, Option<Waker>)>,
}

impl Countdown {
    pub fn new(n: usize) -> Arc<Countdown> {
        Arc::new(Countdown {
            inner: Mutex::new((n, None)),
        })
    }

    pub fn count_down(&self) {
        let waker = {
            let mut inner = self.inner.lock().unwrap();
            inner.0 -= 1;
            if inner.0 == 0 { inner.1.take() } else { None }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    pub fn wait(self: &Arc<Self>) -> impl Future<Output = ()> + Send + 'static {
        let this = self.clone();
        poll_fn(move |cx| {
            let mut inner = this.inner.lock().unwrap();
            if inner.0 == 0 {
                Poll::Ready(())
            } else {
                inner.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

/// A condition ("the gate is open") that one side sets and the other
/// awaits, from any thread, with the waker of whoever waits for it. The
/// fields are public for tests that write their own waiting side.
#[derive(Default)]
pub struct Gate {
    pub open: AtomicBool,
    pub waker: Mutex<Option<Waker>>,
}

impl Gate {
    pub fn new() -> Arc<Gate> {
        Arc::new(Gate::default())
    }

    /// Sets the condition first, then wakes: the order every waker must use.
    pub fn open(&self) {
        self.open.store(true, SeqCst);
        let waker = lock(&self.waker).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    pub fn wait(self: &Arc<Self>) -> impl Future<Output = ()> + Send + 'static {
        let gate = self.clone();
        poll_fn(move |cx| {
            if gate.open.load(SeqCst) {
                return Poll::Ready(());
            }
            *lock(&gate.waker) = Some(cx.waker().clone());
            // Checked again after the waker is stored: an `open` in between
            // either sees our waker or we see its flag.
            if gate.open.load(SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

// ---------------------------------------------------------------------------
// Real time, with a limit
// ---------------------------------------------------------------------------

/// Runs `body` on its own thread and fails the test if it has not finished
/// within `limit`: a lost wake (or a join that never returns) shows up as a
/// hang, and this turns the hang into a clear failure instead of a stuck
/// test run.
///
/// Under Miri (some hundred times slower) the limit is multiplied by
/// [`MIRI_SLOWDOWN`]: a watchdog there guards against a hang, not against
/// slowness (a 60 s limit failed under Miri when nothing was wrong).
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let limit = if cfg!(miri) {
        limit * MIRI_SLOWDOWN
    } else {
        limit
    };
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(body());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => value,
        Err(_) => panic!("{what}: still not finished after {limit:?}; something hangs"),
    }
}

/// Waits (checking every millisecond, up to `limit`) until `condition` holds.
pub fn eventually(limit: Duration, condition: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if condition() {
            return true;
        }
        thread::sleep(Duration::from_millis(1));
    }
    condition()
}

/// Runs `make` inside `event_loop` (so a `sleep` or a `timeout` it makes
/// reads that loop's clock, and a pool job is submitted from it) and hands
/// back what it made, not awaited: for a future made in one loop and
/// awaited in another (issue 12, fault 5).
pub fn made_inside<T>(event_loop: &EventLoop, make: impl FnOnce() -> T) -> T {
    event_loop.run_until_complete(async { make() })
}

/// How much longer a watchdog waits under Miri (see [`within`]).
pub const MIRI_SLOWDOWN: u32 = 100;

/// How many cases a property test runs: `n`; or `PROPTEST_CASES` when it
/// is set (`.ci/valgrind` and `.ci/miri` set it small: an explicit
/// `with_cases` would otherwise ignore it); or, under Miri without it, 4.
pub fn cases(n: u32) -> u32 {
    match std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(cases) => cases,
        None if cfg!(miri) => 4,
        None => n,
    }
}

/// `n` iterations of a loop, or `small` of them under Miri: a race run two
/// thousand times natively is run a few dozen times there (and `.ci/miri`
/// runs it under several seeds, each a different interleaving).
pub fn iterations(n: usize, small: usize) -> usize {
    if cfg!(miri) { small } else { n }
}
