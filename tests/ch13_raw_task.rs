//! Chapter 13's one-allocation task: its whole life counted exactly, wakes
//! and awaits raced from other threads, and random programs checked
//! against chapter 5's safe task as the model (same trace, same outcomes,
//! same drops). Every test here also runs under Miri (see `CHAPTERS.md`,
//! chapter 13: `cargo +nightly miri test --test ch13_raw_task`), where the
//! sizes shrink (`cfg(miri)`), since Miri is some thousand times slower.
//!
//! The futures under test are `!Unpin` on purpose (`PhantomPinned`) and
//! remember the address of their first poll: a poll or a drop anywhere else
//! would mean the task moved a pinned future, which Pin forbids.
// Some tests hand a handle out of the loop on purpose, to await it (or
// drop it) after the loop has closed.
#![allow(clippy::async_yields_async)]

mod common;

use std::future::{Future, pending};
use std::marker::PhantomPinned;
use std::panic;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;

use common::*;
use proptest::prelude::*;
use tiny_asyncio::ch05_event_loop::panic_message;
use tiny_asyncio::ch13_raw_task::spawn_on;
use tiny_asyncio::trace::Record;
use tiny_asyncio::{
    EventLoop, JoinError, JoinHandle, block_on, get_running_loop, sleep, sleep_until, spawn,
    yield_now,
};

// ------------------------------------------------------------- the probes

/// What a test can count about one task's future and output.
#[derive(Clone, Default)]
struct Counts {
    polls: Arc<AtomicUsize>,
    future_drops: Arc<AtomicUsize>,
    output_drops: Arc<AtomicUsize>,
    /// Set if the future was polled or dropped somewhere other than where
    /// it was first polled.
    moved: Arc<AtomicBool>,
}

impl Counts {
    fn polls(&self) -> usize {
        self.polls.load(SeqCst)
    }
    fn future_drops(&self) -> usize {
        self.future_drops.load(SeqCst)
    }
    fn output_drops(&self) -> usize {
        self.output_drops.load(SeqCst)
    }
}

/// What the future does after its `pending` self-woken `Pending`s.
#[derive(Clone, Copy, PartialEq)]
enum End {
    Return,
    PanicInPoll,
    /// Returns, then panics when dropped.
    PanicInDrop,
    /// Returns an output that panics when dropped.
    OutputPanicsInDrop,
}

/// The output: counts its drop, and may panic in it.
#[derive(Debug)]
struct Output {
    value: usize,
    drops: Arc<AtomicUsize>,
    panic_in_drop: bool,
}

impl Drop for Output {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        if self.panic_in_drop {
            panic!("planned: the output's Drop panics");
        }
    }
}

/// A `!Unpin` future: `Pending` (waking itself) `pending` times, then ends
/// as `end` says. All its state sits behind `&self`, so no `unsafe` is
/// needed to poll it through `Pin<&mut Self>`.
struct Pinned {
    counts: Counts,
    pending: AtomicUsize,
    end: End,
    value: usize,
    /// Where the first poll found it (0: never polled).
    home: AtomicUsize,
    _pinned: PhantomPinned,
}

fn pinned(counts: &Counts, pending: usize, end: End, value: usize) -> Pinned {
    Pinned {
        counts: counts.clone(),
        pending: AtomicUsize::new(pending),
        end,
        value,
        home: AtomicUsize::new(0),
        _pinned: PhantomPinned,
    }
}

impl Pinned {
    /// Records where it is; notes a move if it was somewhere else before.
    fn check_home(&self) {
        let here = std::ptr::from_ref(self) as usize;
        if let Err(home) = self.home.compare_exchange(0, here, SeqCst, SeqCst)
            && home != here
        {
            self.counts.moved.store(true, SeqCst);
        }
    }
}

