//! What the chapter examples share (beyond their command line, which the
//! appendix `tiny_asyncio::cli` reads): printing lines stamped with the
//! time, running a loop with its trace, and small helpers for the
//! pictures and tables.
//!
//! Cargo builds only `examples/*.rs` (and `examples/*/main.rs`) as
//! examples, so this file is not one: an example takes it in with
//! `mod common;`.

// Each example uses a different subset of these helpers.
#![allow(dead_code)]

use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::{Duration, Instant};

use tiny_asyncio::EventLoop;
use tiny_asyncio::ch03_waker::{ArcWake, waker_from_arc};
use tiny_asyncio::ch09_pool::THREAD_NAME_PREFIX;
use tiny_asyncio::cli::stamp;
use tiny_asyncio::get_running_loop;
use tiny_asyncio::timeline::{Mark, Timeline, display_width};
use tiny_asyncio::trace::Trace;

// ---------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------
//
// Each example describes its command line as a `tiny_asyncio::cli::Cli`
// and reads it with `Cli::from_env()` (the appendix `src/cli.rs`): `--help`,
// `--unit-ms N`, the picture flags, and the refusal of anything else are
// written there once.

/// How many units `time` is (`unit` is never zero: `Cli::parse` refuses
/// `--unit-ms 0`).
pub fn units(time: Duration, unit: Duration) -> f64 {
    time.as_secs_f64() / unit.as_secs_f64()
}

// ---------------------------------------------------------------------------
// Printing lines with the time
// ---------------------------------------------------------------------------

/// Prints a line stamped with the running loop's time, like the documents'
/// runs.
pub fn say(line: impl AsRef<str>) {
    println!("{} {}", stamp(get_running_loop().time()), line.as_ref());
}

/// Prints lines stamped with the real time since it was made (for
/// chapters 3 and 4, which have no loop time yet), and remembers the polls
/// and wakes of a `block_on` run for its picture.
pub struct Stamp {
    start: Instant,
    /// What happened, with when: polls begun and ended, wakes and who
    /// woke. Shared with the printing wakers, which fire on other threads.
    events: Arc<Mutex<Vec<(Duration, Happening)>>>,
}

/// One thing a `block_on` run did, as [`Stamp`] remembers it.
#[derive(Clone)]
enum Happening {
    PollStart,
    PollEnd { ready: bool },
    Woken { by: String },
}

impl Stamp {
    pub fn now() -> Self {
        Stamp {
            start: Instant::now(),
            events: Arc::default(),
        }
    }

    pub fn line(&self, text: &str) {
        println!("{} {text}", stamp(self.start.elapsed()));
    }

    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn remember(&self, what: Happening) {
        let at = self.start.elapsed();
        self.events.lock().unwrap().push((at, what));
    }

    /// Remembers that `block_on` began a poll.
    pub fn poll_started(&self) {
        self.remember(Happening::PollStart);
    }

    /// Remembers that the poll ended, `Ready` or not.
    pub fn poll_ended(&self, ready: bool) {
        self.remember(Happening::PollEnd { ready });
    }

    /// A waker that prints `waker.wake()` (with the waking thread's name,
    /// stamped like this stamp's lines), remembers it, and then passes the
    /// wake on to `inner`.
    pub fn printing_waker(&self, inner: &Waker) -> Waker {
        waker_from_arc(Arc::new(PrintingWaker {
            inner: inner.clone(),
            start: self.start,
            events: self.events.clone(),
        }))
    }

    /// The picture of the run so far: `row` (the future `block_on` drives)
    /// running during each poll and asleep from a `Pending` until its wake,
    /// and one row per waking thread, blocked for that same wait (a
    /// `ThreadSleep` thread in `thread::sleep`, or the timer thread waiting
    /// for the deadline).
    pub fn timeline(&self, title: &str, row: &str) -> Timeline {
        let mut timeline = Timeline::new(title);
        timeline.row(row);
        let (mut poll_began, mut waiting_since) = (Duration::ZERO, None);
        for (at, what) in self.events.lock().unwrap().iter().cloned() {
            match what {
                Happening::PollStart => poll_began = at,
                Happening::PollEnd { ready } => {
                    // A poll lasts microseconds: at least one keeps it visible.
                    let end = at.max(poll_began + Duration::from_micros(1));
                    timeline.row(row).push(poll_began, end, Mark::Running);
                    waiting_since = (!ready).then_some(end);
                }
                Happening::Woken { by } => {
                    if let Some(since) = waiting_since.take() {
                        timeline.row(row).push(since, at, Mark::Timer);
                        // "tiny-asyncio-timer" reads as "timer" in a name column.
                        let thread = by.strip_prefix("tiny-asyncio-").unwrap_or(&by);
                        timeline.row(thread).push(since, at, Mark::Blocked);
                    }
                }
            }
        }
        timeline
    }
}

