//! The benchmark: `cargo run --release --example bench` runs every workload,
//! `cargo run --release --example bench -- <workload>` runs one.
//!
//! Each workload runs in a process of its own (the example re-executes
//! itself), because peak memory (`VmHWM`) is a per-process figure. Each run
//! prints exactly one line that other tools can read:
//!
//! ```text
//! workload=<name> runtime=tiny-asyncio wall_s=<x> <metric>=<v> … peak_rss_mib=<m>
//! ```
//!
//! and the whole run ends with a table. Timing uses `Instant` inside the
//! process, from just before the first spawn to just after the last result;
//! the body of each workload is itself a spawned task that the entry point
//! only waits for.
//!
//! What each workload shows a learner:
//! * W1 `spawn`: what one task costs (spawn, one poll, its result).
//! * W2 `sleepers`: 100,000 tasks sleeping one second at once take one
//!   second, not 100,000 (the documents' central claim, made measurable).
//! * W3 `timeouts`: arming and cancelling a timer (`wait_for`'s cost).
//! * W4 `pingpong`: one wake and one poll, back and forth.
//! * W5 `blocking`: `run_in_executor` throughput of the thread pool.
//! * W6 `precision`: how late a 1 ms sleep wakes.
//! * W7 `docs`: E000-4 itself: three tasks of 3, 2 and 1 one-second sleeps
//!   take 3 s; how far past 3 s?
//! * W8 `gather`: waiting for 100,000 children at once.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tiny_asyncio::ch10_measure::ProcStatus;
use tiny_asyncio::cli::Cli;
use tiny_asyncio::{ThreadPool, gather, run, sleep, spawn, timeout, yield_now};

/// A workload runs and returns its wall time in seconds and its metrics.
type Workload = fn() -> (f64, String);

/// Every workload, by name.
const WORKLOADS: &[(&str, Workload)] = &[
    ("spawn", w1_spawn),
    ("sleepers", w2_sleepers),
    ("timeouts", w3_timeouts),
    ("pingpong", w4_pingpong),
    ("blocking", w5_blocking),
    ("precision", w6_precision),
    ("docs", w7_docs),
    ("gather", w8_gather),
];

/// The command line: `--help` and an optional workload name.
const CLI: Cli = Cli::new(
    "bench",
    "the benchmark: every workload, each in a child process (run it with --release)",
)
.operand(
    "WORKLOAD",
    "run only this one: spawn, sleepers, timeouts, pingpong, blocking, precision, docs or gather",
);

fn main() {
    let args = CLI.from_env();
    match args.operand.as_deref() {
        None => run_all(),
        Some(name) => match WORKLOADS.iter().find(|(n, _)| *n == name) {
            Some((name, workload)) => run_one(name, *workload),
            None => {
                let names: Vec<&str> = WORKLOADS.iter().map(|(n, _)| *n).collect();
                CLI.refuse(format!(
                    "no workload named {name:?}; choose one of {names:?}, or none for all"
                ));
            }
        },
    }
}

/// Runs one workload in this process and prints its line.
fn run_one(name: &str, workload: Workload) {
    let (wall_s, metrics) = workload();
    println!(
        "workload={name} runtime=tiny-asyncio wall_s={wall_s:.3} {metrics} peak_rss_mib={:.1}",
        peak_rss_mib()
    );
}

