//! The examples' command line (the appendix `src/cli.rs`): every example
//! accepts `--help`, refuses what it does not know, and reads `--unit-ms`
//! and the picture flags the same way.
//!
//! Building and running every example here would be slow, so the parser is
//! tested directly, and one test checks that every example reads its
//! command line through it. (`.ci/run` also runs each example with `--help`,
//! expecting exit 0, and with `--bogus`, expecting exit 2.)
use std::path::PathBuf;
use std::time::Duration;

use tiny_asyncio::cli::{Cli, Opt, Parsed, PictureArgs, stamp};

const SIDE: Opt = Opt {
    flag: "--side",
    values: &["threads|wheel"],
    help: "one side only",
};

const CROWD: Opt = Opt {
    flag: "--crowd",
    values: &["threads|tasks", "COUNT"],
    help: "one crowd",
};

/// A command line like chapter 4's and chapter 10's together: a unit, the
/// pictures, and options of its own.
const FULL: Cli = Cli::new("chXX", "a story")
    .unit(Duration::from_secs(1))
    .pictures()
    .options(&[SIDE, CROWD]);

/// A command line like chapter 2's: only `--help`.
const BARE: Cli = Cli::new("ch02", "polled by hand");

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn run_of(cli: &Cli, a: &[&str]) -> tiny_asyncio::cli::Args {
    match cli.parse(args(a)) {
        Ok(Parsed::Run(run)) => run,
        other => panic!("{a:?} should run, got {other:?}"),
    }
}

fn refusal(cli: &Cli, a: &[&str]) -> String {
    match cli.parse(args(a)) {
        Err(error) => error.to_string(),
        other => panic!("{a:?} should be refused, got {other:?}"),
    }
}

#[test]
fn help_is_asked_for_with_either_spelling_anywhere_on_the_line() {
    for line in [
        &["--help"][..],
        &["-h"],
        &["--unit-ms", "100", "--help"],
        &["--bogus", "--help"],
    ] {
        assert_eq!(FULL.parse(args(line)), Ok(Parsed::Help), "{line:?}");
        assert_eq!(BARE.parse(args(line)), Ok(Parsed::Help), "{line:?}");
    }
}

