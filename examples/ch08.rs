//! Chapter 8: giving up with `timeout`. About 6 s with the documents'
//! 1-second unit.
//!
//! - E004-3: `wait_for(coroutine, timeout=3)` both ways: a 2-second job
//!   gives its result at 2 s; a 5-second job is dropped at 3 s (its `Drop`
//!   prints) and then `Elapsed` (asyncio's `TimeoutError`) is returned.
//! - A spawned task under `timeout`: the *wait* times out; `abort()` is what
//!   stops the task (asyncio's `wait_for` cancels it for you).
//!
//! `--timeline` draws the three runs side by side from traces of the real
//! runs: the race `timeout` runs, between the job's own timer (won at 2
//! units) and the deadline's (won at 3), and the spawned task cut off by
//! `abort()` at 1 unit; `--svg FILE` writes the three panels as SVG.
//!
//! ```text
//! cargo run --example ch08                  # the documents' durations
//! cargo run --example ch08 -- --unit-ms 100 # ten times faster
//! cargo run --example ch08 -- --unit-ms 100 --timeline
//! ```
mod common;

use std::time::Duration;

use common::{exit_if_picture_failed, run_traced, say};
use tiny_asyncio::cli::Cli;
use tiny_asyncio::get_running_loop;
use tiny_asyncio::trace::MAIN;
use tiny_asyncio::{sleep, spawn, timeout};

/// The command line: `--help`, `--unit-ms N` and the picture flags.
const CLI: Cli = Cli::new(
    "ch08",
    "E004-3: giving up with timeout (asyncio's wait_for)",
)
.unit(Duration::from_secs(1))
.pictures();

/// Prints when the job's future is dropped: finished, or cancelled.
struct DropNotice {
    name: String,
}

impl Drop for DropNotice {
    fn drop(&mut self) {
        say(format!("(Drop) '{}'의 퓨처가 해제됨", self.name));
    }
}

/// The coroutine under `wait_for`: works for `units`, returns a string.
async fn job(units: u32, unit: Duration) -> String {
    let name = format!("작업({units} 단위)");
    let _notice = DropNotice { name: name.clone() };
    say(format!("시작: {name}"));
    sleep(unit * units).await;
    say(format!("완료: {name}"));
    format!("{name} 결과")
}

fn main() {
    let args = CLI.from_env();
    let (picture, unit) = (args.picture, args.unit);
    let traced = picture.wants_picture();
    let mut panels = Vec::new();

    println!("== E004-3: wait_for(코루틴, timeout=3) → timeout(3 단위, 코루틴) ==");
    for units in [2, 5] {
        println!("-- {units} 단위가 걸리는 작업 --");
        let ((), trace) = run_traced(traced, async {
            get_running_loop().tracer().name(MAIN, "main");
            match timeout(unit * 3, job(units, unit)).await {
                Ok(result) => say(format!("3 단위 안에 끝남: Ok({result:?})")),
                Err(elapsed) => say(format!("TimeoutError: {elapsed}")),
            }
        });
        // The panel's title says who won the race: the job or the deadline.
        let race = if units < 3 { '<' } else { '>' };
        panels.push(trace.to_timeline(format!("작업 {units} {race} 기한 3")));
    }

    println!();
    println!("== timeout은 기다림을 포기할 뿐: 태스크는 abort()로 멈춘다 ==");
    let ((), trace) = run_traced(traced, async {
        let mut task = spawn(async move {
            sleep(unit * 5).await;
            "끝까지 실행됨"
        });
        let tracer = get_running_loop().tracer();
        tracer.name(task.id(), "task");
        match timeout(unit, &mut task).await {
            Ok(result) => say(format!("태스크 결과: {result:?}")),
            Err(elapsed) => {
                say(format!("{elapsed}; 태스크는 아직 실행 중: abort()"));
                task.abort();
                match task.await {
                    Ok(result) => say(format!("태스크 결과: {result:?}")),
                    Err(error) => say(format!("태스크: {error}")),
                }
            }
        }
    });
    panels.push(trace.to_timeline("기한 1, abort()"));

    if traced {
        println!();
        exit_if_picture_failed(picture.show_panels(&panels));
    }
}
