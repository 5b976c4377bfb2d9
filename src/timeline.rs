//! # Appendix — pictures: drawing a timeline
//!
//! **Why pictures.** The documents explain asyncio with pictures before they
//! explain it with code: a synchronous run is a staircase of bars, one after
//! the other (seed 000); an asynchronous run is the same bars folded on top of
//! each other, so the total shrinks from 6 s to 3 s; and seed 001 puts three
//! panels side by side, *sequential*, *concurrent* and *parallel* (E001-1).
//! A picture answers at a glance the question every chapter asks: *who was
//! doing what, when?* (EX-2). This module draws such pictures, in the terminal
//! and as an SVG file, from plain data.
//!
//! **How to read one.** One row per task (or per thread), time running left to
//! right. Each character cell is a slice of time, and shows what the row was
//! doing then:
//!
//! | mark | text | ASCII | meaning |
//! |---|---|---|---|
//! | [`Mark::Running`] | `█` | `#` | polled: it holds the loop's thread |
//! | [`Mark::Blocked`] | `▓` | `=` | a thread stuck in a blocking call (`time.sleep`, a pool job) |
//! | [`Mark::Queued`]  | `▒` | `+` | ready, waiting in the run queue for its turn |
//! | [`Mark::Job`]     | `~` | `~` | waiting for a blocking job on a thread pool |
//! | [`Mark::Task`]    | `·` | `-` | waiting for another task to finish |
//! | [`Mark::Timer`]   | `░` | `.` | asleep on a timer (`asyncio.sleep`) |
//! | [`Mark::Idle`]    | ` ` | ` ` | idle (a pool thread with no work) |
//!
//! A blank cell means the row did nothing then (not started, finished, or
//! idle). Under the rows, an axis with "nice" ticks (`0s 1s 2s 3s`, or `ms`
//! and `µs` for short runs) gives the time; a tick `┬` sits in the cell that
//! contains its instant, so a task woken at 1 s shows its `█` right above the
//! `1s` tick. A legend lists the marks the picture uses. Here is E000-4, the
//! three look-ups as tasks, each waking once a second:
//!
//! ```text
//! E000-4: find_users_async(3), (2), (1) as tasks
//! users(3) █░░░░░░░░░░░░░░░░░░░░░░█░░░░░░░░░░░░░░░░░░░░░░█░░░░░░░░░░░░░░░░░░░░░░█
//! users(2) █░░░░░░░░░░░░░░░░░░░░░░█░░░░░░░░░░░░░░░░░░░░░░█
//! users(1) █░░░░░░░░░░░░░░░░░░░░░░█
//!          ┬──────────────────────┬──────────────────────┬──────────────────────┬─
//!          0s                     1s                     2s                     3s
//! █ running   ░ asleep (timer)
//! ```
//!
//! Three rows of waiting folded on top of each other, with the thread busy only
//! in thin slices: that is the whole of asyncio's gain, drawn.
//!
//! **The scaling rule.** The picture maps the time range `[0, end]` onto the
//! columns available (`end` is [`Timeline::end`] if set, else the latest span
//! end). Column `i` stands for the slice `[i·end/cols, (i+1)·end/cols)`.
//! - A span gets every column whose *midpoint* falls inside it (spans are
//!   half-open: `[start, end)`), so a long span's length on screen is its true
//!   length, rounded to whole columns.
//! - A non-empty span that contains no midpoint (a 1 ms poll in a 100 s run)
//!   still gets one column: the one containing its start. Nothing that
//!   happened is invisible. Empty spans (`start == end`) draw nothing.
//! - When several marks land in one cell, the most telling one wins, in the
//!   order of [`Mark::precedence`]: `Running` beats every wait (a brief poll in
//!   the middle of a sleep shows as `█`), then `Blocked`, `Queued`, `Job`,
//!   `Task`, `Timer`, `Idle`. The common, long wait (a timer) comes last so
//!   that rarer events stay visible.
//! - Spans past an explicit `end` are cut off there.
//!
//! The same rule serves the SVG, where a span is a rectangle of its exact
//! length, at least one pixel wide, with a tooltip giving its mark and times.
//! The output is deterministic: the same timeline always gives the same text,
//! byte for byte, which is what lets the tests compare pictures exactly.
//!
//! **Where the data comes from.** Here, by hand: a [`Timeline`] is rows of
//! [`Span`]s, and a test or an example can build one directly (see the tests'
//! E000-3 and E000-4 pictures). Or from a real run: the event loop records a
//! trace (the appendix module [`trace`](crate::trace)), and
//! [`Trace::to_timeline`](crate::trace::Trace::to_timeline) turns it into a
//! timeline, so that the chapters' examples draw the run they just made:
//! `cargo run --example chNN -- --timeline` prints the picture, `--svg
//! run.svg` writes the SVG (see [`PictureArgs`]).
//!
//! **Its limits, on purpose.** A character cell is coarse: in an 80-column
//! picture of a 3 s run, one cell is about 43 ms, so ten tasks polled one after
//! another within a millisecond all show in the same column. The picture shows
//! *that* they ran in that slice, not their order inside it (the printed lines
//! and the tests tell the order). An empty span draws nothing, and on the
//! virtual clock a poll takes no time at all, so a recorder working in
//! virtual time must give each poll a nominal length to make it visible (in
//! real time a poll lasts some microseconds, and the one-column rule shows
//! it). Terminal widths are counted in columns, with
//! Hangul and other wide characters counted as two, so Korean task names line
//! up; a terminal that draws the box characters double-width (some CJK fonts
//! do) should use the ASCII glyphs ([`Glyphs::Ascii`], `--ascii`).
//!
//! This module is an appendix outside the chapter order: it depends on no
//! chapter, so every chapter's example may draw with it.
#![forbid(unsafe_code)]

use std::fmt;
use std::fs;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The width [`fmt::Display`] and [`PictureArgs`] use when nothing else says.
pub const DEFAULT_WIDTH: usize = 80;