#[test]
fn the_help_names_the_example_and_every_argument_it_takes() {
    let help = FULL.help();
    assert!(help.starts_with("chXX: a story\n"), "{help}");
    for flag in [
        "--help",
        "--unit-ms N",
        "--timeline",
        "--svg FILE",
        "--ascii",
        "--width N",
        "--side threads|wheel",
        "--crowd threads|tasks COUNT",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    assert!(help.contains("default 1000"), "{help}");
    let bare = BARE.help();
    assert!(
        !bare.contains("--unit-ms") && !bare.contains("--timeline"),
        "{bare}"
    );
}

#[test]
fn no_arguments_run_with_the_default_unit_and_no_picture() {
    let run = run_of(&FULL, &[]);
    assert_eq!(run.unit, Duration::from_secs(1));
    assert_eq!(run.picture, PictureArgs::default());
    assert!(run.given.is_empty() && run.operand.is_none());
    assert_eq!(
        run_of(&BARE, &[]).unit,
        Duration::ZERO,
        "no unit to speak of"
    );
}

#[test]
fn unit_ms_and_the_picture_flags_are_read_in_any_order() {
    let run = run_of(
        &FULL,
        &[
            "--timeline",
            "--unit-ms",
            "100",
            "--svg",
            "x.svg",
            "--width=90",
        ],
    );
    assert_eq!(run.unit, Duration::from_millis(100));
    assert!(run.picture.timeline);
    assert_eq!(run.picture.svg, Some(PathBuf::from("x.svg")));
    assert_eq!(run.picture.width, Some(90));
    assert_eq!(
        run_of(&FULL, &["--unit-ms=5"]).unit,
        Duration::from_millis(5)
    );
}

#[test]
fn an_examples_own_options_take_exactly_their_values() {
    let run = run_of(&FULL, &["--side", "wheel", "--crowd", "tasks", "1000"]);
    assert_eq!(run.value("--side"), Some("wheel"));
    assert_eq!(
        run.values("--crowd"),
        Some(&["tasks".to_string(), "1000".to_string()][..])
    );
    assert!(run.has("--side") && !run_of(&FULL, &[]).has("--side"));
    let short = refusal(&FULL, &["--crowd", "tasks"]);
    assert!(
        short.contains("`--crowd` needs threads|tasks COUNT"),
        "{short}"
    );
    let flag_for_value = refusal(&FULL, &["--side", "--timeline"]);
    assert!(
        flag_for_value.contains("`--side` needs"),
        "{flag_for_value}"
    );
}

#[test]
fn unknown_arguments_are_refused_by_name_with_a_pointer_to_help() {
    for (cli, line) in [
        (&FULL, &["--bogus"][..]),
        (&FULL, &["extra"]),
        (&BARE, &["--unit-ms", "100"]),
        (&BARE, &["--timeline"]),
    ] {
        let message = refusal(cli, line);
        assert!(
            message.contains(&format!("unknown argument `{}`", line[0])),
            "{message}"
        );
        assert!(
            message.contains(&format!("cargo run --example {} -- --help", cli.name)),
            "{message}"
        );
    }
}

#[test]
fn a_bad_unit_is_refused_saying_what_a_good_one_looks_like() {
    let missing = refusal(&FULL, &["--unit-ms"]);
    assert!(missing.contains("needs a value"), "{missing}");
    let words = refusal(&FULL, &["--unit-ms", "fast"]);
    assert!(words.contains("got `fast`"), "{words}");
    let zero = refusal(&FULL, &["--unit-ms", "0"]);
    assert!(zero.contains("above 0"), "{zero}");
    let svg = refusal(&FULL, &["--svg"]);
    assert!(svg.contains("--svg needs a file path"), "{svg}");
}

#[test]
fn one_bare_argument_is_taken_only_by_an_example_that_asks_for_it() {
    let bench = Cli::new("bench", "workloads").operand("WORKLOAD", "which one");
    assert_eq!(run_of(&bench, &["docs"]).operand.as_deref(), Some("docs"));
    assert_eq!(run_of(&bench, &[]).operand, None);
    assert!(refusal(&bench, &["docs", "spawn"]).contains("unknown argument `spawn`"));
    assert!(bench.usage().ends_with("[WORKLOAD]"), "{}", bench.usage());
}

#[test]
fn the_timestamp_is_seconds_with_three_decimals_in_brackets() {
    assert_eq!(stamp(Duration::ZERO), "[  0.000s]");
    assert_eq!(stamp(Duration::from_micros(2_001_400)), "[  2.001s]");
    assert_eq!(stamp(Duration::from_secs(12)), "[ 12.000s]");
}

/// Every example reads its command line through `Cli::from_env`, so every
/// one accepts `--help` and refuses unknown arguments (what the tests above
/// prove of the parser). Checked in the sources, without building them.
#[test]
fn every_example_reads_its_command_line_through_cli() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut examples: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    examples.sort();
    assert!(examples.len() >= 11, "{examples:?}");
    for path in examples {
        let source = std::fs::read_to_string(&path).unwrap();
        let name = path.file_stem().unwrap().to_str().unwrap();
        assert!(
            source.contains(&format!("Cli::new(\n    \"{name}\""))
                || source.contains(&format!("Cli::new(\"{name}\"")),
            "{name}: no `Cli::new(\"{name}\", ...)`"
        );
        assert!(
            source.contains("CLI.from_env()"),
            "{name}: does not read its arguments with `CLI.from_env()`"
        );
        assert!(
            !source.contains("std::env::args()"),
            "{name}: reads `std::env::args()` itself"
        );
    }
}
