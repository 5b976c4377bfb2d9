//! Chapter 9: a thread pool and `run_in_executor` (E003-4, EX-1).
//!
//! Blocking jobs take real time, so these tests use real sleeps with exact
//! lower bounds (a sleep is never shorter) and generous upper bounds; where
//! a test is about the virtual clock, it checks that the clock did *not*
//! move while a job ran. Concurrency is proved with counters and
//! rendezvous, not with timings.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use proptest::prelude::*;
use tiny_asyncio::ch09_pool::{DefaultPool, THREAD_NAME_PREFIX, default_pool_size};
use tiny_asyncio::{
    EventLoop, ThreadPool, block_on, get_running_loop, run, run_in_executor, sleep, spawn,
};

type Log = Arc<Mutex<Vec<String>>>;

fn note(log: &Log, line: impl Into<String>) {
    log.lock().unwrap().push(line.into());
}

/// The kernel's id of the calling thread, from `/proc/thread-self`
/// (a link to `<pid>/task/<tid>`).
fn current_tid() -> u64 {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    let tid = link.file_name().unwrap().to_str().unwrap();
    tid.parse().expect("a numeric thread id")
}

/// Whether thread `tid` of this process is gone. A joined thread may
/// linger in `/proc` for an instant after `join` returns (the kernel reaps
/// it just after waking the joiner), so wait up to 2 s for it to go.
fn thread_gone(tid: u64) -> bool {
    eventually(Duration::from_secs(2), || thread_gone_now(tid))
}

/// E003-4: two coroutines, each `start`, `suspend`, then a blocking sleep
/// of `D` on the default pool, then `resume`. The start/suspend lines come
/// in order; both sleeps run at once (their intervals overlap, and the
/// whole takes less than 2 × D); the resume lines come in either order.
#[test]
fn e003_4_two_blocking_sleeps_overlap_on_the_default_pool() {
    const D: Duration = Duration::from_millis(250);
    let log: Log = Arc::default();
    let intervals = Arc::new(Mutex::new(Vec::new()));
    let begun = Instant::now();

    let coroutine = |n: u32, log: Log, intervals: Arc<Mutex<Vec<(Instant, Instant)>>>| async move {
        note(&log, format!("start{n}"));
        note(&log, format!("suspend{n}"));
        run_in_executor(move || {
            let from = Instant::now();
            thread::sleep(D);
            intervals.lock().unwrap().push((from, Instant::now()));
        })
        .await
        .unwrap();
        note(&log, format!("resume{n}"));
    };

    run({
        let (log, intervals) = (log.clone(), intervals.clone());
        async move {
            let first = spawn(coroutine(1, log.clone(), intervals.clone()));
            let second = spawn(coroutine(2, log.clone(), intervals.clone()));
            first.await.unwrap();
            second.await.unwrap();
        }
    });
    let total = begun.elapsed();

    let log = log.lock().unwrap().clone();
    assert_eq!(log[..4], ["start1", "suspend1", "start2", "suspend2"]);
    let resumed: BTreeSet<_> = log[4..].iter().map(String::as_str).collect();
    assert_eq!(resumed, BTreeSet::from(["resume1", "resume2"]));

    let intervals = intervals.lock().unwrap().clone();
    assert_eq!(intervals.len(), 2);
    let (a, b) = (intervals[0], intervals[1]);
    assert!(
        a.0 < b.1 && b.0 < a.1,
        "the two blocking sleeps should have run at the same time"
    );
    assert!(total >= D, "a sleep is never shorter: {total:?}");
    // The overlap above is the proof of "5 s, not 10"; this bound only
    // catches a run that went badly wrong (generous for a loaded machine).
    assert!(
        total < 10 * D,
        "5 s, not 10: took {total:?} for two {D:?} sleeps"
    );
}