/// The narrowest picture [`Timeline::render_text`] draws; a smaller `width`
/// is treated as this one (below it there is no room for names and time).
pub const MIN_WIDTH: usize = 20;

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
    pub const ALL: [Mark; 7] = [
        Mark::Running,
        Mark::Blocked,
        Mark::Queued,
        Mark::Job,
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
            Mark::Running => 6,
            Mark::Blocked => 5,
            Mark::Queued => 4,
            Mark::Job => 3,
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

    /// The picture scaled to `cols` columns: which mark each cell shows,
    /// following the scaling rule in the module doc. Both text renderers draw
    /// from this.
    pub fn grid(&self, cols: usize) -> Grid {
        Grid::new(&self.rows, self.end_time(), cols)
    }

    /// How [`Timeline::render_text`] lays the picture out at `width`: the
    /// name column's width and the grid it draws. Tests use it to check the
    /// text against the scaling rule.
    pub fn text_layout(&self, width: usize) -> TextLayout {
        let width = width.max(MIN_WIDTH);
        let name_width = name_column(std::slice::from_ref(self), width);
        let plan = AxisPlan::new(
            self.end_time().as_nanos(),
            width - name_width - 1,
            Glyphs::Unicode,
        );
        TextLayout {
            name_width,
            grid: self.grid(plan.cols),
        }
    }

    /// The terminal picture, at most `width` columns wide (wide characters
    /// such as Hangul count as two; widths below [`MIN_WIDTH`] count as
    /// [`MIN_WIDTH`]): the title, one line per row, the time axis, its tick
    /// labels and a legend. Every line ends in `\n`; none has trailing spaces.
    pub fn render_text(&self, width: usize) -> String {
        self.render_text_with(width, Glyphs::Unicode)
    }

    /// [`Timeline::render_text`] with a choice of glyphs.
    pub fn render_text_with(&self, width: usize, glyphs: Glyphs) -> String {
        render_text_panels(std::slice::from_ref(self), width, glyphs)
    }

    /// The picture as a standalone SVG document: the title, task names, one
    /// `<g class="row">` per row with a coloured rectangle per span (each with
    /// a `<title>` tooltip giving its mark and times), a time axis with tick
    /// labels, and a legend. Built as text with `std` alone.
    pub fn render_svg(&self) -> String {
        render_svg_panels(std::slice::from_ref(self), SVG_PLOT_PX)
    }

    /// Writes [`Timeline::render_svg`] to `path`.
    pub fn write_svg(&self, path: impl AsRef<Path>) -> io::Result<()> {
        fs::write(path, self.render_svg())
    }
}

/// The picture at [`DEFAULT_WIDTH`] columns.
impl fmt::Display for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render_text(DEFAULT_WIDTH))
    }
}

/// Several timelines side by side on one time scale: the three-panel
/// sequential / concurrent / parallel picture of E001-1. Every panel shares the
/// same end (the latest of them) and the same columns per second, so lengths
/// compare across panels. The panels sit side by side when each gets at least
/// 12 columns of time in `width`, and one above the other otherwise.
pub fn render_panels_text(panels: &[Timeline], width: usize) -> String {
    render_text_panels(panels, width, Glyphs::Unicode)
}

/// [`render_panels_text`] with a choice of glyphs.
pub fn render_panels_text_with(panels: &[Timeline], width: usize, glyphs: Glyphs) -> String {
    render_text_panels(panels, width, glyphs)
}

/// Several timelines side by side in one SVG document, on one time scale
/// (the same pixels per second in every panel), with one legend.
pub fn render_panels_svg(panels: &[Timeline]) -> String {
    render_svg_panels(panels, SVG_PANEL_PLOT_PX)
}

// ---------------------------------------------------------------------------
// Scaling: from spans to cells.

/// A picture scaled to whole columns: which mark each cell shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grid {
    /// The time at the right edge of the last column.
    pub end: Duration,
    /// How many columns stand for `[0, end)`.
    pub cols: usize,
    /// One vector of `cols` cells per row; `None` where the row did nothing.
    pub cells: Vec<Vec<Option<Mark>>>,
}

impl Grid {
    fn new(rows: &[Row], end: Duration, cols: usize) -> Grid {
        let end_ns = end.as_nanos();
        let cells = rows
            .iter()
            .map(|row| {
                let mut line: Vec<Option<Mark>> = vec![None; cols];
                for span in &row.spans {
                    if let Some(reach) = reach(end_ns, cols, span) {
                        for cell in &mut line[reach] {
                            let wins =
                                cell.is_none_or(|old| span.mark.precedence() > old.precedence());
                            if wins {
                                *cell = Some(span.mark);
                            }
                        }
                    }
                }
                line
            })
            .collect();
        Grid { end, cols, cells }
    }

    /// The columns `span` is given by the scaling rule, before precedence
    /// settles collisions: those whose midpoint lies in the span, or the one
    /// containing its start if there are none. `None` for an empty span or one
    /// wholly past the end.
    pub fn reach(&self, span: &Span) -> Option<Range<usize>> {
        reach(self.end.as_nanos(), self.cols, span)
    }

    /// The column that contains instant `t` (`cols` for `t` at or past the
    /// end): where a tick for `t` is drawn.
    pub fn column_of(&self, t: Duration) -> usize {
        column_of(t.as_nanos(), self.end.as_nanos(), self.cols)
    }
}

/// How [`Timeline::render_text`] lays out a picture (see
/// [`Timeline::text_layout`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextLayout {
    /// The name column's width; the cells start one column after it.
    pub name_width: usize,
    /// The cells drawn.
    pub grid: Grid,
}

/// The scaling rule, in integers so that it is exact and deterministic.
/// Column `i`'s midpoint is `(2i+1)·end / (2·cols)`; it lies in `[s, e)` when
/// `2s·cols <= (2i+1)·end < 2e·cols`.
fn reach(end: u128, cols: usize, span: &Span) -> Option<Range<usize>> {
    let s = span.start.as_nanos();
    let e = span.end.as_nanos().min(end);
    if cols == 0 || end == 0 || e <= s {
        return None;
    }
    let c = cols as u128;
    let first = (2 * s * c).saturating_sub(end).div_ceil(2 * end);
    let past = (2 * e * c).saturating_sub(end).div_ceil(2 * end).min(c);
    if first < past {
        Some(first as usize..past as usize)
    } else {
        // No midpoint inside: the span still gets the column holding its start.
        let i = column_of(s, end, cols).min(cols - 1);
        Some(i..i + 1)
    }
}

fn column_of(t: u128, end: u128, cols: usize) -> usize {
    if end == 0 {
        return 0; // a picture of no time at all: everything is at 0
    }
    if t >= end {
        return cols;
    }
    (t * cols as u128 / end) as usize
}

