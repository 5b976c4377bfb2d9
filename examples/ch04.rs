//! Chapter 4: one timer thread for every sleep, in real time.
//!
//! Replays E003-1 (`before wait`, a 1 s sleep, `after wait 1 second`), E002-5
//! (`task_with_delay(1)` awaited twice: 2 s) and E004-5 (`say_after(1,
//! 'hello')` then `say_after(2, 'world')`, awaited in turn: 3 s) with
//! `tiny_asyncio::sleep` on the timer wheel, driven by chapter 3's
//! `block_on`. Every wake now comes from the one `tiny-asyncio-timer` thread.
//!
//! Then it makes the chapter's reason visible: 10,000 sleeps of 1 s at once,
//! first with chapter 3's `ThreadSleep` (a thread each), then with the
//! wheel's `Sleep`. (One second, because starting 10,000 threads takes a few
//! hundred milliseconds, and the first ones must still be asleep when the
//! last one starts.) Each side runs in a child process (this example run
//! again with `--side threads` or `--side wheel`), so that its peak memory
//! (`VmHWM` in `/proc/self/status`, which only grows) is its own. About 9 s
//! in all; Linux only (it reads `/proc`).
//!
//! `--unit-ms N` runs the three stories with N ms per unit (the 10,000
//! sleeps stay at 1 s: their point is how many at once, not how long).
//! `--timeline` draws the three stories from what the runs did (the future
//! polled, asleep until the timer thread wakes it, the timer thread waiting
//! for the deadline meanwhile); `--svg FILE` writes the same as SVG.
//!
//! ```text
//! cargo run --example ch04
//! cargo run --example ch04 -- --unit-ms 100 --timeline
//! cargo run --example ch04 -- --side wheel     # one side only
//! ```
mod common;

use std::pin::Pin;
use std::process::Command;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::{Stamp, exit_if_picture_failed, pad};
use tiny_asyncio::ch03_waker::thread_sleep;
use tiny_asyncio::ch10_measure::ProcStatus;
use tiny_asyncio::cli::{Cli, Opt};
use tiny_asyncio::{block_on, sleep};

/// The command line: `--help`, `--unit-ms N`, the picture flags, and the
/// child's `--side`.
const CLI: Cli = Cli::new(
    "ch04",
    "E003-1, E002-5 and E004-5 on the timer wheel, then 10,000 sleeps at once",
)
.unit(Duration::from_secs(1))
.pictures()
.options(&[Opt {
    flag: "--side",
    values: &["threads|wheel"],
    help: "measure one side of the 10,000-sleep comparison and print its figures (what the example runs in its child processes)",
}]);

/// How many sleeps run at once in the comparison, and for how long each.
const MANY: usize = 10_000;
const NAP: Duration = Duration::from_secs(1);

/// Hands the future a waker of our own that prints which thread woke it,
/// then passes the wake on to `block_on`'s waker.
struct ShowWakes<'a, F> {
    inner: Pin<Box<F>>,
    stamp: &'a Stamp,
}

impl<F: Future> Future for ShowWakes<'_, F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let waker = self.stamp.printing_waker(cx.waker());
        self.stamp.poll_started();
        let result = self.inner.as_mut().poll(&mut Context::from_waker(&waker));
        self.stamp.poll_ended(result.is_ready());
        result
    }
}

fn block_on_showing_wakes<F: Future>(stamp: &Stamp, fut: F) -> F::Output {
    block_on(ShowWakes {
        inner: Box::pin(fut),
        stamp,
    })
}

// E002-5 ---------------------------------------------------------------------

async fn task_with_delay(seconds: u32, stamp: &Stamp, unit: Duration) -> u32 {
    stamp.line(&format!("{seconds}초 대기 작업 시작"));
    sleep(unit * seconds).await;
    stamp.line(&format!("{seconds}초 대기 작업 종료"));
    seconds
}

// E004-5 ---------------------------------------------------------------------

async fn say_after(delay: u32, what: &str, stamp: &Stamp, unit: Duration) {
    sleep(unit * delay).await;
    stamp.line(what);
}

// 10,000 sleeps ----------------------------------------------------------------

/// Which kind of sleep a child process measures.
#[derive(Clone, Copy)]
enum Side {
    Threads,
    Wheel,
}

impl Side {
    fn arg(self) -> &'static str {
        match self {
            Side::Threads => "threads",
            Side::Wheel => "wheel",
        }
    }
}

/// What one side measured, as the child prints it on one line.
struct Measured {
    threads: usize,
    passes: usize,
    polls: usize,
    wall: Duration,
    cpu: Duration,
    start_rss_kb: u64,
    peak_kb: u64,
}

