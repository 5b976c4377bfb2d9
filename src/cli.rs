//! # Appendix — the examples' command line
//!
//! Every example takes the same few arguments, and they mean the same thing
//! in each one:
//!
//! | argument | meaning |
//! |---|---|
//! | `--help`, `-h` | print what the example runs and what it accepts; exit 0 |
//! | `--unit-ms N` | one unit of the story lasts N ms: the documents' `sleep(1)`; every duration of the example is counted in it (default 1000; chapter 10's is 100, its E001-1 step) |
//! | `--timeline` | print the run's picture in the terminal |
//! | `--svg FILE` | write the picture as SVG to `FILE` |
//! | `--ascii` | the terminal picture in plain ASCII (implies `--timeline`) |
//! | `--width N` | the terminal picture's width (default `$COLUMNS`, else 80) |
//!
//! plus a few of its own (chapter 4's `--side`, the benchmark's workload
//! name). Anything else is refused with exit status 2 and a message that
//! names the argument and points to `--help`, as command-line tools do.
//!
//! An example describes its command line once, as a [`Cli`] value, and
//! reads it with [`Cli::from_env`]:
//!
//! ```
//! use std::time::Duration;
//! use tiny_asyncio::cli::{Cli, Opt, Parsed};
//!
//! const CLI: Cli = Cli::new("ch05", "E000-4: three look-ups as tasks")
//!     .unit(Duration::from_secs(1))
//!     .pictures();
//! // In `main`: `let args = CLI.from_env();` (help and errors exit there).
//! let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
//! let Ok(Parsed::Run(run)) = CLI.parse(args(&["--unit-ms", "100", "--timeline"])) else {
//!     panic!("a good command line")
//! };
//! assert_eq!(run.unit, Duration::from_millis(100));
//! assert!(run.picture.timeline);
//! assert_eq!(CLI.parse(args(&["--help"])), Ok(Parsed::Help));
//! let refused = CLI.parse(args(&["--bogus"])).unwrap_err();
//! assert!(refused.to_string().contains("unknown argument `--bogus`"));
//! ```
//!
//! This module is an appendix outside the chapter order, like
//! [`timeline`](crate::timeline) and [`trace`](crate::trace): it uses no
//! chapter, so chapter 1's example may use it as well as chapter 10's. It
//! is plain argument reading with `std` alone; nothing in it is about
//! asyncio.
#![forbid(unsafe_code)]

use std::fmt;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::timeline::{
    DEFAULT_WIDTH, Glyphs, Timeline, render_panels_svg, render_panels_text_with,
};

/// One example's command line: its name, what it runs, and what it accepts.
/// Built in a `const` with the builder methods, read with [`Cli::from_env`]
/// or [`Cli::parse`].
#[derive(Debug, Clone, Copy)]
pub struct Cli {
    /// The example's name, as in `cargo run --example <name>`.
    pub name: &'static str,
    /// One line saying what it runs (the first line of `--help`).
    pub about: &'static str,
    /// `Some(default)` if it takes `--unit-ms N`; `None` if its story has no
    /// unit of time (then `--unit-ms` is refused like any unknown argument).
    pub unit: Option<Duration>,
    /// Whether it draws a timeline, so takes `--timeline`, `--svg FILE`,
    /// `--ascii` and `--width N`.
    pub pictures: bool,
    /// Its own options, beyond the common ones.
    pub options: &'static [Opt],
    /// A bare argument it takes (at most one), as `(NAME, what it is)`: the
    /// benchmark's workload.
    pub operand: Option<(&'static str, &'static str)>,
}

/// One option of an example's own: `--side threads|wheel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opt {
    /// The flag, with its dashes: `--side`.
    pub flag: &'static str,
    /// The names of the values that follow it, in order (none for a switch):
    /// `&["threads|wheel"]`. [`Cli::parse`] takes exactly this many; the
    /// example checks what they say (and refuses bad ones with
    /// [`Cli::refuse`]).
    pub values: &'static [&'static str],
    /// What it does, for `--help`.
    pub help: &'static str,
}

/// What a command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// `--help` (or `-h`): print [`Cli::help`] and stop.
    Help,
    /// Run, with these arguments.
    Run(Args),
}

/// The arguments of one run, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// How long one unit of the story lasts: `--unit-ms N`, else the
    /// example's default (zero for an example without a unit).
    pub unit: Duration,
    /// The picture flags.
    pub picture: PictureArgs,
    /// The example's own options that were given, in order, each with its
    /// values.
    pub given: Vec<(&'static str, Vec<String>)>,
    /// The bare argument, if the example takes one and it was given.
    pub operand: Option<String>,
}

