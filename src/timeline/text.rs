//! The terminal picture: widths counted in terminal columns (Hangul takes
//! two), the time axis fitted to the columns left after the names, panels
//! side by side when they fit and one above the other when not, and the
//! legend. Every line ends in `\n` and none has trailing spaces.

use std::fmt;
use std::time::Duration;

use super::model::{common_end, marks_used};
use super::scale::{choose_ticks, column_of};
use super::{DEFAULT_WIDTH, Glyphs, Grid, MIN_WIDTH, Mark, Timeline};

impl Timeline {
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
pub(super) fn fit(s: &str, width: usize) -> String {
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

fn render_text_panels(panels: &[Timeline], width: usize, glyphs: Glyphs) -> String {
    let width = width.max(MIN_WIDTH);
    let end = common_end(panels);
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
    let mut lines = match SideBySide::plan(panels, width, end, glyphs) {
        Some(side_by_side) => side_by_side.lines(panels, end, glyphs),
        None => stacked_lines(panels, width, end, glyphs),
    };
    lines.extend(legend_lines(&marks_used(panels), glyphs, width));

    let mut out = String::new();
    for line in lines {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Panels side by side: each gets an equal share of the width, its own name
/// column, and one axis plan they all share (so equal times are equal
/// lengths in every panel).
struct SideBySide {
    /// Each panel's share of the width, in columns.
    panel_width: usize,
    /// Each panel's name column.
    name_widths: Vec<usize>,
    plan: AxisPlan,
}

impl SideBySide {
    /// The side-by-side layout, if every panel keeps a useful number of
    /// columns of time (more than [`MIN_PANEL_COLS`]); `None` means stack
    /// them.
    fn plan(panels: &[Timeline], width: usize, end: Duration, glyphs: Glyphs) -> Option<Self> {
        let n = panels.len();
        if n < 2 || width <= PANEL_GAP * (n - 1) {
            return None;
        }
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
        let plan = AxisPlan::new(end.as_nanos(), avail, glyphs);
        (avail > MIN_PANEL_COLS && plan.cols >= MIN_PANEL_COLS).then_some(SideBySide {
            panel_width,
            name_widths,
            plan,
        })
    }

    /// The panels' blocks, joined line by line with a gap between them.
    fn lines(&self, panels: &[Timeline], end: Duration, glyphs: Glyphs) -> Vec<String> {
        let frame = Frame {
            end,
            plan: &self.plan,
            glyphs,
            block_width: self.panel_width,
            rows: panels.iter().map(|t| t.rows.len()).max().unwrap_or(0),
            with_title: panels.iter().any(|t| !t.title.is_empty()),
        };
        let blocks: Vec<Vec<String>> = panels
            .iter()
            .zip(&self.name_widths)
            .map(|(t, &nw)| text_block(t, nw, &frame))
            .collect();
        (0..blocks[0].len())
            .map(|i| {
                let joined: Vec<&str> = blocks.iter().map(|b| b[i].as_str()).collect();
                joined.join(&" ".repeat(PANEL_GAP))
            })
            .collect()
    }
}

/// Panels one above the other, a blank line between, sharing the name
/// column so the time axes line up.
fn stacked_lines(panels: &[Timeline], width: usize, end: Duration, glyphs: Glyphs) -> Vec<String> {
    let with_title = panels.iter().any(|t| !t.title.is_empty());
    let nw = name_column(panels, width);
    let plan = AxisPlan::new(end.as_nanos(), width - nw - 1, glyphs);
    let mut lines = Vec::new();
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
    lines
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