/// A pool's job handle is an ordinary future: it can be awaited in a task,
/// or `block_on`'ed outside any loop.
#[test]
fn a_job_can_be_awaited_inside_a_loop_and_blocked_on_outside_one() {
    let pool = Arc::new(ThreadPool::new(2));
    assert_eq!(block_on(pool.run_in_executor(|| 6 * 7)).unwrap(), 42);

    let inside = pool.clone();
    let answer = run(async move { inside.run_in_executor(|| "from a task").await });
    assert_eq!(answer.unwrap(), "from a task");
}

/// At most `n` jobs run at once, and a pool of `n` does run `n` at once:
/// each job waits (up to 2 s) until the highest count seen reaches `n`, so
/// a pool that ran fewer at once would leave the maximum below `n`.
#[test]
fn at_most_n_jobs_run_at_once_and_n_do() {
    const N: usize = 3;
    let pool = ThreadPool::new(N);
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..4 * N)
        .map(|_| {
            let (running, most) = (running.clone(), most.clone());
            pool.run_in_executor(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let give_up = Instant::now() + Duration::from_secs(2);
                while most.load(Ordering::SeqCst) < N && Instant::now() < give_up {
                    thread::sleep(Duration::from_millis(1));
                }
                thread::sleep(Duration::from_millis(2));
                running.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    for handle in handles {
        block_on(handle).unwrap();
    }
    assert_eq!(most.load(Ordering::SeqCst), N);
    assert_eq!(pool.threads_alive(), N);
}

/// Threads start lazily: none before the first job, one for a single job,
/// one more for a job that finds no worker idle, never more than the pool's
/// size.
#[test]
fn threads_start_lazily_and_never_exceed_the_size() {
    let pool = ThreadPool::new(4);
    assert_eq!(pool.size(), 4);
    assert_eq!(pool.threads_alive(), 0);
    let name = block_on(pool.run_in_executor(|| thread::current().name().map(str::to_owned)));
    assert_eq!(pool.threads_alive(), 1);
    assert_eq!(name.unwrap().as_deref(), Some("tiny-asyncio-pool-0"));
    // Two jobs held running at once: two workers, or three (the first
    // worker may not be back among the idle ones yet when they are
    // submitted, and a job that finds no idle worker starts one), but never
    // all four, as an eager pool would.
    let (release, held) = mpsc::channel::<()>();
    let held = Arc::new(Mutex::new(held));
    let (started, running) = mpsc::channel::<()>();
    let blockers: Vec<_> = (0..2)
        .map(|_| {
            let (held, started) = (held.clone(), started.clone());
            pool.run_in_executor(move || {
                started.send(()).unwrap();
                let _ = held.lock().unwrap().recv();
            })
        })
        .collect();
    running.recv().unwrap();
    running.recv().unwrap();
    let alive = pool.threads_alive();
    assert!((2..=3).contains(&alive), "{alive} workers for two jobs");
    for _ in &blockers {
        release.send(()).unwrap();
    }
    for blocker in blockers {
        block_on(blocker).unwrap();
    }
    let handles: Vec<_> = (0..20)
        .map(|i| pool.run_in_executor(move || thread::sleep(Duration::from_millis(i % 3))))
        .collect();
    for handle in handles {
        block_on(handle).unwrap();
    }
    assert!(pool.threads_alive() <= 4);
}

/// Jobs start in the order they were submitted (FIFO): with one worker,
/// they also finish in that order.
#[test]
fn jobs_start_in_submission_order() {
    let pool = ThreadPool::new(1);
    let order = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..10)
        .map(|i| {
            let order = order.clone();
            pool.run_in_executor(move || order.lock().unwrap().push(i))
        })
        .collect();
    for handle in handles {
        block_on(handle).unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
}

/// Many jobs from inside a loop: each runs exactly once, and each handle
/// gets its own job's result.
#[test]
fn every_job_runs_exactly_once_and_each_handle_gets_its_own_result() {
    const JOBS: usize = 300;
    let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..JOBS).map(|_| AtomicUsize::new(0)).collect());
    let pool = Arc::new(ThreadPool::new(4));
    let results = run({
        let (runs, pool) = (runs.clone(), pool.clone());
        async move {
            let handles: Vec<_> = (0..JOBS)
                .map(|i| {
                    let runs = runs.clone();
                    pool.run_in_executor(move || {
                        runs[i].fetch_add(1, Ordering::SeqCst);
                        i * i
                    })
                })
                .collect();
            let mut results = Vec::new();
            for handle in handles {
                results.push(handle.await.unwrap());
            }
            results
        }
    });
    assert_eq!(results, (0..JOBS).map(|i| i * i).collect::<Vec<_>>());
    assert!(runs.iter().all(|count| count.load(Ordering::SeqCst) == 1));
}

