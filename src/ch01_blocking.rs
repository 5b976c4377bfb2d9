//! # Chapter 1 — blocking: the synchronous world
//!
//! **The question.** Why do the documents want `asyncio` at all? Because in a
//! plain program every wait *blocks*: while the thread sleeps (or waits for a
//! database, an API, a disk) it can do nothing else, and every request that
//! arrived after the current one waits too.
//!
//! **The documents.** This chapter reproduces the synchronous halves of three
//! seeds, the "before" picture that the rest of the book improves on:
//! - **E000-3** (seed 000): `find_users_sync(3)`, `(2)`, `(1)` one after the
//!   other, each user look-up blocking one unit (1 s in the document). The lines
//!   come out as `3-1 3-2 3-3 done3 2-1 2-2 done2 1-1 done1`, total 6 units.
//! - **E001-2** (seed 001): the same run seen from the three requests' side.
//!   The request for 3 users is answered at 3 units, the one for 2 users at 5
//!   and the one for 1 user at 6, although each needed only 3, 2 and 1: a
//!   request waits for every request ahead of it.
//! - **E002-1** (seed 002): `fetch_data_sync("작업1")` then `("작업2")`, each
//!   blocking 2 units: `start1 done1 start2 done2`, total 4 units.
//!
//! **The idea.** Nothing clever: [`std::thread::sleep`] stands in for the wait,
//! exactly as `time.sleep` does in the Python. Two things make the story
//! checkable rather than just printable:
//! - The time unit is a parameter (a [`Duration`]). The example uses the
//!   documents' 1 s; the tests use 10 ms, so they finish in a blink but still
//!   really block.
//! - Every line the functions "print" is a [`Step`] recorded in a [`Log`] with
//!   the moment it happened. A test compares the order of the steps
//!   ([`Step::tag`] gives the short form `3-1`, `done3`, …); the example builds
//!   the log with [`Log::printing`], which also prints each line, in Korean as
//!   the documents do, the instant it is recorded.
//!
//! **Its limits, on purpose.** There is no concurrency here at all, and that is
//! the point. The measured totals are sums of waits: a sleep is never shorter
//! than asked, so a total is at least 6 (or 4) units and a little more, never
//! less.
//!
//! **What the next chapter needs.** The shape of the work, not the code. The
//! users' look-up is a loop whose body waits; chapter 2 writes the same loop as
//! an `async fn` and as a hand-written state machine, where each wait becomes
//! a point at which the function *returns* instead of blocking, and shows that
//! such a function does nothing at all until someone polls it. The latencies
//! measured here (3, 5, 6) are the figures a later chapter's event loop brings
//! down to 3, 2, 1.
#![forbid(unsafe_code)]

use std::fmt;
use std::thread;
use std::time::{Duration, Instant};

/// How many units one `fetch_data_sync` blocks for (E002-1: `time.sleep(2)`).
pub const FETCH_UNITS: u32 = 2;

/// The document's time unit: one second per user look-up.
pub const DOCUMENT_UNIT: Duration = Duration::from_secs(1);

/// One line the synchronous functions print, as data.
///
/// Keeping the steps as values (not just as printed text) lets a test check
/// *which* step happened *when*, while the example still prints the
/// documents' wording through [`fmt::Display`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `find_users_sync(of)` starts looking up user number `user` (1-based).
    /// Printed before the wait, as in the document.
    LookUp {
        /// How many users this request asked for.
        of: usize,
        /// Which of them is being looked up now, from 1 to `of`.
        user: usize,
    },
    /// `find_users_sync(of)` has looked up all its users.
    AllFound {
        /// How many users this request asked for.
        of: usize,
    },
    /// `fetch_data_sync(name)` starts (before its wait).
    FetchStart {
        /// The job's name, such as `작업1`.
        name: String,
    },
    /// `fetch_data_sync(name)` is done (after its wait).
    FetchDone {
        /// The job's name, such as `작업1`.
        name: String,
    },
}

impl Step {
    /// The short form the documents' example IDs use: `3-1` for "user 1 of 3",
    /// `done3`, `start 작업1`, `done 작업1`. Tests compare these.
    pub fn tag(&self) -> String {
        match self {
            Step::LookUp { of, user } => format!("{of}-{user}"),
            Step::AllFound { of } => format!("done{of}"),
            Step::FetchStart { name } => format!("start {name}"),
            Step::FetchDone { name } => format!("done {name}"),
        }
    }
}

/// The documents' wording of each line (seed 000 and seed 002).
impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::LookUp { of, user } => write!(f, "{of}명 중 {user}번 째 사용자 조회 중 ..."),
            Step::AllFound { of } => write!(f, "> 총 {of} 명 사용자 동기 조회 완료!"),
            Step::FetchStart { name } => write!(f, "데이터 조회 시작: {name}"),
            Step::FetchDone { name } => write!(f, "데이터 조회 완료: {name}"),
        }
    }
}

/// The name [`LogEntry`] had before: kept so that code written against it
/// still compiles.
#[deprecated(note = "renamed LogEntry: the run queue's turns are not log entries")]
pub type Entry = LogEntry;

/// A [`Step`] and the moment it was recorded, measured from the log's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Time since the [`Log`] was created.
    pub at: Duration,
    /// What happened.
    pub step: Step,
}

