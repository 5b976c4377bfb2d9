//! Chapter 6's facts, on the virtual clock: the documents' examples E003-2,
//! E003-3, E004-1, E004-2, E004-5 and E004-6 in their exact order and exact
//! loop time, and what a `JoinHandle` promises: the task's value, or a
//! `JoinError` that tells cancelled (abort, loop closed) from panicked; abort
//! is idempotent and drops the task's future on the next pass; dropping a
//! handle detaches the task; closing the loop drops every unfinished task.

mod common;

use std::future::{Future, pending, poll_fn};
use std::panic;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::*;
use tiny_asyncio::ch06_join::{JoinCell, spawn_on};
use tiny_asyncio::{
    EventLoop, JoinError, JoinHandle, block_on, get_running_loop, sleep, spawn, yield_now,
};

/// Seed 003/004's `say_after`: sleep, print, and (for E003-3) return the word.
async fn say_after(delay: u64, what: &'static str, notes: Notes) -> &'static str {
    sleep(secs(delay)).await;
    notes.note(what);
    what
}

/// Seed 004's `sum`: one second per number, printing the running total.
async fn sum(name: &'static str, numbers: Vec<u64>, notes: Notes) -> u64 {
    let mut total = 0;
    for n in numbers {
        sleep(secs(1)).await;
        total += n;
        notes.note(format!("{name}{total}"));
    }
    total
}

// ------------------------------------------------------- E003-2, E004-6

#[test]
fn e003_2_tasks_start_at_spawn_hello_at_1_s_world_at_2_s_total_2_s() {
    let event_loop = EventLoop::with_virtual_clock();
    let notes = Notes::default();
    let j = notes.clone();
    event_loop.run_until_complete(async move {
        let task1 = spawn(say_after(1, "hello", j.clone()));
        let task2 = spawn(say_after(2, "world", j.clone()));
        j.note("started");
        task1.await.unwrap();
        task2.await.unwrap();
        j.note("finished");
    });
    assert_eq!(notes.steps(), "started | hello | world finished");
    assert_eq!(notes.at("hello"), secs(1));
    assert_eq!(notes.at("world"), secs(2));
    assert_eq!(event_loop.time(), secs(2));
}

#[test]
fn e004_6_say_after_as_tasks_takes_2_s_and_e004_5_awaited_in_turn_takes_3_s() {
    // E004-5: awaited directly, one after the other.
    let sequential = EventLoop::with_virtual_clock();
    let notes = Notes::default();
    let j = notes.clone();
    sequential.run_until_complete(async move {
        j.note("started");
        say_after(1, "hello", j.clone()).await;
        say_after(2, "world", j.clone()).await;
        j.note("finished");
    });
    assert_eq!(notes.steps(), "started | hello | world finished");
    assert_eq!(notes.at("world"), secs(3));
    assert_eq!(sequential.time(), secs(3));

    // E004-6: both created as tasks first.
    let concurrent = EventLoop::with_virtual_clock();
    let notes = Notes::default();
    let j = notes.clone();
    concurrent.run_until_complete(async move {
        let task1 = spawn(say_after(1, "hello", j.clone()));
        let task2 = spawn(say_after(2, "world", j.clone()));
        j.note("started");
        task1.await.unwrap();
        task2.await.unwrap();
        j.note("finished");
    });
    assert_eq!(notes.at("world"), secs(2));
    assert_eq!(concurrent.time(), secs(2));
}

// ---------------------------------------------------------------- E003-3

#[test]
fn e003_3_awaiting_a_task_gives_the_coroutines_return_value() {
    let event_loop = EventLoop::with_virtual_clock();
    let (first, second) = event_loop.run_until_complete(async {
        let notes = Notes::default();
        let task1 = spawn(say_after(1, "hello", notes.clone()));
        let task2 = spawn(async { 6 * 7 });
        let return_value = task1.await;
        (return_value, task2.await)
    });
    assert_eq!(first.unwrap(), "hello");
    assert_eq!(second.unwrap(), 42);
    assert_eq!(event_loop.time(), secs(1));
}

// ------------------------------------------------------- E004-1, E004-2

#[test]
fn e004_1_sums_awaited_in_turn_print_1_3_then_1_3_6_and_take_5_s() {
    let event_loop = EventLoop::with_virtual_clock();
    let notes = Notes::default();
    let j = notes.clone();
    let results = event_loop.run_until_complete(async move {
        let result1 = sum("A", vec![1, 2], j.clone()).await;
        let result2 = sum("B", vec![1, 2, 3], j.clone()).await;
        (result1, result2)
    });
    assert_eq!(notes.steps(), "A1 | A3 | B1 | B3 | B6");
    assert_eq!(notes.at("A3"), secs(2));
    assert_eq!(notes.at("B6"), secs(5));
    assert_eq!(results, (3, 6));
    assert_eq!(event_loop.time(), secs(5));
}

#[test]
fn e004_2_sums_as_tasks_interleave_a_done_at_2_s_b_at_3_s_results_3_and_6() {
    let event_loop = EventLoop::with_virtual_clock();
    let notes = Notes::default();
    let j = notes.clone();
    let results = event_loop.run_until_complete(async move {
        let task1 = spawn(sum("A", vec![1, 2], j.clone()));
        let task2 = spawn(sum("B", vec![1, 2, 3], j.clone()));
        let result1 = task1.await.unwrap();
        let a_done = get_running_loop().time();
        let result2 = task2.await.unwrap();
        (result1, a_done, result2)
    });
    assert_eq!(notes.steps(), "A1 B1 | A3 B3 | B6");
    assert_eq!(results, (3, secs(2), 6));
    assert_eq!(event_loop.time(), secs(3));
}

// ---------------------------------------------------------------- spawn

#[test]
fn spawn_outside_a_loop_panics_saying_there_is_no_running_event_loop() {
    let message = panic_text(|| {
        drop(spawn(async { 1 }));
    });
    assert!(message.starts_with("spawn"), "{message}");
    assert!(message.contains("no running event loop"), "{message}");
}

#[test]
fn spawn_runs_nothing_until_the_spawner_yields() {
    let event_loop = EventLoop::with_virtual_clock();
    let (before, after, value) = event_loop.run_until_complete(async {
        let handle = spawn(async { "ran" });
        let before = handle.is_finished();
        yield_now().await;
        let after = handle.is_finished();
        (before, after, handle.await.unwrap())
    });
    assert!(!before);
    assert!(after);
    assert_eq!(value, "ran");
}

#[test]
fn handles_are_numbered_in_spawn_order_and_errors_carry_the_number() {
    let event_loop = EventLoop::with_virtual_clock();
    let (ids, error) = event_loop.run_until_complete(async {
        let a = spawn(async {});
        let b = spawn(async {});
        let c = spawn(pending::<()>());
        let ids = [a.id(), b.id(), c.id()];
        c.abort();
        (ids, c.await.unwrap_err())
    });
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(error.task_id(), 3);
    assert_eq!(error.to_string(), "task 3 was cancelled");
    assert_eq!(format!("{error:?}"), "JoinError::Cancelled(task 3)");
}

#[test]
fn spawn_on_a_loop_that_is_not_running_queues_the_task_for_its_next_run() {
    let event_loop = EventLoop::with_virtual_clock();
    let handle = spawn_on(&event_loop.handle(), async {
        sleep(secs(1)).await;
        "later"
    });
    assert!(!handle.is_finished());
    let value = event_loop.run_until_complete(handle).unwrap();
    assert_eq!(value, "later");
    assert_eq!(event_loop.time(), secs(1));
}

#[test]
fn a_join_handle_polled_after_it_returned_its_result_panics_clearly() {
    let event_loop = EventLoop::with_virtual_clock();
    let message = panic_text(|| {
        let _ = event_loop.run_until_complete(async {
            let mut handle = spawn(async { 1 });
            assert_eq!((&mut handle).await.unwrap(), 1);
            poll_fn(|cx| Pin::new(&mut handle).poll(cx)).await
        });
    });
    assert!(message.contains("JoinHandle for task 1"), "{message}");
    assert!(
        message.contains("polled after it returned its result"),
        "{message}"
    );
}

#[test]
fn a_join_handle_can_be_awaited_from_another_thread() {
    let event_loop = EventLoop::with_virtual_clock();
    let got = event_loop.run_until_complete(async {
        let handle = spawn(async {
            sleep(secs(1)).await;
            5
        });
        // The other thread only waits; it wakes nothing in the loop, so the
        // virtual clock may jump freely.
        let waiter = thread::spawn(move || block_on(handle));
        sleep(secs(2)).await;
        waiter.join().unwrap()
    });
    assert_eq!(got.unwrap(), 5);
}

#[test]
fn a_task_can_await_another_tasks_handle() {
    let event_loop = EventLoop::with_virtual_clock();
    let value = event_loop.run_until_complete(async {
        let inner = spawn(async {
            sleep(secs(1)).await;
            20
        });
        let outer = spawn(async move {
            let v = inner.await.unwrap();
            sleep(secs(1)).await;
            v + 1
        });
        outer.await.unwrap()
    });
    assert_eq!(value, 21);
    assert_eq!(event_loop.time(), secs(2));
}

// ---------------------------------------------------------------- abort

#[test]
fn abort_is_idempotent_and_cancels_a_sleeping_task_on_the_next_pass() {
    let event_loop = EventLoop::with_virtual_clock();
    let drops = Tally::default();
    let probe = drops.probe();
    let d = drops.clone();
    let result = event_loop.run_until_complete(async move {
        let handle = spawn(async move {
            let _probe = probe;
            sleep(secs(10)).await;
            "woke up"
        });
        yield_now().await; // it runs and sets its timer
        let timer = get_running_loop().timer().clone();
        assert_eq!(timer.pending(), 1);
        handle.abort();
        handle.abort();
        assert_eq!(d.count(), 0, "abort only asks");
        assert!(!handle.is_finished());
        yield_now().await;
        assert_eq!(d.count(), 1, "the future is dropped on the next pass");
        assert_eq!(timer.pending(), 0, "and its sleep's timer cancelled");
        assert!(handle.is_finished());
        handle.abort(); // after it finished: nothing
        handle.await
    });
    let error = result.unwrap_err();
    assert!(error.is_cancelled());
    assert!(!error.is_panic());
    assert_eq!(error.panic_message(), None);
    assert_eq!(error.to_string(), "task 1 was cancelled");
    assert_eq!(drops.count(), 1);
    assert_eq!(event_loop.time(), Duration::ZERO, "nobody waited 10 s");
}

#[test]
fn a_task_may_still_finish_before_an_abort_takes_effect() {
    let event_loop = EventLoop::with_virtual_clock();
    let (finished_first, same_deadline) = event_loop.run_until_complete(async {
        // Finished before abort() is called: it keeps its result.
        let quick = spawn(async { 1 });
        yield_now().await;
        quick.abort();
        let finished_first = quick.await;
        // Both wake at 1 s; the target registered first, so it finishes in
        // that pass before the aborter runs.
        let target = spawn(async {
            sleep(secs(1)).await;
            2
        });
        yield_now().await;
        let aborter = spawn(async move {
            sleep(secs(1)).await;
            target.abort();
            target.await
        });
        (finished_first, aborter.await.unwrap())
    });
    assert_eq!(finished_first.unwrap(), 1);
    assert_eq!(same_deadline.unwrap(), 2);
}

#[test]
fn a_task_aborted_before_its_first_poll_is_never_polled() {
    let event_loop = EventLoop::with_virtual_clock();
    let polled = Arc::new(AtomicBool::new(false));
    let p = polled.clone();
    let result = event_loop.run_until_complete(async move {
        let handle = spawn(async move { p.store(true, SeqCst) });
        handle.abort();
        handle.await
    });
    assert!(result.unwrap_err().is_cancelled());
    assert!(!polled.load(SeqCst));
    assert_eq!(event_loop.live_tasks(), 0);
}

/// Records, when dropped, whether the handle of its task already said
/// "finished": 1 = not yet (right), 2 = already (wrong).
struct SeesHandle {
    handle: Arc<Mutex<Option<JoinHandle<()>>>>,
    seen: Arc<AtomicUsize>,
}

impl Drop for SeesHandle {
    fn drop(&mut self) {
        let handle = self.handle.lock().unwrap();
        let finished = handle.as_ref().is_some_and(JoinHandle::is_finished);
        self.seen.store(if finished { 2 } else { 1 }, SeqCst);
    }
}

#[test]
fn a_task_aborted_before_its_first_poll_drops_its_future_before_the_handle_resolves() {
    for started in [false, true] {
        let event_loop = EventLoop::with_virtual_clock();
        let cell: Arc<Mutex<Option<JoinHandle<()>>>> = Arc::default();
        let seen = Arc::new(AtomicUsize::new(0));
        let probe = SeesHandle {
            handle: cell.clone(),
            seen: seen.clone(),
        };
        event_loop.run_until_complete(async move {
            let handle = spawn(async move {
                let _probe = probe;
                pending::<()>().await;
            });
            *cell.lock().unwrap() = Some(handle);
            if started {
                yield_now().await;
            }
            cell.lock().unwrap().as_ref().unwrap().abort();
            yield_now().await;
            assert!(cell.lock().unwrap().as_ref().unwrap().is_finished());
        });
        assert_eq!(
            seen.load(SeqCst),
            1,
            "started = {started}: the handle resolved before the future was dropped"
        );
    }
}

#[test]
fn aborting_a_task_that_awaits_another_leaves_the_other_running() {
    let event_loop = EventLoop::with_virtual_clock();
    let notes = Notes::default();
    let j = notes.clone();
    event_loop.run_until_complete(async move {
        let j2 = j.clone();
        let inner = spawn(async move {
            sleep(secs(2)).await;
            j2.note("inner done");
        });
        let outer = spawn(async move {
            let _ = inner.await;
            j.note("outer done");
        });
        sleep(secs(1)).await;
        outer.abort();
        assert!(outer.await.unwrap_err().is_cancelled());
        sleep(secs(2)).await;
    });
    // Dropping the outer task dropped its JoinHandle of the inner one, which
    // detaches it (asyncio would cancel the awaited task too).
    assert_eq!(notes.lines(), ["inner done"]);
    assert_eq!(notes.at("inner done"), secs(2));
}

#[test]
fn a_future_that_panics_while_aborted_still_resolves_its_handle_as_cancelled() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("drop went wrong");
        }
    }
    let event_loop = EventLoop::with_virtual_clock();
    let (error, after) = event_loop.run_until_complete(async {
        let handle = spawn(async {
            let _bomb = PanicOnDrop;
            pending::<()>().await;
        });
        yield_now().await;
        handle.abort();
        let error = handle.await.unwrap_err();
        (error, spawn(async { "the loop runs on" }).await.unwrap())
    });
    assert!(error.is_cancelled());
    assert_eq!(after, "the loop runs on");
}