/// A panicking job gives its awaiter a `JoinError` that says "panicked"
/// with the message; the worker survives and runs the next job.
#[test]
fn a_panicking_job_gives_join_error_and_its_worker_runs_the_next_job() {
    let pool = ThreadPool::new(1);
    let panicked_on = Arc::new(Mutex::new(None));
    let failing = {
        let panicked_on = panicked_on.clone();
        pool.run_in_executor(move || -> u32 {
            *panicked_on.lock().unwrap() = Some(thread::current().id());
            panic!("boom")
        })
    };
    let id = failing.id();
    let error = block_on(failing).unwrap_err();
    assert!(error.is_panic());
    assert!(!error.is_cancelled());
    assert_eq!(error.panic_message().as_deref(), Some("boom"));
    assert_eq!(error.to_string(), format!("task {id} panicked: boom"));

    let next = block_on(pool.run_in_executor(|| thread::current().id())).unwrap();
    assert_eq!(Some(next), *panicked_on.lock().unwrap(), "the same worker");
    assert_eq!(pool.threads_alive(), 1);
}

/// Aborting a job that is still queued (its pool's only worker is busy)
/// means it never runs; its handle gives "cancelled", and the pool runs
/// the next job as usual.
#[test]
fn aborting_a_queued_job_means_it_never_runs() {
    let pool = ThreadPool::new(1);
    let (release, gate) = mpsc::channel::<()>();
    let blocker = pool.run_in_executor(move || gate.recv().unwrap());
    let ran = Arc::new(AtomicBool::new(false));
    let queued = {
        let ran = ran.clone();
        pool.run_in_executor(move || ran.store(true, Ordering::SeqCst))
    };
    queued.abort();
    release.send(()).unwrap();

    block_on(blocker).unwrap();
    assert!(block_on(queued).unwrap_err().is_cancelled());
    assert!(
        !ran.load(Ordering::SeqCst),
        "an aborted queued job never runs"
    );
    assert_eq!(block_on(pool.run_in_executor(|| 7)).unwrap(), 7);
}

/// Aborting a running job cannot stop the thread, but nobody has to wait
/// for it: the handle gives "cancelled" at once (while the job is still
/// blocked), then the job finishes and its result is dropped.
#[test]
fn aborting_a_running_job_lets_it_finish_and_drops_its_result() {
    let pool = ThreadPool::new(1);
    let (started_tx, started) = mpsc::channel::<()>();
    let (go, go_rx) = mpsc::channel::<()>();
    let finished = Arc::new(AtomicBool::new(false));
    let drops = Tally::default();
    let job = {
        let (finished, drops) = (finished.clone(), drops.clone());
        pool.run_in_executor(move || {
            started_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            finished.store(true, Ordering::SeqCst);
            drops.probe()
        })
    };
    started.recv().unwrap();
    job.abort();
    assert!(block_on(job).unwrap_err().is_cancelled());
    assert!(
        !finished.load(Ordering::SeqCst),
        "resolved before the job ended"
    );
    go.send(()).unwrap();
    drop(pool); // waits for the running job
    assert!(finished.load(Ordering::SeqCst), "the running job finished");
    assert_eq!(drops.count(), 1, "its result was dropped");
}

