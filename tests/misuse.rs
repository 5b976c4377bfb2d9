//! Every misuse gets a clear message, and here is each one, tested in one
//! place: what the user did, the panic message they get, and that the
//! message says what went wrong (and, where asyncio has the same error,
//! asyncio's words for it). Some misuses are not errors at all and must
//! not panic: those are here too (`Duration::MAX` sleeps and timeouts).
//!
//! A message is checked by the fragments a reader needs (the operation, the
//! reason, asyncio's name for it), not character by character, so the
//! wording can be polished without rewriting this file.
//!
//! One misuse cannot be written at all: `run_until_complete` on a closed
//! loop. `EventLoop::close` takes the loop by value, and the loop is
//! neither `Send` nor reachable from a task, so the compiler refuses every
//! way to call it afterwards; what a kept `Handle` can still try (spawn,
//! `resource`) is refused with a message below.

use std::cell::Cell;
use std::future::{Future, pending, poll_fn, ready};
use std::panic::{self, AssertUnwindSafe};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, Once};
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use tiny_asyncio::ch02_futures::{
    FIND_USERS_POLLED_AFTER_COMPLETION, FindUsers, Journal, poll_by_hand, poll_once,
};
use tiny_asyncio::ch03_waker::{ThreadSleep, lock, waker_from_arc};
use tiny_asyncio::ch04_timer::Clock;
use tiny_asyncio::ch05_event_loop::{panic_message, spawn_detached};
use tiny_asyncio::ch06_join::{JoinCell, spawn_on};
use tiny_asyncio::ch07_gather::{ChildWakers, MaybeDone, naive_join_all};
use tiny_asyncio::{
    EventLoop, JoinError, JoinHandle, NoRunningLoop, ReturnWhen, ThreadPool, block_on, gather,
    get_running_loop, run, run_in_executor, sleep, sleep_until, spawn, timeout, timeout_at,
    try_gather, try_running_loop, wait, yield_now,
};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

thread_local! {
    /// Set while `panic_text` runs: the panic about to come is expected.
    static EXPECTING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, which must panic, and returns its message. The expected panic
/// is kept off the terminal; any other panic is printed as usual.
fn panic_text<T>(f: impl FnOnce() -> T) -> String {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !EXPECTING.with(Cell::get) {
                default(info);
            }
        }));
    });
    let before = EXPECTING.with(|e| e.replace(true));
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    EXPECTING.with(|e| e.set(before));
    match outcome {
        Ok(_) => panic!("it should have panicked"),
        Err(payload) => panic_message(&*payload),
    }
}

/// Asserts that `message` contains every fragment.
#[track_caller]
fn assert_says(message: &str, fragments: &[&str]) {
    for fragment in fragments {
        assert!(
            message.contains(fragment),
            "the message does not say {fragment:?}:\n{message}"
        );
    }
}

// ---------------------------------------------------------------- no running loop

#[test]
fn spawn_outside_a_loop_says_there_is_no_running_event_loop() {
    let message = panic_text(|| spawn(async {}));
    assert_says(
        &message,
        &[
            "spawn: ",
            "there is no running event loop",
            "RuntimeError: no running event loop",
            "run(...)",
        ],
    );
    let message = panic_text(|| spawn_detached(async {}));
    assert_says(&message, &["spawn_detached: ", "no running event loop"]);
}

#[test]
fn get_running_loop_outside_a_loop_says_there_is_none_e002_4() {
    let message = panic_text(get_running_loop);
    assert_says(
        &message,
        &["get_running_loop: ", "RuntimeError: no running event loop"],
    );
    let error = try_running_loop().expect_err("no loop runs here");
    assert_eq!(error, NoRunningLoop);
    assert_eq!(error.to_string(), "no running event loop");
}

