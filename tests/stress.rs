//! Stress and faults on the real clock: the tests a runtime must pass
//! before anyone trusts it with real work.
//!
//! * **Many wakers at once**: threads waking tasks by the tens of
//!   thousands; wakes racing with completion and with abort; wakers cloned,
//!   dropped and woken long after their task finished, even after the loop
//!   closed. Nothing may hang, be lost, or be polled after it finished.
//! * **Panics everywhere**: in a task's poll, in a future's `Drop` (at
//!   completion, at abort, at the loop's close), in a user waker called
//!   inside a task's poll, by the timer, or by a finishing task. The loop
//!   reports each one and keeps the rest running.
//! * **Shutdown**: a panic in `run`'s main future reaches the caller only
//!   after the loop closed cleanly (every task's future dropped), and
//!   closing a loop leaves no thread of it behind.
//!
//! Every test runs under a watchdog: a hang fails the test (after 20 s)
//! instead of blocking the suite. `TINY_ASYNCIO_SOAK=1` multiplies the
//! iteration counts by 20 (`=N`, N ≥ 2: by N). `.ci/valgrind` runs this
//! binary with `TINY_ASYNCIO_UNDER_VALGRIND=1`: then the counts shrink about
//! twenty times and the watchdog waits half an hour instead of 20 s.

use std::fs;
use std::future::{Future, pending, poll_fn};
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, RwLock, Weak, mpsc};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use tiny_asyncio::ch03_waker::{ArcWake, waker_from_arc};
use tiny_asyncio::ch05_event_loop::panic_message;
use tiny_asyncio::{
    EventLoop, JoinError, JoinHandle, block_on, gather, get_running_loop, run, run_in_executor,
    sleep, spawn, timeout, try_running_loop, yield_now,
};

mod common;
use common::{lock, ms, quiet_planned_panics, soak};

// ---------------------------------------------------------------- harness