/// Dropping a pool waits for the running jobs, resolves the queued ones
/// "cancelled" without running them, and joins every worker thread (their
/// kernel threads are gone afterwards).
///
/// No timing is involved: the two running jobs wait on a gate that a
/// helper thread opens only once the queued jobs' handles have resolved,
/// which the drop does before it joins.
#[test]
#[cfg_attr(
    miri,
    ignore = "reads kernel thread ids from /proc, which Miri does not emulate"
)]
fn dropping_a_pool_joins_its_threads_and_cancels_queued_jobs() {
    let pool = ThreadPool::new(2);
    let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let (tids_tx, tids) = mpsc::channel();
    let running: Vec<_> = (0..2)
        .map(|i| {
            let (gate, tids_tx) = (gate.clone(), tids_tx.clone());
            pool.run_in_executor(move || {
                tids_tx.send(current_tid()).unwrap();
                let (open, cond) = &*gate;
                let mut open = open.lock().unwrap();
                while !*open {
                    open = cond.wait(open).unwrap();
                }
                i
            })
        })
        .collect();
    let worker_tids = [tids.recv().unwrap(), tids.recv().unwrap()];
    assert_eq!(pool.threads_alive(), 2);

    let ran = Arc::new(AtomicUsize::new(0));
    let queued: Vec<_> = (0..3)
        .map(|_| {
            let ran = ran.clone();
            pool.run_in_executor(move || ran.fetch_add(1, Ordering::SeqCst))
        })
        .collect();
    let opener = {
        let gate = gate.clone();
        thread::spawn(move || {
            while !queued.iter().all(|handle| handle.is_finished()) {
                thread::sleep(Duration::from_millis(1));
            }
            let (open, cond) = &*gate;
            *open.lock().unwrap() = true;
            cond.notify_all();
            queued
        })
    };

    drop(pool);

    let queued = opener.join().unwrap();
    for (i, handle) in running.into_iter().enumerate() {
        assert_eq!(block_on(handle).unwrap(), i, "running jobs finish");
    }
    for handle in queued {
        assert!(block_on(handle).unwrap_err().is_cancelled());
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0, "queued jobs never ran");
    for tid in worker_tids {
        assert!(thread_gone(tid), "worker thread {tid} outlived its pool");
    }
}

/// Closing a loop drops its default pool and joins the pool's threads.
#[test]
#[cfg_attr(
    miri,
    ignore = "reads kernel thread ids from /proc, which Miri does not emulate"
)]
fn closing_the_loop_joins_the_default_pools_threads() {
    let event_loop = EventLoop::new();
    let (tid, alive, size) = event_loop.run_until_complete(async {
        let tid = run_in_executor(current_tid).await.unwrap();
        let pool = DefaultPool::of(&get_running_loop());
        (tid, pool.pool().threads_alive(), pool.pool().size())
    });
    assert_eq!(alive, 1, "one job started one thread");
    assert_eq!(size, default_pool_size());
    assert!(!thread_gone_now(tid));
    event_loop.close();
    assert!(
        thread_gone(tid),
        "the default pool's worker outlived its loop"
    );
}

fn thread_gone_now(tid: u64) -> bool {
    !Path::new(&format!("/proc/self/task/{tid}")).exists()
}

/// One loop has one default pool, shared by every `run_in_executor` call.
#[test]
fn the_default_pool_is_one_per_loop() {
    run(async {
        let first = DefaultPool::of(&get_running_loop());
        run_in_executor(|| ()).await.unwrap();
        let second = DefaultPool::of(&get_running_loop());
        assert!(std::rc::Rc::ptr_eq(&first, &second));
        assert_eq!(second.pool().threads_alive(), 1);
    });
}

/// asyncio's default size: `min(32, cpus + 4)`.
#[test]
fn default_pool_size_is_min_32_cpus_plus_4() {
    let cpus = thread::available_parallelism().unwrap().get();
    assert_eq!(default_pool_size(), (cpus + 4).min(32));
    assert!(THREAD_NAME_PREFIX.starts_with("tiny-asyncio-pool"));
}

#[test]
#[should_panic(expected = "ThreadPool::new: a pool needs at least one thread (got 0)")]
fn a_pool_of_zero_threads_is_refused() {
    let _ = ThreadPool::new(0);
}

#[test]
#[should_panic(expected = "run_in_executor: there is no running event loop")]
fn run_in_executor_outside_a_loop_panics_no_running_event_loop() {
    drop(run_in_executor(|| ()));
}

