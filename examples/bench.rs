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
//! and the whole run ends with a table. `--task safe` spawns chapter 5's
//! task (chapter 6's `spawn`: two allocations and a lock) instead of the
//! crate root's one-allocation task (chapter 13, the default, `--task raw`),
//! so the two can be measured side by side: `-- --task safe spawn`.
//! Timing uses `Instant` inside the
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
//! * W9 `queue`: 1,000,000 items through a `Queue(1024)` from one task to
//!   another (chapter 11): what a put and a get cost, waits included.
//! * W10 `lock`: two tasks taking a `Lock` in turn 1,000,000 times, each
//!   holding it across a yield, so every take waits and is handed over.
//! * W11 `echo`: 100 connections each doing 1,000 round trips of 64 bytes
//!   with an echo server on the same loop, over loopback sockets: what one
//!   round trip through the selector costs when many are in flight.
//! * W12 `latency`: one connection, 10,000 round trips: how long one
//!   request waits for its answer when it is alone (median and p99).

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tiny_asyncio::ch10_measure::ProcStatus;
use tiny_asyncio::cli::{Cli, Opt};
use tiny_asyncio::{JoinHandle, Lock, Queue, ThreadPool, gather, run, sleep, timeout, yield_now};

/// `--task safe`: spawn chapter 5's task rather than chapter 13's.
static SAFE_TASK: AtomicBool = AtomicBool::new(false);

/// The task being measured: the crate root's `spawn` (chapter 13's
/// one-allocation task), or chapter 6's (chapter 5's task) with `--task safe`.
fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if SAFE_TASK.load(Ordering::Relaxed) {
        tiny_asyncio::ch06_join::spawn(future)
    } else {
        tiny_asyncio::spawn(future)
    }
}

/// The name of the task being measured, for the output lines.
fn task_name() -> &'static str {
    if SAFE_TASK.load(Ordering::Relaxed) {
        "safe"
    } else {
        "raw"
    }
}

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
    ("queue", w9_queue),
    ("lock", w10_lock),
    #[cfg(unix)]
    ("echo", w11_echo),
    #[cfg(unix)]
    ("latency", w12_latency),
];

/// The command line: `--help` and an optional workload name.
const CLI: Cli = Cli::new(
    "bench",
    "the benchmark: every workload, each in a child process (run it with --release)",
)
.options(&[Opt {
    flag: "--task",
    values: &["safe|raw"],
    help: "which task to spawn: chapter 5's (safe) or chapter 13's one-allocation task (raw, the default)",
}])
.operand(
    "WORKLOAD",
    "run only this one: spawn, sleepers, timeouts, pingpong, blocking, precision, docs, gather, queue, lock, echo or latency",
);

fn main() {
    let args = CLI.from_env();
    match args.value("--task") {
        None | Some("raw") => {}
        Some("safe") => SAFE_TASK.store(true, Ordering::Relaxed),
        Some(other) => CLI.refuse(format!(
            "--task takes safe (chapter 5's task) or raw (chapter 13's), not {other:?}"
        )),
    }
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
        "workload={name} runtime=tiny-asyncio task={} wall_s={wall_s:.3} {metrics} peak_rss_mib={:.1}",
        task_name(),
        peak_rss_mib()
    );
}

/// Runs every workload in a child process, echoes each line, then the table.
fn run_all() {
    let exe = std::env::current_exe().expect("bench: cannot find its own executable");
    let mut lines = Vec::new();
    for (name, _) in WORKLOADS {
        let output = Command::new(&exe)
            .args(["--task", task_name()])
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
    println!("task: {}", task_name());
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
                Some(("runtime" | "task", _)) => {}
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

/// The echo server of W11 and W12, on the running loop: it accepts
/// `connections` clients and echoes every byte back until each hangs up.
#[cfg(unix)]
fn spawn_echo_server(connections: usize) -> std::net::SocketAddr {
    use tiny_asyncio::TcpListener;
    let mut listener = TcpListener::bind("127.0.0.1:0").expect("bench: bind the echo server");
    let addr = listener
        .local_addr()
        .expect("bench: the echo server's address");
    drop(spawn(async move {
        for _ in 0..connections {
            let (mut stream, _) = listener.accept().await.expect("bench: accept");
            stream.set_nodelay(true).expect("bench: nodelay");
            drop(spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    let n = stream.read(&mut buf).await.expect("bench: server read");
                    if n == 0 {
                        return;
                    }
                    stream
                        .write_all(&buf[..n])
                        .await
                        .expect("bench: server write");
                }
            }));
        }
    }));
    addr
}

/// One client round trip of W11 and W12: write `message`, read it back.
#[cfg(unix)]
async fn round_trip(stream: &mut tiny_asyncio::TcpStream, message: &[u8], buf: &mut [u8]) {
    stream
        .write_all(message)
        .await
        .expect("bench: client write");
    let mut got = 0;
    while got < message.len() {
        let n = stream
            .read(&mut buf[got..message.len()])
            .await
            .expect("bench: client read");
        assert!(n > 0, "bench: the echo server hung up");
        got += n;
    }
}