/// Where the synchronous functions "print": an ordered list of timed steps.
///
/// Python's `print` goes straight to the terminal, and a test cannot read it
/// back. A `Log` keeps every line with its time stamp, and, when made with
/// [`Log::printing`], prints it too, so the example shows the story live.
#[derive(Debug)]
pub struct Log {
    /// Time zero of every entry's `at`: the moment the log was made, so a
    /// test reads "after 2 units" without knowing the wall clock.
    start: Instant,
    /// Every step so far, in the order it happened (one thread writes, so
    /// that is also the order of the time stamps).
    entries: Vec<LogEntry>,
    /// Also print each step the moment it is recorded: on for the example,
    /// which tells the story live, off for tests, which read `entries`.
    echo: bool,
}

impl Log {
    /// A log that only records; its clock starts now. Tests use this.
    pub fn new() -> Log {
        Log {
            start: Instant::now(),
            entries: Vec::new(),
            echo: false,
        }
    }

    /// A log that records and also prints each step on stdout the moment it
    /// happens, as `[  1.000s] 3명 중 2번 째 사용자 조회 중 ...`. Its clock
    /// starts now.
    pub fn printing() -> Log {
        Log {
            echo: true,
            ..Log::new()
        }
    }

    /// Records `step` with the current time (and prints it if this log prints).
    pub fn record(&mut self, step: Step) {
        let at = self.start.elapsed();
        if self.echo {
            println!("{} {step}", crate::cli::stamp(at));
        }
        self.entries.push(LogEntry { at, step });
    }

    /// Every step so far, oldest first.
    pub fn entries(&self) -> &[LogEntry] {
        &self.entries
    }

    /// The short forms ([`Step::tag`]) of every step so far, oldest first.
    pub fn tags(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.step.tag()).collect()
    }

    /// Time since the log was created.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

impl Default for Log {
    fn default() -> Self {
        Log::new()
    }
}

/// What a synchronous run measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timings {
    /// For each request, in the order given: how long after the run started it
    /// was answered. This is the latency its caller saw (E001-2), since all the
    /// requests arrived together at the start.
    pub answered_at: Vec<Duration>,
    /// The whole run, start to end.
    pub total: Duration,
}

/// Looks up `n` users, one after the other, each look-up blocking the thread
/// for one `unit` (E000-3's `find_users_sync`).
///
/// Records `n-1`, `n-2`, … `n-n` (each just *before* its wait, as the document
/// prints them), then `done n`. It returns after `n` units at the earliest;
/// during that time the calling thread can do nothing else.
pub fn find_users_sync(n: usize, unit: Duration, log: &mut Log) {
    for user in 1..=n {
        log.record(Step::LookUp { of: n, user });
        // The whole point of the chapter: the thread stops here.
        thread::sleep(unit);
    }
    log.record(Step::AllFound { of: n });
}

/// Serves the requests one after the other (E000-3's `process_sync`), each a
/// [`find_users_sync`] for that many users, and measures when each one was
/// answered (E001-2) and the whole run.
///
/// With the document's requests `[3, 2, 1]` and a unit of 1 s, the answers
/// come at 3, 5 and 6 s and the total is 6 s.
pub fn process_sync(requests: &[usize], unit: Duration, log: &mut Log) -> Timings {
    // Every request "arrived" now, all together: each one's latency is
    // measured from here, which is what E001-2 compares.
    let start = Instant::now();
    let mut answered_at = Vec::with_capacity(requests.len());
    for &n in requests {
        // Request k starts only when request k - 1 is fully answered: its
        // wait is the sum of all the waits before it, plus its own.
        find_users_sync(n, unit, log);
        answered_at.push(start.elapsed());
    }
    Timings {
        answered_at,
        total: start.elapsed(),
    }
}

/// Fetches one piece of data, blocking the thread for [`FETCH_UNITS`] units
/// (E002-1's `fetch_data_sync`). Records `start name`, waits, records
/// `done name`.
pub fn fetch_data_sync(name: &str, unit: Duration, log: &mut Log) {
    log.record(Step::FetchStart {
        name: name.to_owned(),
    });
    thread::sleep(unit * FETCH_UNITS);
    log.record(Step::FetchDone {
        name: name.to_owned(),
    });
}

/// Runs [`fetch_data_sync`] for each name in turn (E002-1's
/// `run_sync_example`) and measures it. With `["작업1", "작업2"]` and a unit
/// of 1 s: `start1 done1 start2 done2`, total 4 s.
pub fn fetch_all_sync(names: &[&str], unit: Duration, log: &mut Log) -> Timings {
    let start = Instant::now();
    let mut answered_at = Vec::with_capacity(names.len());
    for name in names {
        fetch_data_sync(name, unit, log);
        answered_at.push(start.elapsed());
    }
    Timings {
        answered_at,
        total: start.elapsed(),
    }
}

/// Reads the time unit from command-line arguments (program name already
/// skipped): none gives the document's 1 s; `--unit-ms N` gives N
/// milliseconds, so a reader in a hurry can run the story faster.
///
/// Anything else is an error whose message says what was wrong. The
/// reading itself is the examples' command line (the appendix
/// [`cli`](crate::cli)), with only `--unit-ms` allowed.
pub fn unit_from_args<I>(args: I) -> Result<Duration, String>
where
    I: IntoIterator<Item = String>,
{
    use crate::cli::{Cli, Parsed};
    let cli = Cli::new("ch01", "E000-3 and E002-1, blocking").unit(DOCUMENT_UNIT);
    match cli.parse(args) {
        Ok(Parsed::Run(args)) => Ok(args.unit),
        Ok(Parsed::Help) => Err(cli.help()),
        Err(error) => Err(error.to_string()),
    }
}