/// On a virtual clock, time must not jump while a blocking job runs: a job
/// of 50 ms real time, while another task sleeps 10 virtual seconds, hands
/// its result to a loop whose clock still reads 0; then, with no job left,
/// the clock jumps and the sleeper wakes at exactly 10 s.
#[test]
fn the_virtual_clock_does_not_jump_while_a_job_runs() {
    for use_default_pool in [false, true] {
        let event_loop = EventLoop::with_virtual_clock();
        let pool = Arc::new(ThreadPool::new(1));
        let (job_seen_at, sleeper_woke_at) = event_loop.run_until_complete(async move {
            let sleeper = spawn(async {
                sleep(Duration::from_secs(10)).await;
                get_running_loop().time()
            });
            let job = move || thread::sleep(Duration::from_millis(50));
            let handle = if use_default_pool {
                run_in_executor(job)
            } else {
                pool.run_in_executor(job)
            };
            handle.await.unwrap();
            let job_seen_at = get_running_loop().time();
            (job_seen_at, sleeper.await.unwrap())
        });
        assert_eq!(
            job_seen_at,
            Duration::ZERO,
            "default pool: {use_default_pool}"
        );
        assert_eq!(sleeper_woke_at, Duration::from_secs(10));
        assert_eq!(event_loop.time(), Duration::from_secs(10));
    }
}

/// The same rule, many times over with short jobs of varied length, while
/// a far timer is always pending: a job's result never arrives after the
/// clock moved. (Chapter 5's idle check once read "no outside work" without
/// looking at the queue, so a job finishing between the loop's empty pass
/// and that check let the clock jump past a ready task. That window is too
/// narrow to hit on demand; this test checks the rule over many
/// interleavings rather than proving the race.)
#[test]
fn the_virtual_clock_never_moves_between_a_jobs_end_and_its_task() {
    let event_loop = EventLoop::with_virtual_clock();
    let pool = Arc::new(ThreadPool::new(2));
    event_loop.run_until_complete(async move {
        let _pending = spawn(sleep(Duration::from_secs(1000)));
        for round in 0..2000u32 {
            let before = get_running_loop().time();
            pool.run_in_executor(move || {
                for _ in 0..(round % 7) * 50 {
                    std::hint::black_box(round);
                }
            })
            .await
            .unwrap();
            assert_eq!(get_running_loop().time(), before, "round {round}");
        }
    });
    assert_eq!(event_loop.time(), Duration::ZERO);
}

/// Busy for `d` of wall time without ever awaiting: what a CPU-bound step
/// looks like to the loop.
fn compute_for(d: Duration) -> u64 {
    let begun = Instant::now();
    let mut x = 0u64;
    while begun.elapsed() < d {
        for _ in 0..1000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    x
}

/// EX-1: a task that computes without awaiting holds the whole loop: a
/// 20 ms timer cannot fire until the 500 ms computation is over. Moved to
/// `run_in_executor`, the same computation leaves the loop free, and the
/// timer fires long before the computation ends.
#[test]
fn ex_1_computing_in_a_task_holds_the_loop_and_the_pool_frees_it() {
    const TIMER: Duration = Duration::from_millis(20);
    const WORK: Duration = Duration::from_millis(500);
    for on_pool in [false, true] {
        let fired_at = run(async move {
            let timer = spawn(async {
                sleep(TIMER).await;
                get_running_loop().time()
            });
            let work = if on_pool {
                run_in_executor(move || compute_for(WORK))
            } else {
                spawn(async move { compute_for(WORK) })
            };
            let fired_at = timer.await.unwrap();
            work.await.unwrap();
            fired_at
        });
        assert!(fired_at >= TIMER);
        if on_pool {
            assert!(
                fired_at < WORK,
                "on the pool the timer is free: {fired_at:?}"
            );
        } else {
            assert!(
                fired_at >= WORK,
                "the computing task held the loop: {fired_at:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(24)))]

    /// For any pool size and any number of jobs: each job runs exactly
    /// once, each handle gets its own job's result, and no more than `n`
    /// jobs ever run at the same time.
    #[test]
    fn each_job_runs_once_with_its_own_result_and_never_more_than_n_at_once(
        n in 1usize..5,
        jobs in 0usize..40,
        naps in proptest::collection::vec(0u64..3, 40),
    ) {
        let pool = ThreadPool::new(n);
        let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..jobs).map(|_| AtomicUsize::new(0)).collect());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..jobs)
            .map(|i| {
                let (runs, running, most) = (runs.clone(), running.clone(), most.clone());
                let nap = Duration::from_millis(naps[i]);
                pool.run_in_executor(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    thread::sleep(nap);
                    runs[i].fetch_add(1, Ordering::SeqCst);
                    running.fetch_sub(1, Ordering::SeqCst);
                    i
                })
            })
            .collect();
        for (i, handle) in handles.into_iter().enumerate() {
            prop_assert_eq!(block_on(handle).unwrap(), i);
        }
        prop_assert!(runs.iter().all(|count| count.load(Ordering::SeqCst) == 1));
        prop_assert!(most.load(Ordering::SeqCst) <= n);
        prop_assert!(pool.threads_alive() <= n);
    }
}

