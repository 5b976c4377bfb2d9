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
//! `--unit-ms N` sets the story's unit, as in every example, and every
//! duration here is counted in it: an E001-1 step is one unit, an E004-7
//! sleeper sleeps `NAP_UNITS` units. E001-1's picture has no clock, so the
//! default unit here is 100 ms rather than the documents' 1 s (the three
//! ways then take seconds, not a minute, and a sleeper sleeps 1 s).
//! `--timeline` also draws the computing jobs' three ways from traces of the
//! real runs (which task or pool thread ran when), side by side as the
//! document does; `--svg FILE` writes the three panels as SVG.
//!
//! The conclusion it prints is worked out from what this run measured,
//! against what each way should give (`expected_share`); when the machine
//! was too busy for the figures to show it, it says so rather than repeat
//! the book.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{exit_if_picture_failed, pad, run_traced, short_pool_names};
use tiny_asyncio::ThreadPool;
use tiny_asyncio::ch10_measure::{
    CrowdReport, E001_1_STEPS, JobsRun, Sleepers, Way, Work, calibrate, concurrent, draw, parallel,
    sequential, sleeping_tasks, sleeping_threads,
};
use tiny_asyncio::cli::{Cli, Opt, PictureArgs};
use tiny_asyncio::timeline::Timeline;
use tiny_asyncio::trace::Trace;

/// The command line: `--help`, `--unit-ms N`, the picture flags, and the
/// child's `--crowd`.
const CLI: Cli = Cli::new(
    "ch10",
    "E001-1 and E004-7: what we gained, measured (threads against tasks)",
)
.unit(Duration::from_millis(100))
.pictures()
.options(&[Opt {
    flag: "--crowd",
    values: &["threads|tasks", "COUNT"],
    help: "measure one E004-7 crowd and print its report line (what the example runs in its child processes)",
}]);

/// How long an E004-7 sleeper sleeps, in units (1 s at the default unit).
const NAP_UNITS: u32 = 10;

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