/// Runs every workload in a child process, echoes each line, then the table.
fn run_all() {
    let exe = std::env::current_exe().expect("bench: cannot find its own executable");
    let mut lines = Vec::new();
    for (name, _) in WORKLOADS {
        let output = Command::new(&exe)
            .arg(name)
            .output()
            .expect("bench: cannot start a child process");
        let stdout = String::from_utf8_lossy(&output.stdout);
        match stdout.lines().find(|l| l.starts_with("workload=")) {
            Some(line) if output.status.success() => {
                println!("{line}");
                lines.push(line.to_string());
            }
            _ => {
                eprintln!(
                    "bench: workload {name} failed ({}):\n{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                );
                std::process::exit(1);
            }
        }
    }
    println!();
    println!("| workload | wall_s | metrics | peak_rss_mib |");
    println!("|---|---:|---|---:|");
    for line in &lines {
        let mut name = "";
        let mut wall = "";
        let mut rss = "";
        let mut metrics = Vec::new();
        for field in line.split_whitespace() {
            match field.split_once('=') {
                Some(("workload", v)) => name = v,
                Some(("wall_s", v)) => wall = v,
                Some(("peak_rss_mib", v)) => rss = v,
                Some(("runtime", _)) => {}
                _ => metrics.push(field),
            }
        }
        println!("| {name} | {wall} | {} | {rss} |", metrics.join(" "));
    }
}

/// Peak resident memory of this process (`VmHWM`), read by chapter 10's
/// `ProcStatus`; NaN where there is no `/proc`.
fn peak_rss_mib() -> f64 {
    ProcStatus::of_process().map_or(f64::NAN, |status| status.vm_hwm_kb as f64 / 1024.0)
}

/// Runs `body` as a spawned task on a fresh loop and returns its output.
fn in_task<F>(body: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    run(async move { spawn(body).await.expect("bench: the workload task failed") })
}

/// W1: spawn 1,000,000 tasks returning their index, keep every handle,
/// await them in order, check the sum.
fn w1_spawn() -> (f64, String) {
    const N: u64 = 1_000_000;
    let (wall, sum) = in_task(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..N).map(|i| spawn(async move { i })).collect();
        let mut sum = 0u64;
        for handle in handles {
            sum += handle.await.expect("a W1 task failed");
        }
        (start.elapsed(), sum)
    });
    let ok = sum == N * (N - 1) / 2;
    let wall_s = wall.as_secs_f64();
    (
        wall_s,
        format!("tasks_per_s={:.0} sum_ok={ok}", N as f64 / wall_s),
    )
}

/// W2: 100,000 tasks each sleeping 1 s, all awaited (ideal 1.000 s).
fn w2_sleepers() -> (f64, String) {
    const N: usize = 100_000;
    let wall = in_task(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..N)
            .map(|_| spawn(sleep(Duration::from_secs(1))))
            .collect();
        for handle in handles {
            handle.await.expect("a W2 task failed");
        }
        start.elapsed()
    });
    let wall_s = wall.as_secs_f64();
    (
        wall_s,
        format!("tasks={N} overshoot_ms={:.3}", (wall_s - 1.0) * 1e3),
    )
}

/// A future that is `Pending` once (waking itself), then `Ready`.
struct PendingOnce(bool);

impl Future for PendingOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// W3: 1,000,000 sequential `timeout(10 s, f)` where `f` is pending once, so
/// a timer is armed and cancelled every time.
fn w3_timeouts() -> (f64, String) {
    const N: u32 = 1_000_000;
    let wall = in_task(async {
        let start = Instant::now();
        for _ in 0..N {
            timeout(Duration::from_secs(10), PendingOnce(false))
                .await
                .expect("a W3 timeout elapsed");
        }
        start.elapsed()
    });
    let wall_s = wall.as_secs_f64();
    (
        wall_s,
        format!("ns_per_op={:.0}", wall_s * 1e9 / f64::from(N)),
    )
}

/// The ping-pong's token, passed from one task to the other: a flag and a
/// waker under a mutex, the smallest std-only way for one task to wake
/// another. (Not chapter 3's `Signal`, which a thread waits on.)
#[derive(Default)]
struct Baton {
    inner: Mutex<(bool, Option<Waker>)>,
}