/// Aborting a running job frees a virtual clock at once: the clock stays
/// put while a job runs (its handle holds the loop's KeepAwake), but once
/// the job is aborted nobody waits for it, so a 10 s virtual sleep ends
/// without waiting for the job's real 2 s.
#[test]
fn aborting_a_running_job_releases_the_virtual_clock_at_once() {
    let event_loop = EventLoop::with_virtual_clock();
    let (started_tx, started) = mpsc::channel::<()>();
    let (go, go_rx) = mpsc::channel::<()>();
    let began = std::time::Instant::now();
    event_loop.run_until_complete(async move {
        let job = run_in_executor(move || {
            started_tx.send(()).unwrap();
            // Blocks until the test lets it go, after the loop is done.
            let _ = go_rx.recv_timeout(Duration::from_secs(2));
        });
        started.recv().unwrap();
        job.abort();
        assert!(job.await.unwrap_err().is_cancelled());
        tiny_asyncio::sleep(Duration::from_secs(10)).await;
    });
    assert_eq!(event_loop.time(), Duration::from_secs(10));
    assert!(
        began.elapsed() < Duration::from_millis(1500),
        "the virtual clock waited for the aborted job: {:?}",
        began.elapsed()
    );
    go.send(()).ok();
}

/// Issue 12, fault 5: a pool job's handle made in one loop and awaited in
/// another keeps the *awaiting* loop awake while the job runs: its virtual
/// clock does not jump past a task's 1 s sleep, and it does not declare a
/// deadlock, while the job still has its result to give. (It used to hold
/// only the submitting loop's KeepAwake: the awaiting loop jumped to 1 s,
/// then panicked "deadlock".)
#[test]
fn a_job_handle_awaited_in_another_loop_keeps_that_loop_awake_until_the_result() {
    let made_in = EventLoop::with_virtual_clock();
    let (go, go_rx) = mpsc::channel::<()>();
    let handle = made_inside(&made_in, move || {
        run_in_executor(move || {
            let _ = go_rx.recv_timeout(Duration::from_secs(10));
            7
        })
    });
    let awaited_in = EventLoop::with_virtual_clock();
    let (answer, seen_at) = awaited_in.run_until_complete(async move {
        let sleeper = spawn(sleep(Duration::from_secs(1)));
        // Let the job finish only after the loop had time to (wrongly) jump.
        let releaser = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            go.send(()).ok();
        });
        let answer = handle.await.expect("the job returns");
        let seen_at = get_running_loop().time();
        sleeper.await.unwrap();
        releaser.join().unwrap();
        (answer, seen_at)
    });
    assert_eq!(answer, 7);
    assert_eq!(
        seen_at,
        Duration::ZERO,
        "the clock jumped while the job ran"
    );
    assert_eq!(awaited_in.time(), Duration::from_secs(1));
}
