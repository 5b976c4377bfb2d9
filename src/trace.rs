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
//!   pool thread, a socket found ready by the loop's selector (chapter 12),
//!   another task, or the task itself (a `yield_now`);
//! * [`Event::Cancelled`], [`Event::Done`], [`Event::Closed`]: its end;
//! * [`Event::JobStart`] and [`Event::JobEnd`]: a blocking job on a pool
//!   thread (chapter 9), drawn on that thread's own row.
//!
//! Times are loop time: exact on the virtual clock, measured on the real one.
//! [`Trace::check_invariants`] states the rules every recording obeys (one
//! poll at a time, no poll without a wake, nothing after the end …) and
//! checks them; [`Trace::to_timeline`] turns a recording into a picture.

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
    /// The loop's idler found a socket ready (chapter 12's selector, in
    /// `poll(2)`), and woke the task waiting on it.
    Socket,
}

impl fmt::Display for WakeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WakeSource::Task(MAIN) => f.write_str("main"),
            WakeSource::Task(id) => write!(f, "task {id}"),
            WakeSource::Timer => f.write_str("timer"),
            WakeSource::Thread(name) => write!(f, "thread {name}"),
            WakeSource::Socket => f.write_str("socket"),
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
    /// The task's number (0: the main future; always 0 for job events,
    /// since a pool job does not know which task submitted it).
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
    /// Whether the recording under way began while tasks may have been
    /// alive: set by [`Recorder::take`] (the next recording starts over in
    /// the middle of the program) and by [`Recorder::begin_mid_life`].
    /// Handed to the [`Trace`] as [`Trace::begins_mid_life`].
    mid_life: AtomicBool,
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

    /// Says that the recording under way began while tasks were alive (the
    /// loop switched tracing on in the middle of a run): its trace is then
    /// checked as one that [`begins_mid_life`](Trace::begins_mid_life).
    /// [`Recorder::take`] does this by itself for the recording after it.
    pub fn begin_mid_life(&self) {
        self.mid_life.store(true, Ordering::Relaxed);
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

    /// Gives task `task` a name for pictures ("users(3)"), if switched on:
    /// like the records, names are kept only while tracing, so a recorder
    /// switched off holds nothing at all. (Switch it on before naming.)
    pub fn name(&self, task: u64, name: impl Into<String>) {
        if self.is_on() {
            let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
            names.insert(task, name.into());
        }
    }

    /// Everything recorded so far, and the names given so far; the records
    /// start over (the names stay, for the tasks still alive). The next
    /// recording begins in the middle of the program's life, and its trace
    /// says so ([`Trace::begins_mid_life`]).
    pub fn take(&self) -> Trace {
        let (records, begins_mid_life) = {
            let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
            // Under the records' lock, so no record lands between the
            // take and the mark: everything after it is the next recording.
            let begins_mid_life = self.mid_life.swap(true, Ordering::Relaxed);
            (std::mem::take(&mut *records), begins_mid_life)
        };
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Trace {
            records,
            names,
            begins_mid_life,
        }
    }
}

/// A finished recording: the records in the order they were kept.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// The records, in order.
    pub records: Vec<Record>,
    /// Names given to tasks (unnamed tasks are "task N", task 0 "main").
    pub names: BTreeMap<u64, String>,
    /// Whether the recording began while tasks were already alive (after an
    /// earlier `take`, or tracing switched on mid-run). Then a task's first
    /// record need not be its `Spawned`: it may be anywhere in its life,
    /// even in the middle of a poll, and [`Trace::check_invariants`] takes
    /// that into account. `false` (the default) for a recording that began
    /// before the first task.
    pub begins_mid_life: bool,
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

/// Where a task is in its life, as [`Trace::check_invariants`] follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    /// Not seen yet (a task must be spawned first).
    Unborn,
    /// Alive when a mid-life recording began, and not seen since: it may be
    /// queued, waiting, or in the middle of a poll (see rule 8).
    Unknown,
    /// Spawned or woken: waiting for its next poll.
    Queued,
    /// Being polled; `woken` if it was woken during this poll.
    Polled { woken: bool },
    /// Its last poll returned `Pending` and nobody has woken it since.
    Waiting,
    /// Its last poll returned `Ready`: `Done` must come next.
    Finishing,
    /// Done, cancelled or closed: nothing may follow.
    Ended,
}