// ---------------------------------------------------------------------------
// The time axis: "nice" ticks and their labels.

/// Ticks every 1, 2 or 5 times a power of ten nanoseconds, labelled in the unit
/// that suits the whole run (s, ms, µs or ns).
///
/// The ticks are airy where there is room (three label widths apart). In a
/// narrow picture (a panel of three side by side) that may leave only the
/// `0` tick, and an axis with one label gives no scale at all: then they
/// are packed tighter, one label width and a space apart.
fn choose_ticks(end: u128, cols: usize, glyphs: Glyphs) -> Vec<(u128, String)> {
    let airy = ticks_spaced(end, cols, glyphs, |longest| 3 * longest);
    if airy.len() > 1 {
        return airy;
    }
    ticks_spaced(end, cols, glyphs, |longest| longest + 1)
}

/// The densest nice ticks whose spacing in columns is at least
/// `room(longest label width)`.
fn ticks_spaced(
    end: u128,
    cols: usize,
    glyphs: Glyphs,
    room: impl Fn(u128) -> u128,
) -> Vec<(u128, String)> {
    let unit = TimeUnit::for_span(end, glyphs);
    if end == 0 || cols == 0 {
        return vec![(0, unit.label(0, 1))];
    }
    let c = cols as u128;
    let mut power: u128 = 1;
    loop {
        for m in [1, 2, 5] {
            let step = m * power;
            // Too dense even for two-character labels: skip without building
            // the (possibly huge) list of labels.
            if step * c < 3 * end {
                continue;
            }
            let ticks: Vec<(u128, String)> = (0..=end / step)
                .map(|i| (i * step, unit.label(i * step, step)))
                .collect();
            let longest = ticks
                .iter()
                .map(|(_, l)| display_width(l))
                .max()
                .unwrap_or(0) as u128;
            // Ticks step * cols / end columns apart: room for the labels?
            // (Airy, this prefers 0s 1s 2s 3s to 0s 0.5s 1s 1.5s in an
            // 80-column picture.)
            if step * c >= room(longest) * end {
                return ticks;
            }
        }
        power *= 10;
    }
}

#[derive(Clone, Copy)]
struct TimeUnit {
    nanos: u128,
    suffix: &'static str,
}

impl TimeUnit {
    fn for_span(end: u128, glyphs: Glyphs) -> TimeUnit {
        let (nanos, suffix) = if end >= 1_000_000_000 {
            (1_000_000_000, "s")
        } else if end >= 1_000_000 {
            (1_000_000, "ms")
        } else if end >= 1_000 {
            (1_000, if glyphs == Glyphs::Ascii { "us" } else { "µs" })
        } else if end > 0 {
            (1, "ns")
        } else {
            (1_000_000_000, "s")
        };
        TimeUnit { nanos, suffix }
    }

    /// `t` in this unit with as many decimals as `step` needs, trailing zeros
    /// trimmed: `0s`, `0.5s`, `1s`, `250ms`.
    fn label(self, t: u128, step: u128) -> String {
        let mut decimals = 0u32;
        while decimals < 9 && (step * 10u128.pow(decimals)) % self.nanos != 0 {
            decimals += 1;
        }
        let whole = t / self.nanos;
        let frac = (t % self.nanos) * 10u128.pow(decimals) / self.nanos;
        let mut text = whole.to_string();
        if decimals > 0 && frac > 0 {
            let digits = format!("{frac:0width$}", width = decimals as usize);
            text.push('.');
            text.push_str(digits.trim_end_matches('0'));
        }
        text.push_str(self.suffix);
        text
    }
}

/// The axis of a text picture: how many cell columns, and which ticks where.
struct AxisPlan {
    cols: usize,
    /// (column, label), columns in `0..=cols`. An empty label is a tick
    /// without one.
    ticks: Vec<(usize, String)>,
}

impl AxisPlan {
    /// Fits the cells, the axis line (`cols + 1` characters: the last one
    /// stands for the end instant) and the tick labels into `avail` columns.
    /// The last label may run past the axis line, so the cells give up as
    /// many columns as it needs; a few rounds settle it (fewer columns can
    /// change the tick step, hence the labels).
    fn new(end: u128, avail: usize, glyphs: Glyphs) -> AxisPlan {
        let mut reserve = 0;
        for round in 0.. {
            let cols = avail.saturating_sub(1 + reserve).max(1);
            let ticks: Vec<(usize, String)> = choose_ticks(end, cols, glyphs)
                .into_iter()
                .map(|(t, label)| (column_of(t, end, cols), label))
                .collect();
            let reach = ticks
                .iter()
                .map(|(col, label)| col + display_width(label))
                .max()
                .unwrap_or(0);
            let need = reach.saturating_sub(cols + 1);
            if need <= reserve || round == 5 {
                let mut plan = AxisPlan { cols, ticks };
                plan.drop_crowded_labels(avail);
                return plan;
            }
            reserve = need;
        }
        unreachable!("the loop returns by its sixth round")
    }

    /// A safety net: a label that would overlap the previous one or end past
    /// column `limit` is left out (its tick stays).
    fn drop_crowded_labels(&mut self, limit: usize) {
        let mut free_from = 0;
        for (col, label) in &mut self.ticks {
            let w = display_width(label);
            if *col < free_from || *col + w > limit {
                label.clear();
            } else {
                free_from = *col + w + 1;
            }
        }
    }

    fn axis_line(&self, glyphs: Glyphs) -> String {
        let (rule, tick) = match glyphs {
            Glyphs::Unicode => ('─', '┬'),
            Glyphs::Ascii => ('-', '+'),
        };
        let mut line = vec![rule; self.cols + 1];
        for (col, _) in &self.ticks {
            line[*col] = tick;
        }
        line.into_iter().collect()
    }

    fn label_line(&self) -> String {
        let mut line = String::new();
        let mut at = 0;
        for (col, label) in &self.ticks {
            if label.is_empty() {
                continue;
            }
            line.extend(std::iter::repeat_n(' ', col - at));
            line.push_str(label);
            at = col + display_width(label);
        }
        line
    }
}

// ---------------------------------------------------------------------------
// Text.

const PANEL_GAP: usize = 4;
const MIN_PANEL_COLS: usize = 12;

/// How many terminal columns `s` takes: Hangul, CJK and other wide characters
/// take two, everything else one.
pub fn display_width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

