//! Chapter 5's loop at its edges: how a run ends (as asyncio's does), and
//! what the loop does when user code misbehaves where the loop, not a task,
//! is in charge: a detached task's output whose `Drop` panics, a panic
//! payload whose own `Drop` panics, a wake from a thread-local's destructor,
//! and wakes left queued between two runs. Every test goes through the
//! public API only, and checks that nothing escapes and nothing is lost.

mod common;

use std::cell::RefCell;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::thread;

use common::*;
use tiny_asyncio::ch05_event_loop::spawn_detached;
use tiny_asyncio::{EventLoop, yield_now};

// ------------------------------------------------------------ the end of a run

/// asyncio's rule, checked against CPython 3.11 by hand: when the main
/// coroutine returns, the loop finishes the current iteration and runs one
/// more before it stops. So a task created in main's last step runs its
/// first step (up to its first `await`); a task *that* task creates does
/// not run, and stays queued for a later `run_until_complete`, in FIFO
/// order behind nothing (Python prints `main returns`, `child 1 start`, and
/// in the second run `grandchild start` before `child 1 after yield`).
#[test]
fn a_task_created_in_mains_last_step_runs_its_first_step_before_the_run_ends() {
    let event_loop = EventLoop::with_virtual_clock();
    let notes = Notes::default();
    let j = notes.clone();
    event_loop.run_until_complete(async move {
        let jc = j.clone();
        spawn_detached(async move {
            jc.note("child 1 start");
            let jg = jc.clone();
            spawn_detached(async move { jg.note("grandchild start") });
            yield_now().await;
            jc.note("child 1 after yield");
        });
        j.note("main returns");
    });
    assert_eq!(notes.lines(), ["main returns", "child 1 start"]);
    assert_eq!(
        event_loop.live_tasks(),
        2,
        "the child and the grandchild wait"
    );
    // Python prints "between runs" here, outside any loop.
    event_loop.run_until_complete(yield_now());
    assert_eq!(
        notes.lines(),
        [
            "main returns",
            "child 1 start",
            "grandchild start",
            "child 1 after yield"
        ]
    );
    assert_eq!(event_loop.live_tasks(), 0);
}

/// E004-4 (seed 004, `asyncio.run`): `run` makes a fresh loop, runs the
/// coroutine to completion, returns its result and closes the loop. The
/// end-of-run rule holds for it too: the task created in main's last step
/// runs its first step; what is still unfinished after that is dropped by
/// the close, exactly once.
#[test]
fn run_gives_the_result_after_the_extra_pass_and_drops_the_leftovers_once() {
    let steps = Arc::new(AtomicUsize::new(0));
    let tally = Tally::default();
    let (s, probe) = (steps.clone(), tally.probe());
    let answer = tiny_asyncio::run(async move {
        spawn_detached(async move {
            let _probe = probe;
            s.fetch_add(1, SeqCst);
            std::future::pending::<()>().await;
        });
        42
    });
    assert_eq!(answer, 42);
    assert_eq!(steps.load(SeqCst), 1, "the last task ran its first step");
    assert_eq!(
        tally.count(),
        1,
        "and was dropped once when the loop closed"
    );
}

/// A wake from an old waker of a main future that has finished does not
/// poll it again (a finished future is never polled) and does not confuse
/// the next run.
#[test]
fn a_stale_wake_of_a_finished_main_future_is_ignored() {
    let event_loop = EventLoop::with_virtual_clock();
    let kept: Arc<Mutex<Option<Waker>>> = Arc::default();
    let k = kept.clone();
    event_loop.run_until_complete(poll_fn(move |cx| {
        *lock(&k) = Some(cx.waker().clone());
        Poll::Ready(())
    }));
    lock(&kept).take().unwrap().wake();
    let second = event_loop.run_until_complete(async { "second" });
    assert_eq!(second, "second");
}

// ------------------------------------------------- panics where the loop drops

/// An output whose `Drop` panics.
struct PanicsOnDrop(&'static str);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("{}", self.0);
    }
}

/// A detached task (nobody holds its handle) returns a value whose `Drop`
/// panics. Nobody can take that output, so the loop drops it, catches the
/// panic and reports it; the tasks queued behind it in the same pass run,
/// and the loop stays usable (no "deadlock" in a later run).
#[test]
fn a_detached_tasks_output_that_panics_when_dropped_strands_nothing() {
    quiet_planned_panics();
    let event_loop = EventLoop::with_virtual_clock();
    let ran_behind = Arc::new(AtomicUsize::new(0));
    let r = ran_behind.clone();
    event_loop.run_until_complete(async move {
        // Both queued in the same pass, the bad one first.
        spawn_detached(async { drop(async { PanicsOnDrop("output drop fails") }.await) });
        let bad = tiny_asyncio::ch05_event_loop::get_running_loop()
            .spawn_task(async { PanicsOnDrop("detached output drop fails") });
        drop(bad);
        for _ in 0..3 {
            let r = r.clone();
            spawn_detached(async move {
                r.fetch_add(1, SeqCst);
            });
        }
        for _ in 0..3 {
            yield_now().await;
        }
    });
    assert_eq!(ran_behind.load(SeqCst), 3, "every task behind it ran");
    assert_eq!(event_loop.live_tasks(), 0);
    let later = event_loop.run_until_complete(async {
        let r = Arc::new(AtomicBool::new(false));
        let r2 = r.clone();
        spawn_detached(async move { r2.store(true, SeqCst) });
        yield_now().await;
        r.load(SeqCst)
    });
    assert!(later, "a later run schedules and runs tasks as usual");
}

