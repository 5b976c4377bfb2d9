//! Chapter 10: what we gained (E001-1, E004-7).
//!
//! The figures the example prints belong to the machine; these tests check
//! only the relations that must hold anywhere: on the virtual clock,
//! sequential jobs take exactly the sum and concurrent ones exactly the
//! max; a pool runs blocking jobs in parallel; a sleeping thread switches
//! at least once; the `/proc` readers parse what Linux writes.

mod common;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use tiny_asyncio::ch10_measure::{
    CrowdReport, E001_1_STEPS, JobsRun, ProcStatus, Sleepers, TimedStep, Way, Work, calibrate,
    concurrent, draw, parallel, sequential, sleeping_tasks, sleeping_threads, spin, status_field,
    switches_of_live_threads,
};
use tiny_asyncio::{EventLoop, ThreadPool, block_on, run};

const SECOND: Duration = Duration::from_secs(1);

/// The `(start, end)` of each step of `job`, in whole seconds.
fn steps_of(timeline: &JobsRun, job: usize) -> Vec<(u64, u64)> {
    timeline
        .spans
        .iter()
        .filter(|span| span.job == job)
        .map(|span| (span.start.as_secs(), span.end.as_secs()))
        .collect()
}

// ---------------------------------------------------------------------------
// E001-1 on the virtual clock: sum against max, exactly
// ---------------------------------------------------------------------------

/// E001-1, sequential: jobs of 3, 2 and 1 waiting steps, awaited one after
/// another, take exactly 6 s; every step starts when the previous one ends.
/// The jobs finish at 3, 5 and 6 s: seed 001's synchronous latencies
/// (E001-2).
#[test]
fn e001_1_sequential_waits_take_the_sum() {
    let event_loop = EventLoop::with_virtual_clock();
    let timeline = event_loop.run_until_complete(sequential(&E001_1_STEPS, Work::Wait(SECOND)));
    assert_eq!(timeline.way, Way::Sequential);
    assert_eq!(timeline.total, secs(6));
    assert_eq!(steps_of(&timeline, 0), [(0, 1), (1, 2), (2, 3)]);
    assert_eq!(steps_of(&timeline, 1), [(3, 4), (4, 5)]);
    assert_eq!(steps_of(&timeline, 2), [(5, 6)]);
    let finished: Vec<_> = (0..3).map(|job| timeline.finished_at(job)).collect();
    assert_eq!(finished, [secs(3), secs(5), secs(6)]);
}

/// E001-1, concurrent: the same jobs as tasks on one thread take exactly
/// 3 s (the longest job), every job's steps run back to back from 0 s, and
/// the jobs finish at 3, 2 and 1 s: seed 001's asynchronous latencies
/// (E001-2).
#[test]
fn e001_1_concurrent_waits_take_the_max() {
    let event_loop = EventLoop::with_virtual_clock();
    let timeline = event_loop.run_until_complete(concurrent(&E001_1_STEPS, Work::Wait(SECOND)));
    assert_eq!(timeline.way, Way::Concurrent);
    assert_eq!(timeline.total, secs(3));
    assert_eq!(steps_of(&timeline, 0), [(0, 1), (1, 2), (2, 3)]);
    assert_eq!(steps_of(&timeline, 1), [(0, 1), (1, 2)]);
    assert_eq!(steps_of(&timeline, 2), [(0, 1)]);
    let finished: Vec<_> = (0..3).map(|job| timeline.finished_at(job)).collect();
    assert_eq!(finished, [secs(3), secs(2), secs(1)]);
}

/// E001-1, parallel: n jobs that each block for d, on a pool of n threads,
/// take at least d (a sleep is never shorter) and less than n·d (they ran
/// at the same time); every two jobs' steps overlap in time.
#[test]
fn e001_1_parallel_runs_n_blocking_jobs_of_d_in_less_than_n_d() {
    // Long enough that three lazily started workers surely overlap, even on
    // a loaded two-core machine.
    const D: Duration = Duration::from_millis(400);
    let pool = ThreadPool::new(3);
    let timeline = block_on(parallel(&pool, &[1, 1, 1], Work::Wait(D)));
    assert_eq!(timeline.way, Way::Parallel);
    assert!(timeline.total >= D, "{:?}", timeline.total);
    assert!(timeline.total < 3 * D, "{:?}", timeline.total);
    for a in &timeline.spans {
        for b in &timeline.spans {
            assert!(a.start < b.end && b.start < a.end, "{a:?} and {b:?}");
        }
    }
}

/// The same parallel run works inside an event loop too (the loop waits on
/// the pool's jobs), and each job's steps still run in order.
#[test]
fn e001_1_parallel_inside_a_loop_keeps_each_jobs_steps_in_order() {
    let pool = ThreadPool::new(3);
    let timeline = run(parallel(
        &pool,
        &E001_1_STEPS,
        Work::Wait(Duration::from_millis(5)),
    ));
    assert_eq!(timeline.spans.len(), 6);
    for (job, &count) in E001_1_STEPS.iter().enumerate() {
        let spans: Vec<&TimedStep> = timeline.spans.iter().filter(|s| s.job == job).collect();
        assert_eq!(spans.len() as u32, count);
        for pair in spans.windows(2) {
            assert_eq!(pair[1].step, pair[0].step + 1);
            assert!(pair[1].start >= pair[0].end);
        }
    }
    assert!(timeline.total >= Duration::from_millis(15));
}