/// The waker [`Stamp::printing_waker`] hands out: an `ArcWake` type,
/// turned into a `Waker` by chapter 3's hand-written vtable.
struct PrintingWaker {
    inner: Waker,
    start: Instant,
    events: Arc<Mutex<Vec<(Duration, Happening)>>>,
}

impl ArcWake for PrintingWaker {
    fn wake_by_ref(this: &Arc<Self>) {
        let at = this.start.elapsed();
        let thread = std::thread::current();
        let by = thread.name().unwrap_or("이름 없는").to_owned();
        println!("{}     ({by} 스레드) waker.wake()", stamp(at));
        this.events
            .lock()
            .unwrap()
            .push((at, Happening::Woken { by }));
        this.inner.wake_by_ref();
    }
}

/// The lines of one run with the loop time of each, printed as they come
/// (chapters 5 and 6).
#[derive(Clone)]
pub struct Transcript {
    unit: Duration,
    lines: Arc<Mutex<Vec<(String, Duration)>>>,
}

impl Transcript {
    pub fn new(unit: Duration) -> Transcript {
        Transcript {
            unit,
            lines: Arc::default(),
        }
    }

    /// Prints `text` with the loop time, and remembers `short` (the
    /// documents' notation, like `3-1`) for the summary.
    pub fn say(&self, short: impl Into<String>, text: &str) {
        let at = get_running_loop().time();
        println!("{} {text}", stamp(at));
        self.lines.lock().unwrap().push((short.into(), at));
    }

    /// A time in units of this run.
    pub fn units(&self, at: Duration) -> f64 {
        units(at, self.unit)
    }

    /// The documents' notation: lines of one unit step joined by spaces,
    /// steps separated by " | ".
    pub fn steps(&self) -> String {
        let mut out = String::new();
        let mut last = None;
        for (short, at) in self.lines.lock().unwrap().iter() {
            let step = self.units(*at).round() as u64;
            match last {
                None => {}
                Some(s) if s == step => out.push(' '),
                Some(s) => {
                    // A step in which nothing was printed still gets its bar.
                    for _ in s + 1..step {
                        out.push_str(" |");
                    }
                    out.push_str(" | ");
                }
            }
            out.push_str(short);
            last = Some(step);
        }
        out
    }

    /// The loop time of the line remembered as `short` (zero if none).
    pub fn at(&self, short: &str) -> Duration {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .find(|(s, _)| s == short)
            .map_or(Duration::ZERO, |(_, at)| *at)
    }

    /// Prints the total and the order, each beside the document's.
    pub fn summary(&self, total: Duration, document_units: u32, document_steps: &str) {
        println!(
            "총 소요 시간: {:.3} s = {:.3} 단위 (문서: {document_units})",
            total.as_secs_f64(),
            self.units(total)
        );
        self.order_beside(document_steps);
    }

    /// Prints the order of this run's lines beside the document's, and
    /// whether they are the same.
    pub fn order_beside(&self, document_steps: &str) {
        let steps = self.steps();
        let same = if steps == document_steps {
            "같음"
        } else {
            "다름!"
        };
        println!("순서: {steps}");
        println!("문서: {document_steps}  ({same})");
    }
}

// ---------------------------------------------------------------------------
// Runs and their pictures
// ---------------------------------------------------------------------------

/// `run(future)` (asyncio.run), with the loop's trace switched on if
/// `traced`; gives the output and the trace (empty unless traced).
pub fn run_traced<F: Future>(traced: bool, future: F) -> (F::Output, Trace) {
    let event_loop = EventLoop::new();
    if traced {
        event_loop.enable_trace();
    }
    let output = event_loop.run_until_complete(future);
    let trace = event_loop.take_trace();
    event_loop.close();
    (output, trace)
}

/// Names the pool threads' rows of a picture by a shorter name: pool-0,
/// pool-1, ...
pub fn short_pool_names(timeline: &mut Timeline) {
    for row in &mut timeline.rows {
        if let Some(index) = row.name.strip_prefix(THREAD_NAME_PREFIX) {
            row.name = format!("pool-{index}");
        }
    }
}

/// Exits with status 1 if the picture could not be written.
pub fn exit_if_picture_failed(shown: io::Result<()>) {
    if let Err(error) = shown {
        eprintln!("error: could not write the picture: {error}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------

/// `text` padded with spaces to `width` terminal columns. Hangul takes two
/// columns, so `format!("{:<30}")`, which counts characters, would not line
/// a table up.
pub fn pad(text: &str, width: usize) -> String {
    let columns = display_width(text);
    format!("{text}{}", " ".repeat(width.saturating_sub(columns)))
}
