//! The pictures of real runs: the loop's trace (appendix module `trace`)
//! turned into timelines (appendix module `timeline`), on the virtual clock,
//! where every run is the same to the nanosecond.
//!
//! - Golden pictures: E000-4 (three look-ups as tasks) and E004-5 (say_after
//!   awaited in turn) beside E004-6 (as tasks), drawn from traces of real
//!   runs, compared character for character. A change in scheduling (a task
//!   polled in another pass, a wake attributed to someone else) shows up
//!   here as a diff of the picture. If a change is deliberate, print the new
//!   picture, check it by eye, and paste it here and in CHAPTERS.md.
//! - The trace's rules (`Trace::check_invariants`) on the traces of several
//!   programs: E000-4, a yield-heavy one, one with abort and panic and a
//!   loop closed under a sleeping task; and the checker itself refuses
//!   broken traces, rule by rule.
//! - The SVG of a real trace: well formed, one row per task.
//!
//! That tracing switched off allocates nothing is proved in its own test
//! binary, `tests/pictures_alloc.rs` (it needs a counting global allocator).
mod common;

use std::future::Future;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::xml::check_well_formed;
use common::*;
use tiny_asyncio::ch09_pool::THREAD_NAME_PREFIX;
use tiny_asyncio::cli::PictureArgs;
use tiny_asyncio::timeline::{Mark, render_panels_text};
use tiny_asyncio::trace::{Event, MAIN, Record, Trace, WakeSource};
use tiny_asyncio::{EventLoop, gather, get_running_loop, run_in_executor, sleep, spawn, yield_now};

/// Runs `future` on a fresh virtual-clock loop with tracing on, closes the
/// loop, and gives the output and the whole trace (the `Closed` records of
/// tasks left unfinished included: the sink outlives the loop).
fn traced<F: Future>(future: F) -> (F::Output, Trace) {
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.enable_trace();
    let sink = event_loop.handle().tracer();
    let output = event_loop.run_until_complete(future);
    event_loop.close();
    (output, sink.take())
}

/// Names the running loop's task `id` in pictures.
fn name(id: u64, name: &str) {
    get_running_loop().tracer().name(id, name);
}

/// E000-4's `find_users_async(n)`: one second of waiting per user.
async fn find_users(n: u64) -> u64 {
    for _ in 1..=n {
        sleep(secs(1)).await;
    }
    n
}

/// E000-4: the three look-ups as tasks created in the order 3, 2, 1,
/// awaited together.
fn e000_4() -> Trace {
    let (done, trace) = traced(async {
        let mut tasks = Vec::new();
        for n in [3, 2, 1] {
            let task = spawn(find_users(n));
            name(task.id(), &format!("users({n})"));
            tasks.push(task);
        }
        let mut done = Vec::new();
        for task in tasks {
            done.push(task.await.expect("find_users does not fail"));
        }
        done
    });
    assert_eq!(done, [3, 2, 1]);
    trace
}