impl Future for Pinned {
    type Output = Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Output> {
        self.check_home();
        self.counts.polls.fetch_add(1, SeqCst);
        if self.pending.load(SeqCst) > 0 {
            self.pending.fetch_sub(1, SeqCst);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if self.end == End::PanicInPoll {
            panic!("planned: the future panics in poll");
        }
        Poll::Ready(Output {
            value: self.value,
            drops: self.counts.output_drops.clone(),
            panic_in_drop: self.end == End::OutputPanicsInDrop,
        })
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        self.check_home();
        self.counts.future_drops.fetch_add(1, SeqCst);
        if self.end == End::PanicInDrop {
            panic!("planned: the future's Drop panics");
        }
    }
}

// ------------------------------------------------------- the life cycle

#[test]
fn a_finished_task_is_polled_once_per_wake_and_its_future_dropped_once_in_place_before_the_handle_resolves()
 {
    let counts = Counts::default();
    let event_loop = EventLoop::with_virtual_clock();
    let c = counts.clone();
    let (drops_at_resolve, value) = event_loop.run_until_complete(async move {
        let handle = spawn(pinned(&c, 3, End::Return, 7));
        let output = handle.await.expect("it returns");
        (c.future_drops(), output.value)
    });
    assert_eq!(value, 7);
    assert_eq!(counts.polls(), 4, "three self-wakes, then Ready");
    assert_eq!(
        drops_at_resolve, 1,
        "the future was gone when the handle resolved"
    );
    assert_eq!(counts.future_drops(), 1);
    assert_eq!(counts.output_drops(), 1, "dropped once, by whoever took it");
    assert!(!counts.moved.load(SeqCst), "a pinned future moved");
    assert_eq!(event_loop.live_tasks(), 0);
    // The loop counts task polls (the main future's not among them).
    assert_eq!(event_loop.stats().task_polls, 4);
}

#[test]
fn a_detached_tasks_output_is_dropped_exactly_once_when_the_task_ends() {
    let counts = Counts::default();
    let event_loop = EventLoop::with_virtual_clock();
    let c = counts.clone();
    event_loop.run_until_complete(async move {
        drop(spawn(pinned(&c, 1, End::Return, 1)));
        sleep(ms(1)).await;
    });
    assert_eq!((counts.polls(), counts.future_drops()), (2, 1));
    assert_eq!(counts.output_drops(), 1);
    assert!(!counts.moved.load(SeqCst));
}

#[test]
fn a_task_aborted_before_its_first_poll_is_never_polled_and_its_future_is_dropped_once() {
    let counts = Counts::default();
    let event_loop = EventLoop::with_virtual_clock();
    let c = counts.clone();
    let result = event_loop.run_until_complete(async move {
        let handle = spawn(pinned(&c, 0, End::Return, 1));
        handle.abort();
        handle.abort();
        handle.await
    });
    assert!(result.unwrap_err().is_cancelled());
    assert_eq!((counts.polls(), counts.future_drops()), (0, 1));
    assert_eq!(counts.output_drops(), 0, "there never was an output");
}

#[test]
fn a_task_aborted_while_pending_is_dropped_in_place_on_the_next_pass() {
    let (counts, owned) = (Counts::default(), Counts::default());
    let event_loop = EventLoop::with_virtual_clock();
    let (c, o) = (counts.clone(), owned.clone());
    let result = event_loop.run_until_complete(async move {
        let handle = spawn(async move {
            let future = pinned(&c, 1, End::Return, 1);
            sleep(ms(5)).await;
            future.await
        });
        sleep(ms(1)).await;
        handle.abort();
        let first = handle.await;
        // The task's future itself pinned in the task, polled once (it
        // woke itself, so it is queued again), then aborted.
        let own = spawn(pinned(&o, 5, End::Return, 0));
        yield_now().await;
        own.abort();
        (first, own.await)
    });
    let (first, own) = result;
    assert!(first.unwrap_err().is_cancelled());
    assert!(own.unwrap_err().is_cancelled());
    assert_eq!((counts.polls(), counts.future_drops()), (0, 1));
    assert_eq!((owned.polls(), owned.future_drops()), (1, 1));
    assert!(!owned.moved.load(SeqCst));
    assert_eq!(
        event_loop.time(),
        ms(1),
        "cancelled at once, not after its sleep"
    );
}

#[test]
fn closing_the_loop_drops_each_unfinished_future_once_in_place_and_the_handles_say_cancelled() {
    let counts: Vec<Counts> = (0..3).map(|_| Counts::default()).collect();
    let event_loop = EventLoop::with_virtual_clock();
    let c = counts.clone();
    let handles: Vec<JoinHandle<Output>> = event_loop.run_until_complete(async move {
        let handles: Vec<_> = c
            .iter()
            .map(|c| {
                let c = c.clone();
                spawn(async move {
                    let mut future = Box::pin(pinned(&c, 2, End::Return, 0));
                    // Polled (so pinned somewhere) and then parked forever.
                    std::future::poll_fn(|cx| {
                        let _ = future.as_mut().poll(cx);
                        Poll::<Output>::Pending
                    })
                    .await
                })
            })
            .collect();
        yield_now().await;
        yield_now().await;
        handles
    });
    for c in &counts {
        assert_eq!(c.future_drops(), 0, "not before the loop closes");
    }
    event_loop.close();
    for (c, mut handle) in counts.iter().zip(handles) {
        assert_eq!(c.future_drops(), 1);
        assert!(!c.moved.load(SeqCst));
        assert!(handle.is_finished());
        assert!(block_on(&mut handle).unwrap_err().is_cancelled());
    }
}

#[test]
fn the_raw_tasks_own_pinned_future_is_dropped_where_it_was_polled_at_close() {
    let counts = Counts::default();
    let event_loop = EventLoop::with_virtual_clock();
    let c = counts.clone();
    let handle = event_loop.run_until_complete(async move {
        // The task's future is `Pinned` itself, inside the task's memory.
        let handle = spawn(pinned(&c, usize::MAX, End::Return, 0));
        yield_now().await;
        yield_now().await;
        handle
    });
    assert!(counts.polls() >= 2);
    drop(event_loop);
    assert_eq!(counts.future_drops(), 1);
    assert!(
        !counts.moved.load(SeqCst),
        "the future moved inside its task"
    );
    assert!(block_on(handle).unwrap_err().is_cancelled());
}

#[test]
fn a_panic_in_poll_is_caught_the_future_is_dropped_once_and_the_handle_says_panicked() {
    quiet_planned_panics();
    let counts = Counts::default();
    let event_loop = EventLoop::with_virtual_clock();
    let c = counts.clone();
    let (error, other) = event_loop.run_until_complete(async move {
        let failing = spawn(pinned(&c, 1, End::PanicInPoll, 0));
        let other = spawn(async { 5 });
        (failing.await.unwrap_err(), other.await.unwrap())
    });
    assert!(error.is_panic());
    assert_eq!(
        error.panic_message().as_deref(),
        Some("planned: the future panics in poll")
    );
    assert_eq!(other, 5, "the other task ran on");
    assert_eq!((counts.polls(), counts.future_drops()), (2, 1));
    assert_eq!(counts.output_drops(), 0);
}

#[test]
fn a_panic_in_the_futures_drop_is_reported_and_the_handle_still_gets_the_output() {
    quiet_planned_panics();
    let counts = Counts::default();
    let event_loop = EventLoop::with_virtual_clock();
    let c = counts.clone();
    let (value, other) = event_loop.run_until_complete(async move {
        let task = spawn(pinned(&c, 0, End::PanicInDrop, 9));
        let other = spawn(async { 5 });
        (task.await.unwrap().value, other.await.unwrap())
    });
    assert_eq!((value, other), (9, 5));
    assert_eq!((counts.future_drops(), counts.output_drops()), (1, 1));
}

#[test]
fn a_panic_in_the_futures_drop_on_abort_and_at_close_never_escapes_the_loop() {
    quiet_planned_panics();
    let (aborted, closed) = (Counts::default(), Counts::default());
    let event_loop = EventLoop::with_virtual_clock();
    let (a, c) = (aborted.clone(), closed.clone());
    let (result, kept) = event_loop.run_until_complete(async move {
        let first = spawn(pinned(&a, usize::MAX, End::PanicInDrop, 0));
        let kept = spawn(pinned(&c, usize::MAX, End::PanicInDrop, 0));
        yield_now().await;
        first.abort();
        (first.await, kept)
    });
    assert!(result.unwrap_err().is_cancelled());
    assert_eq!(aborted.future_drops(), 1);
    event_loop.close();
    assert_eq!(closed.future_drops(), 1);
    assert!(block_on(kept).unwrap_err().is_cancelled());
}

#[test]
fn a_panic_in_the_drop_of_a_detached_tasks_output_never_escapes_the_loop() {
    quiet_planned_panics();
    let counts = Counts::default();
    let event_loop = EventLoop::with_virtual_clock();
    let c = counts.clone();
    let after = event_loop.run_until_complete(async move {
        drop(spawn(pinned(&c, 0, End::OutputPanicsInDrop, 0)));
        yield_now().await;
        yield_now().await;
        spawn(async { 3 }).await.unwrap()
    });
    assert_eq!(after, 3, "the loop ran on");
    assert_eq!(counts.output_drops(), 1);
}

#[test]
fn a_panic_in_the_drop_of_an_output_nobody_took_is_caught_when_the_last_handle_goes() {
    quiet_planned_panics();
    let counts = Counts::default();
    let event_loop = EventLoop::with_virtual_clock();
    let c = counts.clone();
    let handle = event_loop.run_until_complete(async move {
        let handle = spawn(pinned(&c, 0, End::OutputPanicsInDrop, 0));
        yield_now().await;
        yield_now().await;
        handle
    });
    assert!(handle.is_finished());
    assert_eq!(counts.output_drops(), 0, "still in the task");
    // The handle holds the last reference: the output's Drop runs (and
    // panics) inside the task's own drop, which catches it.
    drop(event_loop);
    drop(handle);
    assert_eq!(counts.output_drops(), 1);
}

/// A waker whose `wake` panics (someone else's code, misbehaving).
struct PanickyWaker(AtomicUsize);

impl Wake for PanickyWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
        panic!("planned: the awaiter's waker panics");
    }
}

