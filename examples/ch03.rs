//! Chapter 3: `block_on` and a waker, in real time.
//!
//! Replays E000-2 (`main_async` awaits `do_async`, driven by `block_on`, our
//! `run_until_complete`), E003-1 (`before wait`, a 1 s sleep, `after wait 1
//! second`), E002-5 (`task_with_delay(1)` awaited twice: 2 s) and E003-5
//! (`block_on` returns the future's result). The sleeps are chapter 3's
//! `ThreadSleep`, one OS thread per sleep. About 3 s in all; `--unit-ms N`
//! runs it with N ms per unit. `--timeline` draws E003-1 and E002-5 from
//! what the run did (the future polled, asleep until a sleep thread wakes
//! it, each sleep thread blocked meanwhile); `--svg FILE` writes the same
//! as SVG.
//!
//! Each run is traced: every poll `block_on` makes, and every
//! `waker.wake()` with the thread it came from. `block_on` polls only when a
//! waker has fired, so a 1 s wait costs two polls, not millions (chapter 2's
//! driver polled in a loop).
//!
//! ```text
//! cargo run --example ch03
//! cargo run --example ch03 -- --unit-ms 100 --timeline
//! ```
mod common;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use common::{Stamp, exit_if_picture_failed};
use tiny_asyncio::block_on;
use tiny_asyncio::ch03_waker::thread_sleep;
use tiny_asyncio::cli::Cli;

/// The command line: `--help`, `--unit-ms N` and the picture flags.
const CLI: Cli = Cli::new(
    "ch03",
    "E000-2, E003-1, E002-5 and E003-5: block_on and a waker, in real time",
)
.unit(Duration::from_secs(1))
.pictures();

/// Wraps a future to make `block_on`'s work visible: prints each poll and
/// its result, and hands the inner future a waker of our own that prints
/// "waker.wake()" (with the waking thread's name) before passing the wake on
/// to `block_on`'s real waker. That waker is an `ArcWake` type (in
/// `examples/common`), turned into a `Waker` by chapter 3's hand-written
/// vtable.
struct Traced<'a, F> {
    inner: Pin<Box<F>>,
    stamp: &'a Stamp,
    polls: usize,
}

impl<F: Future> Future for Traced<'_, F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls += 1;
        let waker = self.stamp.printing_waker(cx.waker());
        self.stamp.poll_started();
        let result = self.inner.as_mut().poll(&mut Context::from_waker(&waker));
        self.stamp.poll_ended(result.is_ready());
        let what = if result.is_ready() {
            "Ready"
        } else {
            "Pending → 깨울 때까지 잠든다"
        };
        self.stamp
            .line(&format!("    (block_on) poll {} → {what}", self.polls));
        result
    }
}

/// Runs `fut` with `block_on`, tracing its polls and wakes; returns the
/// output and the number of polls.
fn traced_block_on<F: Future>(stamp: &Stamp, fut: F) -> (F::Output, usize) {
    let mut traced = Traced {
        inner: Box::pin(fut),
        stamp,
        polls: 0,
    };
    let output = block_on(&mut traced);
    (output, traced.polls)
}

// E000-2 ---------------------------------------------------------------------

async fn do_async(stamp: &Stamp) {
    stamp.line("do_async: (pass)");
}

async fn main_async(stamp: &Stamp) {
    stamp.line("main_async: do_async()를 await");
    do_async(stamp).await;
    stamp.line("main_async: 끝");
}

// E003-1 ---------------------------------------------------------------------

async fn wait_one_second(stamp: &Stamp, unit: Duration) {
    stamp.line("before wait");
    thread_sleep(unit).await;
    stamp.line("after wait 1 second");
}

// E002-5 ---------------------------------------------------------------------

async fn task_with_delay(seconds: u32, stamp: &Stamp, unit: Duration) -> u32 {
    stamp.line(&format!("{seconds}초 대기 작업 시작"));
    thread_sleep(unit * seconds).await;
    stamp.line(&format!("{seconds}초 대기 작업 종료"));
    seconds
}

async fn execute_tasks(stamp: &Stamp, unit: Duration) -> u32 {
    let val1 = task_with_delay(1, stamp, unit).await;
    let val2 = task_with_delay(1, stamp, unit).await;
    stamp.line(&format!("합계: {}", val1 + val2));
    val1 + val2
}

fn main() {
    let args = CLI.from_env();
    let (picture, unit) = (args.picture, args.unit);
    let mut panels = Vec::new();

    println!("== E000-2: main_async를 block_on(= run_until_complete)으로 실행 ==");
    let stamp = Stamp::now();
    let future = main_async(&stamp);
    println!("main_async(&stamp)를 호출했다: 아직 아무 줄도 찍히지 않았다");
    let ((), polls) = traced_block_on(&stamp, future);
    println!("poll {polls}번: 기다릴 일이 없어서 첫 poll에 끝났다");

    println!();
    println!("== E003-1: asyncio.sleep(1) 대신 ThreadSleep(1초) ==");
    let stamp = Stamp::now();
    let ((), polls) = traced_block_on(&stamp, wait_one_second(&stamp, unit));
    println!(
        "걸린 시간: {:.3} s (문서: 1 단위), poll {polls}번 (Pending 한 번, 깨어난 뒤 Ready 한 번)",
        stamp.elapsed()
    );
    panels.push(stamp.timeline("E003-1: sleep(1)", "wait"));

    println!();
    println!("== E002-5: task_with_delay(1)를 두 번 차례로 await ==");
    let stamp = Stamp::now();
    let (sum, polls) = traced_block_on(&stamp, execute_tasks(&stamp, unit));
    println!(
        "걸린 시간: {:.3} s (문서: 2 단위), poll {polls}번",
        stamp.elapsed()
    );
    panels.push(stamp.timeline("E002-5: 1 + 1, in turn", "execute"));

    println!();
    println!("== E003-5: block_on은 future의 결과를 돌려준다 ==");
    println!("block_on(execute_tasks()) = {sum}");
    let stamp = Stamp::now();
    let text = block_on(async {
        thread_sleep(unit / 10).await;
        String::from("코루틴 반환값")
    });
    println!(
        "block_on(async {{ 0.1 단위 대기; \"코루틴 반환값\" }}) = {text:?} ({:.3} s 뒤)",
        stamp.elapsed()
    );

    if picture.wants_picture() {
        println!();
        exit_if_picture_failed(picture.show_panels(&panels));
    }
}