// ---------------------------------------------------------------- panics

#[test]
fn a_panicking_task_gives_a_panic_join_error_and_the_other_tasks_run_on() {
    let event_loop = EventLoop::with_virtual_clock();
    let (bad, good) = event_loop.run_until_complete(async {
        let bad = spawn(async {
            sleep(secs(1)).await;
            panic!("boom");
        });
        let good = spawn(async {
            sleep(secs(2)).await;
            "still here"
        });
        (bad.await, good.await)
    });
    let error: JoinError = bad.unwrap_err();
    assert!(error.is_panic());
    assert!(!error.is_cancelled());
    assert_eq!(error.panic_message().as_deref(), Some("boom"));
    assert_eq!(error.to_string(), "task 1 panicked: boom");
    assert_eq!(format!("{error:?}"), "JoinError::Panic(task 1, \"boom\")");
    assert_eq!(error.task_id(), 1);
    let payload = error.into_panic();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    assert_eq!(good.unwrap(), "still here");
    assert_eq!(event_loop.time(), secs(2));
    assert_eq!(event_loop.live_tasks(), 0);
}

#[test]
fn a_panic_with_a_formatted_message_or_any_payload_can_be_re_raised() {
    let event_loop = EventLoop::with_virtual_clock();
    let (formatted, other) = event_loop.run_until_complete(async {
        let n = 7;
        let formatted = spawn(async move { panic!("bad number {n}") });
        let other = spawn(async { std::panic::panic_any(42_i32) });
        (formatted.await, other.await)
    });
    let formatted: JoinError = formatted.unwrap_err();
    assert_eq!(formatted.panic_message().as_deref(), Some("bad number 7"));
    let other: JoinError = other.unwrap_err();
    assert!(other.is_panic());
    let payload = other.into_panic();
    assert_eq!(payload.downcast_ref::<i32>(), Some(&42));
    let message = panic_text(|| panic::resume_unwind(payload));
    assert_eq!(message, "a non-string panic payload");
}

