//! # Appendix — the loop's trace: what happened, and when
//!
//! The documents explain with pictures: which task ran, slept or waited,
//! and when. This module records those facts from a real run so that the
//! [`timeline`](crate::timeline) module can draw them.
//!
//! It sits outside the chapter order: it depends on no chapter, and chapter
//! 5's event loop reports to it. A loop keeps one [`Recorder`], switched
//! off by default; switched off, a hook costs one relaxed atomic load and
//! allocates nothing.
//!
//! What the loop reports, per task (task 0 is the main future):
//!
//! * [`Event::Spawned`]: the task exists and waits for its first turn;
//! * [`Event::PollStart`] and [`Event::PollEnd`]: the loop is running it;
//! * [`Event::Woken`]: someone asked for another poll, and who: a timer, a
//!   pool thread, another task, or the task itself (a `yield_now`);
//! * [`Event::Cancelled`], [`Event::Done`], [`Event::Closed`]: its end;
//! * [`Event::JobStart`] and [`Event::JobEnd`]: a blocking job on a pool
//!   thread (chapter 9), drawn on that thread's own row.
//!
//! Times are loop time: exact on the virtual clock, measured on the real one.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use crate::timeline::{Mark, Row, Timeline};
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The row number of the main future in a trace.
pub const MAIN: u64 = 0;

/// Who woke a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WakeSource {
    /// The task with this number (0: the main future) woke it while being
    /// polled; a task that wakes itself is yielding.
    Task(u64),
    /// A timer fired.
    Timer,
    /// Another thread, by name (a pool thread, say).
    Thread(String),
}

impl fmt::Display for WakeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WakeSource::Task(MAIN) => f.write_str("main"),
            WakeSource::Task(id) => write!(f, "task {id}"),
            WakeSource::Timer => f.write_str("timer"),
            WakeSource::Thread(name) => write!(f, "thread {name}"),
        }
    }
}

/// One thing that happened to a task (or, for jobs, on a thread).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The task was spawned.
    Spawned,
    /// The loop started polling the task.
    PollStart,
    /// The poll ended; `ready` if the task finished in it.
    PollEnd {
        /// Whether the future returned `Ready`.
        ready: bool,
    },
    /// The task was woken.
    Woken {
        /// Who woke it.
        by: WakeSource,
    },
    /// The task was cancelled: its future dropped unfinished.
    Cancelled,
    /// The task finished (the poll that returned `Ready` has ended).
    Done,
    /// The loop closed with the task unfinished; its future was dropped.
    Closed,
    /// A blocking job started on a pool thread.
    JobStart {
        /// The thread's name.
        thread: String,
        /// The job's number.
        job: u64,
    },
    /// A blocking job ended on a pool thread.
    JobEnd {
        /// The thread's name.
        thread: String,
        /// The job's number.
        job: u64,
    },
}

/// An event, when it happened (loop time), and to which task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Loop time of the event.
    pub at: Duration,
    /// The task's number (0: the main future; for job events, the task
    /// that submitted the job, or 0).
    pub task: u64,
    /// What happened.
    pub event: Event,
}

/// Collects records while switched on. Shared by the loop thread and any
/// thread that wakes a task, hence the lock; the switch is an atomic so
/// that a switched-off recorder costs one load.
#[derive(Debug, Default)]
pub struct Recorder {
    on: AtomicBool,
    records: Mutex<Vec<Record>>,
    names: Mutex<BTreeMap<u64, String>>,
}

impl Recorder {
    /// A recorder, switched off.
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// Whether records are being kept.
    #[inline]
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Starts (or stops) keeping records.
    pub fn set_on(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    /// Keeps a record, if switched on.
    pub fn record(&self, at: Duration, task: u64, event: Event) {
        self.record_with(|| Some(Record { at, task, event }));
    }

    /// Keeps the record `make` builds, if switched on and `make` builds one.
    ///
    /// `make` runs under the recorder's lock. That is what the loop needs
    /// from it: a time read inside `make` keeps the records in time order
    /// even when several threads record at once, and a condition checked
    /// inside `make` ("is this task still alive?") cannot change before
    /// the record is kept, as long as whoever changes it records afterwards.
    pub fn record_with(&self, make: impl FnOnce() -> Option<Record>) {
        if self.is_on() {
            let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(record) = make() {
                records.push(record);
            }
        }
    }

    /// Gives task `task` a name for pictures ("users(3)").
    pub fn name(&self, task: u64, name: impl Into<String>) {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        names.insert(task, name.into());
    }

    /// Everything recorded so far, and the names; the recorder starts over.
    pub fn take(&self) -> Trace {
        let records = std::mem::take(&mut *self.records.lock().unwrap_or_else(|p| p.into_inner()));
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Trace { records, names }
    }
}

/// A finished recording: the records in the order they were kept.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// The records, in order.
    pub records: Vec<Record>,
    /// Names given to tasks (unnamed tasks are "task N", task 0 "main").
    pub names: BTreeMap<u64, String>,
}

