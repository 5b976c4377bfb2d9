//! Chapter 1: the synchronous world, in real time.
//!
//! Replays E000-3 (three user look-ups, one after the other), E001-2 (how long
//! each request waited) and E002-1 (two blocking fetches) with the documents'
//! unit of 1 s: about 10 s in all. `--unit-ms N` runs it with N ms per unit.
//! `--timeline` draws both runs from their logs (one bar after another: the
//! thread is blocked the whole time), `--svg FILE` writes the same as SVG.
//!
//! ```text
//! cargo run --example ch01
//! cargo run --example ch01 -- --unit-ms 100
//! cargo run --example ch01 -- --unit-ms 100 --timeline
//! ```
mod common;

use std::time::Duration;

use tiny_asyncio::ch01_blocking::{FETCH_UNITS, Log, Step, fetch_all_sync, process_sync};
use tiny_asyncio::cli::Cli;
use tiny_asyncio::timeline::{Mark, Timeline};

/// The command line: `--help`, `--unit-ms N` and the picture flags.
const CLI: Cli = Cli::new(
    "ch01",
    "E000-3, E001-2 and E002-1: the synchronous world, in real time",
)
.unit(Duration::from_secs(1))
.pictures();

/// The picture of a synchronous run, from its log: each step blocks the
/// thread until the next step is logged, so every gap between two entries
/// is a `Blocked` span on the row of the request being served.
fn blocked_bars(title: &str, log: &Log) -> Timeline {
    let mut timeline = Timeline::new(title);
    for pair in log.entries().windows(2) {
        let (entry, next) = (&pair[0], &pair[1]);
        let row = match &entry.step {
            Step::LookUp { of, .. } => format!("users({of})"),
            Step::FetchStart { name } => name.clone(),
            // The request is answered: nothing blocks until the next one.
            Step::AllFound { .. } | Step::FetchDone { .. } => continue,
        };
        timeline.row(&row).push(entry.at, next.at, Mark::Blocked);
    }
    timeline
}

fn main() {
    let args = CLI.from_env();
    let (picture, unit) = (args.picture, args.unit);
    let units = |d: Duration| common::units(d, unit);
    println!("(시간 단위: {} ms)", unit.as_millis());

    // E000-3: the requests for 3, 2 and 1 users, served one after the other.
    println!();
    println!("== E000-3: 사용자 조회, 동기 방식 ==");
    let requests = [3, 2, 1];
    let mut log = Log::printing();
    let timings = process_sync(&requests, unit, &mut log);
    let users_picture = blocked_bars("E000-3: find_users_sync(3), (2), (1)", &log);
    println!(
        ">>> 동기 처리 총 소요 시간: {:.3} s = {:.3} 단위 (문서: 6 단위)",
        timings.total.as_secs_f64(),
        units(timings.total),
    );

    // E001-2: the same run, from each request's point of view.
    println!();
    println!("== E001-2: 요청마다 기다린 시간 ==");
    for (n, at) in requests.iter().zip(&timings.answered_at) {
        println!(
            "{n}명 요청: {:.3} 단위 만에 응답 (자기 일만 하면 {n} 단위)",
            units(*at)
        );
    }
    println!("앞선 요청이 끝나야 다음 요청이 시작되므로, 늦게 온 요청일수록 오래 기다린다.");

    // E002-1: two fetches, each blocking FETCH_UNITS units.
    println!();
    println!("== E002-1: 데이터 조회, 동기 방식 ==");
    let mut log = Log::printing();
    let timings = fetch_all_sync(&["작업1", "작업2"], unit, &mut log);
    println!(
        "동기 총 소요 시간: {:.3} s = {:.3} 단위 (문서: {} 단위)",
        timings.total.as_secs_f64(),
        units(timings.total),
        2 * FETCH_UNITS,
    );

    if picture.wants_picture() {
        println!();
        let fetch_picture = blocked_bars("E002-1: fetch_data_sync × 2", &log);
        common::exit_if_picture_failed(picture.show_panels(&[users_picture, fetch_picture]));
    }
}