#[test]
fn a_thread_started_by_a_task_has_no_running_loop_of_its_own() {
    let event_loop = EventLoop::with_virtual_clock();
    let message = event_loop.run_until_complete(async {
        // The loop runs on this thread only; another thread cannot spawn
        // on it by name (it would need the `Handle`, which stays here).
        thread::spawn(|| panic_text(|| spawn(async {})))
            .join()
            .expect("the thread returns the message")
    });
    assert_says(&message, &["spawn: ", "there is no running event loop"]);
}

// ---------------------------------------------------------------- the thread pool

#[test]
fn run_in_executor_outside_a_loop_says_there_is_no_running_event_loop() {
    let message = panic_text(|| run_in_executor(|| 1));
    assert_says(
        &message,
        &["run_in_executor: ", "there is no running event loop"],
    );
    // Outside a loop, a pool of one's own does the job.
    let pool = ThreadPool::new(1);
    assert_eq!(block_on(pool.run_in_executor(|| 1)).unwrap(), 1);
}

#[test]
fn a_pool_of_zero_threads_is_refused() {
    let message = panic_text(|| ThreadPool::new(0));
    assert_says(
        &message,
        &[
            "ThreadPool::new: ",
            "a pool needs at least one thread (got 0)",
            "never run them",
        ],
    );
}

// ---------------------------------------------------------------- nesting

#[test]
fn run_until_complete_inside_a_running_loop_is_refused_like_asyncio() {
    let event_loop = EventLoop::with_virtual_clock();
    let message = event_loop
        .run_until_complete(async { panic_text(|| event_loop.run_until_complete(async {})) });
    assert_says(
        &message,
        &[
            "run_until_complete: ",
            "already running",
            "RuntimeError: This event loop is already running",
            "Await the future, or spawn it",
        ],
    );
}

#[test]
fn run_inside_a_running_loop_is_refused_and_the_outer_loop_runs_on() {
    let event_loop = EventLoop::with_virtual_clock();
    let (message, output) = event_loop.run_until_complete(async {
        let message = panic_text(|| run(async {}));
        // The refused inner loop changed nothing for the outer one: its
        // tasks and timers still run, on it.
        let output = spawn(async {
            sleep(secs(1)).await;
            5
        })
        .await;
        (message, output)
    });
    assert_says(
        &message,
        &[
            "run: ",
            "already running",
            "RuntimeError: asyncio.run() cannot be called from a running event loop",
        ],
    );
    assert_eq!(output.unwrap(), 5);
    assert_eq!(event_loop.time(), secs(1));
    assert_eq!(event_loop.stats().spawned, 1);
}

// ---------------------------------------------------------------- closed loops

#[test]
fn a_handle_kept_past_close_refuses_spawn_and_resources() {
    let event_loop = EventLoop::with_virtual_clock();
    let handle = event_loop.handle();
    event_loop.close();
    assert!(handle.is_closed());
    assert_eq!(
        handle.to_string(),
        "<EventLoop running=false closed=true debug=false>"
    );
    let message = panic_text(|| spawn_on(&handle, async {}));
    assert_says(&message, &["spawn: ", "the event loop is closed"]);
    let message = panic_text(|| handle.resource(|| 5u8));
    assert_says(
        &message,
        &["Handle::resource: ", "the event loop is closed"],
    );
}

// ---------------------------------------------------------------- join handles

#[test]
fn polling_a_join_handle_after_it_returned_says_so() {
    let event_loop = EventLoop::with_virtual_clock();
    let mut handle = spawn_on(&event_loop.handle(), async { 7 });
    let output = event_loop.run_until_complete(&mut handle);
    assert_eq!(output.unwrap(), 7);
    let message = panic_text(|| block_on(&mut handle));
    assert_says(
        &message,
        &[
            &format!("JoinHandle for task {}", handle.id()),
            "polled after it returned its result",
            "must not be polled again",
        ],
    );
}

#[test]
fn polling_a_cell_handle_after_it_returned_says_so() {
    let cell = JoinCell::new();
    let mut handle = JoinHandle::from_cell(cell.clone(), Default::default(), 41);
    cell.complete(Ok("done"));
    assert_eq!(block_on(&mut handle).unwrap(), "done");
    let message = panic_text(|| block_on(&mut handle));
    assert_says(
        &message,
        &[
            "JoinHandle for task 41",
            "polled after it returned its result",
        ],
    );
}