#[test]
fn an_awaiters_waker_that_panics_is_reported_and_the_loop_runs_on() {
    quiet_planned_panics();
    let event_loop = EventLoop::with_virtual_clock();
    let mut handle = spawn_on(&event_loop.handle(), async { 11 });
    let panicky = Arc::new(PanickyWaker(AtomicUsize::new(0)));
    let waker = Waker::from(panicky.clone());
    let mut cx = Context::from_waker(&waker);
    assert!(Pin::new(&mut handle).poll(&mut cx).is_pending());
    let other = event_loop.run_until_complete(async {
        yield_now().await;
        spawn(async { 4 }).await.unwrap()
    });
    assert_eq!(other, 4);
    assert_eq!(panicky.0.load(SeqCst), 1, "woken once, when the task ended");
    match Pin::new(&mut handle).poll(&mut cx) {
        Poll::Ready(Ok(11)) => {}
        other => panic!("expected the output, got {other:?}"),
    }
}

#[test]
fn a_handle_polled_again_after_it_resolved_and_a_task_awaiting_itself_fail_clearly() {
    quiet_planned_panics();
    let event_loop = EventLoop::with_virtual_clock();
    let mut handle = spawn_on(&event_loop.handle(), async { 1 });
    event_loop.run_until_complete(yield_now());
    assert_eq!(block_on(&mut handle).unwrap(), 1);
    let again = panic_text(|| {
        let _ = block_on(&mut handle);
    });
    assert!(
        again.contains("polled after it returned its result"),
        "{again}"
    );
}

