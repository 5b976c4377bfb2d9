//! The model: what a picture is made of. A [`Timeline`] is a title and
//! rows; a [`Row`] is a name and [`Span`]s; a span is a half-open stretch of
//! time `[start, end)` with the [`Mark`] saying what the row did then. Plain
//! data, built by hand or by the trace appendix, and drawn by `text.rs` and
//! `svg.rs`.

use std::fmt;
use std::time::Duration;

/// What a row is doing during a span.
///
/// The variants name the states a task (or a thread) goes through in the
/// chapters; the event loop's trace will record exactly these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mark {
    /// Being polled: the task holds the loop's thread and runs its code.
    Running,
    /// Ready, waiting in the run queue for its turn (it was woken, but another
    /// task is being polled).
    Queued,
    /// Asleep on a timer (`sleep`): nothing to do until the deadline.
    Timer,
    /// Waiting for a blocking job on a thread pool (`run_in_executor`).
    Job,
    /// Waiting for a socket to be ready (chapter 12: `sock_recv`,
    /// `sock_accept`, a stream's read): woken by the loop's selector.
    Socket,
    /// Waiting for another task to finish (awaiting a `JoinHandle`, `gather`).
    Task,
    /// A thread blocked in a blocking call: a synchronous sleep, or a pool
    /// thread running a blocking job. The thread is held, but does no work.
    Blocked,
    /// Idle: alive but with nothing to do (a pool thread waiting for work).
    /// Drawn blank in the terminal.
    Idle,
}

/// The characters a text picture is drawn with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Glyphs {
    /// Block and box-drawing characters (`█ ░ ┬ ─`): the clearest picture.
    #[default]
    Unicode,
    /// Plain ASCII (`# . + -`): for terminals or fonts that draw the box
    /// characters badly (some CJK fonts make them double width).
    Ascii,
}

impl Mark {
    /// Every mark, highest [precedence](Mark::precedence) first: the order of
    /// the legend.
    pub const ALL: [Mark; 8] = [
        Mark::Running,
        Mark::Blocked,
        Mark::Queued,
        Mark::Job,
        Mark::Socket,
        Mark::Task,
        Mark::Timer,
        Mark::Idle,
    ];

    /// Which mark wins when several fall into one cell of a text picture (or
    /// overlap in the SVG): the higher number. Running beats every wait,
    /// because a short poll is the event most worth seeing; the timer, the
    /// longest and commonest wait, comes last among the waits so that a rarer
    /// one in the same cell stays visible.
    pub fn precedence(self) -> u8 {
        match self {
            Mark::Running => 7,
            Mark::Blocked => 6,
            Mark::Queued => 5,
            Mark::Job => 4,
            Mark::Socket => 3,
            Mark::Task => 2,
            Mark::Timer => 1,
            Mark::Idle => 0,
        }
    }

    /// The character a cell with this mark shows.
    pub fn glyph(self, glyphs: Glyphs) -> char {
        let (unicode, ascii) = match self {
            Mark::Running => ('█', '#'),
            Mark::Blocked => ('▓', '='),
            Mark::Queued => ('▒', '+'),
            Mark::Job => ('~', '~'),
            Mark::Socket => (':', ':'),
            Mark::Task => ('·', '-'),
            Mark::Timer => ('░', '.'),
            Mark::Idle => (' ', ' '),
        };
        match glyphs {
            Glyphs::Unicode => unicode,
            Glyphs::Ascii => ascii,
        }
    }

    /// A one-word name, used in the SVG's tooltips and class names.
    pub fn name(self) -> &'static str {
        match self {
            Mark::Running => "running",
            Mark::Blocked => "blocked",
            Mark::Queued => "queued",
            Mark::Job => "job",
            Mark::Socket => "socket",
            Mark::Task => "task",
            Mark::Timer => "timer",
            Mark::Idle => "idle",
        }
    }

    /// What the mark means, as the legend says it.
    pub fn meaning(self) -> &'static str {
        match self {
            Mark::Running => "running",
            Mark::Blocked => "blocked thread",
            Mark::Queued => "ready, queued",
            Mark::Job => "waiting on a job",
            Mark::Socket => "waiting on a socket",
            Mark::Task => "waiting on a task",
            Mark::Timer => "asleep (timer)",
            Mark::Idle => "idle",
        }
    }

    /// The SVG fill colour. Running and Timer share a hue (dark blue: working,
    /// light blue: sleeping) so one task's life reads as one colour.
    pub fn colour(self) -> &'static str {
        match self {
            Mark::Running => "#2563eb",
            Mark::Blocked => "#b91c1c",
            Mark::Queued => "#f59e0b",
            Mark::Job => "#059669",
            Mark::Socket => "#0891b2",
            Mark::Task => "#a78bfa",
            Mark::Timer => "#93c5fd",
            Mark::Idle => "#e5e7eb",
        }
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One stretch of time, `[start, end)`, during which a row did one thing.
/// Times are measured from the start of the run (loop time, like asyncio's
/// `loop.time()` relative to the loop's start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// When it began.
    pub start: Duration,
    /// When it ended (exclusive). Equal to `start` for an empty span, which
    /// draws nothing.
    pub end: Duration,
    /// What the row was doing.
    pub mark: Mark,
}