/// Seeds 003/004's `say_after(delay, what)`.
async fn say_after(delay: u64, what: &'static str) -> &'static str {
    sleep(secs(delay)).await;
    what
}

/// E004-5: say_after(1, 'hello') then say_after(2, 'world'), awaited in
/// turn: 3 s, one task.
fn e004_5() -> Trace {
    let ((), trace) = traced(async {
        say_after(1, "hello").await;
        say_after(2, "world").await;
    });
    trace
}

/// E004-6: the same as tasks created first: 2 s.
fn e004_6() -> Trace {
    let ((), trace) = traced(async {
        let task1 = spawn(say_after(1, "hello"));
        let task2 = spawn(say_after(2, "world"));
        name(task1.id(), "task1");
        name(task2.id(), "task2");
        task1.await.unwrap();
        task2.await.unwrap();
    });
    trace
}

#[test]
fn e000_4_picture_from_a_real_trace_is_the_documents_three_folded_waits() {
    let picture = e000_4()
        .to_timeline("E000-4: find_users_async(3), (2), (1) as tasks")
        .render_text(80);
    let expected = "\
E000-4: find_users_async(3), (2), (1) as tasks
main     █····································································█
users(3) █░░░░░░░░░░░░░░░░░░░░░░█░░░░░░░░░░░░░░░░░░░░░░█░░░░░░░░░░░░░░░░░░░░░░█
users(2) █░░░░░░░░░░░░░░░░░░░░░░█░░░░░░░░░░░░░░░░░░░░░░█
users(1) █░░░░░░░░░░░░░░░░░░░░░░█
         ┬──────────────────────┬──────────────────────┬──────────────────────┬─
         0s                     1s                     2s                     3s
█ running   · waiting on a task   ░ asleep (timer)
";
    assert_eq!(picture, expected, "got:\n{picture}");
}

#[test]
fn e004_5_awaited_in_turn_against_e004_6_as_tasks_3_s_against_2_s() {
    let panels = [
        e004_5().to_timeline("E004-5: awaited in turn"),
        e004_6().to_timeline("E004-6: as tasks"),
    ];
    let picture = render_panels_text(&panels, 80);
    let expected = "\
E004-5: awaited in turn                   E004-6: as tasks
main █░░░░░░░░░█░░░░░░░░░░░░░░░░░░░█      main  █·········█·········█
                                          task1 █░░░░░░░░░█
                                          task2 █░░░░░░░░░░░░░░░░░░░█
     ┬─────────┬─────────┬─────────┬─           ┬─────────┬─────────┬─────────┬─
     0s        1s        2s        3s           0s        1s        2s        3s
█ running   · waiting on a task   ░ asleep (timer)
";
    assert_eq!(picture, expected, "got:\n{picture}");
}

#[test]
fn e000_4_timers_end_the_waits_at_exactly_1_2_and_3_s() {
    let trace = e000_4();
    let timer_wakes: Vec<(Duration, String)> = trace
        .records
        .iter()
        .filter(|r| {
            r.event
                == Event::Woken {
                    by: WakeSource::Timer,
                }
        })
        .map(|r| (r.at, trace.name_of(r.task)))
        .collect();
    let expected: Vec<(Duration, String)> = [
        (1, "users(3)"),
        (1, "users(2)"),
        (1, "users(1)"),
        (2, "users(3)"),
        (2, "users(2)"),
        (3, "users(3)"),
    ]
    .iter()
    .map(|&(s, n)| (secs(s), n.to_string()))
    .collect();
    assert_eq!(timer_wakes, expected);
    // users(n) is done at n s, and the last one done wakes the main future.
    for (id, n) in [(1, 3), (2, 2), (3, 1)] {
        let last = trace.of_task(id).last().unwrap();
        assert_eq!((last.at, &last.event), (secs(n), &Event::Done));
    }
    let main_wakes: Vec<&Record> = trace
        .of_task(MAIN)
        .filter(|r| matches!(r.event, Event::Woken { .. }))
        .collect();
    assert_eq!(main_wakes.len(), 1);
    assert_eq!(main_wakes[0].at, secs(3));
    assert_eq!(
        main_wakes[0].event,
        Event::Woken {
            by: WakeSource::Task(1)
        }
    );
}

/// The life of users(1) in E000-4, as CHAPTERS.md lists it: spawned, polled
/// once at 0 (it prints and sleeps), woken by the timer at 1 s, polled
/// again (it prints "done") and done.
#[test]
fn e000_4_the_life_of_users_1_told_by_its_records() {
    let trace = e000_4();
    assert_eq!(trace.name_of(3), "users(1)");
    let life: Vec<(Duration, Event)> = trace.of_task(3).map(|r| (r.at, r.event.clone())).collect();
    assert_eq!(
        life,
        [
            (secs(0), Event::Spawned),
            (secs(0), Event::PollStart),
            (secs(0), Event::PollEnd { ready: false }),
            (
                secs(1),
                Event::Woken {
                    by: WakeSource::Timer
                }
            ),
            (secs(1), Event::PollStart),
            (secs(1), Event::PollEnd { ready: true }),
            (secs(1), Event::Done),
        ]
    );
}

#[test]
fn e000_4_trace_obeys_the_invariants() {
    e000_4().check_invariants().unwrap();
    e004_5().check_invariants().unwrap();
    e004_6().check_invariants().unwrap();
}

/// Tasks that yield many times (each wakes itself during its poll), a task
/// that awaits another, a gather of yields inside a task, and a main future
/// that yields between spawns: many wakes during polls, many passes.
#[test]
fn a_yield_heavy_trace_obeys_the_invariants() {
    let (total, trace) = traced(async {
        let mut tasks = Vec::new();
        for i in 1..=5u64 {
            tasks.push(spawn(async move {
                for _ in 0..3 * i {
                    yield_now().await;
                }
                i
            }));
            yield_now().await;
        }
        let first = tasks.remove(0);
        let awaiter = spawn(async move { first.await.unwrap() * 100 });
        let gathered = spawn(async {
            gather((0..5).map(|_| yield_now())).await;
            yield_now().await;
            1000
        });
        let mut total = awaiter.await.unwrap() + gathered.await.unwrap();
        for task in tasks {
            total += task.await.unwrap();
        }
        total
    });
    assert_eq!(total, 100 + 1000 + 2 + 3 + 4 + 5);
    trace.check_invariants().unwrap();
    // Every task woke itself while running at least once.
    let self_wakes = trace
        .records
        .iter()
        .filter(|r| {
            r.event
                == Event::Woken {
                    by: WakeSource::Task(r.task),
                }
        })
        .count();
    assert!(self_wakes >= 3 * 15, "{self_wakes} self-wakes");
}

/// Abort (of a sleeping task, of a task never polled, of a task awaiting
/// another), a panic, and a loop closed under a sleeping task.
fn abort_and_panic() -> Trace {
    let ((), trace) = traced(async {
        let slow = spawn(async {
            sleep(secs(5)).await;
            1
        });
        let waiter = spawn(async move { slow.await.unwrap() });
        let sleeper = spawn(async { sleep(secs(10)).await });
        let never = spawn(async { sleep(secs(10)).await });
        never.abort();
        let bad = spawn(async {
            yield_now().await;
            panic!("boom (a test panic, on purpose)");
        });
        let left = spawn(async { sleep(secs(100)).await });
        name(waiter.id(), "waiter");
        name(sleeper.id(), "sleeper");
        name(never.id(), "never");
        name(bad.id(), "bad");
        name(left.id(), "left");
        sleep(secs(1)).await;
        waiter.abort();
        sleeper.abort();
        assert!(bad.await.unwrap_err().is_panic());
        assert!(sleeper.await.unwrap_err().is_cancelled());
        // slow finishes at 5 s and wakes its (aborted) waiter's stale waker.
        sleep(secs(6)).await;
    });
    trace
}

#[test]
fn an_abort_and_panic_trace_obeys_the_invariants() {
    let trace = abort_and_panic();
    trace.check_invariants().unwrap();
    let last = |name: &str| {
        let id = *trace.names.iter().find(|(_, n)| *n == name).unwrap().0;
        trace.of_task(id).last().unwrap().clone()
    };
    assert_eq!(last("never").event, Event::Cancelled);
    assert_eq!(
        last("sleeper"),
        Record {
            at: secs(1),
            task: 3,
            event: Event::Cancelled
        }
    );
    // Aborted at 1 s while awaiting `slow`: the wake `slow` sends its stale
    // waker at 5 s is not recorded, its end stays its last record.
    assert_eq!(
        last("waiter"),
        Record {
            at: secs(1),
            task: 2,
            event: Event::Cancelled
        }
    );
    // The panic ends its poll as Ready: the task is done, with a panic.
    assert_eq!(last("bad").event, Event::Done);
    // Still asleep when the loop closed at 7 s.
    assert_eq!(
        last("left"),
        Record {
            at: secs(7),
            task: 6,
            event: Event::Closed
        }
    );
}

#[test]
fn a_cancelled_task_wakes_its_awaiter_as_itself() {
    let trace = abort_and_panic();
    // The main future awaited `sleeper` (task 3), aborted at 1 s: the wake
    // comes from that task, so the picture draws "waiting on a task".
    let woken_at_1s: Vec<&Event> = trace
        .of_task(MAIN)
        .filter(|r| r.at == secs(1) && matches!(r.event, Event::Woken { .. }))
        .map(|r| &r.event)
        .collect();
    assert_eq!(
        woken_at_1s,
        [
            &Event::Woken {
                by: WakeSource::Timer
            },
            &Event::Woken {
                by: WakeSource::Task(3)
            }
        ]
    );
    // A wait nobody woke (cancelled, closed) is drawn idle, not queued.
    let timeline = trace.to_timeline("abort");
    for name in ["sleeper", "waiter", "left"] {
        let row = timeline.rows.iter().find(|r| r.name == name).unwrap();
        assert!(
            row.spans.iter().all(|s| s.mark != Mark::Queued),
            "{name}: {:?}",
            row.spans
        );
    }
}

/// E003-4's shape: two tasks each hand a blocking job to the default pool.
/// The two jobs wait for each other (a barrier), so they must run at once
/// on two pool threads. On `event_loop` (virtual or real clock).
fn two_blocking_jobs(event_loop: EventLoop) -> Trace {
    event_loop.enable_trace();
    let sink = event_loop.handle().tracer();
    event_loop.run_until_complete(async {
        let both = Arc::new(Barrier::new(2));
        let tasks: Vec<_> = (1..=2)
            .map(|n| {
                let both = both.clone();
                spawn(async move {
                    run_in_executor(move || {
                        both.wait();
                        // Long enough that both tasks are surely waiting
                        // (not still in their first poll) when the jobs end.
                        std::thread::sleep(Duration::from_millis(100));
                        n
                    })
                    .await
                    .unwrap()
                })
            })
            .collect();
        for (n, task) in (1..).zip(tasks) {
            assert_eq!(task.await.unwrap(), n);
        }
    });
    event_loop.close(); // joins the pool's threads
    sink.take()
}

#[test]
fn pool_jobs_are_traced_on_their_threads_and_wake_their_task_from_there() {
    for (clock, event_loop) in [
        ("virtual", EventLoop::with_virtual_clock()),
        ("real", EventLoop::new()),
    ] {
        let trace = two_blocking_jobs(event_loop);
        // On the real clock, records from three threads: still in time order.
        trace
            .check_invariants()
            .unwrap_or_else(|e| panic!("{clock}: {e}"));
        let thread_of = |wanted: u64| {
            let mut starts = trace
                .records
                .iter()
                .enumerate()
                .filter_map(|(i, r)| match &r.event {
                    Event::JobStart { thread, job } if *job == wanted => Some((i, thread.clone())),
                    _ => None,
                });
            let start = starts.next().expect("the job started");
            assert!(
                starts.next().is_none(),
                "{clock}: job {wanted} started twice"
            );
            start
        };
        let (start_1, thread_1) = thread_of(1);
        let (start_2, thread_2) = thread_of(2);
        assert!(thread_1.starts_with(THREAD_NAME_PREFIX), "{thread_1}");
        assert!(thread_2.starts_with(THREAD_NAME_PREFIX), "{thread_2}");
        assert_ne!(thread_1, thread_2, "{clock}: the barrier needs two threads");
        // Task n submitted job n: its job ends, then its own thread wakes it.
        for (task, job, thread, start) in [(1, 1, &thread_1, start_1), (2, 2, &thread_2, start_2)] {
            let end = trace
                .records
                .iter()
                .position(|r| {
                    r.event
                        == Event::JobEnd {
                            thread: thread.clone(),
                            job,
                        }
                })
                .expect("the job ended");
            let woken = trace
                .records
                .iter()
                .position(|r| {
                    r.task == task
                        && r.event
                            == Event::Woken {
                                by: WakeSource::Thread(thread.clone()),
                            }
                })
                .expect("the job's thread woke its task");
            assert!(
                start < end && end < woken,
                "{clock}: {start} < {end} < {woken}"
            );
        }
        // The picture: main, the two tasks waiting on jobs, the two threads.
        let timeline = trace.to_timeline("E003-4");
        let names: Vec<&str> = timeline.rows.iter().map(|r| r.name.as_str()).collect();
        // Thread rows come in the order the threads started work.
        let (first, second) = if start_1 < start_2 {
            (&thread_1, &thread_2)
        } else {
            (&thread_2, &thread_1)
        };
        assert_eq!(names, ["main", "task 1", "task 2", first, second]);
        // (On the virtual clock a job takes no loop time: the loop holds
        // its clock while a job runs, so there is no wait to draw.)
        for row in timeline.rows[1..3].iter().filter(|_| clock == "real") {
            assert!(
                row.spans.iter().any(|s| s.mark == Mark::Job),
                "{clock}: {row:?}"
            );
        }
        for row in &timeline.rows[3..] {
            assert!(
                row.spans.iter().all(|s| s.mark == Mark::Blocked),
                "{clock}: {row:?}"
            );
        }
    }
}

#[test]
fn with_tracing_off_pool_jobs_record_nothing() {
    let event_loop = EventLoop::with_virtual_clock();
    let sink = event_loop.handle().tracer();
    event_loop.run_until_complete(async { run_in_executor(|| 42).await.unwrap() });
    event_loop.close();
    assert!(sink.take().records.is_empty());
}

#[test]
fn the_svg_of_a_real_trace_is_well_formed_with_one_row_per_task() {
    for trace in [e000_4(), e004_6(), abort_and_panic()] {
        let svg = trace.to_timeline("a real run").render_svg();
        check_well_formed(&svg).unwrap();
        assert_eq!(
            svg.matches(r#"class="row""#).count(),
            trace.tasks().len(),
            "{:?}",
            trace.tasks()
        );
    }
    // E000-4: main and the three look-ups.
    assert_eq!(e000_4().tasks(), [MAIN, 1, 2, 3]);
}

#[test]
fn with_tracing_off_the_trace_is_empty_and_names_are_not_kept() {
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        let task = spawn(find_users(1));
        name(task.id(), "users(1)");
        task.await.unwrap();
    });
    let trace = event_loop.take_trace();
    assert!(trace.records.is_empty() && trace.names.is_empty());
    assert_eq!(trace.records.capacity(), 0);
}