/// W11: 100 connections x 1,000 round trips of 64 bytes, the echo server
/// on the same loop as the clients.
#[cfg(unix)]
fn w11_echo() -> (f64, String) {
    use tiny_asyncio::TcpStream;
    const CONNECTIONS: usize = 100;
    const ROUND_TRIPS: usize = 1_000;
    let wall = in_task(async {
        let addr = spawn_echo_server(CONNECTIONS);
        // Connect first (on the pool, not timed: W11 is about round trips).
        let mut streams = Vec::new();
        for _ in 0..CONNECTIONS {
            let stream = TcpStream::connect(addr).await.expect("bench: connect");
            stream.set_nodelay(true).expect("bench: nodelay");
            streams.push(stream);
        }
        let start = Instant::now();
        let clients: Vec<_> = streams
            .into_iter()
            .map(|mut stream| {
                spawn(async move {
                    let message = [7u8; 64];
                    let mut buf = [0u8; 64];
                    for _ in 0..ROUND_TRIPS {
                        round_trip(&mut stream, &message, &mut buf).await;
                    }
                })
            })
            .collect();
        for client in clients {
            client.await.expect("a W11 client failed");
        }
        start.elapsed()
    });
    let wall_s = wall.as_secs_f64();
    let trips = (CONNECTIONS * ROUND_TRIPS) as f64;
    (
        wall_s,
        format!(
            "ns_per_rt={:.0} rt_per_s={:.0}",
            wall_s * 1e9 / trips,
            trips / wall_s
        ),
    )
}

/// W12: one connection, 10,000 round trips of 64 bytes, each timed.
#[cfg(unix)]
fn w12_latency() -> (f64, String) {
    use tiny_asyncio::TcpStream;
    const ROUND_TRIPS: usize = 10_000;
    let (wall, mut each) = in_task(async {
        let addr = spawn_echo_server(1);
        let mut stream = TcpStream::connect(addr).await.expect("bench: connect");
        stream.set_nodelay(true).expect("bench: nodelay");
        let message = [7u8; 64];
        let mut buf = [0u8; 64];
        let mut each = Vec::with_capacity(ROUND_TRIPS);
        let start = Instant::now();
        for _ in 0..ROUND_TRIPS {
            let before = Instant::now();
            round_trip(&mut stream, &message, &mut buf).await;
            each.push(before.elapsed());
        }
        (start.elapsed(), each)
    });
    let mean = each.iter().sum::<Duration>() / ROUND_TRIPS as u32;
    each.sort_unstable();
    let at = |q: f64| each[((each.len() as f64 * q) as usize).min(each.len() - 1)];
    (
        wall.as_secs_f64(),
        format!(
            "median_us={:.1} p99_us={:.1} mean_us={:.1} max_us={:.1}",
            at(0.5).as_secs_f64() * 1e6,
            at(0.99).as_secs_f64() * 1e6,
            mean.as_secs_f64() * 1e6,
            each[each.len() - 1].as_secs_f64() * 1e6
        ),
    )
}

/// W9: 1,000,000 items through a `Queue(1024)`, one task putting, another
/// getting; checks the sum.
fn w9_queue() -> (f64, String) {
    const N: u64 = 1_000_000;
    let (wall, sum) = in_task(async {
        let queue = Arc::new(Queue::new(1024));
        let start = Instant::now();
        let consumer = {
            let queue = queue.clone();
            spawn(async move {
                let mut sum = 0u64;
                for _ in 0..N {
                    sum += queue.get().await;
                }
                sum
            })
        };
        for i in 0..N {
            queue.put(i).await;
        }
        let sum = consumer.await.expect("the W9 consumer failed");
        (start.elapsed(), sum)
    });
    let ok = sum == N * (N - 1) / 2;
    let wall_s = wall.as_secs_f64();
    (
        wall_s,
        format!("ns_per_item={:.0} sum_ok={ok}", wall_s * 1e9 / N as f64),
    )
}

/// W10: two tasks take a `Lock` in turn, 500,000 times each (1,000,000
/// takes), each holding it across a `yield_now`, so that the other is
/// always waiting and every release hands the lock over.
fn w10_lock() -> (f64, String) {
    const TAKES: u32 = 1_000_000;
    let (wall, count) = in_task(async {
        let lock = Arc::new(Lock::new());
        let count = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let start = Instant::now();
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let (lock, count) = (lock.clone(), count.clone());
                spawn(async move {
                    for _ in 0..TAKES / 2 {
                        let _guard = lock.lock().await;
                        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        yield_now().await;
                    }
                })
            })
            .collect();
        for taker in takers {
            taker.await.expect("a W10 task failed");
        }
        (
            start.elapsed(),
            count.load(std::sync::atomic::Ordering::Relaxed),
        )
    });
    let wall_s = wall.as_secs_f64();
    (
        wall_s,
        format!(
            "ns_per_op={:.0} takes_ok={}",
            wall_s * 1e9 / f64::from(TAKES),
            count == TAKES
        ),
    )
}