/// A boxed future of `()`, so both kinds of sleep fit in one `Vec`.
type BoxFuture = Pin<Box<dyn Future<Output = ()>>>;

/// What `join_all` saw: the threads right after its first pass (when every
/// sleep has started), how many passes it made and how many polls in all.
#[derive(Clone, Copy)]
struct JoinStats {
    threads: usize,
    passes: usize,
    polls: usize,
}

/// Waits for all `futures` at once.
///
/// A stand-in: every wake re-polls every future still pending, so its cost
/// grows with (separate wake-ups) × (futures left); the stats show it.
/// Chapter 7's `gather` does this properly, with a waker per future, so that
/// a wake polls only the future it is for.
async fn join_all(mut futures: Vec<BoxFuture>) -> JoinStats {
    let mut stats = JoinStats {
        threads: 0,
        passes: 0,
        polls: 0,
    };
    std::future::poll_fn(move |cx| {
        stats.passes += 1;
        stats.polls += futures.len();
        futures.retain_mut(|fut| fut.as_mut().poll(cx).is_pending());
        if stats.passes == 1 {
            stats.threads = count_threads();
        }
        if futures.is_empty() {
            Poll::Ready(stats)
        } else {
            Poll::Pending
        }
    })
    .await
}

/// This process's `/proc/self/status`, read by chapter 10's `ProcStatus`
/// (the crate's one reader of it); all zeros where there is no `/proc`.
fn status() -> ProcStatus {
    ProcStatus::of_process().unwrap_or_default()
}

/// The threads of this process now.
fn count_threads() -> usize {
    usize::try_from(status().threads).unwrap_or(usize::MAX)
}

/// CPU time this process has used so far, user plus system, every thread
/// (the ones that already ended too): fields 14 and 15 of `/proc/self/stat`,
/// in clock ticks of 1/100 s (Linux's `USER_HZ` is 100 everywhere we run).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces; count fields after its `)`.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// The child's work: `MANY` sleeps of `NAP`, all at once, on one side.
fn measure(side: Side) -> Measured {
    let start_rss_kb = status().vm_rss_kb;
    let start = Instant::now();
    // Each sleep is made at its first poll (inside the async block), so each
    // lasts its full NAP from when it starts, on both sides.
    let futures: Vec<BoxFuture> = (0..MANY)
        .map(|_| -> BoxFuture {
            match side {
                Side::Threads => Box::pin(async { thread_sleep(NAP).await }),
                Side::Wheel => Box::pin(async { sleep(NAP).await }),
            }
        })
        .collect();
    let stats = block_on(join_all(futures));
    Measured {
        threads: stats.threads,
        passes: stats.passes,
        polls: stats.polls,
        wall: start.elapsed(),
        cpu: cpu_time(),
        start_rss_kb,
        peak_kb: status().vm_hwm_kb,
    }
}

/// Runs this example again as a child process for one side, and reads back
/// what it measured.
fn measure_in_child(side: Side) -> Measured {
    let exe = std::env::current_exe().expect("the path of this example");
    let output = Command::new(exe)
        .args(["--side", side.arg()])
        .output()
        .expect("could not run the example again as a child process");
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        panic!(
            "the `--side {}` child failed: {}",
            side.arg(),
            output.status
        );
    }
    parse_measured(&stdout).unwrap_or_else(|| {
        panic!(
            "the `--side {}` child printed {stdout:?}, not its measurements",
            side.arg()
        )
    })
}

fn print_measured(m: &Measured) {
    println!(
        "threads={} passes={} polls={} wall_us={} cpu_ms={} start_rss_kb={} peak_kb={}",
        m.threads,
        m.passes,
        m.polls,
        m.wall.as_micros(),
        m.cpu.as_millis(),
        m.start_rss_kb,
        m.peak_kb
    );
}