impl Trace {
    /// The name of task `id` for pictures.
    pub fn name_of(&self, id: u64) -> String {
        match self.names.get(&id) {
            Some(name) => name.clone(),
            None if id == MAIN => "main".to_string(),
            None => format!("task {id}"),
        }
    }

    /// The records of one task, in order.
    pub fn of_task(&self, id: u64) -> impl Iterator<Item = &Record> {
        self.records.iter().filter(move |r| {
            r.task == id && !matches!(r.event, Event::JobStart { .. } | Event::JobEnd { .. })
        })
    }

    /// The tasks that appear in the trace, in order of first appearance.
    pub fn tasks(&self) -> Vec<u64> {
        let mut seen = Vec::new();
        for record in &self.records {
            if matches!(record.event, Event::JobStart { .. } | Event::JobEnd { .. }) {
                continue;
            }
            if !seen.contains(&record.task) {
                seen.push(record.task);
            }
        }
        seen
    }
}

/// How long a poll is drawn when it took no loop time (on a virtual clock
/// every poll takes none): just enough to claim its column in a picture.
const BLIP: Duration = Duration::from_micros(1);

/// What a task row is doing between two records.
#[derive(Clone, Copy)]
enum Doing {
    /// Spawned or woken, waiting for its turn.
    Queued,
    Running,
    /// Pending after a poll; what it waited on is known only at the wake.
    Waiting,
}

impl Trace {
    /// The picture of this trace (see the appendix module
    /// [`timeline`](crate::timeline)): one row per task in order of first
    /// appearance (the main future first when it appears), then one row
    /// per pool thread that ran a job.
    ///
    /// A wait is drawn by who ended it: a timer (asleep), a pool thread (a
    /// blocking job), another task (awaiting it). A task that woke itself
    /// during its poll (a `yield_now`) is drawn as queued.
    pub fn to_timeline(&self, title: impl Into<String>) -> Timeline {
        let mut timeline = Timeline::new(title);
        let end = self.records.last().map_or(Duration::ZERO, |r| r.at);
        for id in self.tasks() {
            let mut row = Row::new(self.name_of(id));
            let mut doing: Option<(Doing, Duration)> = None;
            let mut woken_while_running = false;
            for record in self.of_task(id) {
                let at = record.at;
                match &record.event {
                    Event::Spawned => doing = Some((Doing::Queued, at)),
                    Event::PollStart => {
                        if let Some((Doing::Queued, since)) = doing {
                            push(&mut row, since, at, Mark::Queued);
                        }
                        doing = Some((Doing::Running, at));
                        woken_while_running = false;
                    }
                    Event::PollEnd { ready } => {
                        if let Some((Doing::Running, since)) = doing {
                            row.push(since, at.max(since + BLIP), Mark::Running);
                        }
                        doing = match (ready, woken_while_running) {
                            (true, _) => None,
                            (false, true) => Some((Doing::Queued, at)),
                            (false, false) => Some((Doing::Waiting, at)),
                        };
                    }
                    Event::Woken { by } => match doing {
                        Some((Doing::Waiting, since)) => {
                            let mark = match by {
                                WakeSource::Timer => Mark::Timer,
                                WakeSource::Thread(_) => Mark::Job,
                                WakeSource::Task(waker) if *waker == id => Mark::Queued,
                                WakeSource::Task(_) => Mark::Task,
                            };
                            push(&mut row, since, at, mark);
                            doing = Some((Doing::Queued, at));
                        }
                        Some((Doing::Running, _)) => woken_while_running = true,
                        _ => {}
                    },
                    Event::Cancelled | Event::Done | Event::Closed => {
                        if let Some((Doing::Queued | Doing::Waiting, since)) = doing {
                            push(&mut row, since, at, Mark::Queued);
                        }
                        doing = None;
                    }
                    Event::JobStart { .. } | Event::JobEnd { .. } => {}
                }
            }
            // Still waiting when the trace ends.
            if let Some((doing, since)) = doing {
                let mark = match doing {
                    Doing::Running => Mark::Running,
                    Doing::Queued => Mark::Queued,
                    Doing::Waiting => Mark::Idle,
                };
                push(&mut row, since, end, mark);
            }
            timeline.rows.push(row);
        }
        // Pool threads: one row each, blocked while a job runs on it.
        let mut started: BTreeMap<(String, u64), Duration> = BTreeMap::new();
        for record in &self.records {
            match &record.event {
                Event::JobStart { thread, job } => {
                    started.insert((thread.clone(), *job), record.at);
                }
                Event::JobEnd { thread, job } => {
                    let since = started.remove(&(thread.clone(), *job)).unwrap_or(record.at);
                    timeline
                        .row(thread)
                        .push(since, record.at.max(since + BLIP), Mark::Blocked);
                }
                _ => {}
            }
        }
        timeline
    }
}

/// Adds a span unless it is empty (a wait that took no loop time).
fn push(row: &mut Row, start: Duration, end: Duration, mark: Mark) {
    if end > start {
        row.push(start, end, mark);
    }
}