#[test]
fn a_task_awaiting_its_own_handle_panics_saying_so() {
    let event_loop = EventLoop::with_virtual_clock();
    let error = event_loop.run_until_complete(async {
        let own: Arc<Mutex<Option<JoinHandle<()>>>> = Arc::default();
        let inside = own.clone();
        let handle = spawn(async move {
            yield_now().await;
            poll_fn(|cx| {
                let mut slot = lock(&inside);
                let handle = slot.as_mut().expect("the handle is in place");
                Pin::new(handle).poll(cx)
            })
            .await
            .ok();
        });
        let id = handle.id();
        *own.lock().unwrap() = Some(handle);
        for _ in 0..3 {
            yield_now().await;
        }
        // (The panic went through the lock: it is poisoned, and that is fine.)
        let handle = lock(&own).take().expect("still there");
        assert!(handle.is_finished());
        (id, handle.await.expect_err("it panicked"))
    });
    let (id, error) = error;
    assert!(error.is_panic(), "{error}");
    assert_says(
        &error.to_string(),
        &[
            &format!("task {id} panicked: task {id} awaits its own output"),
            "a task cannot wait for itself to finish",
        ],
    );
}

#[test]
fn into_panic_on_a_cancelled_error_says_it_did_not_panic() {
    let message = panic_text(|| JoinError::cancelled(3).into_panic());
    assert_says(
        &message,
        &[
            "JoinError::into_panic: ",
            "task 3 was cancelled, it did not panic",
        ],
    );
}

// ---------------------------------------------------------------- finished futures polled again

#[test]
fn every_finished_combinator_polled_again_says_so() {
    let event_loop = EventLoop::with_virtual_clock();
    let messages = event_loop.run_until_complete(async {
        let mut messages = Vec::new();
        let mut g = pin!(gather([ready(1)]));
        assert_eq!(g.as_mut().await, [1]);
        messages.push(panic_text(|| poll_once(g.as_mut())));
        let mut t = pin!(try_gather([ready(Ok::<u8, ()>(1))]));
        assert_eq!(t.as_mut().await, Ok(vec![1]));
        messages.push(panic_text(|| poll_once(t.as_mut())));
        let mut w = pin!(wait([ready(1)], ReturnWhen::AllCompleted));
        assert_eq!(w.as_mut().await.done.len(), 1);
        messages.push(panic_text(|| poll_once(w.as_mut())));
        let mut n = pin!(naive_join_all([ready(1)]));
        assert_eq!(n.as_mut().await, [1]);
        messages.push(panic_text(|| poll_once(n.as_mut())));
        let mut o = pin!(timeout(secs(1), ready(1)));
        assert_eq!(o.as_mut().await, Ok(1));
        messages.push(panic_text(|| poll_once(o.as_mut())));
        messages
    });
    let names = ["gather", "try_gather", "wait", "naive_join_all", "Timeout"];
    for (message, name) in messages.iter().zip(names) {
        assert_says(
            message,
            &[
                &format!("{name} polled after it returned"),
                "a finished future must not be polled again",
            ],
        );
    }
}

#[test]
fn chapter_2s_hand_written_future_polled_again_says_so() {
    let mut users = FindUsers::new(0, Journal::new());
    assert_eq!(poll_once(Pin::new(&mut users)), Poll::Ready(0));
    let message = panic_text(|| poll_once(Pin::new(&mut users)));
    assert_eq!(message, FIND_USERS_POLLED_AFTER_COMPLETION);
    assert_says(&message, &["polled after it completed"]);
}

#[test]
fn poll_by_hand_gives_up_on_a_future_that_waits_for_the_outside() {
    let message = panic_text(|| poll_by_hand(pending::<u8>(), &Journal::new()));
    assert_says(
        &message,
        &[
            "poll_by_hand gave up",
            "still Pending",
            "needs a real driver",
        ],
    );
}