fn parse_measured(line: &str) -> Option<Measured> {
    let field = |name: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    Some(Measured {
        threads: usize::try_from(field("threads")?).ok()?,
        passes: usize::try_from(field("passes")?).ok()?,
        polls: usize::try_from(field("polls")?).ok()?,
        wall: Duration::from_micros(field("wall_us")?),
        cpu: Duration::from_millis(field("cpu_ms")?),
        start_rss_kb: field("start_rss_kb")?,
        peak_kb: field("peak_kb")?,
    })
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// One row of the comparison table.
fn row(label: &str, threads: String, wheel: String) {
    println!("{}{threads:>16}{wheel:>16}", pad(label, 34));
}

fn compare() {
    println!(
        "== 동시에 잠자는 10,000개: 3장의 ThreadSleep(잠 하나에 스레드 하나) vs 4장의 Sleep(타이머 바퀴) =="
    );
    println!(
        "(모두 {} ms씩; 한쪽씩 자식 프로세스에서 따로 잰다)",
        NAP.as_millis()
    );
    let threads = measure_in_child(Side::Threads);
    let wheel = measure_in_child(Side::Wheel);
    row("", "ThreadSleep".into(), "Sleep (wheel)".into());
    row(
        "스레드 수 (모두 poll한 직후)",
        threads.threads.to_string(),
        wheel.threads.to_string(),
    );
    let secs = |d: Duration| format!("{:.3} s", d.as_secs_f64());
    row("걸린 시간", secs(threads.wall), secs(wheel.wall));
    row("CPU 시간 (user + sys)", secs(threads.cpu), secs(wheel.cpu));
    let passes = |m: &Measured| format!("{} / {}", m.passes, m.polls);
    row(
        "join_all의 poll 횟수 / 안쪽 poll 수",
        passes(&threads),
        passes(&wheel),
    );
    let mem = |kb: u64| format!("{:.1} MiB", mib(kb));
    row(
        "최대 메모리 (VmHWM)",
        mem(threads.peak_kb),
        mem(wheel.peak_kb),
    );
    row(
        "  그중 시작할 때 이미 (VmRSS)",
        mem(threads.start_rss_kb),
        mem(wheel.start_rss_kb),
    );
    let per_sleep = |m: &Measured| {
        let bytes = m.peak_kb.saturating_sub(m.start_rss_kb) * 1024 / MANY as u64;
        format!("{bytes} B")
    };
    row(
        "잠 하나에 드는 메모리 (대략)",
        per_sleep(&threads),
        per_sleep(&wheel),
    );
    println!(
        "ThreadSleep은 잠마다 OS 스레드를 하나씩 띄운다 (+ main). Sleep은 main과 tiny-asyncio-timer 스레드 하나로 모든 잠을 처리한다."
    );
    println!(
        "스레드들은 하나씩 따로 깨우고, 타이머 스레드는 때가 된 잠을 한꺼번에 깨운다. 깨어날 때마다 남은 future를 모두 다시 poll하는 join_all의 비용도 CPU 시간에 들어 있다 (7장의 gather는 깨어난 것만 poll한다)."
    );
}

fn main() {
    let args = CLI.from_env();
    match args.value("--side") {
        None => {}
        Some("threads") => return print_measured(&measure(Side::Threads)),
        Some("wheel") => return print_measured(&measure(Side::Wheel)),
        Some(other) => CLI.refuse(format!(
            "`--side` wants `threads` or `wheel`, not `{other}`; run with no arguments to compare both"
        )),
    }
    let (picture, unit) = (args.picture, args.unit);
    let mut panels = Vec::new();

    println!("== E003-1: asyncio.sleep(1) → tiny_asyncio::sleep(1초) ==");
    let stamp = Stamp::now();
    block_on_showing_wakes(&stamp, async {
        stamp.line("before wait");
        sleep(unit).await;
        stamp.line("after wait 1 second");
    });
    println!("걸린 시간: {:.3} s (문서: 1 단위)", stamp.elapsed());
    panels.push(stamp.timeline("E003-1: sleep(1)", "wait"));

    println!();
    println!("== E002-5: task_with_delay(1)를 두 번 차례로 await ==");
    let stamp = Stamp::now();
    let sum = block_on_showing_wakes(&stamp, async {
        let val1 = task_with_delay(1, &stamp, unit).await;
        let val2 = task_with_delay(1, &stamp, unit).await;
        stamp.line(&format!("합계: {}", val1 + val2));
        val1 + val2
    });
    println!(
        "걸린 시간: {:.3} s (문서: 2 단위), 돌려받은 값: {sum}",
        stamp.elapsed()
    );
    panels.push(stamp.timeline("E002-5: 1 + 1", "execute"));

    println!();
    println!("== E004-5: say_after(1, 'hello'), say_after(2, 'world')를 차례로 await ==");
    let stamp = Stamp::now();
    block_on_showing_wakes(&stamp, async {
        stamp.line(&format!("started at {:.3} s", stamp.elapsed()));
        say_after(1, "hello", &stamp, unit).await;
        say_after(2, "world", &stamp, unit).await;
        stamp.line(&format!("finished at {:.3} s", stamp.elapsed()));
    });
    println!(
        "걸린 시간: {:.3} s (문서: 3 단위, 기다림이 차례로 더해진다: 1 + 2)",
        stamp.elapsed()
    );
    panels.push(stamp.timeline("E004-5: 1 + 2", "main"));
    if picture.wants_picture() {
        println!();
        exit_if_picture_failed(picture.show_panels(&panels));
    }

    println!();
    compare();
}