/// The one crowd a child process measures (`--crowd threads 1000`).
fn crowd(args: &tiny_asyncio::cli::Args) -> Option<(Sleepers, usize)> {
    let values = args.values("--crowd")?;
    match (values[0].parse::<Sleepers>(), values[1].parse::<usize>()) {
        (Ok(sleepers), Ok(count)) if count > 0 => Some((sleepers, count)),
        _ => CLI.refuse(format!(
            "`--crowd` wants `threads` or `tasks` and a count above 0, not `{} {}`",
            values[0], values[1]
        )),
    }
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
fn one_way(way: Way, pool: &ThreadPool, work: Work, traced: bool) -> (JobsRun, Trace) {
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
fn picture_of(way: Way, mut trace: Trace) -> Timeline {
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
    let three_ways = |work: Work, traced: bool| -> Vec<(JobsRun, Trace)> {
        ways.map(|way| one_way(way, &pool, work, traced)).into()
    };

    println!("-- 기다리는 작업 (I/O처럼)");
    let waiting: Vec<JobsRun> = three_ways(Work::Wait(unit), false)
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
    let (computing, traces): (Vec<JobsRun>, Vec<Trace>) = computing.into_iter().unzip();
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

    let units = |t: &JobsRun, unit: Duration| t.total.as_secs_f64() / unit.as_secs_f64();
    println!("{:<22} {:>16} {:>16}", "", "waiting jobs", "computing jobs");
    for (waits, computes) in waiting.iter().zip(&computing) {
        println!(
            "{} {:>10.2} units {:>10.2} units",
            pad(waits.way.label(), 22),
            units(waits, unit),
            units(computes, step)
        );
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // What this run's figures say, each against what its way should give.
    let [seq_wait, conc_wait, _] = [0, 1, 2].map(|i| units(&waiting[i], unit));
    let [seq_compute, conc_compute, par_compute] = [0, 1, 2].map(|i| units(&computing[i], step));
    let checks = [
        Check {
            claim: "기다림은 한 스레드에서도 겹친다 (동시성)",
            measured: conc_wait,
            sequential: seq_wait,
            expected: expected_share(Way::Concurrent, Work::Wait(unit), cores),
        },
        Check {
            claim: "계산은 한 스레드에서 번갈아 해도 줄지 않는다 (동시성)",
            measured: conc_compute,
            sequential: seq_compute,
            expected: expected_share(Way::Concurrent, work, cores),
        },
        Check {
            claim: "병렬 스레드만 계산을 줄인다 (병렬)",
            measured: par_compute,
            sequential: seq_compute,
            expected: expected_share(Way::Parallel, work, cores),
        },
    ];
    for check in &checks {
        println!("{}", check.verdict());
    }
    if checks.iter().any(|check| !check.holds()) {
        println!(
            "(이 실행의 측정 일부가 예상과 다르다: 다른 프로그램이 CPU를 나눠 쓰면 계산이 느려진다. 한가할 때 다시 돌려 보라.)"
        );
    }
    println!();
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

/// What a way should take, as a share of the sequential run, for the jobs
/// of E001-1 (3, 2 and 1 steps: 6 in all, 3 the longest) on `cores` cores.
/// Waiting overlaps on one thread: the longest job, 3 of 6. Computing on
/// one thread takes turns: all 6. Computing on threads spreads over the
/// cores: the longest job, or the work divided among the cores if that is
/// more.
fn expected_share(way: Way, work: Work, cores: usize) -> f64 {
    let total: u32 = E001_1_STEPS.iter().sum();
    let longest = E001_1_STEPS.iter().copied().max().unwrap_or(0);
    let (total, longest) = (f64::from(total), f64::from(longest));
    let steps = match (way, work) {
        (Way::Sequential, _) => total,
        (_, Work::Wait(_)) => longest,
        (Way::Concurrent, Work::Compute(_)) => total,
        (Way::Parallel, Work::Compute(_)) => longest.max(total / cores as f64),
    };
    steps / total
}

/// One claim of the chapter, held against this run's figures.
struct Check {
    /// What the book says.
    claim: &'static str,
    /// What the way measured, in units.
    measured: f64,
    /// What the sequential run measured, in the same units.
    sequential: f64,
    /// What the way should take, as a share of the sequential run.
    expected: f64,
}

impl Check {
    /// How far a measured share may stray from the expected one and still
    /// count as showing the claim: a loaded machine moves a computing run
    /// by a few tenths of a unit, and the claims differ by half.
    const TOLERANCE: f64 = 0.15;

    fn share(&self) -> f64 {
        self.measured / self.sequential.max(f64::MIN_POSITIVE)
    }

    fn holds(&self) -> bool {
        (self.share() - self.expected).abs() <= Self::TOLERANCE
    }

    /// The line this run earns: the claim, with the figures that show it,
    /// or a plain "these figures cannot tell" with what was expected.
    fn verdict(&self) -> String {
        let figures = format!(
            "{:.2} 단위, 순차 {:.2} 단위의 {:.0}% (예상 {:.0}%)",
            self.measured,
            self.sequential,
            self.share() * 100.0,
            self.expected * 100.0
        );
        if self.holds() {
            format!("- {}: {figures}.", self.claim)
        } else {
            format!(
                "- {}? 이 실행으로는 결론을 낼 수 없다: {figures}.",
                self.claim
            )
        }
    }
}

/// Re-runs this program as a child that measures one crowd.
fn measure_in_child(
    sleepers: Sleepers,
    count: usize,
    unit: Duration,
) -> Result<CrowdReport, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let output = Command::new(exe)
        .args([
            "--crowd",
            sleepers.as_str(),
            &count.to_string(),
            "--unit-ms",
            &unit.as_millis().to_string(),
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

fn e004_7(unit: Duration) {
    let nap = unit * NAP_UNITS;
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
        match measure_in_child(sleepers, count, unit) {
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
    let args = CLI.from_env();
    let unit = args.unit;
    if let Some((sleepers, count)) = crowd(&args) {
        let nap = unit * NAP_UNITS;
        let report = match sleepers {
            Sleepers::Threads => sleeping_threads(count, nap),
            Sleepers::Tasks => sleeping_tasks(count, nap),
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
    e001_1(unit, &args.picture);
    e004_7(unit);
}