#[test]
fn the_combinator_building_blocks_refuse_bad_use() {
    let wakers = ChildWakers::new(2);
    let message = panic_text(|| wakers.poll_child(5, pin!(ready(1))));
    assert_says(
        &message,
        &["ChildWakers::poll_child: child 5 does not exist (there are 2 children)"],
    );

    let mut child = MaybeDone::new(pending::<u8>());
    let message = panic_text(|| child.take_output());
    assert_says(
        &message,
        &["MaybeDone::take_output: the child has not finished yet"],
    );
    let mut child = MaybeDone::new(ready(4));
    let waker = waker_from_arc(Arc::new(tiny_asyncio::ch03_waker::Signal::new()));
    assert!(child.poll_with(&mut Context::from_waker(&waker)));
    assert_eq!(child.take_output(), 4);
    let message = panic_text(|| child.take_output());
    assert_says(
        &message,
        &["MaybeDone::take_output: the output was already taken"],
    );
}

// ---------------------------------------------------------------- time

#[test]
fn duration_max_sleeps_and_timeouts_never_panic() {
    let event_loop = EventLoop::with_virtual_clock();
    let (a, b, c, d) = event_loop.run_until_complete(async {
        // A Duration::MAX timeout on a ready future is simply Ok.
        let a = timeout(Duration::MAX, ready(1)).await;
        let b = timeout(Duration::MAX, async {
            sleep(secs(1)).await;
            2
        })
        .await;
        // A Duration::MAX sleep never ends; a timeout gives up on it.
        let c = timeout(secs(1), sleep(Duration::MAX)).await;
        let d = timeout_at(Duration::MAX, sleep_until(secs(3))).await;
        (a, b, c, d)
    });
    assert_eq!(a, Ok(1));
    assert_eq!(b, Ok(2));
    assert_eq!(c.expect_err("it never ends").deadline(), secs(2));
    assert_eq!(d, Ok(()));
    assert_eq!(event_loop.time(), secs(3));
    // Nothing overflows on the real clock either, in or out of a loop.
    assert!(block_on(timeout(Duration::from_millis(2), sleep(Duration::MAX))).is_err());
    assert!(run(timeout(Duration::from_millis(2), sleep(Duration::MAX))).is_err());
    // Chapter 3's thread-per-sleep clamps it to about a century.
    drop(ThreadSleep::new(Duration::MAX));
}

#[test]
fn a_virtual_loop_that_nothing_can_wake_says_deadlock() {
    type Case = Box<dyn FnOnce(&EventLoop)>;
    let cases: Vec<(&str, Case)> = vec![
        (
            "a Duration::MAX sleep",
            Box::new(|l: &EventLoop| l.run_until_complete(sleep(Duration::MAX))),
        ),
        (
            "a future that is never woken",
            Box::new(|l: &EventLoop| l.run_until_complete(pending::<()>())),
        ),
        (
            "a task that never ends",
            Box::new(|l: &EventLoop| {
                l.run_until_complete(async { spawn(pending::<()>()).await.ok() });
            }),
        ),
    ];
    for (what, case) in cases {
        let event_loop = EventLoop::with_virtual_clock();
        let message = panic_text(|| case(&event_loop));
        assert_says(
            &message,
            &[
                "event loop deadlock",
                "no timer is set (a Duration::MAX sleep never ends)",
                "KeepAwake",
                "nothing can ever wake this loop",
            ],
        );
        // Panicking left the loop usable: it runs (and closes) on.
        event_loop.run_until_complete(sleep(secs(1)));
        assert!(event_loop.time() >= secs(1), "{what}");
    }
}

#[test]
fn moving_a_real_clock_is_refused() {
    let message = panic_text(|| Clock::real().advance_to(secs(1)));
    assert_says(
        &message,
        &[
            "Clock::advance_to: ",
            "a real clock follows the wall clock and cannot be moved",
        ],
    );
}