// ------------------------------------------------ races with other threads

/// How many rounds the race tests run (Miri is slow: a few suffice there,
/// as it explores different interleavings on each).
const ROUNDS: usize = if cfg!(miri) { 4 } else { 200 };

#[test]
fn a_handle_awaited_on_another_thread_gets_the_output_whatever_the_race() {
    for round in 0..ROUNDS {
        let event_loop = EventLoop::with_virtual_clock();
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let got = event_loop.run_until_complete(async move {
            let handle = spawn(async move {
                for _ in 0..round % 3 {
                    yield_now().await;
                }
                round
            });
            let waiter = thread::spawn(move || {
                let got = block_on(handle).expect("it returns");
                d.store(true, SeqCst);
                got
            });
            while !done.load(SeqCst) {
                yield_now().await;
            }
            waiter.join().unwrap()
        });
        assert_eq!(got, round);
    }
}

/// A task's "event": a count other threads raise, and the waker to call.
#[derive(Default)]
struct Raised {
    count: AtomicUsize,
    waker: Mutex<Option<Waker>>,
}

#[test]
fn wakes_from_many_threads_at_once_give_exactly_one_more_poll_each_time_and_lose_none() {
    let threads = if cfg!(miri) { 2 } else { 4 };
    let wakes_each = if cfg!(miri) { 5 } else { 500 };
    let target = threads * wakes_each;
    let event_loop = EventLoop::with_virtual_clock();
    let raised = Arc::new(Raised::default());
    let polls = Arc::new(AtomicUsize::new(0));
    let (r, p) = (raised.clone(), polls.clone());
    let seen = event_loop.run_until_complete(async move {
        let task = spawn(std::future::poll_fn(move |cx| {
            p.fetch_add(1, SeqCst);
            // Register first, then look: a raise after the look finds the
            // waker in place, so no wake is lost.
            *lock(&r.waker) = Some(cx.waker().clone());
            let now = r.count.load(SeqCst);
            if now == target {
                Poll::Ready(now)
            } else {
                Poll::Pending
            }
        }));
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let raised = raised.clone();
                let keep_awake = get_running_loop().keep_awake();
                thread::spawn(move || {
                    let _keep_awake = keep_awake;
                    for _ in 0..wakes_each {
                        raised.count.fetch_add(1, SeqCst);
                        let waker = lock(&raised.waker).clone();
                        if let Some(waker) = waker {
                            waker.wake();
                        }
                    }
                })
            })
            .collect();
        let seen = task.await.expect("it ends");
        for worker in workers {
            worker.join().unwrap();
        }
        seen
    });
    assert_eq!(seen, target);
    let polls = polls.load(SeqCst);
    // The first poll, plus at most one per wake; wakes that came while the
    // task was queued or running merged into one poll.
    assert!(
        (1..=target + 1).contains(&polls),
        "{polls} polls for {target} wakes"
    );
    assert_eq!(event_loop.live_tasks(), 0);
}

