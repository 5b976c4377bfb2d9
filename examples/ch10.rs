//! Chapter 10: what we gained (E001-1, E004-7).
//!
//! `cargo run --example ch10` takes about 15 s:
//!
//! * E001-1: three jobs of 3, 2 and 1 steps (one step = 100 ms), run
//!   sequentially, concurrently as tasks on one thread, and in parallel on
//!   pool threads; once with waiting steps, once with computing steps (three
//!   rounds, keeping the fastest run of each way); with their timelines
//!   drawn and their totals side by side.
//! * E004-7: N sleeping OS threads against N sleeping tasks (each sleeps
//!   1 s), for N = 1,000 and 10,000 threads and up to 100,000 tasks: time to
//!   start them, total time, peak memory, context switches. Each row runs in
//!   a fresh child process (this same program, re-executed with
//!   `--crowd <threads|tasks> <N>`), because peak memory is per process.
//!
//! Options: `--unit-ms N` (the E001-1 step, default 100), `--nap-ms N` (the
//! E004-7 sleep, default 1000). `--timeline` also draws the computing jobs'
//! three ways from traces of the real runs (which task or pool thread ran
//! when), side by side as the document does; `--svg FILE` writes the three
//! panels as SVG.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{exit_if_picture_failed, pad, run_traced, short_pool_names, usage_error};
use tiny_asyncio::ThreadPool;
use tiny_asyncio::ch10_measure::{
    CrowdReport, E001_1_STEPS, Sleepers, Timeline, Way, Work, calibrate, concurrent, draw,
    parallel, sequential, sleeping_tasks, sleeping_threads,
};
use tiny_asyncio::timeline::PictureArgs;
use tiny_asyncio::trace::Trace;

/// The crowds of E004-7, in table order.
const CROWDS: [(Sleepers, usize); 5] = [
    (Sleepers::Threads, 1_000),
    (Sleepers::Threads, 10_000),
    (Sleepers::Tasks, 1_000),
    (Sleepers::Tasks, 10_000),
    (Sleepers::Tasks, 100_000),
];

/// How many times the computing jobs run (the fastest of each way is kept).
const COMPUTING_ROUNDS: usize = 3;

struct Options {
    unit: Duration,
    nap: Duration,
    /// Child mode: measure this one crowd and print its report line.
    crowd: Option<(Sleepers, usize)>,
}

/// Reads the options from the arguments that are not about pictures.
fn options(args: Vec<String>) -> Options {
    let usage = "cargo run --example ch10 [-- --unit-ms N] [--nap-ms N] \
                 [--timeline] [--svg FILE] (internal: --crowd threads|tasks COUNT)";
    let mut options = Options {
        unit: Duration::from_millis(100),
        nap: Duration::from_secs(1),
        crowd: None,
    };
    let millis = |value: Option<&String>, flag: &str| -> Duration {
        match value.map(|v| v.parse::<u64>()) {
            Some(Ok(ms)) if ms > 0 => Duration::from_millis(ms),
            _ => usage_error(
                format!("{flag} wants a whole number of milliseconds above 0"),
                usage,
            ),
        }
    };
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--unit-ms" => options.unit = millis(args.get(i + 1), "--unit-ms"),
            "--nap-ms" => options.nap = millis(args.get(i + 1), "--nap-ms"),
            "--crowd" => {
                let sleepers = args.get(i + 1).map(|s| s.parse::<Sleepers>());
                let count = args.get(i + 2).map(|s| s.parse::<usize>());
                match (sleepers, count) {
                    (Some(Ok(sleepers)), Some(Ok(count))) if count > 0 => {
                        options.crowd = Some((sleepers, count));
                    }
                    _ => usage_error(
                        "--crowd wants `threads` or `tasks` and a count above 0",
                        usage,
                    ),
                }
                i += 1;
            }
            other => usage_error(format!("unknown argument {other:?}"), usage),
        }
        i += 2;
    }
    options
}

/// `12345678` as `12,345,678`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown CPU", |(_, model)| model.trim())
        .to_owned();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let build = if cfg!(debug_assertions) {
        "debug build"
    } else {
        "release build"
    };
    format!("{cpus} CPUs ({model}), Linux {}, {build}", kernel.trim())
}

