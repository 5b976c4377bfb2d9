//! Chapter 9: when you must block (E003-4, EX-1).
//!
//! `cargo run --example ch09` takes about 7 s with the documents' 1 s unit;
//! `cargo run --example ch09 -- --unit-ms 100` shrinks every duration ten
//! times. `--timeline` draws E003-4 from a trace of the real run (the two
//! coroutines waiting, the two pool threads blocked, the loop free), `--svg
//! FILE` writes it as SVG.
//!
//! * E003-4: two coroutines, gathered, print "start" and "suspend", then
//!   each awaits a blocking `thread::sleep` of 5 units on the loop's default
//!   pool, then prints "resume". Both sleeps run at once: 5 units, not 10.
//! * EX-1: a task that computes for 1 unit without awaiting holds the whole
//!   loop, so a timer of 0.1 unit fires late; the same computation on
//!   `run_in_executor` leaves the loop free, and the timer is on time.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{exit_if_picture_failed, run_traced, say, short_pool_names, units};
use tiny_asyncio::ch09_pool::{DefaultPool, default_pool_size};
use tiny_asyncio::cli::Cli;
use tiny_asyncio::trace::MAIN;
use tiny_asyncio::{gather, get_running_loop, run, run_in_executor, sleep, spawn};

/// The command line: `--help`, `--unit-ms N` and the picture flags.
const CLI: Cli = Cli::new(
    "ch09",
    "E003-4 and EX-1: blocking work on a thread pool with run_in_executor",
)
.unit(Duration::from_secs(1))
.pictures();

/// One of the document's two coroutines.
async fn coroutine(n: u32, unit: Duration) {
    say(format!("코루틴 {n} 시작"));
    say(format!("코루틴 {n} 중단"));
    // `loop.run_in_executor(None, time.sleep, 5)`: the blocking sleep runs
    // on a pool thread; this task sleeps until the thread is done.
    let thread_name = run_in_executor(move || {
        thread::sleep(5 * unit);
        thread::current().name().unwrap_or("?").to_owned()
    })
    .await
    .expect("the blocking sleep does not panic");
    say(format!(
        "코루틴 {n} 재개    ({thread_name} 스레드에서 잤다)"
    ));
}

/// Busy for `d` of wall time, never awaiting: a stand-in for real
/// computation (encoding, number crunching).
fn compute_for(d: Duration) -> u64 {
    let begun = Instant::now();
    let mut x = 1u64;
    while begun.elapsed() < d {
        for _ in 0..1000 {
            x = std::hint::black_box(
                x.wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407),
            );
        }
    }
    x
}

/// Starts a timer of `timer` and a computation of `work`, either as a task
/// on the loop or on the pool, and reports how late the timer fired.
async fn timer_beside_work(timer: Duration, work: Duration, on_pool: bool) -> Duration {
    let ticking = spawn(async move {
        sleep(timer).await;
        get_running_loop().time()
    });
    let working = if on_pool {
        run_in_executor(move || compute_for(work))
    } else {
        spawn(async move { compute_for(work) })
    };
    let fired_at = ticking.await.expect("the timer task does not panic");
    working.await.expect("the computation does not panic");
    fired_at
}

fn main() {
    let args = CLI.from_env();
    let (picture, unit) = (args.picture, args.unit);

    println!("== E003-4: run_in_executor, 기본 스레드 풀에서 time.sleep(5) 두 번 ==");
    println!(
        "(기본 풀 크기: min(32, CPU {} + 4) = {}, 스레드는 필요할 때 하나씩 시작한다)",
        thread::available_parallelism().map_or(1, |n| n.get()),
        default_pool_size()
    );
    let begun = Instant::now();
    // run_traced closes the loop, which joins the default pool's threads.
    let ((), trace) = run_traced(picture.wants_picture(), async move {
        // `await asyncio.gather(coroutine(1), coroutine(2))`, as the document
        // writes it. Our `gather!` polls the two coroutines inside this one
        // future (asyncio wraps each in a task first; chapter 7 says why we
        // do not), so the picture draws both on the main row.
        get_running_loop()
            .tracer()
            .name(MAIN, "gather(코루틴 1, 2)");
        gather!(coroutine(1, unit), coroutine(2, unit)).await;
        let pool = DefaultPool::of(&get_running_loop());
        println!(
            "기본 풀의 스레드 {}개가 살아 있다 (루프가 닫힐 때 join된다)",
            pool.pool().threads_alive()
        );
    });
    let total = begun.elapsed();
    println!(
        ">>> 총 소요 시간: {:.3} s = {:.3} 단위 (문서: 5 단위; 차례로 잤다면 10 단위)",
        total.as_secs_f64(),
        units(total, unit)
    );
    if picture.wants_picture() {
        println!();
        let mut timeline = trace.to_timeline("E003-4: run_in_executor(None, time.sleep, 5) × 2");
        short_pool_names(&mut timeline);
        exit_if_picture_failed(picture.show(&timeline));
    }

    println!();
    println!(
        "== EX-1: 계산은 기다림이 아니다: await 없이 계산하는 태스크는 루프 전체를 붙잡는다 =="
    );
    let timer = unit / 10;
    let work = unit;
    for (on_pool, how) in [
        (false, "계산을 태스크 안에서 (spawn)"),
        (true, "같은 계산을 run_in_executor로"),
    ] {
        let fired_at = run(timer_beside_work(timer, work, on_pool));
        let late = fired_at.saturating_sub(timer);
        println!(
            "- {how}: {:.3} s 타이머가 {:.3} s에 울림 → {:.3} s 늦음",
            timer.as_secs_f64(),
            fired_at.as_secs_f64(),
            late.as_secs_f64()
        );
    }
    println!(
        "태스크 안의 계산은 {:.3} s 동안 루프를 놓아주지 않아 타이머가 그만큼 늦었다; 풀 스레드로 옮기면 루프는 자유롭다.",
        work.as_secs_f64()
    );
}
