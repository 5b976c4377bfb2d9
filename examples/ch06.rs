//! Chapter 6: a task is a future of its result, in real time.
//!
//! Replays E003-2, which is also E004-6 (`say_after` as tasks: 2 s), with
//! E003-3 (`await task1` gives the return value); E004-5 against it (the
//! same awaited in turn: 3 s); E004-1 against E004-2 (the sums: 5 s in turn,
//! 3 s as tasks, interleaved); then `abort` and a panic, briefly. With the
//! documents' unit of 1 s it takes about 13 s; `--unit-ms N` runs it with
//! N ms per unit. `--timeline` draws E004-5 (awaited in turn) beside
//! E004-6 (as tasks) from traces of the real runs, `--svg FILE` writes the
//! two panels as SVG.
//!
//! ```text
//! cargo run --example ch06
//! cargo run --example ch06 -- --unit-ms 100
//! cargo run --example ch06 -- --unit-ms 100 --timeline
//! ```

mod common;

use std::panic;
use std::time::Duration;

use common::{Transcript, exit_if_picture_failed, run_traced};
use tiny_asyncio::ch05_event_loop::panic_message;
use tiny_asyncio::cli::Cli;
use tiny_asyncio::{get_running_loop, run, sleep, spawn, yield_now};

/// The command line: `--help`, `--unit-ms N` and the picture flags.
const CLI: Cli = Cli::new(
    "ch06",
    "E004-5 and E004-6: a task is a future of its result",
)
.unit(Duration::from_secs(1))
.pictures();

/// Names the running loop's task `id` in the picture (kept only while
/// tracing).
fn name_task(id: u64, name: &str) {
    get_running_loop().tracer().name(id, name);
}

/// Seeds 003/004's `say_after(delay, what)`: wait, print, and return the word.
async fn say_after(
    units: u32,
    what: &'static str,
    unit: Duration,
    log: Transcript,
) -> &'static str {
    sleep(unit * units).await;
    log.say(what, what);
    what
}

/// Seed 004's `sum(name, numbers)`: one unit per number, printing the
/// running total (the body the document's reference gives).
async fn sum(name: &'static str, numbers: Vec<u64>, unit: Duration, log: Transcript) -> u64 {
    let mut total = 0;
    for n in numbers {
        sleep(unit).await;
        total += n;
        log.say(format!("{name}{total}"), &format!("{name}: 합계 {total}"));
    }
    total
}