#[test]
fn into_panic_on_a_cancelled_error_panics_clearly() {
    let message = panic_text(|| {
        JoinError::cancelled(9).into_panic();
    });
    assert!(message.contains("task 9 was cancelled"), "{message}");
}

// ---------------------------------------------------------------- detach

#[test]
fn dropping_a_join_handle_detaches_the_task_which_runs_to_its_end() {
    let event_loop = EventLoop::with_virtual_clock();
    let notes = Notes::default();
    let drops = Tally::default();
    let (j, probe) = (notes.clone(), drops.probe());
    event_loop.run_until_complete(async move {
        drop(spawn(async move {
            let _probe = probe;
            for i in 1..=3 {
                sleep(secs(1)).await;
                j.note(format!("step {i}"));
            }
        }));
        sleep(secs(5)).await;
    });
    assert_eq!(notes.steps(), "step 1 | step 2 | step 3");
    assert_eq!(notes.at("step 3"), secs(3));
    assert_eq!(drops.count(), 1);
    assert_eq!(event_loop.live_tasks(), 0);
}

// ---------------------------------------------------------------- shutdown

#[test]
fn closing_the_loop_drops_every_unfinished_task_once_and_their_handles_say_cancelled() {
    let event_loop = EventLoop::with_virtual_clock();
    let tallies: Vec<Tally> = (0..4).map(|_| Tally::default()).collect();
    let probes: Vec<Probe> = tallies.iter().map(Tally::probe).collect();
    let timer = event_loop.handle().timer().clone();
    let handles = event_loop.run_until_complete(async move {
        let mut handles = Vec::new();
        for (i, probe) in probes.into_iter().enumerate() {
            // Task 0 finishes at 1 s; 1 and 2 sleep on; 3 never starts.
            let delay = secs(i as u64 + 1);
            let task = async move {
                let _probe = probe;
                sleep(delay).await;
                i
            };
            if i == 3 {
                sleep(Duration::from_millis(1500)).await;
            }
            handles.push(spawn(task));
        }
        handles
    });
    let counts = |t: &[Tally]| t.iter().map(Tally::count).collect::<Vec<_>>();
    assert_eq!(counts(&tallies), [1, 0, 0, 0]);
    assert_eq!(
        handles.iter().map(|h| h.is_finished()).collect::<Vec<_>>(),
        [true, false, false, false]
    );
    event_loop.close();
    assert_eq!(counts(&tallies), [1, 1, 1, 1]);
    assert!(handles.iter().all(|h| h.is_finished()));
    assert_eq!(timer.pending(), 0);
    let results: Vec<Result<usize, JoinError>> = handles.into_iter().map(block_on).collect();
    assert_eq!(*results[0].as_ref().unwrap(), 0);
    for result in &results[1..] {
        assert!(result.as_ref().unwrap_err().is_cancelled());
    }
    assert_eq!(counts(&tallies), [1, 1, 1, 1]);
}