// -------------------------------------- the model: chapter 5's safe task

/// One step of a random task.
#[derive(Debug, Clone)]
enum Step {
    Yield,
    Sleep(u64),
}

/// How a random task ends.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Return,
    Panic,
    Forever,
}

/// A random task: its steps, its ending, whether its handle is dropped at
/// once, and when (if ever) it is aborted.
#[derive(Debug, Clone)]
struct Plan {
    steps: Vec<Step>,
    ending: Ending,
    detach: bool,
    abort_at: Option<u64>,
}

fn plan() -> impl Strategy<Value = Plan> {
    let step = prop_oneof![Just(Step::Yield), (0u64..4).prop_map(Step::Sleep)];
    let ending = prop_oneof![
        4 => Just(Ending::Return),
        1 => Just(Ending::Panic),
        1 => Just(Ending::Forever),
    ];
    (
        prop::collection::vec(step, 0..5),
        ending,
        any::<bool>(),
        prop::option::of(0u64..6),
    )
        .prop_map(|(steps, ending, detach, abort_at)| Plan {
            steps,
            ending,
            detach,
            abort_at,
        })
}

/// Which task the run spawns.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Chapter 5's task, through chapter 6's `spawn`.
    Safe,
    /// This chapter's task, the crate root's `spawn`.
    Raw,
}

fn spawn_kind<F>(kind: Kind, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match kind {
        Kind::Safe => tiny_asyncio::ch06_join::spawn(future),
        Kind::Raw => tiny_asyncio::ch13_raw_task::spawn(future),
    }
}

/// What one run shows: the trace, each handle's result, each future's drops.
type Observed = (Vec<Record>, Vec<Option<Result<usize, String>>>, Vec<usize>);

fn describe(result: Result<usize, JoinError>) -> Result<usize, String> {
    result.map_err(|e| match e.panic_message() {
        Some(m) => format!("panic: {m}"),
        None => "cancelled".to_string(),
    })
}

fn run_plans(kind: Kind, plans: &[Plan]) -> Observed {
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.enable_trace();
    let drops: Vec<Arc<AtomicUsize>> = plans.iter().map(|_| Arc::default()).collect();
    let p = plans.to_vec();
    let d = drops.clone();
    let (mut results, kept) = event_loop.run_until_complete(async move {
        let mut handles = Vec::new();
        for (i, plan) in p.iter().enumerate() {
            let probe = Probe(d[i].clone());
            let plan = plan.clone();
            handles.push(Some(spawn_kind(kind, async move {
                let _probe = probe;
                for step in plan.steps {
                    match step {
                        Step::Yield => yield_now().await,
                        Step::Sleep(n) => sleep(ms(n)).await,
                    }
                }
                match plan.ending {
                    Ending::Return => i,
                    Ending::Panic => panic!("planned: task {i} fails"),
                    Ending::Forever => pending().await,
                }
            })));
        }
        for (i, plan) in p.iter().enumerate() {
            if plan.detach {
                handles[i] = None;
            }
        }
        let mut aborts: Vec<(u64, usize)> = p
            .iter()
            .enumerate()
            .filter_map(|(i, plan)| plan.abort_at.map(|at| (at, i)))
            .collect();
        aborts.sort();
        for (at, i) in aborts {
            sleep_until(ms(at)).await;
            if let Some(handle) = &handles[i] {
                handle.abort();
            }
        }
        sleep_until(ms(30)).await;
        let mut results = vec![None; p.len()];
        let mut kept = Vec::new();
        for (i, handle) in handles.into_iter().enumerate() {
            match handle {
                Some(handle) if handle.is_finished() => {
                    results[i] = Some(describe(handle.await));
                }
                Some(handle) => kept.push((i, handle)),
                None => {}
            }
        }
        (results, kept)
    });
    let trace = event_loop.take_trace();
    event_loop.close();
    for (i, handle) in kept {
        results[i] = Some(describe(block_on(handle)));
    }
    let drops = drops.iter().map(|d| d.load(SeqCst)).collect();
    (trace.records, results, drops)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 3 } else { 128 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// The one-allocation task behaves exactly as chapter 5's safe task:
    /// on random programs (tasks of yields and sleeps that return, panic
    /// or never end; handles kept, awaited or dropped; aborts at random
    /// times; the loop closed over what is left) both give the same trace
    /// record for record (every spawn, poll, wake and who woke, end, at the
    /// same virtual time), the same result for every handle, and drop each
    /// task's future exactly once.
    #[test]
    fn the_raw_task_gives_the_same_trace_results_and_drops_as_chapter_5s_task(
        plans in prop::collection::vec(plan(), 1..6),
    ) {
        quiet_planned_panics();
        let model = run_plans(Kind::Safe, &plans);
        let raw = run_plans(Kind::Raw, &plans);
        prop_assert_eq!(&raw.1, &model.1, "results");
        prop_assert_eq!(&raw.2, &model.2, "drops");
        prop_assert!(raw.2.iter().all(|&d| d == 1), "each future dropped once: {:?}", raw.2);
        prop_assert_eq!(raw.0.len(), model.0.len(), "trace lengths");
        prop_assert_eq!(&raw.0, &model.0, "traces");
    }
}