fn under_valgrind() -> bool {
    std::env::var("TINY_ASYNCIO_UNDER_VALGRIND").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// An iteration count: `n` normally, about `n / 20` under valgrind, `n`
/// times the soak factor in a soak run.
fn scaled(n: usize) -> usize {
    if under_valgrind() {
        (n / 20).max(1)
    } else {
        n * soak() as usize
    }
}

/// How long a test may take before the watchdog calls it a hang.
fn watchdog_limit() -> Duration {
    if under_valgrind() {
        Duration::from_secs(30 * 60)
    } else {
        Duration::from_secs(20 * u64::from(soak()))
    }
}

/// Tests take this shared; the thread-count test takes it alone, so that no
/// other test's loop starts or stops threads while it counts.
static THREADS: RwLock<()> = RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    THREADS.read().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` on its own thread and fails if it does not finish in time: a
/// hang (a lost wake-up, a dead timer thread) fails the test instead of
/// blocking the whole suite. A panic in `f` is passed on.
fn with_watchdog<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    quiet_planned_panics();
    let limit = watchdog_limit();
    let (tx, rx) = mpsc::channel();
    let worker = thread::Builder::new()
        .name(format!("stress-{name}"))
        .spawn(move || {
            let result = panic::catch_unwind(AssertUnwindSafe(f));
            let _ = tx.send(result);
        })
        .expect("start the test's thread");
    match rx.recv_timeout(limit) {
        Ok(result) => {
            worker.join().expect("the test's thread ends");
            result.unwrap_or_else(|payload| panic::resume_unwind(payload))
        }
        Err(_) => panic!(
            "watchdog: {name} did not finish within {limit:?}: the loop hangs (a lost wake-up, \
             or a dead timer thread?)"
        ),
    }
}

/// Counts drops of the futures that hold one of its probes.
#[derive(Clone, Default)]
struct Tally(Arc<AtomicUsize>);

impl Tally {
    fn probe(&self) -> Probe {
        Probe(self.0.clone())
    }

    fn count(&self) -> usize {
        self.0.load(SeqCst)
    }
}

struct Probe(Arc<AtomicUsize>);

impl Drop for Probe {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Panics when dropped (never while already panicking: that would abort).
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !thread::panicking() {
            panic!("planned: {} panics in Drop", self.0);
        }
    }
}

/// A future whose `Drop` panics, after it completed or wherever it is.
struct WithBomb<F> {
    inner: Pin<Box<F>>,
    _probe: Probe,
    _bomb: PanicOnDrop,
}

impl<F: Future> Future for WithBomb<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.inner.as_mut().poll(cx)
    }
}

/// A waker that panics when woken.
struct PanickingWaker(&'static str);

impl ArcWake for PanickingWaker {
    fn wake_by_ref(this: &Arc<Self>) {
        panic!("planned: {} waker panics", this.0);
    }
}

/// The message a handle's panic error carries.
fn panicked_with<T: std::fmt::Debug>(result: Result<T, JoinError>) -> String {
    let error = result.expect_err("the task should have panicked");
    assert!(error.is_panic(), "{error}");
    error.panic_message().expect("a panic has a message")
}

// ---------------------------------------------------------------- many wakers

/// A task's side of the wake storm: how many wakes were meant for it, how
/// many it needs, and the waker of its latest poll.
#[derive(Default)]
struct Target {
    sent: AtomicUsize,
    delivered: AtomicUsize,
    quota: AtomicUsize,
    polls: AtomicUsize,
    waker: Mutex<Option<Waker>>,
}

impl Target {
    /// The task: store the waker, then look (so no wake falls in between).
    fn wait(self: Arc<Self>) -> impl Future<Output = usize> + Send + 'static {
        poll_fn(move |cx| {
            let polls = self.polls.fetch_add(1, SeqCst) + 1;
            {
                let mut waker = lock(&self.waker);
                match &*waker {
                    Some(old) if old.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
            }
            if self.sent.load(SeqCst) >= self.quota.load(SeqCst) {
                Poll::Ready(polls)
            } else {
                Poll::Pending
            }
        })
    }

    /// A thread's side: count the wake, then deliver it (if the task has
    /// polled yet; its first poll will see the count anyway).
    fn poke(&self) {
        self.sent.fetch_add(1, SeqCst);
        let waker = lock(&self.waker).clone();
        if let Some(waker) = waker {
            self.delivered.fetch_add(1, SeqCst);
            waker.wake();
        }
    }
}

/// No lost wake-up under a storm: 8 threads deliver 100,000 wakes each
/// (800,000 in all, scaled) to 64 tasks of a real-clock loop, each task
/// finishing once it has seen all the wakes meant for it. Every task
/// finishes (a lost wake would hang it: the watchdog), and none is polled
/// more than once per delivered wake plus its first poll (at most once in
/// the queue, however many threads wake it at once).
#[test]
fn eight_threads_waking_64_tasks_lose_no_wake_up() {
    let _shared = shared();
    with_watchdog("wake-storm", || {
        const TASKS: usize = 64;
        const THREADS: usize = 8;
        let per_thread = scaled(100_000);
        let targets: Arc<Vec<Arc<Target>>> = Arc::new((0..TASKS).map(|_| Arc::default()).collect());
        let pick = |thread: usize, n: usize| (n * 7 + thread * 13) % TASKS;
        for thread in 0..THREADS {
            for n in 0..per_thread {
                targets[pick(thread, n)].quota.fetch_add(1, SeqCst);
            }
        }
        let t = targets.clone();
        let (polls, threads) = run(async move {
            let handles: Vec<_> = t
                .iter()
                .map(|target| spawn(target.clone().wait()))
                .collect();
            let threads: Vec<_> = (0..THREADS)
                .map(|thread| {
                    let t = t.clone();
                    thread::Builder::new()
                        .name(format!("waker-{thread}"))
                        .spawn(move || {
                            for n in 0..per_thread {
                                t[pick(thread, n)].poke();
                            }
                        })
                        .expect("start a waker thread")
                })
                .collect();
            let mut polls = Vec::new();
            for handle in handles {
                polls.push(handle.await.expect("no task fails"));
            }
            (polls, threads)
        });
        for thread in threads {
            thread.join().expect("a waker thread panicked");
        }
        let mut sent = 0;
        for (i, (target, polls)) in targets.iter().zip(polls).enumerate() {
            let delivered = target.delivered.load(SeqCst);
            sent += target.sent.load(SeqCst);
            assert!(polls >= 1);
            assert!(
                polls <= delivered + 1,
                "task {i}: {polls} polls for {delivered} wakes"
            );
        }
        assert_eq!(sent, per_thread * THREADS);
    });
}

/// One round's tasks, as the waking threads see them.
#[derive(Default)]
struct Round {
    targets: Vec<Arc<Target>>,
}

/// Wakes race with completion and with abort: rounds of 16 tasks, each
/// finishing after a few wakes, while 4 threads wake them without pause
/// (through cloned wakers, before, during and long after they finish) and
/// the main future aborts every other one at a random turn. Every handle
/// resolves once (a task not aborted to its value; an aborted one to its
/// value or "cancelled"); every future is dropped exactly once, and none is
/// polled after it finished (such a poll would panic inside the task).
#[test]
fn wakes_racing_with_completion_and_abort_lose_nothing() {
    let _shared = shared();
    with_watchdog("wake-race", || {
        const PER_ROUND: usize = 16;
        let rounds = scaled(1500);
        let current: Arc<Mutex<Arc<Round>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..4)
            .map(|k| {
                let (current, stop) = (current.clone(), stop.clone());
                thread::Builder::new()
                    .name(format!("racer-{k}"))
                    .spawn(move || {
                        let mut n: usize = k;
                        while !stop.load(SeqCst) {
                            let round = lock(&current).clone();
                            if round.targets.is_empty() {
                                thread::yield_now();
                                continue;
                            }
                            for _ in 0..8 {
                                n = n.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                                round.targets[(n >> 8) % round.targets.len()].poke();
                            }
                            thread::yield_now();
                        }
                    })
                    .expect("start a racing thread")
            })
            .collect();

        let event_loop = EventLoop::new();
        let tallies: Vec<Tally> = (0..rounds * PER_ROUND).map(|_| Tally::default()).collect();
        let mut seed = 7usize;
        let mut cancelled = 0;
        for round in 0..rounds {
            let targets: Vec<Arc<Target>> = (0..PER_ROUND)
                .map(|i| {
                    let target = Arc::new(Target::default());
                    target.quota.store(1 + (round + i) % 5, SeqCst);
                    target
                })
                .collect();
            *lock(&current) = Arc::new(Round {
                targets: targets.clone(),
            });
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let abort_turn = (seed >> 33) % 4;
            let probes: Vec<Probe> = tallies[round * PER_ROUND..][..PER_ROUND]
                .iter()
                .map(Tally::probe)
                .collect();
            let results = event_loop.run_until_complete(async move {
                let handles: Vec<_> = targets
                    .into_iter()
                    .zip(probes)
                    .enumerate()
                    .map(|(i, (target, probe))| {
                        spawn(async move {
                            let _probe = probe;
                            let mut finished = false;
                            let mut wait = Box::pin(target.wait());
                            poll_fn(|cx| {
                                assert!(!finished, "polled after it finished");
                                let poll = wait.as_mut().poll(cx);
                                finished = poll.is_ready();
                                poll
                            })
                            .await;
                            i
                        })
                    })
                    .collect();
                for _ in 0..abort_turn {
                    yield_now().await;
                }
                for handle in handles.iter().skip(1).step_by(2) {
                    handle.abort();
                }
                let mut results = Vec::new();
                for handle in handles {
                    results.push(handle.await);
                }
                results
            });
            for (i, result) in results.into_iter().enumerate() {
                match result {
                    Ok(value) => assert_eq!(value, i),
                    Err(error) => {
                        assert!(error.is_cancelled(), "round {round}, task {i}: {error}");
                        assert!(i % 2 == 1, "round {round}: task {i} was never aborted");
                        cancelled += 1;
                    }
                }
            }
            let dropped: Vec<usize> = tallies[round * PER_ROUND..][..PER_ROUND]
                .iter()
                .map(Tally::count)
                .collect();
            assert_eq!(dropped, [1; PER_ROUND], "round {round}: drops per task");
        }
        assert!(
            cancelled > 0,
            "no abort ever took effect: the test tests nothing"
        );
        assert_eq!(event_loop.live_tasks(), 0);
        // The threads still hold the last round's wakers: wakes after the
        // loop closed must be harmless too.
        event_loop.close();
        thread::sleep(ms(5));
        stop.store(true, SeqCst);
        for thread in threads {
            thread.join().expect("a racing thread panicked");
        }
    });
}

/// Wakers outlive their tasks, and the loop: a waker keeps its task's
/// allocation alive, however it is cloned, woken or dropped, on any thread,
/// before or after the loop closed, and waking it then is harmless. A
/// finished, detached task's output is not kept by its wakers: nobody can
/// take it, so the loop drops it as soon as it is stored (counted with
/// `Weak`s on the outputs). A refcount mistake in the waker's vtable would
/// leak the task or free it twice: valgrind and Miri check that.
#[test]
fn wakers_outliving_their_tasks_and_the_loop_are_harmless_and_keep_no_unclaimed_output() {
    let _shared = shared();
    with_watchdog("late-wakers", || {
        let tasks = scaled(2000).max(8);
        let wakers: Arc<Mutex<Vec<Waker>>> = Arc::default();
        let outputs: Vec<Arc<usize>> = (0..tasks).map(Arc::new).collect();
        let weak: Vec<Weak<usize>> = outputs.iter().map(Arc::downgrade).collect();
        let sleepers = Tally::default();
        let event_loop = EventLoop::new();
        let (w, s) = (wakers.clone(), sleepers.clone());
        event_loop.run_until_complete(async move {
            for (i, output) in outputs.into_iter().enumerate() {
                let w = w.clone();
                let probe = (i % 4 == 3).then(|| s.probe());
                // Detached: nobody takes the output; it stays in the task.
                drop(spawn(async move {
                    let _probe = probe;
                    poll_fn(|cx| {
                        lock(&w).push(cx.waker().clone());
                        Poll::Ready(())
                    })
                    .await;
                    if i % 4 == 3 {
                        // Still waiting when the loop closes.
                        pending::<()>().await;
                    }
                    output
                }));
            }
            for _ in 0..3 {
                yield_now().await;
            }
        });
        // Wake them all, many times over, from several threads: finished
        // tasks ignore it, the waiting ones are queued (and never run).
        let storm = |wakers: &Arc<Mutex<Vec<Waker>>>| {
            thread::scope(|scope| {
                for k in 0..4 {
                    let wakers = lock(wakers).clone();
                    scope.spawn(move || {
                        for (n, waker) in wakers.iter().enumerate() {
                            match (n + k) % 3 {
                                0 => waker.wake_by_ref(),
                                // On purpose: the by-value `wake` (its −1).
                                #[allow(clippy::waker_clone_wake)]
                                1 => waker.clone().wake(),
                                _ => drop(waker.clone()),
                            }
                        }
                    });
                }
            });
        };
        storm(&wakers);
        let waiting = (0..tasks).filter(|i| i % 4 == 3).count();
        assert_eq!(event_loop.live_tasks(), waiting);
        event_loop.close();
        assert_eq!(sleepers.count(), waiting, "close drops every waiting task");
        storm(&wakers);
        // Finished and detached: nobody could take an output, so each was
        // dropped on the loop thread as soon as it was stored, although
        // the wakers still keep the tasks alive (and the waiting ones'
        // futures, holding theirs, were dropped by the close).
        for (i, w) in weak.iter().enumerate() {
            assert!(w.upgrade().is_none(), "task {i}'s output outlived its use");
        }
        drop(std::mem::take(&mut *lock(&wakers)));
        for (i, w) in weak.iter().enumerate() {
            assert!(w.upgrade().is_none(), "task {i} outlived its last waker");
        }
    });
}

/// Pool jobs by the thousand: 20 tasks each hand the loop's default pool
/// 100 tiny blocking jobs (scaled) and gather their handles, every 7th
/// handle aborted as soon as it is made; then, with more jobs queued than
/// the pool has threads, the loop closes. Every handle resolves exactly
/// once (a job's value, or "cancelled" for an aborted one or one still
/// queued at the close), every job's closure is dropped exactly once (run,
/// skipped or thrown away), and nothing hangs.
#[test]
fn pool_jobs_by_the_thousand_resolve_once_and_the_pool_closes_with_its_loop() {
    let _shared = shared();
    with_watchdog("pool-jobs", || {
        let per_task = scaled(100).max(7);
        let jobs = Tally::default();
        let j = jobs.clone();
        let (outputs, late) = run(async move {
            let tasks: Vec<_> = (0..20)
                .map(|t| {
                    let j = j.clone();
                    spawn(async move {
                        let handles: Vec<_> = (0..per_task)
                            .map(|n| {
                                let probe = j.probe();
                                let handle = run_in_executor(move || {
                                    let _probe = probe;
                                    thread::sleep(Duration::from_micros((n % 5) as u64 * 10));
                                    t * per_task + n
                                });
                                if n % 7 == 3 {
                                    handle.abort();
                                }
                                handle
                            })
                            .collect();
                        gather(handles).await
                    })
                })
                .collect();
            let mut outputs = Vec::new();
            for task in tasks {
                outputs.push(task.await.expect("a task"));
            }
            // More jobs than threads, still queued when the loop closes
            // (40 jobs of 20 ms on at most 6 workers take over 100 ms to
            // drain; the loop closes microseconds after they are queued).
            let late: Vec<JoinHandle<usize>> = (0..40)
                .map(|n| {
                    let probe = j.probe();
                    run_in_executor(move || {
                        let _probe = probe;
                        thread::sleep(ms(20));
                        n
                    })
                })
                .collect();
            (outputs, late)
        });
        for (t, results) in outputs.into_iter().enumerate() {
            for (n, result) in results.into_iter().enumerate() {
                match result {
                    Ok(value) => assert_eq!(value, t * per_task + n),
                    Err(error) => {
                        assert!(error.is_cancelled(), "{error}");
                        assert_eq!(n % 7, 3, "job {n} of task {t} was never aborted");
                    }
                }
            }
        }
        let mut cancelled_at_close = 0;
        for (n, handle) in late.into_iter().enumerate() {
            assert!(
                handle.is_finished(),
                "a job's handle outlived the loop unresolved"
            );
            match block_on(handle) {
                Ok(value) => assert_eq!(value, n),
                Err(error) => {
                    assert!(error.is_cancelled(), "{error}");
                    cancelled_at_close += 1;
                }
            }
        }
        assert!(
            cancelled_at_close > 0,
            "every late job ran: the close tested nothing"
        );
        assert_eq!(jobs.count(), 20 * per_task + 40, "every job dropped once");
    });
}

// ---------------------------------------------------------------- panics everywhere

/// Panics everywhere at once, on the real clock, and the loop reports each
/// and keeps the rest: tasks that panic in their poll (their handles give
/// the panic), futures that panic in `Drop` when they complete (the handle
/// still gives the value), when aborted (it gives "cancelled") and when the
/// loop closes (close goes on), user futures whose own waker panics inside
/// the task's poll (that task's handle gives the panic), blocking jobs that
/// panic on the loop's thread pool (their handles give the panic, the pool
/// goes on). Healthy tasks
/// beside them all finish with their values, and every future is dropped
/// exactly once.
#[test]
fn panics_in_polls_drops_and_user_wakers_are_reported_and_the_rest_runs_on() {
    let _shared = shared();
    with_watchdog("panics", || {
        let groups = scaled(200).max(2);
        let tally = Tally::default();
        let t = tally.clone();
        run(async move {
            let mut healthy = Vec::new();
            let mut panicking = Vec::new();
            let mut drop_bombs = Vec::new();
            let mut aborted = Vec::new();
            let mut user_wakers = Vec::new();
            let mut jobs = Vec::new();
            for g in 0..groups {
                let p = t.probe();
                healthy.push(spawn(async move {
                    let _probe = p;
                    sleep(ms(1 + g as u64 % 3)).await;
                    g
                }));
                let p = t.probe();
                panicking.push(spawn(async move {
                    let _probe = p;
                    sleep(ms(1)).await;
                    panic!("planned: task {g} panics");
                }));
                // Its bomb sits in the future, not in the async block's
                // locals (those drop inside the last poll): it goes off when
                // the loop drops the finished future.
                drop_bombs.push(spawn(WithBomb {
                    inner: Box::pin(async move {
                        yield_now().await;
                        g
                    }),
                    _probe: t.probe(),
                    _bomb: PanicOnDrop("a completed future"),
                }));
                let p = t.probe();
                aborted.push(spawn(async move {
                    let _probe = p;
                    let _bomb = PanicOnDrop("an aborted future");
                    sleep(Duration::from_secs(60)).await;
                    g
                }));
                let p = t.probe();
                // Detached, and still waiting when the loop closes.
                drop(spawn(async move {
                    let _probe = p;
                    let _bomb = PanicOnDrop("a future dropped at close");
                    sleep(Duration::from_secs(60)).await;
                }));
                let p = t.probe();
                user_wakers.push(spawn(async move {
                    let _probe = p;
                    yield_now().await;
                    // A user combinator wakes its own (broken) waker.
                    let bomb = waker_from_arc(Arc::new(PanickingWaker("a user")));
                    bomb.wake_by_ref();
                    g
                }));
                let p = t.probe();
                // A blocking job that panics on a pool thread.
                jobs.push(run_in_executor(move || {
                    let _probe = p;
                    panic!("planned: job {g} panics");
                }));
            }
            yield_now().await;
            for handle in &aborted {
                handle.abort();
            }
            for (g, handle) in healthy.into_iter().enumerate() {
                assert_eq!(handle.await.expect("a healthy task"), g);
            }
            for (g, handle) in panicking.into_iter().enumerate() {
                assert_eq!(
                    panicked_with(handle.await),
                    format!("planned: task {g} panics")
                );
            }
            for (g, handle) in drop_bombs.into_iter().enumerate() {
                // The drop's panic is reported; the value was already there.
                assert_eq!(handle.await.expect("panics in Drop after Ready"), g);
            }
            for handle in aborted {
                assert!(handle.await.expect_err("aborted").is_cancelled());
            }
            for handle in user_wakers {
                assert_eq!(panicked_with(handle.await), "planned: a user waker panics");
            }
            for (g, handle) in jobs.into_iter().enumerate() {
                assert_eq!(
                    panicked_with(handle.await),
                    format!("planned: job {g} panics")
                );
            }
            // The pool lives on: its workers caught the panics.
            assert_eq!(run_in_executor(|| 5).await.expect("a job"), 5);
            // The loop still runs: a timer, a gather, a timeout.
            let outputs = gather([sleep(ms(1)), sleep(ms(2))]).await;
            assert_eq!(outputs.len(), 2);
            assert!(
                timeout(ms(1), sleep(Duration::from_secs(60)))
                    .await
                    .is_err()
            );
        });
        // Every future and job, the ones dropped at close included, once.
        assert_eq!(tally.count(), groups * 7);
    });
}

/// A user future hands the *timer* a waker that panics (a hand-written
/// combinator's broken waker, say), on a real clock. When the timer fires
/// it, the panic is reported and the timer thread lives on: every other
/// sleep of the loop still ends, and the loop too.
#[test]
fn a_panicking_waker_fired_by_the_timer_thread_does_not_stop_the_timer() {
    let _shared = shared();
    with_watchdog("timer-waker", || {
        let started = Instant::now();
        let output = run(async {
            let bomb = spawn(async {
                let mut registered = sleep(ms(2));
                let waker = waker_from_arc(Arc::new(PanickingWaker("a timer's")));
                // Registers the sleep's deadline with the panicking waker.
                let poll = Pin::new(&mut registered).poll(&mut Context::from_waker(&waker));
                assert!(poll.is_pending());
                // Keep the registration alive until the timer has fired it.
                sleep(ms(10)).await;
                drop(registered);
                1
            });
            let after = spawn(async {
                sleep(ms(5)).await;
                2
            });
            (bomb.await.unwrap(), after.await.unwrap())
        });
        assert_eq!(output, (1, 2));
        assert!(started.elapsed() >= ms(10));
    });
}

/// The same on a virtual clock: the loop itself fires the timers, so the
/// panic would surface in `run_until_complete` and strand the timers fired
/// in the same batch. It is reported instead; a task whose timer fires
/// right after the broken one still runs, at exactly its deadline.
#[test]
fn a_panicking_waker_fired_by_a_virtual_timer_strands_no_other_timer() {
    let _shared = shared();
    with_watchdog("virtual-timer-waker", || {
        let event_loop = EventLoop::with_virtual_clock();
        let output = event_loop.run_until_complete(async {
            let bomb = spawn(async {
                let mut registered = sleep(ms(5));
                let waker = waker_from_arc(Arc::new(PanickingWaker("a virtual timer's")));
                let poll = Pin::new(&mut registered).poll(&mut Context::from_waker(&waker));
                assert!(poll.is_pending());
                sleep(ms(10)).await;
                drop(registered);
                1
            });
            // Same deadline, registered after the broken waker's.
            let after = spawn(async {
                sleep(ms(5)).await;
                get_running_loop().time()
            });
            (bomb.await.unwrap(), after.await.unwrap())
        });
        assert_eq!(output, (1, ms(5)));
        assert_eq!(event_loop.time(), ms(10));
    });
}

/// A user future awaits a task's handle with its own waker, which panics;
/// the loop calls it when the task finishes (or is cancelled, or the loop
/// closes). The panic is reported there and goes no further: the tasks
/// queued behind in the same pass still run, the loop's other tasks finish,
/// and closing the loop drops every task.
#[test]
fn a_panicking_waker_of_a_handle_awaiter_is_reported_and_strands_nothing() {
    let _shared = shared();
    with_watchdog("join-waker", || {
        let event_loop = EventLoop::with_virtual_clock();
        let tally = Tally::default();
        let t = tally.clone();
        let finished = event_loop.run_until_complete(async move {
            let mut targets = Vec::new();
            for i in 0..3usize {
                let p = t.probe();
                targets.push(spawn(async move {
                    let _probe = p;
                    sleep(ms(5)).await;
                    i
                }));
            }
            // A watcher polls each handle once with a panicking waker.
            let bomb = waker_from_arc(Arc::new(PanickingWaker("a handle awaiter's")));
            for target in &mut targets {
                let poll = Pin::new(target).poll(&mut Context::from_waker(&bomb));
                assert!(poll.is_pending());
            }
            // Tasks that finish at the same moment, behind the targets in
            // the same pass: a panic escaping the loop would strand them.
            let mut others = Vec::new();
            for i in 0..3usize {
                let p = t.probe();
                others.push(spawn(async move {
                    let _probe = p;
                    sleep(ms(5)).await;
                    10 + i
                }));
            }
            let mut finished = Vec::new();
            for handle in others.into_iter().chain(targets) {
                finished.push(handle.await.expect("finishes"));
            }
            finished
        });
        assert_eq!(finished, [10, 11, 12, 0, 1, 2]);
        assert_eq!(event_loop.time(), ms(5));
        assert_eq!(event_loop.live_tasks(), 0);
        event_loop.close();
        assert_eq!(tally.count(), 6);
    });
}

// ---------------------------------------------------------------- shutdown

/// A panic in `run`'s main future reaches the caller only after the loop
/// closed cleanly: every task it had spawned (sleeping, awaiting each
/// other, gathering, under a timeout, detached or held by a handle the
/// panic drops) has had its future dropped exactly once by then, and no
/// loop is left running on the thread.
#[test]
fn a_panic_in_runs_main_future_reaches_the_caller_after_a_clean_close() {
    let _shared = shared();
    with_watchdog("main-panic", || {
        let tasks = scaled(500).max(5);
        let tally = Tally::default();
        let t = tally.clone();
        let outcome = panic::catch_unwind(AssertUnwindSafe(move || {
            run(async move {
                let mut handles = Vec::new();
                for i in 0..tasks {
                    let p = t.probe();
                    let previous = handles.pop();
                    handles.push(spawn(async move {
                        let _probe = p;
                        match i % 4 {
                            0 => sleep(Duration::from_secs(60)).await,
                            1 => {
                                if let Some(previous) = previous {
                                    let _ = previous.await;
                                }
                            }
                            2 => {
                                gather([sleep(ms(1)), sleep(Duration::from_secs(60))]).await;
                            }
                            _ => {
                                let _ = timeout(Duration::from_secs(60), pending::<()>()).await;
                            }
                        }
                        i
                    }));
                }
                sleep(ms(2)).await;
                yield_now().await;
                panic!("planned: main gives up");
            })
        }));
        let payload = outcome.expect_err("the main future's panic reaches the caller");
        assert_eq!(panic_message(&*payload), "planned: main gives up");
        assert_eq!(tally.count(), tasks, "every task's future dropped once");
        assert!(try_running_loop().is_err(), "no loop left running");
    });
}

/// The names of this process's threads that belong to the runtime
/// ("tiny-asyncio-..."), or `None` where `/proc/self/task` is not there.
fn runtime_threads() -> Option<Vec<String>> {
    let entries = fs::read_dir("/proc/self/task").ok()?;
    let mut names = Vec::new();
    for entry in entries.flatten() {
        if let Ok(comm) = fs::read_to_string(entry.path().join("comm")) {
            let comm = comm.trim();
            if comm.starts_with("tiny-asyncio") {
                names.push(comm.to_string());
            }
        }
    }
    Some(names)
}

/// Waits (up to 2 s) for the runtime's threads to number at most `n`.
fn settle_to(n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let names = runtime_threads().unwrap_or_default();
        if names.len() <= n || Instant::now() > deadline {
            return names;
        }
        thread::sleep(ms(1));
    }
}

/// No thread left behind: a real-clock loop's timer thread runs while the
/// loop has timers, and it and the default pool's workers are joined when
/// the loop closes, whether `run` returned, its main future panicked, or
/// tasks were still sleeping and jobs running. Twenty loops in a row leave
/// no thread behind either. (Runs alone in this
/// binary: it counts the process's threads, from `/proc/self/task`.)
#[test]
fn closing_a_loop_leaves_no_thread_of_it_behind() {
    let _alone = THREADS.write().unwrap_or_else(|p| p.into_inner());
    if runtime_threads().is_none() {
        eprintln!("no /proc/self/task here: thread check skipped");
        return;
    }
    with_watchdog("threads", || {
        // Thread names must be visible there (valgrind, for one, keeps
        // them to itself): this thread's own is the test.
        let own = fs::read_to_string("/proc/thread-self/comm").unwrap_or_default();
        if own.trim() != "stress-threads" {
            eprintln!("thread names are not visible in /proc here: thread check skipped");
            return;
        }
        // Other tests' loops are closed; a timer thread that had to exit
        // by itself may still be on its way out.
        let baseline = settle_to(0).len();
        let loops = scaled(20).max(2);
        for round in 0..loops {
            let during = run(async {
                drop(spawn(sleep(Duration::from_secs(60))));
                sleep(ms(1)).await;
                runtime_threads().unwrap_or_default().len()
            });
            assert!(
                during > baseline,
                "round {round}: no timer thread while sleeping"
            );
            if round % 2 == 1 {
                let _ = panic::catch_unwind(|| {
                    run(async {
                        sleep(ms(1)).await;
                        panic!("planned: main panics in round {round}");
                    })
                });
            }
            let event_loop = EventLoop::new();
            event_loop.run_until_complete(async {
                drop(spawn(sleep(Duration::from_secs(60))));
                // The default pool's threads, busy when the loop closes.
                for _ in 0..3 {
                    drop(run_in_executor(|| thread::sleep(ms(2))));
                }
                sleep(ms(1)).await;
            });
            event_loop.close();
        }
        let after = settle_to(baseline);
        assert_eq!(
            after.len(),
            baseline,
            "threads left behind after {loops} closed loops: {after:?}"
        );
    });
}