// ---------------------------------------------------------------- cells

#[test]
fn join_cell_the_first_result_wins_and_wakes_the_awaiter() {
    let cell = JoinCell::<u32>::new();
    cell.set_task_id(4);
    assert_eq!(cell.task_id(), 4);
    assert!(!cell.is_finished());
    let cancelled = Arc::new(AtomicBool::new(false));
    let handle = JoinHandle::from_cell(cell.clone(), cancelled.clone(), 4);
    let filler = thread::spawn(move || {
        thread::sleep(Duration::from_millis(10));
        cell.complete(Ok(1));
        cell.complete(Ok(2));
        cell.complete(Err(JoinError::cancelled(4)));
    });
    assert_eq!(block_on(handle).unwrap(), 1);
    filler.join().unwrap();
    assert!(!cancelled.load(SeqCst));
}

#[test]
fn a_handle_from_a_cell_resolves_from_outside_work_and_its_abort_sets_the_flag() {
    let event_loop = EventLoop::with_virtual_clock();
    let (value, flag_seen) = event_loop.run_until_complete(async {
        // Work done on another thread, as chapter 9's pool will do it.
        let cell = JoinCell::new();
        let cancelled = Arc::new(AtomicBool::new(false));
        let handle = JoinHandle::from_cell(cell.clone(), cancelled.clone(), 100);
        let keep_awake = get_running_loop().keep_awake();
        let worker = thread::spawn(move || {
            thread::sleep(Duration::from_millis(10));
            cell.complete(Ok("from a thread"));
            drop(keep_awake);
        });
        let value = handle.await.unwrap();
        worker.join().unwrap();

        let cell = JoinCell::<()>::new();
        let handle = JoinHandle::from_cell(cell.clone(), cancelled.clone(), 101);
        handle.abort();
        let flag_seen = cancelled.load(SeqCst);
        // Whoever does the work sees the flag and reports the cancellation.
        cell.complete(Err(JoinError::cancelled(101)));
        assert!(handle.await.unwrap_err().is_cancelled());
        (value, flag_seen)
    });
    assert_eq!(value, "from a thread");
    assert!(flag_seen);
    assert_eq!(event_loop.time(), Duration::ZERO);
}

#[test]
fn a_task_that_drops_the_last_handle_to_itself_in_its_own_poll_does_not_hang() {
    // The task is handed its own JoinHandle and drops it while it runs
    // (chapter 11's TaskGroup children do the same with their AbortHandle):
    // the last handle going must not wait for the task's own lock.
    let ended = within(secs(10), "a task dropping its own last handle", || {
        let event_loop = EventLoop::with_virtual_clock();
        event_loop.run_until_complete(async {
            let slot = Arc::new(Mutex::new(None::<JoinHandle<u32>>));
            let inner = slot.clone();
            let handle = spawn(async move {
                yield_now().await;
                let me = inner.lock().unwrap().take();
                drop(me);
                7
            });
            *slot.lock().unwrap() = Some(handle);
            // Nobody holds a handle now but the task itself; wait for it
            // to end by watching the loop's count of live tasks.
            while event_loop.live_tasks() > 0 {
                yield_now().await;
            }
        });
        event_loop.live_tasks()
    });
    assert_eq!(ended, 0);
}