impl Args {
    /// Whether `flag` (one of the example's own options) was given.
    pub fn has(&self, flag: &str) -> bool {
        self.values(flag).is_some()
    }

    /// The values given after `flag` (the last time it was given), if it was.
    pub fn values(&self, flag: &str) -> Option<&[String]> {
        self.given
            .iter()
            .rev()
            .find(|(f, _)| *f == flag)
            .map(|(_, values)| values.as_slice())
    }

    /// The first value given after `flag`, if it was given.
    pub fn value(&self, flag: &str) -> Option<&str> {
        self.values(flag)?.first().map(String::as_str)
    }
}

/// A command line [`Cli::parse`] refused; its text says what was wrong and
/// how to do it right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError(pub String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

/// The help lines of the common options: (flag, what it does).
const PICTURE_HELP: [(&str, &str); 4] = [
    ("--timeline", "print the run's timeline in the terminal"),
    ("--svg FILE", "write the timeline as SVG to FILE"),
    (
        "--ascii",
        "draw the terminal timeline in plain ASCII (implies --timeline)",
    ),
    (
        "--width N",
        "the terminal timeline's width in columns (default $COLUMNS, else 80)",
    ),
];

impl Cli {
    /// An example called `name` that runs what `about` says, taking only
    /// `--help` (add the rest with the builder methods).
    pub const fn new(name: &'static str, about: &'static str) -> Cli {
        Cli {
            name,
            about,
            unit: None,
            pictures: false,
            options: &[],
            operand: None,
        }
    }

    /// Takes `--unit-ms N`, with `default` when it is not given.
    pub const fn unit(mut self, default: Duration) -> Cli {
        self.unit = Some(default);
        self
    }

    /// Takes the picture flags (`--timeline`, `--svg FILE`, `--ascii`,
    /// `--width N`).
    pub const fn pictures(mut self) -> Cli {
        self.pictures = true;
        self
    }

    /// Takes these options of its own.
    pub const fn options(mut self, options: &'static [Opt]) -> Cli {
        self.options = options;
        self
    }

    /// Takes one bare argument called `name` (optional), described by `help`.
    pub const fn operand(mut self, name: &'static str, help: &'static str) -> Cli {
        self.operand = Some((name, help));
        self
    }

    /// The one-line usage: `cargo run --example ch05 -- [--unit-ms N] [--timeline] ...`.
    pub fn usage(&self) -> String {
        let mut line = format!("cargo run --example {} -- [--help]", self.name);
        if self.unit.is_some() {
            line.push_str(" [--unit-ms N]");
        }
        if self.pictures {
            line.push_str(" [--timeline] [--svg FILE] [--ascii] [--width N]");
        }
        for opt in self.options {
            line.push_str(&format!(" [{}]", opt_synopsis(opt)));
        }
        if let Some((name, _)) = self.operand {
            line.push_str(&format!(" [{name}]"));
        }
        line
    }

    /// What `--help` prints: what the example runs, its usage, and every
    /// argument it takes with what it does.
    pub fn help(&self) -> String {
        let mut lines: Vec<(String, String)> =
            vec![("--help, -h".into(), "print this help".into())];
        if let Some(default) = self.unit {
            lines.push((
                "--unit-ms N".into(),
                format!(
                    "one unit of the story lasts N ms (the documents' 1 s; default {})",
                    default.as_millis()
                ),
            ));
        }
        if self.pictures {
            lines.extend(PICTURE_HELP.map(|(f, h)| (f.to_string(), h.to_string())));
        }
        for opt in self.options {
            lines.push((opt_synopsis(opt), opt.help.to_string()));
        }
        if let Some((name, help)) = self.operand {
            lines.push((name.to_string(), help.to_string()));
        }
        let width = lines.iter().map(|(f, _)| f.len()).max().unwrap_or(0);
        let mut out = format!(
            "{}: {}\n\nusage: {}\n\n",
            self.name,
            self.about,
            self.usage()
        );
        for (flag, help) in lines {
            out.push_str(&format!("  {flag:<width$}  {help}\n"));
        }
        out
    }