/// Runs the jobs one `way` on a fresh loop (asyncio.run), with the loop's
/// trace switched on if `traced`; gives the measured timeline and the trace
/// (empty unless traced).
fn one_way(way: Way, pool: &ThreadPool, work: Work, traced: bool) -> (Timeline, Trace) {
    run_traced(traced, async {
        match way {
            Way::Sequential => sequential(&E001_1_STEPS, work).await,
            Way::Concurrent => concurrent(&E001_1_STEPS, work).await,
            Way::Parallel => parallel(pool, &E001_1_STEPS, work).await,
        }
    })
}

/// The picture of one way's trace: the concurrent run's tasks 1, 2, 3 are
/// the jobs A, B, C; pool threads get short names.
fn picture_of(way: Way, mut trace: Trace) -> tiny_asyncio::timeline::Timeline {
    if way == Way::Concurrent {
        for (id, (letter, steps)) in (1..).zip(['A', 'B', 'C'].iter().zip(E001_1_STEPS)) {
            trace.names.insert(id, format!("{letter} ({steps})"));
        }
    }
    let mut timeline = trace.to_timeline(way.label());
    short_pool_names(&mut timeline);
    timeline
}

fn e001_1(unit: Duration, picture: &PictureArgs) {
    println!("== E001-1: 같은 세 작업 (3, 2, 1 단계), 순차 / 동시성 / 병렬 ==");
    println!(
        "한 단계 = {} ms. `=` 기다리는 중 (sleep), `#` 계산 중, `.` 쉬는 중\n",
        unit.as_millis()
    );
    let pool = ThreadPool::new(E001_1_STEPS.len());
    let ways = [Way::Sequential, Way::Concurrent, Way::Parallel];
    let three_ways = |work: Work, traced: bool| -> Vec<(Timeline, Trace)> {
        ways.map(|way| one_way(way, &pool, work, traced)).into()
    };

    println!("-- 기다리는 작업 (I/O처럼)");
    let waiting: Vec<Timeline> = three_ways(Work::Wait(unit), false)
        .into_iter()
        .map(|(timeline, _)| timeline)
        .collect();
    println!("{}", draw(&waiting, unit));

    // Other programs can only make computing slower, never faster: of a few
    // rounds, the fastest run of each way is the one least disturbed.
    println!("-- 계산하는 작업 (CPU), {COMPUTING_ROUNDS}번 돌려 방식마다 가장 빠른 것");
    let work = Work::Compute(calibrate(unit));
    let traced = picture.wants_picture();
    let mut computing = three_ways(work, traced);
    for _ in 1..COMPUTING_ROUNDS {
        for (best, next) in computing.iter_mut().zip(three_ways(work, traced)) {
            if next.0.total < best.0.total {
                *best = next;
            }
        }
    }
    let (computing, traces): (Vec<Timeline>, Vec<Trace>) = computing.into_iter().unzip();
    // A computing step's length depends on the machine's mood, so measure
    // these pictures in the sequential run's own average step: sequential
    // is 6 units by definition, and the other two read as its multiples.
    let total_steps: u32 = E001_1_STEPS.iter().sum();
    let step = computing[0].total / total_steps;
    println!(
        "(1 단위 = 순차 실행의 평균 단계 = 계산 {:.1} ms)",
        step.as_secs_f64() * 1e3
    );
    println!("{}", draw(&computing, step));

    let units = |t: &Timeline, unit: Duration| t.total.as_secs_f64() / unit.as_secs_f64();
    println!("{:<22} {:>16} {:>16}", "", "waiting jobs", "computing jobs");
    for (waits, computes) in waiting.iter().zip(&computing) {
        println!(
            "{} {:>10.2} units {:>10.2} units",
            pad(waits.way.label(), 22),
            units(waits, unit),
            units(computes, step)
        );
    }
    println!(
        "기다림은 한 스레드에서도 겹친다 (합 6 → 최대 3). 계산은 한 스레드에서 번갈아 해도 합 그대로이고,\n\
         병렬 스레드만 줄인다 (코어 {}개까지).\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if traced {
        println!("-- 계산하는 작업, 루프의 트레이스로 그린 그림 (위의 가장 빠른 실행들)");
        let panels: Vec<_> = ways
            .into_iter()
            .zip(traces)
            .map(|(way, trace)| picture_of(way, trace))
            .collect();
        exit_if_picture_failed(picture.show_panels(&panels));
        println!();
    }
}