impl Trace {
    /// Checks that the records tell a story the loop's rules allow, and
    /// says which record breaks it if not. Tests run it on the traces of
    /// real programs; a scheduling bug (a poll without a wake, a poll after
    /// the end, two polls at once) shows up here as a clear message.
    ///
    /// The rules, each one a promise of chapter 5's loop:
    ///
    /// 1. **Time never runs backwards**: each record is at or after the one
    ///    before it (the loop reads the time under the recorder's lock).
    /// 2. **One poll at a time**: a `PollStart` is followed by the same
    ///    task's `PollEnd` before any other `PollStart` (one thread polls).
    /// 3. **A task is spawned first**: `Spawned` is a task's first record,
    ///    and only that. The main future (task 0) is never spawned:
    ///    `run_until_complete` queues it, so its first poll needs no record
    ///    before it.
    /// 4. **A poll starts only after a spawn or a wake**: between a
    ///    `PollEnd { ready: false }` and the task's next `PollStart` there
    ///    is a `Woken` (during the poll that ended, or after it).
    /// 5. **Ready means done**: a task's `PollEnd { ready: true }` is followed
    ///    by its `Done`, and `Done` comes only there. (The main future has no
    ///    `Done`: its ready poll ends its `run_until_complete`, and a later
    ///    one starts a new main future.)
    /// 6. **The end is the end**: `Done`, `Cancelled` or `Closed` is a
    ///    task's last record; nothing of it is polled or woken afterwards.
    ///    A task is cancelled or closed only between polls, never during one.
    /// 7. **One job at a time per pool thread**: a thread's `JobStart` is
    ///    followed by the `JobEnd` of the same job before its next
    ///    `JobStart`.
    ///
    /// 8. **A recording may begin mid-life** ([`Trace::begins_mid_life`]):
    ///    a task whose first record is not `Spawned` (the main future too)
    ///    was alive before it, somewhere in its life. Its first record is
    ///    then taken as the next step of *some* life the rules allow: a
    ///    `PollStart` (it was queued), a `PollEnd` (its poll began before
    ///    the recording; then no other poll may have started in the
    ///    recording before it, by rule 2), a `Woken`, a `Done` (its ready
    ///    poll ended before), a `Cancelled` or `Closed`. From there every
    ///    rule holds as usual, except that a `PollEnd { ready: false }` of a
    ///    poll that began before the recording may be followed by a poll
    ///    without a recorded wake (the wake may have come before the
    ///    recording did). Likewise a pool thread's first record may be the
    ///    `JobEnd` of a job that started before. In a trace that begins at
    ///    the start, a task that was never spawned is still refused.
    ///
    /// A trace may stop anywhere (a task still asleep when it was taken):
    /// unfinished lives are fine.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut lives: BTreeMap<u64, Life> = BTreeMap::new();
        let mut polling: Option<u64> = None;
        // Rule 8: a poll that ends without having started in the recording
        // began before it, and then it must be the first poll recorded.
        let mut a_poll_started: Option<u64> = None;
        let mut jobs: BTreeMap<&str, u64> = BTreeMap::new();
        let mut threads_seen: std::collections::BTreeSet<&str> = Default::default();
        let mut last_at = Duration::ZERO;
        for (index, record) in self.records.iter().enumerate() {
            let Record { at, task, event } = record;
            let name = self.name_of(*task);
            let fail = |what: String| {
                Err(format!(
                    "record {index} ({event:?} of {name}, task {task}, at {at:?}): {what}"
                ))
            };
            if *at < last_at {
                return fail(format!("time ran backwards, from {last_at:?}"));
            }
            last_at = *at;
            // Rule 7: pool threads, one job at a time.
            match event {
                Event::JobStart { thread, job } => {
                    threads_seen.insert(thread);
                    if let Some(running) = jobs.insert(thread, *job) {
                        return fail(format!("thread {thread} is still running job {running}"));
                    }
                    continue;
                }
                Event::JobEnd { thread, job } => {
                    let first_seen = threads_seen.insert(thread);
                    match jobs.remove(thread.as_str()) {
                        Some(started) if started == *job => {}
                        Some(started) => {
                            return fail(format!("thread {thread} is running job {started}"));
                        }
                        // Rule 8: the job began before the recording.
                        None if self.begins_mid_life && first_seen => {}
                        None => return fail(format!("job {job} never started on {thread}")),
                    }
                    continue;
                }
                _ => {}
            }
            // Where the task is when we first meet it: the main future is
            // queued by `run_until_complete`, another task must be spawned
            // first; in a mid-life recording, anything not being spawned
            // now was alive already (rule 8).
            let initial = match (*task, event) {
                (MAIN, _) if self.begins_mid_life => Life::Unknown,
                (MAIN, _) => Life::Queued,
                (_, Event::Spawned) => Life::Unborn,
                _ if self.begins_mid_life => Life::Unknown,
                _ => Life::Unborn,
            };
            let life = lives.entry(*task).or_insert(initial);
            if *event == Event::PollStart {
                a_poll_started.get_or_insert(*task);
            }
            let next = match (*life, event) {
                (Life::Ended, _) => return fail("the task had already ended".to_string()),
                // Rule 8: the first record of a task alive before a mid-life
                // recording.
                (Life::Unknown, Event::Spawned) if *task != MAIN => {
                    return fail("spawned, but it was alive before the recording".to_string());
                }
                (Life::Unknown, Event::PollEnd { ready }) => {
                    // Its poll began before the recording: nobody else can
                    // have been polled since (one poll at a time).
                    if let Some(other) = a_poll_started {
                        return fail(format!(
                            "its poll began before the recording, but task {other} was polled \
                             since: two polls at once"
                        ));
                    }
                    match (ready, *task == MAIN) {
                        (true, true) => Life::Queued,
                        (true, false) => Life::Finishing,
                        // Woken during the unrecorded part of the poll, or
                        // not: either may be true, so a poll may follow.
                        (false, _) => Life::Queued,
                    }
                }
                // Woken mid-poll or between polls: still not known which.
                (Life::Unknown, Event::Woken { .. }) => Life::Unknown,
                (Life::Unknown, Event::Done) if *task != MAIN => Life::Ended,
                (Life::Unknown, Event::Cancelled | Event::Closed) if *task != MAIN => Life::Ended,
                (_, Event::Spawned) if *task == MAIN => {
                    return fail("the main future is never spawned".to_string());
                }
                (Life::Unborn, Event::Spawned) => Life::Queued,
                (_, Event::Spawned) => return fail("spawned twice".to_string()),
                (Life::Unborn, _) => return fail("the task was never spawned".to_string()),
                (
                    Life::Finishing,
                    Event::PollStart | Event::PollEnd { .. } | Event::Cancelled | Event::Closed,
                ) => {
                    return fail("its poll returned Ready, so Done must come next".to_string());
                }
                (Life::Queued | Life::Unknown, Event::PollStart) => {
                    if let Some(other) = polling {
                        return fail(format!("task {other} was being polled"));
                    }
                    polling = Some(*task);
                    Life::Polled { woken: false }
                }
                (Life::Waiting, Event::PollStart) => {
                    return fail("polled without a wake since its last poll".to_string());
                }
                (Life::Polled { .. }, Event::PollStart) => {
                    return fail("its previous poll had not ended".to_string());
                }
                (Life::Polled { woken }, Event::PollEnd { ready }) => {
                    polling = None;
                    match (ready, woken) {
                        (true, _) if *task == MAIN => Life::Queued,
                        (true, _) => Life::Finishing,
                        (false, true) => Life::Queued,
                        (false, false) => Life::Waiting,
                    }
                }
                (_, Event::PollEnd { .. }) => return fail("no poll had started".to_string()),
                (Life::Polled { .. }, Event::Woken { .. }) => Life::Polled { woken: true },
                (Life::Queued | Life::Waiting, Event::Woken { .. }) => Life::Queued,
                // Another thread may wake it between its last poll and Done.
                (Life::Finishing, Event::Woken { .. }) => Life::Finishing,
                (_, Event::Done | Event::Cancelled | Event::Closed) if *task == MAIN => {
                    return fail("the main future's end is its ready poll".to_string());
                }
                (Life::Finishing, Event::Done) => Life::Ended,
                (_, Event::Done) => {
                    return fail("Done must follow the poll that returned Ready".to_string());
                }
                (Life::Queued | Life::Waiting, Event::Cancelled | Event::Closed) => Life::Ended,
                (_, Event::Cancelled | Event::Closed) => {
                    return fail("a task ends this way only between polls".to_string());
                }
                (_, Event::JobStart { .. } | Event::JobEnd { .. }) => {
                    unreachable!("job records are checked above")
                }
            };
            *life = next;
        }
        Ok(())
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
    /// during its poll (a `yield_now`) is drawn as queued. A wait that no
    /// wake ended (the task was cancelled, the loop closed, or the trace
    /// stops) is drawn as idle: blank, since nobody said what it waited on.
    pub fn to_timeline(&self, title: impl Into<String>) -> Timeline {
        let mut timeline = Timeline::new(title);
        let end = self.records.last().map_or(Duration::ZERO, |r| r.at);
        for id in self.tasks() {
            timeline.rows.push(self.task_row(id, end));
        }
        self.add_pool_rows(&mut timeline);
        timeline
    }