// ---------------------------------------------------------------------------
// The checker refuses broken traces, rule by rule.

fn record(at: u64, task: u64, event: Event) -> Record {
    Record {
        at: secs(at),
        task,
        event,
    }
}

fn check(records: Vec<Record>) -> Result<(), String> {
    Trace {
        records,
        ..Default::default()
    }
    .check_invariants()
}

/// A task's first poll, in order: spawned, polled, pending.
fn first_poll(task: u64) -> Vec<Record> {
    vec![
        record(0, task, Event::Spawned),
        record(0, task, Event::PollStart),
        record(0, task, Event::PollEnd { ready: false }),
    ]
}

fn assert_refused(records: Vec<Record>, because: &str) {
    let error = check(records).expect_err("a broken trace must be refused");
    assert!(error.contains(because), "{error:?} should say {because:?}");
}

#[test]
fn check_invariants_refuses_each_broken_rule_with_a_message() {
    use Event::*;
    let woken = |by| Woken { by };
    // A sound life passes.
    let mut ok = first_poll(1);
    ok.extend([
        record(1, 1, woken(WakeSource::Timer)),
        record(1, 1, PollStart),
        record(1, 1, PollEnd { ready: true }),
        record(1, 1, Done),
    ]);
    check(ok.clone()).unwrap();

    // 1. Time runs backwards.
    let mut bad = ok.clone();
    bad[3].at = Duration::from_millis(500);
    bad[4].at = Duration::from_millis(400);
    assert_refused(bad, "time ran backwards");
    // 2. Two polls at once.
    let mut bad = first_poll(1);
    bad.extend([
        record(0, 2, Spawned),
        record(0, 1, woken(WakeSource::Task(2))),
    ]);
    bad.extend([record(0, 1, PollStart), record(0, 2, PollStart)]);
    assert_refused(bad, "task 1 was being polled");
    // 3. Polled before being spawned; spawned twice; main spawned.
    assert_refused(vec![record(0, 1, PollStart)], "never spawned");
    assert_refused(
        vec![record(0, 1, Spawned), record(0, 1, Spawned)],
        "spawned twice",
    );
    assert_refused(
        vec![record(0, MAIN, Spawned)],
        "main future is never spawned",
    );
    // 4. Polled again with no wake.
    let mut bad = first_poll(1);
    bad.push(record(1, 1, PollStart));
    assert_refused(bad, "polled without a wake");
    // 5. Done without a ready poll; a ready poll not followed by Done.
    let mut bad = first_poll(1);
    bad.push(record(1, 1, Done));
    assert_refused(bad, "Done must follow the poll that returned Ready");
    let mut bad = ok[..6].to_vec();
    bad.push(record(1, 1, woken(WakeSource::Timer)));
    bad.push(record(1, 1, PollStart));
    assert_refused(bad, "Done must come next");
    let mut bad = first_poll(1);
    bad.extend([
        record(0, 1, woken(WakeSource::Timer)),
        record(0, 1, PollStart),
    ]);
    bad.push(record(0, 1, PollStart));
    assert_refused(bad, "previous poll had not ended");
    // 6. Anything after the end; cancelled during a poll.
    let mut bad = ok.clone();
    bad.push(record(2, 1, woken(WakeSource::Timer)));
    assert_refused(bad, "already ended");
    let mut bad = first_poll(1);
    bad.push(record(0, 1, Cancelled));
    bad.push(record(0, 1, PollStart));
    assert_refused(bad, "already ended");
    let mut bad = first_poll(1);
    bad.extend([
        record(0, 1, woken(WakeSource::Timer)),
        record(0, 1, PollStart),
    ]);
    bad.push(record(0, 1, Closed));
    assert_refused(bad, "only between polls");
    // 7. Two jobs at once on one pool thread; an end with no start.
    let job = |n, start: bool| {
        let thread = "pool-1".to_string();
        let event = if start {
            JobStart { thread, job: n }
        } else {
            JobEnd { thread, job: n }
        };
        record(0, 0, event)
    };
    check(vec![
        job(1, true),
        job(1, false),
        job(2, true),
        job(2, false),
    ])
    .unwrap();
    assert_refused(vec![job(1, true), job(2, true)], "still running job 1");
    assert_refused(vec![job(1, false)], "never started");
}

