//! The SVG picture: the same timeline as a standalone SVG document, built as
//! text with `std` alone. Each span is a rectangle of its exact length (at
//! least one pixel wide) with a tooltip giving its mark and times.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use super::model::{common_end, marks_used};
use super::scale::choose_ticks;
use super::text::{display_width, fit};
use super::{Glyphs, Mark, Row, Span, Timeline};

impl Timeline {
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

/// Several timelines side by side in one SVG document, on one time scale
/// (the same pixels per second in every panel), with one legend.
pub fn render_panels_svg(panels: &[Timeline]) -> String {
    render_svg_panels(panels, SVG_PANEL_PLOT_PX)
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

/// Where everything of one SVG picture goes, worked out before any of it
/// is written: the shared time scale, the vertical bands (title, rows,
/// axis, legend), and each panel's name column and width.
struct SvgLayout {
    /// The end every panel shares, in nanoseconds: the right end of the plots.
    end_ns: u128,
    /// Pixels of time axis per panel.
    plot_px: f64,
    /// The ticks of the shared time axis: (instant in ns, label).
    ticks: Vec<(u128, String)>,
    /// Where the first row's lane starts.
    rows_top: f64,
    /// Where the time axis line is drawn, under the tallest panel's rows.
    axis_y: f64,
    /// Each panel's name column, in pixels: as wide as its longest name.
    name_px: Vec<f64>,
    /// Each panel's whole width: names, plot and a little room on the right.
    panel_w: Vec<f64>,
    /// The legend items: (mark, legend row, x offset).
    legend: Vec<(Mark, usize, f64)>,
    /// Where the legend starts.
    legend_top: f64,
    width: f64,
    height: f64,
}

impl SvgLayout {
    fn new(panels: &[Timeline], plot_px: f64) -> SvgLayout {
        let end_ns = common_end(panels).as_nanos();
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
        let legend = svg_legend_layout(&marks_used(panels), width - 2.0 * MARGIN);
        let legend_rows = legend.last().map_or(0, |(_, row, _)| row + 1);
        let legend_top = axis_y + AXIS_H;
        let height = legend_top + legend_rows as f64 * LEGEND_H + MARGIN;
        if panels.is_empty() {
            width = width.max(200.0);
        }
        SvgLayout {
            end_ns,
            plot_px,
            ticks,
            rows_top,
            axis_y,
            name_px,
            panel_w,
            legend,
            legend_top,
            width,
            height,
        }
    }

    /// The x of instant `ns` in a plot that starts at `plot_x` (instants
    /// past the end sit at the right edge).
    fn x_of(&self, plot_x: f64, ns: u128) -> f64 {
        if self.end_ns == 0 {
            plot_x
        } else {
            plot_x + self.plot_px * ns.min(self.end_ns) as f64 / self.end_ns as f64
        }
    }
}

/// The whole document: the header and a white background, each panel left
/// to right, the one legend, the end.
fn render_svg_panels(panels: &[Timeline], plot_px: f64) -> String {
    let layout = SvgLayout::new(panels, plot_px);
    let mut s = String::new();
    let _ = writeln!(s, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="monospace" font-size="12">"#,
        w = px(layout.width),
        h = px(layout.height)
    );
    let _ = writeln!(
        s,
        r##"<rect class="background" x="0" y="0" width="{}" height="{}" fill="#ffffff"/>"##,
        px(layout.width),
        px(layout.height)
    );
    let mut x0 = MARGIN;
    for (i, t) in panels.iter().enumerate() {
        write_panel(&mut s, t, x0, layout.name_px[i], &layout);
        x0 += layout.panel_w[i] + PANEL_GAP_PX;
    }
    write_legend(&mut s, &layout);
    let _ = writeln!(s, "</svg>");
    s
}

/// One panel, starting at `x0`: its title, faint grid lines at the ticks,
/// its rows, and its time axis.
fn write_panel(s: &mut String, t: &Timeline, x0: f64, name_px: f64, layout: &SvgLayout) {
    let plot_x = x0 + name_px;
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
    for (tick, _) in &layout.ticks {
        let x = px(layout.x_of(plot_x, *tick));
        let _ = writeln!(
            s,
            r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}"/>"#,
            px(layout.rows_top),
            px(layout.axis_y)
        );
    }
    let _ = writeln!(s, "</g>");
    if t.rows.is_empty() {
        let _ = writeln!(
            s,
            r##"<text class="empty" x="{}" y="{}" fill="#6b7280">(no rows)</text>"##,
            px(plot_x + 6.0),
            px(layout.rows_top + ROW_H / 2.0 + 4.0)
        );
    }
    for (r, row) in t.rows.iter().enumerate() {
        let top = layout.rows_top + r as f64 * ROW_H;
        write_row(s, row, r, top, (x0, name_px), layout);
    }
    write_axis(s, plot_x, layout);
    let _ = writeln!(s, "</g>");
}

/// Row number `r` of a panel, its lane starting at `top`: a lane shaded
/// every other row, the name (cut to fit, whole in its tooltip), and a
/// rectangle per span.
fn write_row(
    s: &mut String,
    row: &Row,
    r: usize,
    top: f64,
    (x0, name_px): (f64, f64),
    layout: &SvgLayout,
) {
    let plot_x = x0 + name_px;
    let bar_y = top + (ROW_H - BAR_H) / 2.0;
    let name = escape_xml(&row.name);
    let shown = escape_xml(fit(&row.name, SVG_NAME_CHARS.min(display_width(&row.name))).trim_end());
    let _ = writeln!(s, r#"<g class="row">"#);
    if r % 2 == 0 {
        let _ = writeln!(
            s,
            r##"<rect class="lane" x="{}" y="{}" width="{}" height="{}" fill="#f8fafc"/>"##,
            px(x0),
            px(top),
            px(name_px + layout.plot_px),
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
        let (a, b) = (sp.start.as_nanos(), sp.end.as_nanos().min(layout.end_ns));
        if b <= a {
            continue; // wholly past an explicit end
        }
        let x = layout.x_of(plot_x, a);
        // At least one pixel, like the text's one column: a short poll
        // must not vanish.
        let w = (layout.x_of(plot_x, b) - x).max(1.0);
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

/// A panel's time axis: a line, and a tick and a label per tick.
fn write_axis(s: &mut String, plot_x: f64, layout: &SvgLayout) {
    let _ = writeln!(s, r##"<g class="axis" stroke="#374151" fill="#374151">"##);
    let _ = writeln!(
        s,
        r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}"/>"#,
        px(plot_x),
        px(plot_x + layout.plot_px),
        y = px(layout.axis_y)
    );
    for (tick, label) in &layout.ticks {
        let x = px(layout.x_of(plot_x, *tick));
        let _ = writeln!(
            s,
            r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}"/>"#,
            px(layout.axis_y),
            px(layout.axis_y + 5.0)
        );
        let _ = writeln!(
            s,
            r#"<text x="{x}" y="{}" stroke="none" text-anchor="middle">{}</text>"#,
            px(layout.axis_y + 18.0),
            escape_xml(label)
        );
    }
    let _ = writeln!(s, "</g>");
}

/// The legend under all the panels: a swatch and a meaning per mark used.
fn write_legend(s: &mut String, layout: &SvgLayout) {
    let _ = writeln!(s, r#"<g class="legend">"#);
    for &(mark, row, x) in &layout.legend {
        let y = layout.legend_top + row as f64 * LEGEND_H;
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
