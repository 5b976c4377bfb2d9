//! Chapter 5: one thread, many tasks, in real time.
//!
//! Replays E000-4 (three look-ups as tasks created 3, 2, 1: 3 s, not 6),
//! E001-2 (how long each request waited, against chapter 1's sequential
//! figures), E001-3 (the same look-ups created 1, 2, 3: the order the
//! document printed) and E002-4 (the running loop, inside and outside).
//! With the documents' unit of 1 s it takes about 6 s; `--unit-ms N` runs
//! it with N ms per unit. `--timeline` draws E000-4 from a trace of the
//! real run (who ran, slept or waited when), `--svg FILE` writes it as SVG.
//!
//! ```text
//! cargo run --example ch05
//! cargo run --example ch05 -- --unit-ms 100
//! cargo run --example ch05 -- --timeline
//! cargo run --example ch05 -- --svg ch05.svg
//! ```
//!
//! Chapter 5 has no `JoinHandle` yet (chapter 6 adds it), so the main
//! future waits for its tasks with a `Countdown` written here: each task
//! counts down when it is done, and the last one wakes the main future. That
//! is asyncio's `asyncio.wait(tasks)`, by hand, and it shows the one thing
//! the loop asks of anything that waits: keep a waker, call it later.

mod common;

use std::future::{Future, poll_fn};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use common::{Transcript, exit_if_picture_failed, run_traced};
use tiny_asyncio::ch05_event_loop::spawn_detached;
use tiny_asyncio::cli::Cli;
use tiny_asyncio::trace::Trace;
use tiny_asyncio::{get_running_loop, run, sleep, try_running_loop};

/// The command line: `--help`, `--unit-ms N` and the picture flags.
const CLI: Cli = Cli::new(
    "ch05",
    "E000-4, E001-2, E001-3 and E002-4: one thread, many tasks, in real time",
)
.unit(Duration::from_secs(1))
.pictures();

/// asyncio.wait by hand: tasks count down; the last one wakes the waiter.
struct Countdown {
    inner: Mutex<(usize, Option<Waker>)>,
}

impl Countdown {
    fn new(n: usize) -> Arc<Countdown> {
        Arc::new(Countdown {
            inner: Mutex::new((n, None)),
        })
    }

    fn count_down(&self) {
        let waker = {
            let mut inner = self.inner.lock().unwrap();
            inner.0 -= 1;
            if inner.0 == 0 { inner.1.take() } else { None }
        };
        // Woken outside the lock; the wake only puts the main future back
        // in the loop's queue.
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn wait(self: &Arc<Self>) -> impl Future<Output = ()> + use<> {
        let this = self.clone();
        poll_fn(move |cx| {
            let mut inner = this.inner.lock().unwrap();
            if inner.0 == 0 {
                Poll::Ready(())
            } else {
                inner.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

/// E000-4's `find_users_async(n)`: one unit of waiting per user.
async fn find_users(n: u32, unit: Duration, log: Transcript, done: Arc<Countdown>) {
    for i in 1..=n {
        log.say(
            format!("{n}-{i}"),
            &format!("{n}명 중 {i}번 째 사용자 조회 중 ..."),
        );
        sleep(unit).await;
    }
    log.say(
        format!("done{n}"),
        &format!("> 총 {n} 명 사용자 비동기 조회 완료!"),
    );
    done.count_down();
}

/// The three look-ups as tasks created in `order`, awaited together, on a
/// fresh loop (asyncio.run). Returns the transcript, the total time, and
/// the loop's trace (empty unless `traced`).
fn users_as_tasks(order: &[u32], unit: Duration, traced: bool) -> (Transcript, Duration, Trace) {
    let log = Transcript::new(unit);
    let order = order.to_vec();
    let task_log = log.clone();
    let (total, trace) = run_traced(traced, async move {
        let done = Countdown::new(order.len());
        for n in order {
            // asyncio.create_task: queued now, runs once main waits.
            let task = spawn_detached(find_users(n, unit, task_log.clone(), done.clone()));
            // The task's row in the picture (kept only while tracing).
            get_running_loop()
                .tracer()
                .name(task.id(), format!("users({n})"));
        }
        done.wait().await;
        get_running_loop().time()
    });
    (log, total, trace)
}

fn main() {
    let args = CLI.from_env();
    let (picture, unit) = (args.picture, args.unit);
    println!("(시간 단위: {} ms)", unit.as_millis());

    // E000-4.
    println!();
    println!("== E000-4: 사용자 조회, 비동기 방식 (태스크를 3, 2, 1 순서로 생성) ==");
    let (log, total, trace) = users_as_tasks(&[3, 2, 1], unit, picture.wants_picture());
    println!(
        ">>> 비동기 처리 총 소요 시간: {:.3} s = {:.3} 단위 (문서: 3.018 s, 동기로는 6)",
        total.as_secs_f64(),
        log.units(total)
    );
    log.order_beside("3-1 2-1 1-1 | 3-2 2-2 done1 | 3-3 done2 | done3");
    println!("매 단계마다 태스크들은 잠든 순서대로 깨어난다: 같은 마감 시각은 등록 순서대로.");
    if picture.wants_picture() {
        println!();
        let timeline = trace.to_timeline("E000-4: find_users_async(3), (2), (1) as tasks");
        exit_if_picture_failed(picture.show(&timeline));
    }

    // E001-2: the same run, from each request's point of view.
    println!();
    println!("== E001-2: 요청마다 기다린 시간 ==");
    let mut sequential = 0;
    for n in [3u32, 2, 1] {
        sequential += n;
        println!(
            "{n}명 요청: {:.3} 단위 만에 응답 (1장의 동기 방식: {sequential} 단위)",
            log.units(log.at(&format!("done{n}")))
        );
    }
    println!("비동기에서는 각 요청이 자기 일만 기다린다: 3, 2, 1 (동기: 3, 5, 6).");

    // E001-3.
    println!();
    println!("== E001-3: 같은 조회, 태스크를 1, 2, 3 순서로 생성 ==");
    let (log, total, _) = users_as_tasks(&[1, 2, 3], unit, false);
    println!(
        ">>> 비동기 처리 총 소요 시간: {:.3} s = {:.3} 단위 (문서: 3.003 s)",
        total.as_secs_f64(),
        log.units(total)
    );
    log.order_beside("1-1 2-1 3-1 | done1 2-2 3-2 | done2 3-3 | done3");
    println!(
        "문서는 asyncio.wait에 코루틴을 그대로 넘겼고, 실행 순서는 보장되지 않는다고 경고한다."
    );
    println!(
        "(파이썬 3.11부터는 오류다: \"Passing coroutines is forbidden, use tasks explicitly\".)"
    );
    println!("여기서는 태스크를 만든 순서가 첫 실행 순서다 (FIFO 큐).");

    // E002-4.
    println!();
    println!("== E002-4: 실행 중인 이벤트 루프 ==");
    run(async {
        let running = get_running_loop();
        println!("현재 실행 중인 이벤트 루프 정보: {running}");
    });
    match try_running_loop() {
        Ok(handle) => println!("루프 밖인데 루프가 있다?! {handle}"),
        Err(error) => println!("루프 밖에서 get_running_loop(): RuntimeError: {error}"),
    }
}
