//! Chapter 8: giving up with `timeout`. About 6 s with the documents'
//! 1-second unit.
//!
//! - E004-3: `wait_for(coroutine, timeout=3)` both ways: a 2-second job
//!   gives its result at 2 s; a 5-second job is dropped at 3 s (its `Drop`
//!   prints) and then `Elapsed` (asyncio's `TimeoutError`) is returned.
//! - A spawned task under `timeout`: the *wait* times out; `abort()` is what
//!   stops the task (asyncio's `wait_for` cancels it for you).
//!
//! ```text
//! cargo run --example ch08                  # the documents' durations
//! cargo run --example ch08 -- --unit-ms 100 # ten times faster
//! ```
mod common;

use std::time::Duration;

use common::{say, unit_from_args};
use tiny_asyncio::{run, sleep, spawn, timeout};

const USAGE: &str = "cargo run --example ch08 [-- --unit-ms N]";

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
    let unit = unit_from_args(std::env::args().skip(1).collect(), USAGE);

    println!("== E004-3: wait_for(코루틴, timeout=3) → timeout(3 단위, 코루틴) ==");
    for units in [2, 5] {
        println!("-- {units} 단위가 걸리는 작업 --");
        run(async {
            match timeout(unit * 3, job(units, unit)).await {
                Ok(result) => say(format!("3 단위 안에 끝남: Ok({result:?})")),
                Err(elapsed) => say(format!("TimeoutError: {elapsed}")),
            }
        });
    }

    println!();
    println!("== timeout은 기다림을 포기할 뿐: 태스크는 abort()로 멈춘다 ==");
    run(async {
        let mut task = spawn(async move {
            sleep(unit * 5).await;
            "끝까지 실행됨"
        });
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
}