impl Baton {
    fn set(&self) {
        let waker = {
            let mut inner = self.inner.lock().unwrap();
            inner.0 = true;
            inner.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    async fn wait(&self) {
        poll_fn(|cx| {
            let mut inner = self.inner.lock().unwrap();
            if std::mem::take(&mut inner.0) {
                Poll::Ready(())
            } else {
                inner.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }
}

/// W4: two tasks hand a token back and forth 1,000,000 times.
fn w4_pingpong() -> (f64, String) {
    const ROUNDS: u32 = 1_000_000;
    let wall = in_task(async {
        let ping = Arc::new(Baton::default());
        let pong = Arc::new(Baton::default());
        let start = Instant::now();
        let other = {
            let (ping, pong) = (ping.clone(), pong.clone());
            spawn(async move {
                for _ in 0..ROUNDS {
                    ping.wait().await;
                    pong.set();
                }
            })
        };
        for _ in 0..ROUNDS {
            ping.set();
            pong.wait().await;
        }
        other.await.expect("the W4 partner failed");
        start.elapsed()
    });
    let wall_s = wall.as_secs_f64();
    (
        wall_s,
        format!("ns_per_rt={:.0}", wall_s * 1e9 / f64::from(ROUNDS)),
    )
}

/// W5: 2,000 jobs of `thread::sleep(1 ms)` on an 8-thread pool (ideal 0.250 s).
fn w5_blocking() -> (f64, String) {
    const JOBS: u32 = 2_000;
    let wall = in_task(async {
        let pool = ThreadPool::new(8);
        let start = Instant::now();
        let handles: Vec<_> = (0..JOBS)
            .map(|_| pool.run_in_executor(|| std::thread::sleep(Duration::from_millis(1))))
            .collect();
        for handle in handles {
            handle.await.expect("a W5 job failed");
        }
        start.elapsed()
    });
    let wall_s = wall.as_secs_f64();
    (
        wall_s,
        format!("jobs_per_s={:.0}", f64::from(JOBS) / wall_s),
    )
}

/// W6: 1,000 sequential `sleep(1 ms)` (ideal 1.000 s).
fn w6_precision() -> (f64, String) {
    const N: u32 = 1_000;
    let (wall, mean, max) = in_task(async {
        let mut total = Duration::ZERO;
        let mut worst = Duration::ZERO;
        let start = Instant::now();
        for _ in 0..N {
            let asked = Duration::from_millis(1);
            let before = Instant::now();
            sleep(asked).await;
            let over = before.elapsed().saturating_sub(asked);
            total += over;
            worst = worst.max(over);
        }
        (start.elapsed(), total / N, worst)
    });
    let metrics = format!(
        "mean_oversleep_us={:.1} max_oversleep_us={:.1}",
        mean.as_secs_f64() * 1e6,
        max.as_secs_f64() * 1e6
    );
    (wall.as_secs_f64(), metrics)
}

/// W7: E000-4 without printing: three tasks of 3, 2 and 1 sequential 1 s
/// sleeps (ideal 3.000 s).
fn w7_docs() -> (f64, String) {
    let wall = in_task(async {
        let start = Instant::now();
        let handles: Vec<_> = [3u32, 2, 1]
            .into_iter()
            .map(|users| {
                spawn(async move {
                    for _ in 0..users {
                        sleep(Duration::from_secs(1)).await;
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("a W7 task failed");
        }
        start.elapsed()
    });
    let wall_s = wall.as_secs_f64();
    (wall_s, format!("overshoot_ms={:.3}", (wall_s - 3.0) * 1e3))
}

/// W8: `gather` of 100,000 children that each yield once.
fn w8_gather() -> (f64, String) {
    const N: usize = 100_000;
    let wall = in_task(async {
        let start = Instant::now();
        let children = (0..N).map(|i| async move {
            yield_now().await;
            i
        });
        let outputs = gather(children).await;
        assert_eq!(outputs.len(), N);
        start.elapsed()
    });
    let wall_s = wall.as_secs_f64();
    (
        wall_s,
        format!("ns_per_child={:.0}", wall_s * 1e9 / N as f64),
    )
}