    /// Task `id`'s row: what it was doing between each of its events, up to
    /// `end` (the trace's last instant).
    fn task_row(&self, id: u64, end: Duration) -> Row {
        let mut row = Row::new(self.name_of(id));
        // What the task is doing now, and since when.
        let mut doing: Option<(Doing, Duration)> = None;
        // A wake during its own poll: it goes back in the queue, not to wait.
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
                        push(&mut row, since, at, wait_mark(by, id));
                        doing = Some((Doing::Queued, at));
                    }
                    Some((Doing::Running, _)) => woken_while_running = true,
                    _ => {}
                },
                Event::Cancelled | Event::Done | Event::Closed => {
                    match doing {
                        Some((Doing::Queued, since)) => push(&mut row, since, at, Mark::Queued),
                        // Nobody woke it, so what it waited on is
                        // unknown: drawn as idle, not as a guess.
                        Some((Doing::Waiting, since)) => push(&mut row, since, at, Mark::Idle),
                        _ => {}
                    }
                    doing = None;
                }
                Event::JobStart { .. } | Event::JobEnd { .. } => {}
            }
        }
        // Still at it when the trace ends.
        if let Some((doing, since)) = doing {
            let mark = match doing {
                Doing::Running => Mark::Running,
                Doing::Queued => Mark::Queued,
                Doing::Waiting => Mark::Idle,
            };
            push(&mut row, since, end, mark);
        }
        row
    }

    /// Pool threads: one row each, blocked while a job runs on it, in the
    /// order the threads started work.
    fn add_pool_rows(&self, timeline: &mut Timeline) {
        let mut started: BTreeMap<(String, u64), Duration> = BTreeMap::new();
        for record in &self.records {
            match &record.event {
                Event::JobStart { thread, job } => {
                    // The row exists from its first job on.
                    timeline.row(thread);
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
    }
}

/// How a wait that `by` ended is drawn on task `id`'s row: by who ended it.
fn wait_mark(by: &WakeSource, id: u64) -> Mark {
    match by {
        WakeSource::Timer => Mark::Timer,
        WakeSource::Thread(_) => Mark::Job,
        WakeSource::Socket => Mark::Socket,
        WakeSource::Task(waker) if *waker == id => Mark::Queued,
        WakeSource::Task(_) => Mark::Task,
    }
}

/// Adds a span unless it is empty (a wait that took no loop time).
fn push(row: &mut Row, start: Duration, end: Duration, mark: Mark) {
    if end > start {
        row.push(start, end, mark);
    }
}