impl Span {
    /// A span from `start` to `end`.
    ///
    /// # Panics
    /// If `end` is before `start`: a span cannot end before it begins.
    pub fn new(start: Duration, end: Duration, mark: Mark) -> Span {
        assert!(
            start <= end,
            "a {mark} span cannot end ({end:?}) before it starts ({start:?})"
        );
        Span { start, end, mark }
    }

    /// How long it lasted (zero for a span whose fields were set backwards).
    pub fn len(&self) -> Duration {
        self.end.saturating_sub(self.start)
    }

    /// Whether it lasted no time at all (and so draws nothing).
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// One row of a picture: a task or a thread, and what it did when.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Row {
    /// The label at the left, such as `users(3)` or `pool-1`.
    pub name: String,
    /// What it did, in any order. Spans of one row should not overlap; if they
    /// do, each cell shows the mark with the highest precedence.
    pub spans: Vec<Span>,
}

impl Row {
    /// An empty row.
    pub fn new(name: impl Into<String>) -> Row {
        Row {
            name: name.into(),
            spans: Vec::new(),
        }
    }

    /// Adds a span from `start` to `end`; returns the row for chaining.
    ///
    /// # Panics
    /// If `end` is before `start`.
    pub fn push(&mut self, start: Duration, end: Duration, mark: Mark) -> &mut Row {
        self.spans.push(Span::new(start, end, mark));
        self
    }

    /// Adds a span of length `len` that starts where the row's last span ended
    /// (at 0 for an empty row): the easy way to draw a row by hand, as in
    /// `row.then(Mark::Running, ms(10)).then(Mark::Timer, ms(990))`.
    pub fn then(&mut self, mark: Mark, len: Duration) -> &mut Row {
        let start = self.end();
        self.push(start, start + len, mark)
    }

    /// When the row's last span ends (0 for an empty row).
    pub fn end(&self) -> Duration {
        self.spans
            .iter()
            .map(|s| s.end)
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

/// A picture: a title and rows of spans, on one time axis from 0 to
/// [`Timeline::end`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Timeline {
    /// The first line of the picture, such as `E000-4: users as tasks`.
    pub title: String,
    /// The rows, drawn top to bottom in this order.
    pub rows: Vec<Row>,
    /// Where the time axis ends. `None` (the usual case): at the latest span
    /// end. Set it to give several pictures the same length, or to cut a long
    /// run short (spans are clipped there).
    pub end: Option<Duration>,
}

impl Timeline {
    /// An empty picture with a title.
    pub fn new(title: impl Into<String>) -> Timeline {
        Timeline {
            title: title.into(),
            rows: Vec::new(),
            end: None,
        }
    }

    /// Sets where the time axis ends (see [`Timeline::end`](field@Timeline::end)).
    pub fn with_end(mut self, end: Duration) -> Timeline {
        self.end = Some(end);
        self
    }

    /// The row called `name`: the existing one, or a new one added at the
    /// bottom. Get-or-create, so a recorder can write
    /// `t.row(name).push(..)` for every event without keeping indices.
    pub fn row(&mut self, name: &str) -> &mut Row {
        let index = match self.rows.iter().position(|r| r.name == name) {
            Some(i) => i,
            None => {
                self.rows.push(Row::new(name));
                self.rows.len() - 1
            }
        };
        &mut self.rows[index]
    }

    /// Where the time axis ends: [`Timeline::end`](field@Timeline::end) if
    /// set, else the latest span end (0 for a picture with no spans).
    pub fn end_time(&self) -> Duration {
        self.end.unwrap_or_else(|| {
            self.rows
                .iter()
                .map(Row::end)
                .max()
                .unwrap_or(Duration::ZERO)
        })
    }

    /// The marks used by at least one non-empty span, highest precedence
    /// first (what the legend lists).
    pub fn marks_used(&self) -> Vec<Mark> {
        marks_used(std::slice::from_ref(self))
    }
}

/// The marks some non-empty span of `panels` uses, highest precedence
/// first: what a legend lists.
pub(super) fn marks_used(panels: &[Timeline]) -> Vec<Mark> {
    Mark::ALL
        .into_iter()
        .filter(|m| {
            panels
                .iter()
                .flat_map(|t| &t.rows)
                .flat_map(|r| &r.spans)
                .any(|s| s.mark == *m && !s.is_empty())
        })
        .collect()
}

pub(super) fn common_end(panels: &[Timeline]) -> Duration {
    panels
        .iter()
        .map(Timeline::end_time)
        .max()
        .unwrap_or(Duration::ZERO)
}
