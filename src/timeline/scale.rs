//! The scale: the module doc's scaling rule in integers, so that it is exact
//! and deterministic ([`Grid`]), and the "nice" ticks of the time axis that
//! the text and the SVG pictures share.

use std::ops::Range;
use std::time::Duration;

use super::text::display_width;
use super::{Glyphs, Mark, Row, Span, Timeline};

impl Timeline {
    /// The picture scaled to `cols` columns: which mark each cell shows,
    /// following the scaling rule in the module doc. Both text renderers draw
    /// from this.
    pub fn grid(&self, cols: usize) -> Grid {
        Grid::new(&self.rows, self.end_time(), cols)
    }
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
    pub(super) fn new(rows: &[Row], end: Duration, cols: usize) -> Grid {
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

pub(super) fn column_of(t: u128, end: u128, cols: usize) -> usize {
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
pub(super) fn choose_ticks(end: u128, cols: usize, glyphs: Glyphs) -> Vec<(u128, String)> {
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