fn char_width(c: char) -> usize {
    let wide = matches!(c as u32,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD);
    if wide { 2 } else { 1 }
}

/// `s` cut or padded with spaces to exactly `width` columns. A cut keeps the
/// head and the tail with `…` between (`use…(3)`), because names like
/// `users(3)` and `pool-2` differ at the end. Control characters become
/// spaces so a name cannot break a line.
fn fit(s: &str, width: usize) -> String {
    let clean: Vec<char> = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let total: usize = clean.iter().map(|&c| char_width(c)).sum();
    let mut out = String::new();
    let used = if total <= width {
        out.extend(&clean);
        total
    } else if width == 0 {
        0
    } else {
        let room = width - 1;
        let head_room = room.div_ceil(2);
        let mut head_used = 0;
        let mut head_len = 0;
        for &c in &clean {
            if head_used + char_width(c) > head_room {
                break;
            }
            head_used += char_width(c);
            head_len += 1;
        }
        let mut tail_used = 0;
        let mut tail_start = clean.len();
        while tail_start > head_len {
            let w = char_width(clean[tail_start - 1]);
            if head_used + tail_used + w > room {
                break;
            }
            tail_used += w;
            tail_start -= 1;
        }
        out.extend(&clean[..head_len]);
        out.push('…');
        out.extend(&clean[tail_start..]);
        head_used + 1 + tail_used
    };
    out.extend(std::iter::repeat_n(' ', width - used));
    out
}