/// Re-runs this program as a child that measures one crowd.
fn measure_in_child(
    sleepers: Sleepers,
    count: usize,
    nap: Duration,
) -> Result<CrowdReport, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let output = Command::new(exe)
        .args([
            "--crowd",
            sleepers.as_str(),
            &count.to_string(),
            "--nap-ms",
            &nap.as_millis().to_string(),
        ])
        .output()
        .map_err(|e| format!("cannot start a child process: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(CrowdReport::from_line)
        .ok_or_else(|| {
            format!(
                "the child measuring {count} {} gave no report ({}): {}",
                sleepers.as_str(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )
        })
}

fn e004_7(nap: Duration) {
    println!(
        "== E004-7: 잠자는 스레드 N개 대 잠자는 태스크 N개 (각각 {} ms) ==",
        nap.as_millis()
    );
    println!("(각 줄은 새 자식 프로세스에서 잰다: 최대 메모리 VmHWM은 프로세스마다 하나뿐이다)\n");
    println!(
        "{:<8} {:>8} {:>10} {:>9} {:>10} {:>12} {:>11} {:>10}",
        "kind", "N", "start", "total", "peak RSS", "per sleeper", "reserved", "switches"
    );
    let mut reports = Vec::new();
    for (sleepers, count) in CROWDS {
        match measure_in_child(sleepers, count, nap) {
            Ok(report) => {
                println!(
                    "{:<8} {:>8} {:>7.1} ms {:>7.3} s {:>6.1} MiB {:>8.1} KiB {:>7.1} GiB {:>10}",
                    report.sleepers.as_str(),
                    grouped(report.count as u64),
                    report.start.as_secs_f64() * 1e3,
                    report.total.as_secs_f64(),
                    report.peak_rss_kb as f64 / 1024.0,
                    report.bytes_per_sleeper() as f64 / 1024.0,
                    report.peak_virtual_kb as f64 / (1024.0 * 1024.0),
                    grouped(report.switches)
                );
                reports.push(report);
            }
            Err(error) => println!(
                "{:<8} {:>8}  failed: {error}",
                sleepers.as_str(),
                grouped(count as u64)
            ),
        }
    }
    println!(
        "\nstart: 모두 시작시키는 데 걸린 시간; total: 마지막 하나가 끝날 때까지; peak RSS: 프로세스의 VmHWM;\n\
         per sleeper: (VmHWM - 시작 전 VmRSS) / N; reserved: VmPeak (예약한 주소 공간);\n\
         switches: 관련된 모든 스레드의 문맥 교환 (자발적 + 비자발적).\n\
         스레드마다 커널 스택(16 KiB)도 드는데, 이것은 RSS에 잡히지 않는다."
    );
    let find = |sleepers, count| {
        reports
            .iter()
            .find(|r| r.sleepers == sleepers && r.count == count)
    };
    if let (Some(threads), Some(tasks)) = (
        find(Sleepers::Threads, 10_000),
        find(Sleepers::Tasks, 10_000),
    ) {
        println!(
            "\nN = 10,000: 태스크는 스레드보다 메모리 {:.0}배 적게, 시작 {:.0}배 빠르게, 문맥 교환 {}번 대 {}번.",
            threads.bytes_per_sleeper() as f64 / tasks.bytes_per_sleeper().max(1) as f64,
            threads.start.as_secs_f64() / tasks.start.as_secs_f64().max(1e-9),
            grouped(tasks.switches),
            grouped(threads.switches)
        );
    }
}

fn main() {
    let (picture, args) = PictureArgs::from_env_split();
    let options = options(args);
    if let Some((sleepers, count)) = options.crowd {
        let report = match sleepers {
            Sleepers::Threads => sleeping_threads(count, options.nap),
            Sleepers::Tasks => sleeping_tasks(count, options.nap),
        };
        match report {
            Ok(report) => println!("{}", report.to_line()),
            Err(error) => {
                eprintln!("measuring {count} {}: {error}", sleepers.as_str());
                std::process::exit(1);
            }
        }
        return;
    }

    println!("machine: {}\n", machine());
    e001_1(options.unit, &picture);
    e004_7(options.nap);
}