#[test]
fn a_task_awaiting_its_own_handle_panics_with_the_same_message_as_chapter_5s() {
    quiet_planned_panics();
    let mut messages = Vec::new();
    for kind in [Kind::Safe, Kind::Raw] {
        let event_loop = EventLoop::with_virtual_clock();
        let message = event_loop.run_until_complete(async move {
            let own: Arc<Mutex<Option<JoinHandle<()>>>> = Arc::default();
            let inside = own.clone();
            let handle = spawn_kind(kind, async move {
                yield_now().await;
                std::future::poll_fn(|cx| {
                    let mut slot = lock(&inside);
                    let handle = slot.as_mut().expect("the handle is in place");
                    Pin::new(handle).poll(cx)
                })
                .await
                .ok();
            });
            *lock(&own) = Some(handle);
            for _ in 0..3 {
                yield_now().await;
            }
            let handle = lock(&own).take().expect("still there");
            handle.await.expect_err("it panicked").to_string()
        });
        messages.push(message);
    }
    assert!(
        messages[1].contains("awaits its own output"),
        "{}",
        messages[1]
    );
    assert_eq!(messages[0], messages[1]);
}

#[test]
fn a_panic_payload_reaches_the_handle_intact() {
    quiet_planned_panics();
    let event_loop = EventLoop::with_virtual_clock();
    let payload = event_loop.run_until_complete(async {
        spawn(async {
            panic::panic_any(42u32);
        })
        .await
        .unwrap_err()
        .into_panic()
    });
    assert_eq!(payload.downcast_ref::<u32>(), Some(&42));
    assert_eq!(panic_message(&*payload), "a non-string panic payload");
}

/// Records the thread it is dropped on.
struct WhereDropped(Arc<Mutex<Vec<thread::ThreadId>>>);

impl Drop for WhereDropped {
    fn drop(&mut self) {
        lock(&self.0).push(thread::current().id());
    }
}

#[test]
fn a_detached_tasks_output_is_dropped_on_the_loop_and_a_kept_ones_where_its_last_handle_goes() {
    let event_loop = EventLoop::with_virtual_clock();
    let (detached, kept) = (Arc::default(), Arc::default());
    let (d, k) = (Arc::clone(&detached), Arc::clone(&kept));
    let handle = event_loop.run_until_complete(async move {
        drop(spawn(async move { WhereDropped(d) }));
        let handle = spawn(async move { WhereDropped(k) });
        yield_now().await;
        yield_now().await;
        handle
    });
    let elsewhere = thread::spawn(move || drop(handle));
    let elsewhere_id = elsewhere.thread().id();
    elsewhere.join().unwrap();
    assert_eq!(
        *lock(&detached),
        vec![thread::current().id()],
        "on the loop thread"
    );
    assert_eq!(*lock(&kept), vec![elsewhere_id], "with its last handle");
}