fn main() {
    let args = CLI.from_env();
    let (picture, unit) = (args.picture, args.unit);
    println!("(시간 단위: {} ms)", unit.as_millis());

    // E003-2 (= E004-6) and E003-3.
    println!();
    println!("== E003-2 / E004-6: say_after를 태스크로 먼저 만들고 await ==");
    let log = Transcript::new(unit);
    let l = log.clone();
    let ((as_tasks, return_value), as_tasks_trace) =
        run_traced(picture.wants_picture(), async move {
            // asyncio.create_task: both start now, and overlap.
            let task1 = spawn(say_after(1, "hello", unit, l.clone()));
            let task2 = spawn(say_after(2, "world", unit, l.clone()));
            name_task(task1.id(), "task1");
            name_task(task2.id(), "task2");
            l.say("started", "started");
            // E003-3: awaiting a task gives what its coroutine returned.
            let return_value = task1.await.expect("say_after does not fail");
            task2.await.expect("say_after does not fail");
            l.say("finished", "finished");
            (get_running_loop().time(), return_value)
        });
    log.summary(as_tasks, 2, "started | hello | world finished");
    println!("E003-3: return_value = await task1 → {return_value:?}");

    // E004-5, against the run above.
    println!();
    println!("== E004-5: say_after를 코루틴으로, 차례로 await ==");
    let log = Transcript::new(unit);
    let l = log.clone();
    let (in_turn, in_turn_trace) = run_traced(picture.wants_picture(), async move {
        l.say("started", "started");
        say_after(1, "hello", unit, l.clone()).await;
        say_after(2, "world", unit, l.clone()).await;
        l.say("finished", "finished");
        get_running_loop().time()
    });
    log.summary(in_turn, 3, "started | hello | | world finished");
    println!(
        "차례로 await: {:.3} 단위, 태스크로: {:.3} 단위 (문서: 3 대 2)",
        log.units(in_turn),
        log.units(as_tasks)
    );
    if picture.wants_picture() {
        println!();
        let panels = [
            in_turn_trace.to_timeline("E004-5: awaited in turn"),
            as_tasks_trace.to_timeline("E004-6: as tasks"),
        ];
        exit_if_picture_failed(picture.show_panels(&panels));
    }

    // E004-1 against E004-2.
    println!();
    println!("== E004-1: sum(\"A\", [1, 2])와 sum(\"B\", [1, 2, 3])을 차례로 await ==");
    let log = Transcript::new(unit);
    let l = log.clone();
    let (total, results) = run(async move {
        let result1 = sum("A", vec![1, 2], unit, l.clone()).await;
        let result2 = sum("B", vec![1, 2, 3], unit, l.clone()).await;
        (get_running_loop().time(), (result1, result2))
    });
    log.summary(total, 5, "A1 | A3 | B1 | B3 | B6");
    println!("print(result1, result2) → {} {}", results.0, results.1);

    println!();
    println!("== E004-2: 같은 두 sum을 create_task로 ==");
    let log = Transcript::new(unit);
    let l = log.clone();
    let (total, a_done, results) = run(async move {
        let task1 = spawn(sum("A", vec![1, 2], unit, l.clone()));
        let task2 = spawn(sum("B", vec![1, 2, 3], unit, l.clone()));
        let result1 = task1.await.expect("sum does not fail");
        let a_done = get_running_loop().time();
        let result2 = task2.await.expect("sum does not fail");
        (get_running_loop().time(), a_done, (result1, result2))
    });
    log.summary(total, 3, "A1 B1 | A3 B3 | B6");
    println!(
        "A는 {:.3} 단위에 끝남 (문서: 2); print(result1, result2) → {} {}",
        log.units(a_done),
        results.0,
        results.1
    );

    // abort: asyncio's task.cancel().
    println!();
    println!("== abort: 잠든 태스크 취소 (asyncio의 task.cancel()) ==");
    run(async move {
        let sleeper = spawn(async move {
            sleep(unit * 10).await;
            "10 단위 뒤에 깸"
        });
        yield_now().await; // it runs, and its sleep sets a timer
        let timer = get_running_loop().timer().clone();
        println!("잠든 태스크의 타이머 수: {}", timer.pending());
        sleeper.abort();
        sleeper.abort(); // twice is once
        match sleeper.await {
            Ok(text) => println!("결과: {text}"),
            Err(error) => println!(
                "await → Err({error}), is_cancelled = {}, 타이머 수: {}, 시각: {:.3} s",
                error.is_cancelled(),
                timer.pending(),
                get_running_loop().time().as_secs_f64()
            ),
        }
    });

    // A panic in a task is caught; the other tasks run on.
    println!();
    println!("== 패닉: 태스크 안의 패닉은 JoinError가 되고, 다른 태스크는 계속 돈다 ==");
    // Rust's panic hook still reports the panic on stderr when it happens
    // (before the task catches it); one short line is enough here.
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(|info| {
        let message = panic_message(info.payload());
        eprintln!("(stderr, 패닉 훅: {message:?})");
    }));
    run(async move {
        let bad = spawn(async move {
            yield_now().await;
            panic!("boom");
        });
        let good = spawn(async move {
            yield_now().await;
            yield_now().await;
            "다른 태스크는 무사히 끝남"
        });
        match bad.await {
            Ok(()) => println!("패닉이 없었다?!"),
            Err(error) => println!(
                "await → Err({error}), is_panic = {}, 메시지 = {:?}",
                error.is_panic(),
                error.panic_message().unwrap_or_default()
            ),
        }
        println!("{}", good.await.expect("it does not panic"));
    });
    panic::set_hook(default_hook);
}