/// A title or a legend line, cut at the end (`…`) to `width` columns.
fn fit_end(s: &str, width: usize) -> String {
    if display_width(s) <= width {
        return fit(s, width);
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars().map(|c| if c.is_control() { ' ' } else { c }) {
        if used + char_width(c) + 1 > width {
            break;
        }
        out.push(c);
        used += char_width(c);
    }
    out.push('…');
    used += 1;
    out.extend(std::iter::repeat_n(' ', width - used));
    out
}

/// The name column: as wide as the longest name, but at most a quarter of the
/// picture (longer names are cut with `…`).
fn name_column(panels: &[Timeline], width: usize) -> usize {
    let longest = panels
        .iter()
        .flat_map(|t| &t.rows)
        .map(|r| display_width(&r.name))
        .max()
        .unwrap_or(0);
    longest.min((width / 4).max(4))
}

fn marks_used(panels: &[Timeline]) -> Vec<Mark> {
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

fn common_end(panels: &[Timeline]) -> Duration {
    panels
        .iter()
        .map(Timeline::end_time)
        .max()
        .unwrap_or(Duration::ZERO)
}

fn render_text_panels(panels: &[Timeline], width: usize, glyphs: Glyphs) -> String {
    let width = width.max(MIN_WIDTH);
    let end = common_end(panels);
    let end_ns = end.as_nanos();
    let mut lines: Vec<String> = Vec::new();
    let with_title = panels.iter().any(|t| !t.title.is_empty());
    if panels.iter().all(|t| t.rows.is_empty()) {
        // Nothing to draw: say so, without an axis of no time.
        let mut out = String::new();
        for t in panels.iter().filter(|t| !t.title.is_empty()) {
            out.push_str(fit_end(&t.title, width).trim_end());
            out.push('\n');
        }
        out.push_str("(no rows)\n");
        return out;
    }

    // Side by side if every panel keeps a useful number of columns of time.
    let n = panels.len();
    let mut side_by_side = None;
    if n > 1 && width > PANEL_GAP * (n - 1) {
        let panel_width = (width - PANEL_GAP * (n - 1)) / n;
        let name_widths: Vec<usize> = panels
            .iter()
            .map(|t| name_column(std::slice::from_ref(t), panel_width))
            .collect();
        let avail = name_widths
            .iter()
            .map(|nw| panel_width.saturating_sub(nw + 1))
            .min()
            .unwrap_or(0);
        let plan = AxisPlan::new(end_ns, avail, glyphs);
        if avail > MIN_PANEL_COLS && plan.cols >= MIN_PANEL_COLS {
            side_by_side = Some((panel_width, name_widths, plan));
        }
    }

    match side_by_side {
        Some((panel_width, name_widths, plan)) => {
            let rows = panels.iter().map(|t| t.rows.len()).max().unwrap_or(0);
            let frame = Frame {
                end,
                plan: &plan,
                glyphs,
                block_width: panel_width,
                rows,
                with_title,
            };
            let blocks: Vec<Vec<String>> = panels
                .iter()
                .zip(&name_widths)
                .map(|(t, &nw)| text_block(t, nw, &frame))
                .collect();
            for i in 0..blocks[0].len() {
                let joined: Vec<String> = blocks.iter().map(|b| b[i].clone()).collect();
                lines.push(joined.join(&" ".repeat(PANEL_GAP)));
            }
        }
        None => {
            // One above the other, sharing the name column so the time axes
            // line up.
            let nw = name_column(panels, width);
            let plan = AxisPlan::new(end_ns, width - nw - 1, glyphs);
            for (i, t) in panels.iter().enumerate() {
                if i > 0 {
                    lines.push(String::new());
                }
                let frame = Frame {
                    end,
                    plan: &plan,
                    glyphs,
                    block_width: width,
                    rows: t.rows.len(),
                    with_title,
                };
                lines.extend(text_block(t, nw, &frame));
            }
        }
    }
    lines.extend(legend_lines(&marks_used(panels), glyphs, width));

    let mut out = String::new();
    for line in lines {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// What every panel of one text picture shares.
struct Frame<'a> {
    end: Duration,
    plan: &'a AxisPlan,
    glyphs: Glyphs,
    /// Each panel's width in columns.
    block_width: usize,
    /// Rows to pad each panel to, so that the axes line up side by side.
    rows: usize,
    with_title: bool,
}

/// One panel as lines of exactly `block_width` columns: title (if
/// `with_title`), rows (padded with blank lines to `rows`), axis, labels.
fn text_block(t: &Timeline, nw: usize, frame: &Frame<'_>) -> Vec<String> {
    let Frame {
        end,
        plan,
        glyphs,
        block_width,
        rows,
        with_title,
    } = *frame;
    let grid = Grid::new(&t.rows, end, plan.cols);
    let indent = " ".repeat(nw + 1);
    let mut lines = Vec::new();
    if with_title {
        lines.push(fit_end(&t.title, block_width));
    }
    if t.rows.is_empty() {
        lines.push(fit_end("(no rows)", block_width));
    }
    for (row, cells) in t.rows.iter().zip(&grid.cells) {
        let mut line = fit(&row.name, nw);
        line.push(' ');
        line.extend(cells.iter().map(|c| c.map_or(' ', |m| m.glyph(glyphs))));
        lines.push(fit_end(&line, block_width));
    }
    while lines.len() < rows.max(1) + usize::from(with_title) {
        lines.push(fit_end("", block_width));
    }
    lines.push(fit_end(
        &format!("{indent}{}", plan.axis_line(glyphs)),
        block_width,
    ));
    lines.push(fit_end(
        &format!("{indent}{}", plan.label_line()),
        block_width,
    ));
    lines
}

/// The legend, wrapped to `width`: `█ running   ░ asleep (timer)`.
fn legend_lines(marks: &[Mark], glyphs: Glyphs, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for mark in marks {
        let item = match mark {
            Mark::Idle => "(blank) idle".to_string(),
            _ => format!("{} {}", mark.glyph(glyphs), mark.meaning()),
        };
        let sep = if line.is_empty() { 0 } else { 3 };
        if !line.is_empty() && display_width(&line) + sep + display_width(&item) > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push_str("   ");
        }
        line.push_str(&item);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines.into_iter().map(|l| fit_end(&l, width)).collect()
}

// ---------------------------------------------------------------------------
// SVG.

/// Pixels of time axis in a single picture.
const SVG_PLOT_PX: f64 = 720.0;
/// Pixels of time axis per panel in a panel picture.
const SVG_PANEL_PLOT_PX: f64 = 300.0;
/// The advance of one character of the 12 px monospace font, near enough.
const CHAR_PX: f64 = 7.2;
const MARGIN: f64 = 12.0;
const TITLE_H: f64 = 26.0;
const ROW_H: f64 = 22.0;
const BAR_H: f64 = 14.0;
const AXIS_H: f64 = 36.0;
const LEGEND_H: f64 = 20.0;
const PANEL_GAP_PX: f64 = 28.0;
/// Names longer than this are cut in the SVG (the full name is in a tooltip).
const SVG_NAME_CHARS: usize = 32;

/// `&`, `<`, `>`, `"` and `'` as entities, so any text is safe in element
/// content and in attribute values.
pub fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters even as entities.
            c if c.is_control() && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A time as people write it: `0s`, `1.01s`, `10ms`, `250µs`, `40ns`
/// (at most three decimals).
pub fn format_time(d: Duration) -> String {
    let ns = d.as_nanos();
    let (unit, suffix) = if ns >= 1_000_000_000 {
        (1_000_000_000, "s")
    } else if ns >= 1_000_000 {
        (1_000_000, "ms")
    } else if ns >= 1_000 {
        (1_000, "µs")
    } else {
        return format!("{ns}{}", if ns == 0 { "s" } else { "ns" });
    };
    let milli = (ns * 1000 + unit / 2) / unit; // rounded to a thousandth
    let mut text = format!("{}.{:03}", milli / 1000, milli % 1000);
    while text.ends_with('0') {
        text.pop();
    }
    if text.ends_with('.') {
        text.pop();
    }
    text.push_str(suffix);
    text
}

fn px(v: f64) -> String {
    format!("{v:.1}")
}

fn render_svg_panels(panels: &[Timeline], plot_px: f64) -> String {
    use fmt::Write as _;
    let end = common_end(panels);
    let end_ns = end.as_nanos();
    let ticks = choose_ticks(end_ns, (plot_px / CHAR_PX) as usize, Glyphs::Unicode);
    let max_rows = panels
        .iter()
        .map(|t| t.rows.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let has_title = panels.iter().any(|t| !t.title.is_empty());
    let rows_top = MARGIN + if has_title { TITLE_H } else { 4.0 };
    let axis_y = rows_top + max_rows as f64 * ROW_H + 4.0;

    // Each panel: a name column as wide as its longest name, then the plot.
    let name_px: Vec<f64> = panels
        .iter()
        .map(|t| {
            let chars = t
                .rows
                .iter()
                .map(|r| display_width(&r.name).min(SVG_NAME_CHARS))
                .max()
                .unwrap_or(0);
            (chars as f64 * CHAR_PX + 12.0).max(24.0)
        })
        .collect();
    let panel_w: Vec<f64> = name_px.iter().map(|n| n + plot_px + 24.0).collect();
    let mut width = MARGIN * 2.0 + panel_w.iter().sum::<f64>();
    width += PANEL_GAP_PX * panels.len().saturating_sub(1) as f64;
    let legend = marks_used(panels);
    let legend_layout = svg_legend_layout(&legend, width - 2.0 * MARGIN);
    let legend_rows = legend_layout.last().map_or(0, |(_, row, _)| row + 1);
    let legend_top = axis_y + AXIS_H;
    let height = legend_top + legend_rows as f64 * LEGEND_H + MARGIN;
    if panels.is_empty() {
        width = width.max(200.0);
    }

    let mut s = String::new();
    let _ = writeln!(s, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="monospace" font-size="12">"#,
        w = px(width),
        h = px(height)
    );
    let _ = writeln!(
        s,
        r##"<rect class="background" x="0" y="0" width="{}" height="{}" fill="#ffffff"/>"##,
        px(width),
        px(height)
    );
    let mut x0 = MARGIN;
    for (i, t) in panels.iter().enumerate() {
        let plot_x = x0 + name_px[i];
        let x_of = |ns: u128| -> f64 {
            if end_ns == 0 {
                plot_x
            } else {
                plot_x + plot_px * ns.min(end_ns) as f64 / end_ns as f64
            }
        };
        let _ = writeln!(s, r#"<g class="panel">"#);
        if !t.title.is_empty() {
            let _ = writeln!(
                s,
                r#"<text class="title" x="{}" y="{}" font-size="14" font-weight="bold">{}</text>"#,
                px(x0),
                px(MARGIN + 14.0),
                escape_xml(&t.title)
            );
        }
        // Faint vertical lines at the ticks help the eye down the rows.
        let _ = writeln!(s, r##"<g class="grid" stroke="#e5e7eb" stroke-width="1">"##);
        for (tick, _) in &ticks {
            let x = px(x_of(*tick));
            let _ = writeln!(
                s,
                r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}"/>"#,
                px(rows_top),
                px(axis_y)
            );
        }
        let _ = writeln!(s, "</g>");
        if t.rows.is_empty() {
            let _ = writeln!(
                s,
                r##"<text class="empty" x="{}" y="{}" fill="#6b7280">(no rows)</text>"##,
                px(plot_x + 6.0),
                px(rows_top + ROW_H / 2.0 + 4.0)
            );
        }
        for (r, row) in t.rows.iter().enumerate() {
            let top = rows_top + r as f64 * ROW_H;
            let bar_y = top + (ROW_H - BAR_H) / 2.0;
            let name = escape_xml(&row.name);
            let shown =
                escape_xml(fit(&row.name, SVG_NAME_CHARS.min(display_width(&row.name))).trim_end());
            let _ = writeln!(s, r#"<g class="row">"#);
            if r % 2 == 0 {
                let _ = writeln!(
                    s,
                    r##"<rect class="lane" x="{}" y="{}" width="{}" height="{}" fill="#f8fafc"/>"##,
                    px(x0),
                    px(top),
                    px(name_px[i] + plot_px),
                    px(ROW_H)
                );
            }
            let _ = writeln!(
                s,
                r#"<text class="name" x="{}" y="{}" text-anchor="end">{shown}<title>{name}</title></text>"#,
                px(plot_x - 6.0),
                px(top + ROW_H / 2.0 + 4.0)
            );
            // Lowest precedence first, so Running is drawn on top.
            let mut spans: Vec<&Span> = row.spans.iter().filter(|sp| !sp.is_empty()).collect();
            spans.sort_by_key(|sp| sp.mark.precedence());
            for sp in spans {
                let (a, b) = (sp.start.as_nanos(), sp.end.as_nanos().min(end_ns));
                if b <= a {
                    continue; // wholly past an explicit end
                }
                let x = x_of(a);
                // At least one pixel, like the text's one column: a short poll
                // must not vanish.
                let w = (x_of(b) - x).max(1.0);
                let _ = writeln!(
                    s,
                    r#"<rect class="span {m}" x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{name}: {m} from {} to {} ({})</title></rect>"#,
                    px(x),
                    px(bar_y),
                    px(w),
                    px(BAR_H),
                    sp.mark.colour(),
                    format_time(sp.start),
                    format_time(sp.end),
                    format_time(sp.len()),
                    m = sp.mark.name(),
                );
            }
            let _ = writeln!(s, "</g>");
        }
        // The axis: a line, a tick and a label per tick.
        let _ = writeln!(s, r##"<g class="axis" stroke="#374151" fill="#374151">"##);
        let _ = writeln!(
            s,
            r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}"/>"#,
            px(plot_x),
            px(plot_x + plot_px),
            y = px(axis_y)
        );
        for (tick, label) in &ticks {
            let x = px(x_of(*tick));
            let _ = writeln!(
                s,
                r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}"/>"#,
                px(axis_y),
                px(axis_y + 5.0)
            );
            let _ = writeln!(
                s,
                r#"<text x="{x}" y="{}" stroke="none" text-anchor="middle">{}</text>"#,
                px(axis_y + 18.0),
                escape_xml(label)
            );
        }
        let _ = writeln!(s, "</g>");
        let _ = writeln!(s, "</g>");
        x0 += panel_w[i] + PANEL_GAP_PX;
    }
    let _ = writeln!(s, r#"<g class="legend">"#);
    for (mark, row, x) in legend_layout {
        let y = legend_top + row as f64 * LEGEND_H;
        let _ = writeln!(
            s,
            r##"<rect x="{}" y="{}" width="12" height="12" fill="{}" stroke="#9ca3af" stroke-width="0.5"/>"##,
            px(MARGIN + x),
            px(y),
            mark.colour()
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}">{}</text>"#,
            px(MARGIN + x + 17.0),
            px(y + 10.0),
            escape_xml(mark.meaning())
        );
    }
    let _ = writeln!(s, "</g>");
    let _ = writeln!(s, "</svg>");
    s
}

/// Where each legend item goes: (mark, legend row, x offset), wrapped to
/// `width` pixels.
fn svg_legend_layout(marks: &[Mark], width: f64) -> Vec<(Mark, usize, f64)> {
    let mut out = Vec::new();
    let (mut row, mut x) = (0, 0.0);
    for &mark in marks {
        let w = 17.0 + mark.meaning().chars().count() as f64 * CHAR_PX + 20.0;
        if x > 0.0 && x + w > width {
            row += 1;
            x = 0.0;
        }
        out.push((mark, row, x));
        x += w;
    }
    out
}

// ---------------------------------------------------------------------------
// A small XML well-formedness check.

/// Checks that `xml` is well-formed XML, with `std` alone: one root element,
/// tags that balance, attribute values in quotes (and no attribute twice),
/// and only valid entity references (`&amp; &lt; &gt; &quot; &apos;`, `&#N;`,
/// `&#xH;`). Comments, processing instructions (`<?xml …?>`), CDATA sections
/// and a DOCTYPE without an internal subset are accepted. It is not a full
/// XML parser (no DTDs, no namespace checks); it is enough to catch the
/// mistakes a hand-built SVG can make.
///
/// Returns `Err` with a message that says where it breaks, as
/// `line 3, column 7: closing tag </b> does not match <a> (opened at line 1, column 1)`.
pub fn check_well_formed(xml: &str) -> Result<(), String> {
    XmlChecker {
        chars: xml.chars().collect(),
        pos: 0,
    }
    .document()
}

struct XmlChecker {
    chars: Vec<char>,
    pos: usize,
}

impl XmlChecker {
    fn where_(&self, pos: usize) -> String {
        let (mut line, mut col) = (1, 1);
        for &c in &self.chars[..pos.min(self.chars.len())] {
            if c == '\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
        }
        format!("line {line}, column {col}")
    }

    fn fail<T>(&self, pos: usize, what: impl fmt::Display) -> Result<T, String> {
        Err(format!("{}: {what}", self.where_(pos)))
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn starts_with(&self, s: &str) -> bool {
        (self.pos..)
            .zip(s.chars())
            .all(|(i, c)| self.chars.get(i) == Some(&c))
    }

    fn skip_space(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(' ' | '\t' | '\r' | '\n')) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Skips to just past `close`, or fails naming `what` was left open.
    fn skip_past(&mut self, close: &str, what: &str) -> Result<(), String> {
        let start = self.pos;
        while self.pos < self.chars.len() {
            if self.starts_with(close) {
                self.pos += close.chars().count();
                return Ok(());
            }
            self.pos += 1;
        }
        self.fail(start, format!("{what} is never closed with `{close}`"))
    }

    fn name(&mut self, what: &str) -> Result<String, String> {
        let start = self.pos;
        match self.peek() {
            Some(c) if c.is_alphabetic() || c == '_' || c == ':' => {}
            Some(c) => return self.fail(start, format!("expected {what}, found {c:?}")),
            None => return self.fail(start, format!("expected {what}, found the end")),
        }
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || matches!(c, '_' | ':' | '-' | '.') {
                self.pos += 1;
            } else {
                break;
            }
        }
        Ok(self.chars[start..self.pos].iter().collect())
    }

    /// At `&`: checks one entity reference and steps past it.
    fn entity(&mut self) -> Result<(), String> {
        let start = self.pos;
        self.pos += 1;
        let body_start = self.pos;
        while let Some(c) = self.peek() {
            if c == ';' || self.pos - body_start > 12 || !(c.is_alphanumeric() || c == '#') {
                break;
            }
            self.pos += 1;
        }
        if self.peek() != Some(';') {
            return self.fail(
                start,
                "`&` that does not start an entity (write `&amp;` for a literal &)",
            );
        }
        let body: String = self.chars[body_start..self.pos].iter().collect();
        self.pos += 1;
        let number = if let Some(hex) = body.strip_prefix("#x") {
            Some(u32::from_str_radix(hex, 16).ok())
        } else {
            body.strip_prefix('#').map(|dec| dec.parse::<u32>().ok())
        };
        let ok = match number {
            Some(code) => code.and_then(char::from_u32).is_some_and(|c| c != '\0'),
            None => matches!(body.as_str(), "amp" | "lt" | "gt" | "quot" | "apos"),
        };
        if ok {
            Ok(())
        } else {
            self.fail(start, format!("unknown entity `&{body};`"))
        }
    }

    fn document(mut self) -> Result<(), String> {
        // (name, where it was opened)
        let mut open: Vec<(String, usize)> = Vec::new();
        let mut seen_root = false;
        loop {
            let at = self.pos;
            let Some(c) = self.peek() else {
                if let Some((name, opened)) = open.last() {
                    return self.fail(
                        at,
                        format!(
                            "the document ends inside <{name}> (opened at {}); missing </{name}>",
                            self.where_(*opened)
                        ),
                    );
                }
                if !seen_root {
                    return self.fail(at, "no root element");
                }
                return Ok(());
            };
            if self.starts_with("<!--") {
                self.pos += 4;
                self.skip_past("-->", "a comment")?;
            } else if self.starts_with("<?") {
                self.pos += 2;
                self.skip_past("?>", "a processing instruction")?;
            } else if self.starts_with("<![CDATA[") {
                if open.is_empty() {
                    return self.fail(at, "a CDATA section outside the root element");
                }
                self.pos += 9;
                self.skip_past("]]>", "a CDATA section")?;
            } else if self.starts_with("<!DOCTYPE") {
                if seen_root {
                    return self.fail(at, "a DOCTYPE after the root element");
                }
                while let Some(c) = self.peek() {
                    if c == '[' {
                        return self.fail(self.pos, "DOCTYPE internal subsets are not supported");
                    }
                    self.pos += 1;
                    if c == '>' {
                        break;
                    }
                }
            } else if self.starts_with("</") {
                self.pos += 2;
                let name = self.name("a tag name after `</`")?;
                self.skip_space();
                if self.peek() != Some('>') {
                    return self.fail(self.pos, format!("expected `>` to end </{name}"));
                }
                self.pos += 1;
                match open.pop() {
                    None => {
                        return self
                            .fail(at, format!("closing tag </{name}> with no open element"));
                    }
                    Some((expected, opened)) if expected != name => {
                        return self.fail(
                            at,
                            format!(
                                "closing tag </{name}> does not match <{expected}> (opened at {})",
                                self.where_(opened)
                            ),
                        );
                    }
                    Some(_) => {}
                }
            } else if c == '<' {
                if open.is_empty() && seen_root {
                    return self.fail(at, "a second root element (a document has exactly one)");
                }
                self.pos += 1;
                let name = self.name("a tag name after `<`")?;
                let closed = self.attributes(&name)?;
                seen_root = true;
                if !closed {
                    open.push((name, at));
                }
            } else {
                // Character data.
                if c == '&' {
                    if open.is_empty() {
                        return self.fail(at, "an entity outside the root element");
                    }
                    self.entity()?;
                } else if self.starts_with("]]>") {
                    return self.fail(at, "`]]>` in text (it may only end a CDATA section)");
                } else if open.is_empty() && !c.is_whitespace() {
                    return self.fail(
                        at,
                        format!(
                            "text {c:?} outside the root element{}",
                            if seen_root { " (after it ended)" } else { "" }
                        ),
                    );
                } else {
                    self.pos += 1;
                }
            }
        }
    }

    /// After `<name`: the attributes, up to `>` (returns false) or `/>`
    /// (returns true: the element is already closed).
    fn attributes(&mut self, element: &str) -> Result<bool, String> {
        let mut seen: Vec<String> = Vec::new();
        loop {
            let spaced = self.skip_space();
            match self.peek() {
                Some('>') => {
                    self.pos += 1;
                    return Ok(false);
                }
                Some('/') => {
                    if self.starts_with("/>") {
                        self.pos += 2;
                        return Ok(true);
                    }
                    return self.fail(self.pos, format!("`/` not followed by `>` in <{element}>"));
                }
                None => {
                    return self.fail(
                        self.pos,
                        format!("the document ends inside the tag <{element}"),
                    );
                }
                Some(_) if !spaced => {
                    return self.fail(
                        self.pos,
                        format!("expected a space, `>` or `/>` in <{element}>"),
                    );
                }
                Some(_) => {}
            }
            let attr_at = self.pos;
            let attr = self.name(&format!("an attribute name in <{element}>"))?;
            if seen.contains(&attr) {
                return self.fail(
                    attr_at,
                    format!("attribute `{attr}` appears twice in <{element}>"),
                );
            }
            self.skip_space();
            if self.peek() != Some('=') {
                return self.fail(
                    self.pos,
                    format!("attribute `{attr}` in <{element}> has no `=value`"),
                );
            }
            self.pos += 1;
            self.skip_space();
            let quote = match self.peek() {
                Some(q @ ('"' | '\'')) => q,
                _ => {
                    return self.fail(
                        self.pos,
                        format!("the value of attribute `{attr}` in <{element}> is not in quotes"),
                    );
                }
            };
            let value_at = self.pos;
            self.pos += 1;
            loop {
                match self.peek() {
                    None => {
                        return self.fail(
                            value_at,
                            format!("the value of attribute `{attr}` is never closed"),
                        );
                    }
                    Some(c) if c == quote => {
                        self.pos += 1;
                        break;
                    }
                    Some('<') => {
                        return self.fail(
                            self.pos,
                            format!("`<` inside the value of attribute `{attr}`"),
                        );
                    }
                    Some('&') => self.entity()?,
                    Some(_) => self.pos += 1,
                }
            }
            seen.push(attr);
        }
    }
}

// ---------------------------------------------------------------------------
// The examples' command line.

/// What an example was asked to draw: `--timeline` prints the terminal
/// picture, `--svg <path>` writes the SVG. Every chapter's example parses
/// these with [`PictureArgs::from_env`] and hands its timeline to
/// [`PictureArgs::show`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PictureArgs {
    /// `--timeline`: print the picture in the terminal.
    pub timeline: bool,
    /// `--svg <path>` (or `--svg=<path>`): write the picture as SVG there.
    pub svg: Option<PathBuf>,
    /// `--ascii`: draw the terminal picture in plain ASCII (implies
    /// `--timeline`).
    pub ascii: bool,
    /// `--width <columns>`: the terminal picture's width. Without it, the
    /// `COLUMNS` environment variable if set, else [`DEFAULT_WIDTH`].
    pub width: Option<usize>,
}

impl PictureArgs {
    /// Parses the process's arguments. On a bad argument it prints the error
    /// and exits with status 2, as command-line tools do.
    pub fn from_env() -> PictureArgs {
        match PictureArgs::parse(std::env::args().skip(1)) {
            Ok(args) => args,
            Err(message) => {
                eprintln!("error: {message}");
                std::process::exit(2);
            }
        }
    }

    /// [`PictureArgs::from_env`], also handing back the arguments that are
    /// not about pictures, in order, for the example's own parser (which
    /// may then refuse what it does not know).
    pub fn from_env_split() -> (PictureArgs, Vec<String>) {
        match PictureArgs::split(std::env::args().skip(1)) {
            Ok(split) => split,
            Err(message) => {
                eprintln!("error: {message}");
                std::process::exit(2);
            }
        }
    }

    /// Parses arguments (without the program name). Arguments it does not
    /// know are skipped: they belong to the example (`--unit-ms 100`).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<PictureArgs, String> {
        PictureArgs::split(args).map(|(parsed, _rest)| parsed)
    }

    /// [`PictureArgs::parse`], also handing back the arguments it does not
    /// know, in order: `["--unit-ms", "100", "--timeline"]` gives
    /// `--timeline` and `["--unit-ms", "100"]`.
    pub fn split(
        args: impl IntoIterator<Item = String>,
    ) -> Result<(PictureArgs, Vec<String>), String> {
        let mut parsed = PictureArgs::default();
        let mut rest = Vec::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--timeline" => parsed.timeline = true,
                "--ascii" => {
                    parsed.ascii = true;
                    parsed.timeline = true;
                }
                "--svg" => match args.next() {
                    Some(path) if !path.is_empty() && !path.starts_with("--") => {
                        parsed.svg = Some(PathBuf::from(path));
                    }
                    _ => return Err(svg_needs_path()),
                },
                "--width" => {
                    let value = args.next().unwrap_or_default();
                    parsed.width = Some(parse_width(&value)?);
                }
                _ => {
                    if let Some(path) = arg.strip_prefix("--svg=") {
                        if path.is_empty() {
                            return Err(svg_needs_path());
                        }
                        parsed.svg = Some(PathBuf::from(path));
                    } else if let Some(value) = arg.strip_prefix("--width=") {
                        parsed.width = Some(parse_width(value)?);
                    } else {
                        rest.push(arg);
                    }
                }
            }
        }
        Ok((parsed, rest))
    }

    /// Whether any picture was asked for (an example may skip recording if
    /// not).
    pub fn wants_picture(&self) -> bool {
        self.timeline || self.svg.is_some()
    }

    /// The terminal picture's width: `--width`, else `COLUMNS`, else
    /// [`DEFAULT_WIDTH`].
    pub fn text_width(&self) -> usize {
        self.width.unwrap_or_else(|| {
            std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.trim().parse().ok())
                .filter(|&c: &usize| c > 0)
                .unwrap_or(DEFAULT_WIDTH)
        })
    }

    fn glyphs(&self) -> Glyphs {
        if self.ascii {
            Glyphs::Ascii
        } else {
            Glyphs::Unicode
        }
    }

    /// Does what was asked: prints the picture (`--timeline`) and/or writes
    /// the SVG (`--svg`), saying where it went. Does nothing if neither was
    /// asked.
    pub fn show(&self, timeline: &Timeline) -> io::Result<()> {
        if self.timeline {
            print!(
                "{}",
                timeline.render_text_with(self.text_width(), self.glyphs())
            );
        }
        if let Some(path) = &self.svg {
            timeline.write_svg(path)?;
            println!("timeline SVG written to {}", path.display());
        }
        Ok(())
    }

    /// [`PictureArgs::show`] for several panels on one time scale.
    pub fn show_panels(&self, panels: &[Timeline]) -> io::Result<()> {
        if self.timeline {
            print!(
                "{}",
                render_panels_text_with(panels, self.text_width(), self.glyphs())
            );
        }
        if let Some(path) = &self.svg {
            fs::write(path, render_panels_svg(panels))?;
            println!("timeline SVG written to {}", path.display());
        }
        Ok(())
    }
}

fn svg_needs_path() -> String {
    "--svg needs a file path after it, as in `--svg users.svg`".to_string()
}

fn parse_width(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(w) if w > 0 => Ok(w),
        _ => Err(format!(
            "--width needs a number of columns, as in `--width 100` (got {value:?})"
        )),
    }
}