    /// Reads `args` (without the program name): `--help` anywhere gives
    /// [`Parsed::Help`]; otherwise every argument must be one this example
    /// takes, with the values it needs.
    pub fn parse(&self, args: impl IntoIterator<Item = String>) -> Result<Parsed, ArgError> {
        let args: Vec<String> = args.into_iter().collect();
        if args.iter().any(|a| a == "--help" || a == "-h") {
            return Ok(Parsed::Help);
        }
        // The picture flags first, by their own reader; what is left is ours.
        let (picture, rest) = if self.pictures {
            PictureArgs::split(args).map_err(ArgError)?
        } else {
            (PictureArgs::default(), args)
        };
        let mut run = Args {
            unit: self.unit.unwrap_or_default(),
            picture,
            given: Vec::new(),
            operand: None,
        };
        let mut rest = rest.into_iter();
        while let Some(arg) = rest.next() {
            if arg == "--unit-ms" && self.unit.is_some() {
                run.unit = unit_ms(rest.next())?;
            } else if let Some(value) = arg
                .strip_prefix("--unit-ms=")
                .filter(|_| self.unit.is_some())
            {
                run.unit = unit_ms(Some(value.to_string()))?;
            } else if let Some(opt) = self.options.iter().find(|o| o.flag == arg) {
                let values: Vec<String> = rest.by_ref().take(opt.values.len()).collect();
                if values.len() < opt.values.len() || values.iter().any(|v| v.starts_with("--")) {
                    return Err(ArgError(format!(
                        "`{}` needs {}, as in `{}`",
                        opt.flag,
                        opt.values.join(" "),
                        opt_synopsis(opt)
                    )));
                }
                run.given.push((opt.flag, values));
            } else if self.operand.is_some() && run.operand.is_none() && !arg.starts_with('-') {
                run.operand = Some(arg);
            } else {
                return Err(ArgError(format!(
                    "unknown argument `{arg}`; `cargo run --example {} -- --help` lists what it takes",
                    self.name
                )));
            }
        }
        Ok(Parsed::Run(run))
    }

    /// Reads the process's arguments: prints the help and exits 0 for
    /// `--help`; prints the error and the usage on stderr and exits 2 for a
    /// bad command line; otherwise gives the arguments.
    pub fn from_env(&self) -> Args {
        match self.parse(std::env::args().skip(1)) {
            Ok(Parsed::Run(args)) => args,
            Ok(Parsed::Help) => {
                print!("{}", self.help());
                std::process::exit(0);
            }
            Err(error) => self.refuse(error),
        }
    }

    /// Refuses the command line: prints `error: <message>` and the usage on
    /// stderr and exits with status 2. For a value the example itself finds
    /// wrong (`--side sideways`).
    pub fn refuse(&self, message: impl fmt::Display) -> ! {
        eprintln!("error: {message}");
        eprintln!("usage: {}", self.usage());
        std::process::exit(2);
    }
}

/// `--side threads|wheel`: an option with its values' names.
fn opt_synopsis(opt: &Opt) -> String {
    let mut text = opt.flag.to_string();
    for value in opt.values {
        text.push(' ');
        text.push_str(value);
    }
    text
}

/// The value of `--unit-ms`: a whole number of milliseconds above 0 (a unit
/// of 0 would put every line of the story at the same instant).
fn unit_ms(value: Option<String>) -> Result<Duration, ArgError> {
    let Some(value) = value.filter(|v| !v.starts_with("--")) else {
        return Err(ArgError(
            "`--unit-ms` needs a value: a whole number of milliseconds above 0, as in `--unit-ms 100`"
                .into(),
        ));
    };
    match value.parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(ArgError(format!(
            "`--unit-ms` expects a whole number of milliseconds above 0 (as in `--unit-ms 100`), got `{value}`"
        ))),
    }
}

// ---------------------------------------------------------------------------
// The lines the examples print.

/// The one timestamp every example's lines start with: seconds with three
/// decimals, right-aligned, in brackets: `[  1.000s]`. Chapter 1's log and
/// the examples' lines (stamped with the loop's time, or the real time since
/// a start) all use it, so two transcripts line up.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(tiny_asyncio::cli::stamp(Duration::from_millis(1500)), "[  1.500s]");
/// assert_eq!(tiny_asyncio::cli::stamp(Duration::from_secs(100)), "[100.000s]");
/// ```
pub fn stamp(at: Duration) -> String {
    format!("[{:7.3}s]", at.as_secs_f64())
}

// ---------------------------------------------------------------------------
// The picture flags.

/// What an example was asked to draw: `--timeline` prints the terminal
/// picture, `--svg <path>` writes the SVG. [`Cli::parse`] reads these flags
/// for every example (through [`PictureArgs::split`]), and the example hands
/// its timeline to [`PictureArgs::show`].
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
    /// Reads the picture flags out of `args` (without the program name),
    /// handing back the arguments it does not know, in order, for the
    /// example's own reader: `["--unit-ms", "100", "--timeline"]` gives
    /// `--timeline` and `["--unit-ms", "100"]`. [`Cli::parse`] calls it
    /// first.
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
