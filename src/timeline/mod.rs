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
//! | [`Mark::Socket`]  | `:` | `:` | waiting for a socket to be ready (chapter 12) |
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
//! run.svg` writes the SVG (the examples read those flags with the
//! appendix [`cli`](crate::cli), whose [`PictureArgs`](crate::cli::PictureArgs)
//! hands the timeline to this module).
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
//! **Reading order.** The files follow the path from data to picture:
//!
//! 1. `model.rs`: what a picture is made of: [`Mark`], [`Span`], [`Row`],
//!    [`Timeline`], and the few questions a timeline answers about itself
//!    (its end, the marks it uses).
//! 2. `scale.rs`: the scaling rule above, in integers ([`Grid`]), and the
//!    "nice" ticks of the time axis that both pictures share.
//! 3. `text.rs`: the terminal picture: terminal widths
//!    ([`display_width`]), the axis fitted to the columns, panels side by
//!    side or stacked, the legend.
//! 4. `svg.rs`: the same picture as an SVG document, built as text, one
//!    small function per part (the frame, a panel, a row, the axis, the
//!    legend).
//!
//! The tests check the SVG with a small XML well-formedness checker of
//! their own (`tests/common/xml.rs`): it is a test's tool, so it lives with
//! the tests, not here.
//!
//! This module is an appendix outside the chapter order: it depends on no
//! chapter, so every chapter's example may draw with it.
#![forbid(unsafe_code)]

mod model;
mod scale;
mod svg;
mod text;

pub use model::{Glyphs, Mark, Row, Span, Timeline};
pub use scale::Grid;
pub use svg::{escape_xml, format_time, render_panels_svg};
pub use text::{TextLayout, display_width, render_panels_text, render_panels_text_with};

/// The width [`std::fmt::Display`] and the examples' pictures use when
/// nothing else says.
pub const DEFAULT_WIDTH: usize = 80;

/// The narrowest picture [`Timeline::render_text`] draws; a smaller `width`
/// is treated as this one (below it there is no room for names and time).
pub const MIN_WIDTH: usize = 20;