/// Issue 12, fault 6: a recording that begins while tasks are alive (after
/// `take_trace`, "the recording starts over") is checkable. Here the first
/// take happens inside main's poll, with two tasks asleep and a pool job
/// running; the second recording begins there, in the middle of every life,
/// and both pass `check_invariants`. (The second was always refused: "the
/// task was never spawned".)
#[test]
fn a_trace_that_begins_mid_life_after_take_trace_passes_the_checker() {
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.enable_trace();
    let first = event_loop.run_until_complete(async {
        let a = spawn(async {
            for _ in 0..3 {
                sleep(secs(1)).await;
            }
        });
        let b = spawn(async {
            yield_now().await;
            sleep(secs(2)).await;
        });
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let job = run_in_executor(move || gate.recv().ok());
        // (The job holds the virtual clock still until it ends: no sleep
        // here, only turns, so that a and b get to their sleeps.)
        yield_now().await;
        yield_now().await;
        // Mid-life: main is being polled, a and b sleep, the job runs.
        let first = get_running_loop().tracer().take();
        release.send(()).unwrap();
        job.await.unwrap();
        a.await.unwrap();
        b.await.unwrap();
        first
    });
    let second = event_loop.take_trace();
    assert!(
        !first.begins_mid_life,
        "the first recording began before any task"
    );
    assert!(second.begins_mid_life);
    first.check_invariants().unwrap();
    second.check_invariants().unwrap();
    // And it can be drawn: a well-formed SVG, one row per task it met and
    // one for the pool thread.
    let svg = second.to_timeline("mid-life").render_svg();
    check_well_formed(&svg).unwrap();
    assert_eq!(
        svg.matches(r#"class="row""#).count(),
        second.tasks().len() + 1
    );
    assert!(
        !second.records.iter().any(|r| r.event == Event::Spawned),
        "nothing was spawned in the second recording: it met every task mid-life"
    );
    assert!(
        second
            .records
            .iter()
            .any(|r| matches!(r.event, Event::JobEnd { .. }))
    );
}

/// A mid-life recording is not a free pass: the rules still hold from each
/// task's first record on, and a trace that begins at the start still
/// refuses a task that was never spawned.
#[test]
fn a_mid_life_trace_still_refuses_broken_rules() {
    use Event::*;
    let mid_life = |records: Vec<Record>| {
        Trace {
            records,
            begins_mid_life: true,
            ..Default::default()
        }
        .check_invariants()
    };
    let refused = |records: Vec<Record>, because: &str| {
        let error = mid_life(records).expect_err("a broken trace must be refused");
        assert!(error.contains(because), "{error:?} should say {because:?}");
    };
    // Sound: task 1 was mid-poll (its PollEnd comes first), main too; task
    // 2 was asleep; a job was running on a pool thread.
    let job_end = JobEnd {
        thread: "pool-1".into(),
        job: 4,
    };
    mid_life(vec![
        record(0, 1, PollEnd { ready: false }),
        record(0, 0, job_end.clone()),
        record(
            1,
            2,
            Woken {
                by: WakeSource::Timer,
            },
        ),
        record(1, 2, PollStart),
        record(1, 2, PollEnd { ready: true }),
        record(1, 2, Done),
        record(1, 1, PollStart),
        record(1, 1, PollEnd { ready: false }),
    ])
    .unwrap();
    // Two polls at once: 2's poll started in the recording before 1's
    // (begun before the recording) ended.
    refused(
        vec![
            record(0, 2, PollStart),
            record(0, 1, PollEnd { ready: false }),
        ],
        "two polls at once",
    );
    // A poll of its own without a wake, once its life is followed.
    refused(
        vec![
            record(0, 1, PollStart),
            record(0, 1, PollEnd { ready: false }),
            record(0, 1, PollStart),
        ],
        "polled without a wake",
    );
    // Nothing after the end, even when the end is its first record.
    refused(
        vec![
            record(0, 1, Done),
            record(
                0,
                1,
                Woken {
                    by: WakeSource::Timer,
                },
            ),
        ],
        "already ended",
    );
    // Alive before the recording, then spawned in it.
    refused(
        vec![
            record(
                0,
                1,
                Woken {
                    by: WakeSource::Timer,
                },
            ),
            record(0, 1, Spawned),
        ],
        "alive before the recording",
    );
    // A job ending on a thread whose recorded job was another.
    refused(
        vec![
            record(
                0,
                0,
                JobStart {
                    thread: "pool-1".into(),
                    job: 5,
                },
            ),
            record(0, 0, job_end),
        ],
        "running job 5",
    );
    // Begun at the start, the old rules stand.
    assert_refused(vec![record(0, 1, PollStart)], "never spawned");
    assert_refused(
        vec![record(0, MAIN, PollEnd { ready: false })],
        "no poll had started",
    );
}

#[test]
fn picture_flags_are_split_from_the_examples_own_arguments() {
    let args = [
        "--unit-ms",
        "100",
        "--timeline",
        "--svg",
        "ch05.svg",
        "--width=60",
    ];
    let (picture, rest) = PictureArgs::split(args.map(String::from)).unwrap();
    assert!(picture.timeline);
    assert_eq!(
        picture.svg.as_deref(),
        Some(std::path::Path::new("ch05.svg"))
    );
    assert_eq!(picture.width, Some(60));
    assert_eq!(rest, ["--unit-ms", "100"]);
    let (picture, rest) = PictureArgs::split(["--unit-ms".to_string(), "5".to_string()]).unwrap();
    assert!(!picture.wants_picture());
    assert_eq!(rest, ["--unit-ms", "5"]);
}
