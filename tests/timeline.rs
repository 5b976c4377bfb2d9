//! The pictures module: pictures the documents draw (E000-3, E000-4, E001-1,
//! EX-2), checked exactly, plus the SVG, the XML check, the examples'
//! arguments and the scaling rule as a property.
//!
//! Rendering is pure and deterministic, so the golden tests compare whole
//! pictures character for character. If a deliberate change to the drawing
//! breaks them, print the new picture, check it by eye, and paste it here
//! (and in the CHAPTERS section that shows it).
mod common;

use std::time::Duration;

use common::xml::check_well_formed;
use proptest::prelude::*;
use tiny_asyncio::cli::PictureArgs;
use tiny_asyncio::timeline::{
    DEFAULT_WIDTH, Glyphs, Mark, Row, Span, Timeline, display_width, escape_xml, format_time,
    render_panels_svg, render_panels_text,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// E000-4 drawn by hand: three tasks created in the order 3, 2, 1. Each runs
/// briefly (10 ms) at the start of each second, prints a line and sleeps 1 s
/// on a timer; `users(n)` runs at 0, 1, …, n s and finishes at n s.
fn e000_4() -> Timeline {
    let mut t = Timeline::new("E000-4: find_users_async(3), (2), (1) as tasks");
    for n in [3, 2, 1] {
        let row = t.row(&format!("users({n})"));
        for _ in 0..n {
            row.then(Mark::Running, ms(10)).then(Mark::Timer, ms(990));
        }
        row.then(Mark::Running, ms(10)); // prints "done n" and finishes
    }
    t
}

/// E000-3 drawn by hand: the same look-ups with `time.sleep`, one after the
/// other; the one thread is blocked the whole time, 6 s in all.
fn e000_3() -> Timeline {
    let mut t = Timeline::new("E000-3: find_users_sync(3), (2), (1), one after another");
    t.row("users(3)").push(secs(0), secs(3), Mark::Blocked);
    t.row("users(2)").push(secs(3), secs(5), Mark::Blocked);
    t.row("users(1)").push(secs(5), secs(6), Mark::Blocked);
    t
}

/// E001-1: the document's three panels, two jobs A and B of 2 s each.
fn e001_1() -> [Timeline; 3] {
    let mut sequential = Timeline::new("Sequential");
    sequential.row("A").push(secs(0), secs(2), Mark::Running);
    sequential.row("B").push(secs(2), secs(4), Mark::Running);
    let mut concurrent = Timeline::new("Concurrent");
    for i in 0..8 {
        // One core, switching every half second (a context switch each time).
        let name = if i % 2 == 0 { "A" } else { "B" };
        concurrent
            .row(name)
            .push(ms(500 * i), ms(500 * (i + 1)), Mark::Running);
    }
    let mut parallel = Timeline::new("Parallel");
    parallel.row("A").push(secs(0), secs(2), Mark::Running);
    parallel.row("B").push(secs(0), secs(2), Mark::Running);
    [sequential, concurrent, parallel]
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

fn assert_fits(text: &str, width: usize) {
    for line in text.lines() {
        assert!(
            line.chars().count() <= width && display_width(line) <= width,
            "line wider than {width} columns ({} chars):\n{line}\nin\n{text}",
            line.chars().count()
        );
    }
}

// ---------------------------------------------------------------------------
// Golden pictures.

/// E000-4 at 80 columns: the three rows wait side by side; each second every
/// task runs once (█, right above the tick) and sleeps (░) until the next;
/// the rows end at 3, 2 and 1 s.
#[test]
fn e000_4_async_users_golden_picture() {
    let expected = [
        "E000-4: find_users_async(3), (2), (1) as tasks",
        "users(3) █░░░░░░░░░░░░░░░░░░░░░░█░░░░░░░░░░░░░░░░░░░░░░█░░░░░░░░░░░░░░░░░░░░░░█",
        "users(2) █░░░░░░░░░░░░░░░░░░░░░░█░░░░░░░░░░░░░░░░░░░░░░█",
        "users(1) █░░░░░░░░░░░░░░░░░░░░░░█",
        "         ┬──────────────────────┬──────────────────────┬──────────────────────┬─",
        "         0s                     1s                     2s                     3s",
        "█ running   ░ asleep (timer)",
    ]
    .join("\n")
        + "\n";
    let picture = e000_4().render_text(80);
    assert_eq!(picture, expected, "got:\n{picture}");
    // Display draws the same picture at the default width.
    assert_eq!(DEFAULT_WIDTH, 80);
    assert_eq!(e000_4().to_string(), expected);
}

/// E000-3 at 80 columns: a staircase of blocked bars, each request starting
/// where the previous one ended (3 s and 5 s, on the ticks), 6 s in all.
#[test]
fn e000_3_sync_users_golden_picture() {
    let expected = [
        "E000-3: find_users_sync(3), (2), (1), one after another",
        "users(3) ▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓",
        "users(2)                                   ▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓",
        "users(1)                                                          ▓▓▓▓▓▓▓▓▓▓▓▓",
        "         ┬──────────┬───────────┬──────────┬───────────┬──────────┬───────────┬",
        "         0s         1s          2s         3s          4s         5s          6s",
        "▓ blocked thread",
    ]
    .join("\n")
        + "\n";
    let picture = e000_3().render_text(80);
    assert_eq!(picture, expected, "got:\n{picture}");
}

/// E000-4 in ASCII: the same picture with `#` and `.`, nothing but ASCII.
#[test]
fn e000_4_ascii_glyphs_are_plain_ascii() {
    let picture = e000_4().render_text_with(80, Glyphs::Ascii);
    assert!(picture.is_ascii(), "{picture}");
    assert!(picture.contains("users(3) #......"), "{picture}");
    assert!(
        picture.contains("# running   . asleep (timer)"),
        "{picture}"
    );
    // Same layout as the Unicode picture, line for line.
    let unicode = e000_4().render_text(80);
    for (a, u) in picture.lines().zip(unicode.lines()) {
        assert_eq!(a.chars().count(), u.chars().count());
    }
}

/// E000-4: a task woken at k seconds shows its █ in the very column of the
/// `ks` tick (both are "the cell that contains the instant").
#[test]
fn e000_4_each_wake_up_sits_on_its_tick() {
    let t = e000_4();
    let layout = t.text_layout(80);
    let picture = t.render_text(80);
    let axis = lines(&picture)[4];
    for k in 0..=3 {
        let col = layout.grid.column_of(secs(k));
        assert_eq!(
            layout.grid.cells[0][col],
            Some(Mark::Running),
            "users(3) at {k}s"
        );
        let tick = axis.chars().nth(layout.name_width + 1 + col);
        assert_eq!(tick, Some('┬'), "tick for {k}s at column {col}");
    }
}

/// E001-1: the three panels side by side on one time scale in 80 columns:
/// sequential and concurrent both take 4 s, parallel only 2 s.
#[test]
fn e001_1_panels_side_by_side_on_one_time_scale() {
    let panels = e001_1();
    let picture = render_panels_text(&panels, 80);
    assert_fits(&picture, 80);
    let first = lines(&picture)[0];
    for title in ["Sequential", "Concurrent", "Parallel"] {
        assert!(first.contains(title), "titles on one line:\n{picture}");
    }
    // Row A of each panel: sequential holds █ in the first half only,
    // parallel likewise; the concurrent one alternates.
    let row_a = lines(&picture)[1];
    let runs: Vec<&str> = row_a.split("A ").skip(1).map(|s| s.trim_end()).collect();
    assert_eq!(runs.len(), 3, "{row_a}");
    let width_of = |s: &str| s.chars().count();
    assert_eq!(
        width_of(runs[0]),
        width_of(runs[2]),
        "same scale:\n{picture}"
    );
    assert!(
        runs[1].contains("█ "),
        "concurrent A stops and starts:\n{picture}"
    );
    assert!(picture.ends_with("█ running\n"), "{picture}");
}

/// E001-1: too narrow for side by side, the panels stack, still sharing one
/// name column and one time scale (their axes are identical).
#[test]
fn e001_1_panels_stack_when_narrow() {
    let panels = e001_1();
    let picture = render_panels_text(&panels, 40);
    assert_fits(&picture, 40);
    let axes: Vec<&str> = picture.lines().filter(|l| l.contains('┬')).collect();
    assert_eq!(axes.len(), 3, "{picture}");
    assert!(axes.iter().all(|a| *a == axes[0]), "{picture}");
    assert!(lines(&picture)[0].starts_with("Sequential"), "{picture}");
}

// ---------------------------------------------------------------------------
// The scaling rule.

/// A 1 ms poll in a 100 s sleep still shows, as one █, and wins its cell
/// over the timer it interrupts.
#[test]
fn a_short_poll_gets_one_column_and_running_wins_the_cell() {
    let mut t = Timeline::new("");
    t.row("sleeper")
        .push(secs(0), secs(50), Mark::Timer)
        .push(secs(50), secs(50) + ms(1), Mark::Running)
        .push(secs(50) + ms(1), secs(100), Mark::Timer);
    let grid = t.grid(60);
    let running: Vec<usize> = (0..60)
        .filter(|&i| grid.cells[0][i] == Some(Mark::Running))
        .collect();
    assert_eq!(running, [30]);
    assert!(grid.cells[0].iter().all(Option::is_some));
    let picture = t.render_text(80);
    assert_eq!(
        picture.matches('█').count(),
        2,
        "one cell and the legend:\n{picture}"
    );
}

/// A long span gets the columns whose midpoints it holds: [0, 1 s) of a 4 s
/// picture in 8 columns is exactly the first 2.
#[test]
fn a_span_gets_the_columns_whose_midpoints_it_holds() {
    let mut t = Timeline::new("");
    t.row("a").push(secs(0), secs(1), Mark::Job);
    t.row("b").push(secs(1), secs(4), Mark::Task);
    let grid = t.grid(8);
    assert_eq!(grid.reach(&t.rows[0].spans[0]), Some(0..2));
    assert_eq!(grid.reach(&t.rows[1].spans[0]), Some(2..8));
    let empty = Span::new(secs(1), secs(1), Mark::Running);
    assert_eq!(grid.reach(&empty), None, "an empty span draws nothing");
}

/// An explicit end cuts spans off there, and a span wholly past it vanishes.
#[test]
fn an_explicit_end_clips_spans() {
    let mut t = Timeline::new("").with_end(secs(2));
    t.row("a")
        .push(secs(0), secs(3), Mark::Timer)
        .push(secs(3), secs(4), Mark::Running);
    assert_eq!(t.end_time(), secs(2));
    let grid = t.grid(10);
    assert!(grid.cells[0].iter().all(|c| *c == Some(Mark::Timer)));
    assert_eq!(grid.reach(&t.rows[0].spans[1]), None);
}

#[test]
#[should_panic(expected = "cannot end")]
fn a_span_that_ends_before_it_starts_is_refused() {
    Row::new("x").push(secs(2), secs(1), Mark::Running);
}

/// `Timeline::row` is get-or-create: the same name gives the same row.
#[test]
fn row_by_name_is_get_or_create() {
    let mut t = Timeline::new("t");
    t.row("a").then(Mark::Running, ms(5));
    t.row("b").then(Mark::Timer, ms(5));
    t.row("a").then(Mark::Timer, ms(5));
    assert_eq!(t.rows.len(), 2);
    assert_eq!(t.rows[0].spans.len(), 2);
    assert_eq!(t.rows[0].end(), ms(10));
    assert_eq!(t.end_time(), ms(10));
    assert_eq!(t.marks_used(), [Mark::Running, Mark::Timer]);
}

// ---------------------------------------------------------------------------
// Widths, sizes, edge cases.

fn many_rows(n: usize, unit: Duration) -> Timeline {
    let mut t = Timeline::new(format!(
        "{n} tasks, a title long enough to be cut at narrow widths"
    ));
    for i in 0..n {
        let row = t.row(&format!("task-{i:02} with a long name"));
        row.push(unit * i as u32, unit * (i as u32 + 1), Mark::Queued)
            .then(Mark::Running, unit)
            .then(Mark::Job, unit * 3)
            .then(Mark::Task, unit)
            .then(Mark::Timer, unit * 2);
    }
    t
}

#[test]
fn text_fits_the_width_for_3_and_30_rows() {
    for rows in [3, 30] {
        for width in [20, 40, 80, 132] {
            let t = many_rows(rows, ms(100));
            let picture = t.render_text(width);
            assert_fits(&picture, width);
            // Title, rows, axis, labels, and a legend of five marks.
            assert!(picture.lines().count() >= rows + 4, "{picture}");
            assert!(picture.contains("waiting on a job"), "{picture}");
        }
    }
}

/// Narrower than the minimum counts as the minimum, and still draws.
#[test]
fn a_tiny_width_draws_at_the_minimum() {
    let picture = e000_4().render_text(3);
    assert_fits(&picture, tiny_asyncio::timeline::MIN_WIDTH);
    assert!(picture.contains('█'), "{picture}");
}

/// 1 ms of work labels its axis in ms; a 100 s run in seconds; a few µs in
/// µs. Every picture fits.
#[test]
fn tiny_and_long_spans_fit_and_pick_their_unit() {
    for (unit, label) in [
        (Duration::from_micros(1), "µs"),
        (Duration::from_millis(1), "ms"),
        (ms(200), "s"),
        (secs(100), "s"),
    ] {
        let mut t = Timeline::new("");
        t.row("a")
            .then(Mark::Running, unit)
            .then(Mark::Timer, unit * 4);
        for width in [20, 80] {
            let picture = t.render_text(width);
            assert_fits(&picture, width);
            let labels = lines(&picture)[2];
            assert!(labels.starts_with(&format!("  0{label}")), "{picture}");
        }
    }
    let mut t = Timeline::new("");
    t.row("a").push(secs(0), secs(100), Mark::Timer);
    t.row("b").push(secs(99), secs(99) + ms(1), Mark::Running);
    let picture = t.render_text(80);
    assert!(picture.contains("100s"), "{picture}");
    assert!(lines(&picture)[1].contains('█'), "{picture}");
}

#[test]
fn an_empty_timeline_does_not_panic() {
    assert_eq!(
        Timeline::new("nothing").render_text(80),
        "nothing\n(no rows)\n"
    );
    assert_eq!(Timeline::default().render_text(80), "(no rows)\n");
    assert_eq!(render_panels_text(&[], 80), "(no rows)\n");
    // A row whose only span is empty, at 0: a picture of no time, drawn
    // blank (an empty span at 1 s would still stretch the axis to 1 s).
    let mut t = Timeline::new("");
    t.row("a").push(secs(0), secs(0), Mark::Running);
    let picture = t.render_text(80);
    assert_eq!(lines(&picture)[2].trim(), "0s", "{picture}");
    assert!(!picture.contains('█'), "{picture}");
    for svg in [
        Timeline::default().render_svg(),
        t.render_svg(),
        render_panels_svg(&[]),
    ] {
        check_well_formed(&svg).unwrap();
    }
}

/// Korean names (two columns a character in a terminal) still line up: every
/// row's cells start in the same terminal column.
#[test]
fn korean_names_line_up() {
    let mut t = Timeline::new("E002-1: fetch_data_sync(\"작업1\"), then (\"작업2\")");
    t.row("작업1").push(secs(0), secs(2), Mark::Blocked);
    t.row("작업2").push(secs(2), secs(4), Mark::Blocked);
    t.row("main").push(secs(0), secs(4), Mark::Task);
    let picture = t.render_text(80);
    assert_fits(&picture, 80);
    let layout = t.text_layout(80);
    assert_eq!(layout.name_width, 5, "작업1 takes five columns");
    let starts: Vec<usize> = lines(&picture)[1..4]
        .iter()
        .map(|l| {
            let cut = l.find(['▓', '·']).unwrap();
            display_width(&l[..cut])
        })
        .collect();
    let second = 6 + layout.grid.column_of(secs(2));
    assert_eq!(starts, [6, second, 6], "{picture}");
}

/// Long names are cut in the middle, so `…(3)` still tells the rows apart.
#[test]
fn long_names_keep_their_ends() {
    let picture = e000_4().render_text(30);
    assert!(picture.contains("use…(3) █"), "{picture}");
    assert!(picture.contains("use…(1) █"), "{picture}");
    assert_fits(&picture, 30);
}

// ---------------------------------------------------------------------------
// SVG.

#[test]
fn svg_is_well_formed_with_one_group_per_row() {
    let t = e000_4();
    let svg = t.render_svg();
    check_well_formed(&svg).unwrap();
    assert!(svg.starts_with("<?xml"));
    assert_eq!(svg.matches(r#"class="row""#).count(), 3);
    // A rectangle, with a tooltip, for every span.
    let spans: usize = t.rows.iter().map(|r| r.spans.len()).sum();
    assert_eq!(svg.matches(r#"<rect class="span "#).count(), spans);
    assert!(svg.contains("<title>users(3): timer from 10ms to 1s (990ms)</title>"));
    assert!(svg.contains(r#"class="span running""#));
    for label in [">0s<", ">1s<", ">3s<", ">running<", ">asleep (timer)<"] {
        assert!(svg.contains(label), "missing {label}");
    }
}

#[test]
fn svg_escapes_names_and_titles() {
    let mut t = Timeline::new("E & <F> 'quoted'");
    t.row("a<b & \"c\"").push(secs(0), secs(1), Mark::Running);
    let svg = t.render_svg();
    check_well_formed(&svg).unwrap();
    assert!(svg.contains("a&lt;b &amp; &quot;c&quot;"), "{svg}");
    assert!(
        svg.contains("E &amp; &lt;F&gt; &apos;quoted&apos;"),
        "{svg}"
    );
    assert!(!svg.contains("a<b"));
    assert_eq!(escape_xml("<&>\"'"), "&lt;&amp;&gt;&quot;&apos;");
}

#[test]
fn panels_svg_has_every_row_of_every_panel() {
    let svg = render_panels_svg(&e001_1());
    check_well_formed(&svg).unwrap();
    assert_eq!(svg.matches(r#"class="panel""#).count(), 3);
    assert_eq!(svg.matches(r#"class="row""#).count(), 6);
    // One time scale: every panel's axis runs to 4 s, though parallel ends at 2.
    assert_eq!(svg.matches(">4s<").count(), 3);
}

#[test]
fn write_svg_writes_the_document() {
    let path =
        std::env::temp_dir().join(format!("tiny-asyncio-timeline-{}.svg", std::process::id()));
    e000_3().write_svg(&path).unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(written, e000_3().render_svg());
}

#[test]
fn format_time_reads_like_people_write() {
    assert_eq!(format_time(Duration::ZERO), "0s");
    assert_eq!(format_time(secs(3)), "3s");
    assert_eq!(format_time(ms(1010)), "1.01s");
    assert_eq!(format_time(ms(10)), "10ms");
    assert_eq!(format_time(Duration::from_micros(250)), "250µs");
    assert_eq!(format_time(Duration::from_nanos(40)), "40ns");
}

// ---------------------------------------------------------------------------
// The XML check.

#[test]
fn check_well_formed_accepts_good_xml() {
    let good = concat!(
        "<?xml version=\"1.0\"?>\n<!-- a comment -->\n",
        "<svg a=\"1\" b='two &amp; &#65; &#x42;'>\n",
        "  <g><rect/><text>x &lt; y &gt; z &quot;q&quot;</text></g>\n",
        "  <![CDATA[ <not a tag> & ]]>\n",
        "</svg>\n",
    );
    assert_eq!(check_well_formed(good), Ok(()));
}

#[test]
fn check_well_formed_rejects_broken_xml_saying_where() {
    let cases = [
        (
            "<a><b></a>",
            "line 1, column 7: closing tag </a> does not match <b> (opened at line 1, column 4)",
        ),
        (
            "<a>\n  <b>\n</a>",
            "line 3, column 1: closing tag </a> does not match <b>",
        ),
        ("<a><b/>", "the document ends inside <a>"),
        ("<a x=1/>", "value of attribute `x` in <a> is not in quotes"),
        ("<a x=\"1/>", "the value of attribute `x` is never closed"),
        ("<a x=\"1\" x=\"2\"/>", "attribute `x` appears twice"),
        ("<a>&nbsp;</a>", "line 1, column 4: unknown entity `&nbsp;`"),
        ("<a>Tom & Jerry</a>", "`&` that does not start an entity"),
        ("<a>&#0;</a>", "unknown entity `&#0;`"),
        ("<a/><b/>", "a second root element"),
        ("</a>", "closing tag </a> with no open element"),
        ("hello <a/>", "text 'h' outside the root element"),
        ("", "no root element"),
        ("<a><!-- open </a>", "a comment is never closed"),
    ];
    for (xml, expected) in cases {
        match check_well_formed(xml) {
            Ok(()) => panic!("accepted broken XML {xml:?}"),
            Err(message) => assert!(
                message.contains(expected),
                "for {xml:?}: {message:?} does not say {expected:?}"
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// The examples' arguments.

fn parse(args: &[&str]) -> Result<PictureArgs, String> {
    PictureArgs::split(args.iter().map(|s| s.to_string())).map(|(picture, _rest)| picture)
}

#[test]
fn picture_args_parse_timeline_and_svg() {
    assert_eq!(parse(&[]), Ok(PictureArgs::default()));
    assert!(!parse(&[]).unwrap().wants_picture());
    let a = parse(&["--timeline"]).unwrap();
    assert!(a.timeline && a.svg.is_none() && a.wants_picture());
    let a = parse(&["--svg", "x.svg"]).unwrap();
    assert_eq!(a.svg.as_deref(), Some(std::path::Path::new("x.svg")));
    assert!(!a.timeline);
    let a = parse(&[
        "--unit-ms",
        "100",
        "--svg=out/y.svg",
        "--timeline",
        "--width",
        "100",
    ])
    .unwrap();
    assert_eq!(a.svg.as_deref(), Some(std::path::Path::new("out/y.svg")));
    assert!(a.timeline);
    assert_eq!(a.text_width(), 100);
    let a = parse(&["--ascii"]).unwrap();
    assert!(a.ascii && a.timeline, "--ascii implies --timeline");
}

#[test]
fn picture_args_reject_svg_without_a_path() {
    for args in [&["--svg"][..], &["--svg", "--timeline"], &["--svg="]] {
        let err = parse(args).unwrap_err();
        assert!(err.contains("--svg needs a file path"), "{args:?}: {err}");
    }
    let err = parse(&["--width", "wide"]).unwrap_err();
    assert!(err.contains("--width needs a number of columns"), "{err}");
}

#[test]
fn picture_args_show_writes_the_svg() {
    let path = std::env::temp_dir().join(format!("tiny-asyncio-show-{}.svg", std::process::id()));
    let args = parse(&["--svg", path.to_str().unwrap()]).unwrap();
    args.show(&e000_4()).unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    check_well_formed(&written).unwrap();
    assert_eq!(written, e000_4().render_svg());
}

// ---------------------------------------------------------------------------
// The scaling rule as a property.

const MARKS: &[Mark] = &Mark::ALL;

/// A length from a few nanoseconds to tens of seconds, so one picture mixes
/// spans far below one column with spans of many.
fn length() -> impl Strategy<Value = u64> {
    prop_oneof![0..2_000u64, 0..20_000_000u64, 0..20_000_000_000u64]
}

/// Rows of non-overlapping spans (each starts at or after the previous end),
/// with names that include wide and special characters.
fn timeline() -> impl Strategy<Value = Timeline> {
    let name = prop_oneof![
        Just("a".to_string()),
        Just("users(3)".to_string()),
        Just("작업1".to_string()),
        Just("a<b & \"c\"".to_string()),
        "[a-z]{1,30}",
    ];
    let span = (length(), length(), 0..MARKS.len());
    let row = (name, prop::collection::vec(span, 0..8));
    (
        prop::collection::vec(row, 1..6),
        prop::option::weighted(0.2, 1..30_000_000_000u64),
    )
        .prop_map(|(rows, end)| {
            let mut t = Timeline::new("property");
            t.end = end.map(Duration::from_nanos);
            for (name, spans) in rows {
                let mut row = Row::new(name);
                let mut at = 0;
                for (gap, len, mark) in spans {
                    let start = at + gap;
                    row.push(
                        Duration::from_nanos(start),
                        Duration::from_nanos(start + len),
                        MARKS[mark],
                    );
                    at = start + len;
                }
                t.rows.push(row);
            }
            t
        })
}

/// The rest of `line` after its first `columns` terminal columns.
fn after_columns(line: &str, columns: usize) -> &str {
    let mut used = 0;
    for (i, c) in line.char_indices() {
        if used >= columns {
            return &line[i..];
        }
        used += display_width(c.encode_utf8(&mut [0; 4]));
    }
    ""
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Every line of the text fits the width (in chars and in terminal
    /// columns); every non-empty span inside the picture shows, in a column
    /// it reaches, its own mark or one that outranks it (Running spans always
    /// show as Running); every shown mark comes from a span that reaches that
    /// cell; and the text rows are exactly the grid's glyphs.
    #[test]
    fn text_fits_and_every_span_shows_unless_outranked(t in timeline(), width in 20usize..140) {
        let picture = t.render_text(width);
        for line in picture.lines() {
            prop_assert!(line.chars().count() <= width, "{line:?} wider than {width}");
            prop_assert!(display_width(line) <= width, "{line:?} wider than {width}");
        }
        let layout = t.text_layout(width);
        let grid = &layout.grid;
        for (row, cells) in t.rows.iter().zip(&grid.cells) {
            for span in &row.spans {
                let Some(reach) = grid.reach(span) else {
                    prop_assert!(span.is_empty() || span.start >= grid.end);
                    continue;
                };
                prop_assert!(!reach.is_empty());
                let shown = cells[reach.clone()].iter().any(|c| {
                    c.is_some_and(|m| m.precedence() >= span.mark.precedence())
                });
                prop_assert!(shown, "{span:?} hidden in {reach:?}: {cells:?}");
                if span.mark == Mark::Running {
                    prop_assert!(cells[reach].contains(&Some(Mark::Running)));
                }
            }
            for (i, cell) in cells.iter().enumerate() {
                if let Some(mark) = cell {
                    let from_a_span = row.spans.iter().any(|s| {
                        s.mark == *mark && grid.reach(s).is_some_and(|r| r.contains(&i))
                    });
                    prop_assert!(from_a_span, "cell {i} shows {mark} from nowhere");
                }
            }
        }
        // The text rows (after the title) are the grid drawn, starting one
        // terminal column after the name column.
        for (r, cells) in grid.cells.iter().enumerate() {
            let line = picture.lines().nth(1 + r).unwrap();
            let drawn = after_columns(line, layout.name_width + 1);
            let expected: String = cells
                .iter()
                .map(|c| c.map_or(' ', |m| m.glyph(Glyphs::Unicode)))
                .collect();
            prop_assert_eq!(drawn.trim_end(), expected.trim_end());
        }
    }

    /// The SVG of any such timeline is well-formed and has one row group per
    /// row.
    #[test]
    fn svg_is_always_well_formed(t in timeline()) {
        let svg = t.render_svg();
        prop_assert_eq!(check_well_formed(&svg), Ok(()));
        prop_assert_eq!(svg.matches(r#"class="row""#).count(), t.rows.len());
    }
}