/// Computing on one thread cannot overlap: the tasks take turns, one step
/// each (A1 B1 C1 A2 B2 A3, the document's "concurrent" picture), and no
/// two steps ever run at the same time.
#[test]
fn e001_1_concurrent_computing_steps_take_turns_and_never_overlap() {
    let timeline = run(concurrent(&E001_1_STEPS, Work::Compute(20_000)));
    let mut spans = timeline.spans.clone();
    spans.sort_by_key(|span| span.start);
    let order: Vec<_> = spans.iter().map(|span| (span.job, span.step)).collect();
    assert_eq!(order, [(0, 1), (1, 1), (2, 1), (0, 2), (1, 2), (0, 3)]);
    for pair in spans.windows(2) {
        assert!(pair[1].start >= pair[0].end, "{pair:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// For any jobs of waiting steps, on the virtual clock: run one after
    /// another they take exactly the sum of their steps; run as tasks,
    /// exactly the longest job; and as tasks each job finishes after its
    /// own steps only.
    #[test]
    fn sequential_takes_the_sum_and_concurrent_the_max_of_any_jobs(
        steps in proptest::collection::vec(0u32..5, 0..6),
    ) {
        let sum: u32 = steps.iter().sum();
        let max = steps.iter().copied().max().unwrap_or(0);
        let event_loop = EventLoop::with_virtual_clock();
        let one_by_one = event_loop.run_until_complete(sequential(&steps, Work::Wait(SECOND)));
        let together = event_loop.run_until_complete(concurrent(&steps, Work::Wait(SECOND)));
        prop_assert_eq!(one_by_one.total, SECOND * sum);
        prop_assert_eq!(together.total, SECOND * max);
        for (job, &count) in steps.iter().enumerate() {
            prop_assert_eq!(together.finished_at(job), SECOND * count);
        }
    }
}

// ---------------------------------------------------------------------------
// The picture
// ---------------------------------------------------------------------------

/// The drawing puts every timeline on one scale: sequential waits fill 6
/// units one job after the other; concurrent ones start together.
#[test]
fn draw_puts_sequential_and_concurrent_waits_on_one_scale() {
    let event_loop = EventLoop::with_virtual_clock();
    let (one_by_one, together) = event_loop.run_until_complete(async {
        (
            sequential(&E001_1_STEPS, Work::Wait(SECOND)).await,
            concurrent(&E001_1_STEPS, Work::Wait(SECOND)).await,
        )
    });
    let picture = draw(&[one_by_one, together], SECOND);
    let lines: Vec<&str> = picture.lines().collect();
    assert_eq!(
        lines,
        [
            "sequential (순차): 6.00 units",
            "  A (3) |============............|",
            "  B (2) |............========....|",
            "  C (1) |....................====|",
            "concurrent (동시성): 3.00 units",
            "  A (3) |============............|",
            "  B (2) |========................|",
            "  C (1) |====....................|",
            "        0   1   2   3   4   5   6 units",
        ]
    );
}

/// Computing steps are drawn with `#`.
#[test]
fn draw_marks_computation_with_hashes() {
    let timeline = JobsRun {
        way: Way::Parallel,
        work: Work::Compute(1),
        steps: vec![1],
        total: SECOND,
        spans: vec![TimedStep {
            job: 0,
            step: 1,
            start: Duration::ZERO,
            end: SECOND,
        }],
    };
    assert!(draw(&[timeline], SECOND).contains("  A (1) |####|"));
}

// ---------------------------------------------------------------------------
// CPU work
// ---------------------------------------------------------------------------

#[test]
fn spin_is_deterministic_and_calibrate_gives_at_least_one_round() {
    assert_eq!(spin(1000), spin(1000));
    assert_ne!(spin(1000), spin(1001));
    assert!(calibrate(Duration::from_nanos(1)) >= 1);
    assert!(calibrate(Duration::from_millis(10)) > calibrate(Duration::from_micros(10)));
}

// ---------------------------------------------------------------------------
// Reading /proc
// ---------------------------------------------------------------------------

#[test]
fn status_field_reads_whole_keys_and_numbers_only() {
    let text = "Name:\tch10\nVmPeak:\t    3060 kB\nVmHWM:\t    1620 kB\n\
                Threads:\t3\nvoluntary_ctxt_switches:\t12\nnonvoluntary_ctxt_switches:\t4\n";
    assert_eq!(status_field(text, "VmPeak"), Some(3060));
    assert_eq!(status_field(text, "VmHWM"), Some(1620));
    assert_eq!(status_field(text, "Threads"), Some(3));
    assert_eq!(status_field(text, "voluntary_ctxt_switches"), Some(12));
    assert_eq!(
        status_field(text, "ctxt_switches"),
        None,
        "a key is matched whole"
    );
    assert_eq!(status_field(text, "Vm"), None);
    assert_eq!(status_field(text, "Name"), None, "not a number");
    assert_eq!(status_field(text, "VmRSS"), None, "missing");
}

#[test]
fn proc_status_parse_names_the_missing_field() {
    let error = ProcStatus::parse("VmPeak:\t1 kB\nVmHWM:\t1 kB\n").unwrap_err();
    assert_eq!(error.0, "VmRSS");
    assert!(error.to_string().contains("`VmRSS:`"), "{error}");
}

/// This process's status is readable and consistent: at least one thread,
/// the peak resident memory at least the current one, the reserved address
/// space at least the resident memory.
#[test]
fn this_processs_status_is_readable_and_consistent() {
    let status = ProcStatus::of_process().unwrap();
    assert!(status.threads >= 1);
    assert!(status.vm_rss_kb > 0);
    assert!(status.vm_hwm_kb >= status.vm_rss_kb);
    assert!(status.vm_peak_kb >= status.vm_rss_kb);
}

/// A thread that sleeps blocks, and blocking is a voluntary context switch:
/// its own count goes up by at least one.
#[test]
fn a_thread_that_sleeps_makes_a_voluntary_switch() {
    thread::spawn(|| {
        let before = ProcStatus::of_this_thread().unwrap();
        thread::sleep(Duration::from_millis(5));
        let after = ProcStatus::of_this_thread().unwrap();
        assert!(after.voluntary_switches > before.voluntary_switches);
        assert!(switches_of_live_threads().unwrap() >= after.switches());
    })
    .join()
    .unwrap();
}

// ---------------------------------------------------------------------------
// E004-7: crowds of sleepers
// ---------------------------------------------------------------------------

/// N sleeping threads: all finish, no sooner than the nap, and each makes
/// at least one context switch (it blocks to sleep).
#[test]
fn e004_7_every_sleeping_thread_switches_at_least_once() {
    const N: usize = 50;
    let nap = Duration::from_millis(20);
    let report = sleeping_threads(N, nap).unwrap();
    assert_eq!(report.sleepers, Sleepers::Threads);
    assert_eq!(report.count, N);
    assert!(report.total >= nap);
    assert!(report.start <= report.total);
    assert!(report.switches >= N as u64, "{} switches", report.switches);
    assert!(report.peak_rss_kb > 0);
}

/// N sleeping tasks on one loop: all finish, no sooner than the nap.
#[test]
fn e004_7_sleeping_tasks_all_finish_after_their_nap() {
    const N: usize = 2_000;
    let nap = Duration::from_millis(20);
    let report = sleeping_tasks(N, nap).unwrap();
    assert_eq!(report.sleepers, Sleepers::Tasks);
    assert_eq!(report.count, N);
    assert!(report.total >= nap);
    assert!(report.start <= report.total);
    assert!(report.peak_rss_kb > 0);
}

/// The child-to-parent line reads back to the same report; anything else
/// is refused.
#[test]
fn a_crowd_report_survives_its_line() {
    let report = CrowdReport {
        sleepers: Sleepers::Threads,
        count: 10_000,
        nap: SECOND,
        start: Duration::from_micros(472_100),
        total: Duration::from_micros(2_224_000),
        baseline_rss_kb: 2_100,
        peak_rss_kb: 139_264,
        peak_virtual_kb: 21_705_000,
        switches: 18_163,
    };
    assert_eq!(CrowdReport::from_line(&report.to_line()), Some(report));
    assert_eq!(
        report.bytes_per_sleeper(),
        (139_264 - 2_100) * 1024 / 10_000
    );
    assert_eq!(CrowdReport::from_line(""), None);
    assert_eq!(
        CrowdReport::from_line("crowd sleepers=fibers count=1"),
        None
    );
    let cut = report.to_line().replace(" switches=18163", "");
    assert_eq!(CrowdReport::from_line(&cut), None);
    assert_eq!("tasks".parse::<Sleepers>(), Ok(Sleepers::Tasks));
    assert!("fibers".parse::<Sleepers>().unwrap_err().contains("fibers"));
}

/// The pool's threads in `parallel` come from the pool handed in, so a
/// pool of one runs the jobs one after another: never two steps at once.
#[test]
fn parallel_on_a_pool_of_one_is_sequential() {
    let pool = Arc::new(ThreadPool::new(1));
    let timeline = block_on(parallel(
        &pool,
        &[1, 1, 1],
        Work::Wait(Duration::from_millis(10)),
    ));
    let mut spans = timeline.spans.clone();
    spans.sort_by_key(|span| span.start);
    for pair in spans.windows(2) {
        assert!(pair[1].start >= pair[0].end, "{pair:?}");
    }
    assert!(timeline.total >= Duration::from_millis(30));
}