/// The same when the detached task panics with a payload whose own `Drop`
/// panics: the loop keeps the panic as the task's outcome, drops it when
/// nobody can take it, and catches that second panic too.
#[test]
fn a_panic_payload_that_panics_when_dropped_escapes_nothing() {
    quiet_planned_panics();
    let event_loop = EventLoop::with_virtual_clock();
    let ran_behind = Arc::new(AtomicBool::new(false));
    let r = ran_behind.clone();
    event_loop.run_until_complete(async move {
        spawn_detached(async {
            std::panic::panic_any(PanicsOnDrop("payload drop fails"));
        });
        spawn_detached(async move { r.store(true, SeqCst) });
        for _ in 0..3 {
            yield_now().await;
        }
    });
    assert!(ran_behind.load(SeqCst));
    assert_eq!(event_loop.live_tasks(), 0);
}

/// A handle that is still held keeps the output for its owner: the early
/// drop is only for outputs nobody can take.
#[test]
fn a_held_handle_still_gets_the_output_after_others_were_dropped_early() {
    let event_loop = EventLoop::with_virtual_clock();
    let handle = event_loop.handle();
    let got = event_loop.run_until_complete(async move {
        let kept = handle.spawn_task(async { String::from("kept") });
        let extra = kept.clone();
        drop(extra);
        yield_now().await;
        yield_now().await;
        assert!(kept.is_finished());
        poll_fn(|cx| kept.poll_output(cx)).await.ok()
    });
    assert_eq!(got.as_deref(), Some("kept"));
}

// --------------------------------------------- a wake from a thread's teardown

/// Wakes its waker when dropped: kept in a thread-local, it wakes while the
/// thread exits, during thread-local destruction.
struct WakeOnDrop {
    waker: Waker,
    woke: Arc<AtomicBool>,
}

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        self.woke.store(true, SeqCst);
        self.waker.wake_by_ref();
    }
}

thread_local! {
    static KEPT_WAKER: RefCell<Option<WakeOnDrop>> = const { RefCell::new(None) };
}

/// A thread keeps a task's waker in a `thread_local!` and wakes it as the
/// thread exits. The thread-local is set *before* the thread's first wake,
/// so the loop's own thread-local state on that thread is destroyed first
/// (destructors run in reverse order): the last wake must still land, on
/// the shared half of the run queue, and nothing may abort.
#[test]
fn a_wake_from_a_thread_local_destructor_lands() {
    let woke = Arc::new(AtomicBool::new(false));
    let done = within(
        secs(30),
        "a wake from a thread-local destructor",
        move || {
            EventLoop::new().run_until_complete(async move {
                // A task that only waits: the thread's first wake is for it.
                let idle: Arc<Mutex<Option<Waker>>> = Arc::default();
                let i = idle.clone();
                spawn_detached(poll_fn(move |cx| {
                    *lock(&i) = Some(cx.waker().clone());
                    Poll::<()>::Pending
                }));
                yield_now().await;
                let first = lock(&idle).take().expect("the idle task ran");
                let mut started = false;
                poll_fn(|cx| {
                    if woke.load(SeqCst) {
                        return Poll::Ready(());
                    }
                    if !started {
                        started = true;
                        let (waker, woke) = (cx.waker().clone(), woke.clone());
                        let first = first.clone();
                        thread::spawn(move || {
                            KEPT_WAKER
                                .with(|kept| *kept.borrow_mut() = Some(WakeOnDrop { waker, woke }));
                            // An ordinary wake first: it touches the loop's
                            // thread-locals on this thread after KEPT_WAKER, so
                            // they are destroyed before it.
                            first.wake();
                        });
                    }
                    Poll::Pending
                })
                .await;
                "woken by the teardown"
            })
        },
    );
    assert_eq!(done, "woken by the teardown");
}

// ------------------------------------------------------ FIFO between two runs

/// Pending once, recording its name when polled again.
fn gate(name: &'static str, wakers: Arc<Mutex<Vec<Waker>>>, notes: Notes) {
    let mut waited = false;
    spawn_detached(poll_fn(move |cx| {
        if waited {
            notes.note(name);
            return Poll::Ready(());
        }
        waited = true;
        lock(&wakers).push(cx.waker().clone());
        Poll::Pending
    }));
}

/// In a run's last pass, task A is woken on the loop's thread, then task B
/// from another thread. Both wait for the next run, and the next run polls
/// A before B: the two halves of the run queue read as one FIFO queue
/// across runs too.
#[test]
fn wakes_left_for_the_next_run_keep_their_order_across_the_two_halves() {
    let event_loop = EventLoop::with_virtual_clock();
    let notes = Notes::default();
    let wakers: Arc<Mutex<Vec<Waker>>> = Arc::default();
    let (j, w) = (notes.clone(), wakers.clone());
    event_loop.run_until_complete(async move {
        gate("A", w.clone(), j.clone());
        gate("B", w.clone(), j.clone());
        yield_now().await;
        // Main's last step: this task runs in the run's extra pass.
        spawn_detached(async move {
            let (a, b) = {
                let wakers = lock(&w);
                (wakers[0].clone(), wakers[1].clone())
            };
            a.wake();
            thread::spawn(move || b.wake()).join().unwrap();
        });
    });
    assert!(notes.lines().is_empty(), "A and B wait for the next run");
    event_loop.run_until_complete(async {
        for _ in 0..3 {
            yield_now().await;
        }
    });
    assert_eq!(notes.lines(), ["A", "B"]);
}
