//! Chapter 3's facts: the hand-written waker counts its references right,
//! `block_on` sleeps between polls and never loses a wake, and the
//! thread-per-sleep timer wakes the latest waker, after its deadline.
//!
//! There is no virtual clock before chapter 5's event loop, so the timing
//! tests really sleep, with a unit of 20 ms instead of the documents' 1 s. A
//! sleep is never shorter than asked, so lower bounds are exact; the upper
//! bounds allow half a second of slack for a busy machine.
mod common;

use std::cell::RefCell;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use proptest::prelude::*;
use tiny_asyncio::block_on;
use tiny_asyncio::ch03_waker::{
    ArcWake, Signal, ThreadSleep, thread_sleep, waker_from_arc, waker_ref,
};

// Under Miri, a hundred times slower, one poll can take longer than 20 ms:
// the unit and the slack grow there, so that "not yet" still means not yet.
const UNIT: Duration = Duration::from_millis(if cfg!(miri) { 1_000 } else { 20 });
const SLACK: Duration = Duration::from_millis(if cfg!(miri) { 60_000 } else { 500 });

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// An `ArcWake` type that counts its wakes, and reports through a counter
/// shared with the test when it is finally dropped (so a leak or a double
/// free shows up as 0 or 2 drops).
struct Counting {
    wakes: AtomicUsize,
    drops: Arc<AtomicUsize>,
}

impl ArcWake for Counting {
    fn wake_by_ref(this: &Arc<Self>) {
        this.wakes.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// A fresh counting waker target and its drop counter.
fn counting() -> (Arc<Counting>, Arc<AtomicUsize>) {
    let drops = Arc::new(AtomicUsize::new(0));
    let arc = Arc::new(Counting {
        wakes: AtomicUsize::new(0),
        drops: Arc::clone(&drops),
    });
    (arc, drops)
}

fn wakes(arc: &Arc<Counting>) -> usize {
    arc.wakes.load(Ordering::SeqCst)
}

/// Wraps a future and counts how many times it is polled, so a test can see
/// that `block_on` slept between polls instead of spinning.
struct CountPolls<'a, F> {
    inner: Pin<Box<F>>,
    polls: &'a AtomicUsize,
}

impl<F: Future> Future for CountPolls<'_, F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        self.inner.as_mut().poll(cx)
    }
}

fn count_polls<F: Future>(inner: F, polls: &AtomicUsize) -> CountPolls<'_, F> {
    CountPolls {
        inner: Box::pin(inner),
        polls,
    }
}

/// Lines with the time they were written, measured from `start`.
struct Log {
    start: Instant,
    lines: RefCell<Vec<(Duration, String)>>,
}

impl Log {
    fn new() -> Self {
        Log {
            start: Instant::now(),
            lines: RefCell::new(Vec::new()),
        }
    }
    fn line(&self, text: impl Into<String>) {
        let at = self.start.elapsed();
        self.lines.borrow_mut().push((at, text.into()));
    }
    fn texts(&self) -> Vec<String> {
        self.lines.borrow().iter().map(|(_, t)| t.clone()).collect()
    }
    fn at(&self, i: usize) -> Duration {
        self.lines.borrow()[i].0
    }
}

/// Polls `fut` once with `waker`.
fn poll_with<F: Future + ?Sized>(fut: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(waker))
}

// ---------------------------------------------------------------------------
// The documents' examples
// ---------------------------------------------------------------------------

/// E000-2: `main_async` awaits `do_async`, driven by `block_on` (asyncio's
/// `run_until_complete`). Nothing waits, so one poll runs the whole chain in
/// order.
#[test]
fn e000_2_block_on_drives_main_async_through_do_async() {
    let log = Log::new();
    async fn do_async(log: &Log) {
        log.line("do_async");
    }
    async fn main_async(log: &Log) {
        log.line("main_async start");
        do_async(log).await;
        log.line("main_async end");
    }
    let polls = AtomicUsize::new(0);
    let fut = main_async(&log);
    assert!(log.texts().is_empty(), "nothing runs before block_on");
    block_on(count_polls(fut, &polls));
    assert_eq!(
        log.texts(),
        ["main_async start", "do_async", "main_async end"]
    );
    assert_eq!(polls.load(Ordering::SeqCst), 1);
}

/// E003-1: `before wait`, a one-unit `ThreadSleep`, `after wait 1 second`.
/// The second line comes no earlier than one unit after the first.
#[test]
fn e003_1_before_wait_sleep_one_unit_after_wait() {
    let log = Log::new();
    block_on(async {
        log.line("before wait");
        thread_sleep(UNIT).await;
        log.line("after wait 1 second");
    });
    let total = log.start.elapsed();
    assert_eq!(log.texts(), ["before wait", "after wait 1 second"]);
    let waited = log.at(1) - log.at(0);
    assert!(waited >= UNIT, "woke after {waited:?}, before one unit");
    assert!(total < UNIT + SLACK, "took {total:?}");
}

async fn task_with_delay(units: u32, log: &Log) -> u32 {
    log.line(format!("start{units}"));
    thread_sleep(UNIT * units).await;
    log.line(format!("end{units}"));
    units
}

async fn execute_tasks(log: &Log) -> u32 {
    let val1 = task_with_delay(1, log).await;
    let val2 = task_with_delay(1, log).await;
    log.line(format!("합계: {}", val1 + val2));
    val1 + val2
}

/// E002-5: `task_with_delay(1)` awaited twice in a row runs one after the
/// other: `start1 end1 start1 end1 합계: 2`, two units in all.
#[test]
fn e002_5_two_sequential_awaits_take_two_units() {
    let log = Log::new();
    let sum = block_on(execute_tasks(&log));
    let total = log.start.elapsed();
    assert_eq!(sum, 2);
    assert_eq!(log.texts(), ["start1", "end1", "start1", "end1", "합계: 2"]);
    // The second wait starts only when the first has ended.
    assert!(log.at(1) >= UNIT, "first end at {:?}", log.at(1));
    assert!(log.at(2) >= log.at(1));
    assert!(log.at(3) - log.at(2) >= UNIT, "second wait too short");
    assert!(total >= UNIT * 2, "total {total:?}");
    assert!(total < UNIT * 2 + SLACK, "total {total:?}");
}

/// E003-5: `block_on` (run_until_complete) returns the result of the future
/// it ran, here after a real wait.
#[test]
fn e003_5_block_on_returns_the_futures_output() {
    let log = Log::new();
    assert_eq!(block_on(execute_tasks(&log)), 2);
    let text = block_on(async {
        thread_sleep(UNIT).await;
        String::from("코루틴 반환값")
    });
    assert_eq!(text, "코루틴 반환값");
    assert_eq!(block_on(async { vec![1, 2, 3] }), [1, 2, 3]);
}

/// `block_on` sleeps between polls: a future that waits once on a
/// `ThreadSleep` is polled exactly twice (chapter 2's driver polled in a
/// loop for as long as the future was pending).
#[test]
fn block_on_polls_once_per_wake_not_in_a_loop() {
    let polls = AtomicUsize::new(0);
    block_on(count_polls(thread_sleep(UNIT * 2), &polls));
    assert_eq!(polls.load(Ordering::SeqCst), 2);
}

// ---------------------------------------------------------------------------
// The vtable's reference counting
// ---------------------------------------------------------------------------

/// clone +1, wake −1, wake_by_ref 0, drop −1; the inner value is dropped
/// exactly once, when the last reference goes.
#[test]
fn vtable_clone_adds_one_wake_and_drop_give_one_back_wake_by_ref_keeps_it() {
    let (arc, drops) = counting();
    assert_eq!(Arc::strong_count(&arc), 1);

    let waker = waker_from_arc(Arc::clone(&arc));
    assert_eq!(Arc::strong_count(&arc), 2, "the waker owns one count");

    let second = waker.clone();
    assert_eq!(Arc::strong_count(&arc), 3, "clone: +1");

    second.wake_by_ref();
    assert_eq!(Arc::strong_count(&arc), 3, "wake_by_ref: 0");
    assert_eq!(wakes(&arc), 1);

    second.wake();
    assert_eq!(Arc::strong_count(&arc), 2, "wake: −1");
    assert_eq!(wakes(&arc), 2);

    let third = waker.clone();
    assert_eq!(Arc::strong_count(&arc), 3, "clone: +1");
    drop(third);
    assert_eq!(Arc::strong_count(&arc), 2, "drop: −1");
    assert_eq!(wakes(&arc), 2, "dropping does not wake");

    drop(waker);
    assert_eq!(Arc::strong_count(&arc), 1);
    assert_eq!(drops.load(Ordering::SeqCst), 0, "still alive");

    drop(arc);
    assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped exactly once");
}

/// A waker that is the *last* owner frees the value when it is woken by
/// value, and only then.
#[test]
fn vtable_wake_of_the_last_owner_frees_the_value_once() {
    let (arc, drops) = counting();
    let waker = waker_from_arc(arc);
    let clone = waker.clone();
    drop(waker);
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    clone.wake();
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

/// `waker_ref` borrows: it takes no count, dropping it gives none back, and
/// a clone made from it is a normal owning waker.
#[test]
fn waker_ref_takes_no_count() {
    let (arc, drops) = counting();
    {
        let borrowed = waker_ref(&arc);
        assert_eq!(Arc::strong_count(&arc), 1, "borrowing takes no count");
        borrowed.wake_by_ref();
        assert_eq!(Arc::strong_count(&arc), 1);
        assert_eq!(wakes(&arc), 1);

        let owned: Waker = (*borrowed).clone();
        assert_eq!(Arc::strong_count(&arc), 2, "a clone owns a count");
        owned.wake();
        assert_eq!(Arc::strong_count(&arc), 1);
        assert_eq!(wakes(&arc), 2);
    }
    assert_eq!(
        Arc::strong_count(&arc),
        1,
        "dropping the borrow gives nothing back"
    );
    drop(arc);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

/// A generic `ArcWake` type, as chapter 5's task is generic over its future:
/// a generic type cannot have a `static` vtable, which is what fault 4 was
/// about.
struct GenericWake<T: Send + Sync + 'static>(T);

impl<T: Send + Sync + 'static> ArcWake for GenericWake<T> {
    fn wake_by_ref(_: &Arc<Self>) {}
}

/// Asserts that every pair among `same` will wake each other (both ways),
/// and that none of them will wake `other`.
fn assert_one_identity(what: &str, same: &[&Waker], other: &Waker) {
    for (i, a) in same.iter().enumerate() {
        for (j, b) in same.iter().enumerate() {
            assert!(
                a.will_wake(b),
                "{what}: waker {i} does not recognise waker {j} of the same Arc \
                 (vtables at {:p} and {:p}): the vtable has two addresses",
                a.vtable(),
                b.vtable()
            );
        }
        assert!(
            !a.will_wake(other),
            "{what}: waker {i} will wake another Arc"
        );
    }
}

/// Issue 12, fault 4: every waker for one `Arc` (a `waker_ref`, its clone, a
/// `waker_from_arc`, a clone of a clone) says `will_wake` of every other,
/// so "keep the stored waker if it will wake the same task" never clones on
/// a re-poll; a waker for another `Arc` is told apart. An associated `const`
/// vtable gave two addresses in release builds (the default test profile hid
/// it): `.ci/run` runs this file with `--release` too.
#[test]
fn will_wake_recognises_every_waker_of_one_arc_in_every_profile() {
    let (arc, _) = counting();
    let (other_arc, _) = counting();
    let borrowed = waker_ref(&arc);
    let clone: Waker = (*borrowed).clone();
    let owned = waker_from_arc(Arc::clone(&arc));
    let clone_of_clone = owned.clone();
    let other = waker_from_arc(other_arc);
    assert_one_identity(
        "Counting",
        &[&borrowed, &clone, &owned, &clone_of_clone],
        &other,
    );

    let generic = Arc::new(GenericWake(7_u64));
    let borrowed = waker_ref(&generic);
    let clone: Waker = (*borrowed).clone();
    let owned = waker_from_arc(Arc::clone(&generic));
    let other = waker_from_arc(Arc::new(GenericWake(8_u64)));
    assert_one_identity(
        "GenericWake<u64>",
        &[&borrowed, &clone, &owned, &owned.clone()],
        &other,
    );
}

/// A type that overrides the by-value `wake` receives the waker's own
/// reference: here it keeps it in a queue (as an executor's run queue would),
/// so the count does not drop when the waker is consumed.
#[test]
fn vtable_wake_hands_its_reference_to_an_overriding_wake() {
    type Queue = Arc<Mutex<Vec<Arc<Enqueue>>>>;
    struct Enqueue {
        queue: Queue,
    }
    impl ArcWake for Enqueue {
        fn wake_by_ref(this: &Arc<Self>) {
            this.queue.lock().unwrap().push(Arc::clone(this));
        }
        fn wake(this: Arc<Self>) {
            let queue = Arc::clone(&this.queue);
            queue.lock().unwrap().push(this);
        }
    }
    let queue: Queue = Arc::default();
    let arc = Arc::new(Enqueue {
        queue: Arc::clone(&queue),
    });
    let waker = waker_from_arc(Arc::clone(&arc));
    assert_eq!(Arc::strong_count(&arc), 2);
    waker.wake();
    assert_eq!(
        Arc::strong_count(&arc),
        2,
        "the reference moved into the queue"
    );
    assert_eq!(queue.lock().unwrap().len(), 1);
    queue.lock().unwrap().clear();
    assert_eq!(Arc::strong_count(&arc), 1);
}

/// One step of a random walk over the four vtable operations.
#[derive(Clone, Debug)]
enum Op {
    Clone(usize),
    WakeByRef(usize),
    Wake(usize),
    Drop(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..8).prop_map(Op::Clone),
        (0usize..8).prop_map(Op::WakeByRef),
        (0usize..8).prop_map(Op::Wake),
        (0usize..8).prop_map(Op::Drop),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]

    /// For any sequence of clones, wakes and drops, the strong count is
    /// always one (the test's own) plus the number of live wakers, every
    /// wake is counted, and the value is dropped exactly once at the end.
    #[test]
    fn strong_count_is_one_plus_live_wakers_and_the_value_drops_once(ops in prop::collection::vec(op(), 0..40)) {
        let (arc, drops) = counting();
        let mut live = vec![waker_from_arc(Arc::clone(&arc))];
        let mut expected_wakes = 0;
        for op in ops {
            match op {
                Op::Clone(i) if !live.is_empty() => {
                    let w = live[i % live.len()].clone();
                    live.push(w);
                }
                Op::WakeByRef(i) if !live.is_empty() => {
                    live[i % live.len()].wake_by_ref();
                    expected_wakes += 1;
                }
                Op::Wake(i) if !live.is_empty() => {
                    let n = live.len();
                    live.swap_remove(i % n).wake();
                    expected_wakes += 1;
                }
                Op::Drop(i) if !live.is_empty() => {
                    let n = live.len();
                    drop(live.swap_remove(i % n));
                }
                _ => live.push(waker_from_arc(Arc::clone(&arc))),
            }
            prop_assert_eq!(Arc::strong_count(&arc), 1 + live.len());
            prop_assert_eq!(wakes(&arc), expected_wakes);
        }
        drop(live);
        prop_assert_eq!(Arc::strong_count(&arc), 1);
        prop_assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(arc);
        prop_assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
}

// ---------------------------------------------------------------------------
// Signal and block_on: no wake is ever lost
// ---------------------------------------------------------------------------

/// A `notify` that comes before `wait` is remembered: `wait` returns at once.
/// Several notifies coalesce into one, and `wait` clears the flag.
#[test]
fn signal_remembers_a_notify_before_wait_and_wait_clears_it() {
    let signal = Arc::new(Signal::new());
    signal.notify();
    signal.notify();
    within(Duration::from_secs(10), "wait after notify", {
        let signal = Arc::clone(&signal);
        move || signal.wait()
    });
    // The flag is clear again: the next wait sleeps until a new notify.
    let start = Instant::now();
    let notifier = {
        let signal = Arc::clone(&signal);
        thread::spawn(move || {
            thread::sleep(UNIT);
            signal.notify();
        })
    };
    signal.wait();
    assert!(start.elapsed() >= UNIT, "wait returned before the notify");
    notifier.join().unwrap();
}

/// Pending once, after handing a clone of its waker to a thread that wakes it
/// at once; ready on the next poll. The wake races with `block_on` going to
/// sleep.
struct WokenFromAnotherThread {
    handed_off: bool,
}

impl Future for WokenFromAnotherThread {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.handed_off {
            return Poll::Ready(());
        }
        self.handed_off = true;
        let waker = cx.waker().clone();
        thread::spawn(move || waker.wake());
        Poll::Pending
    }
}

/// The lost-wake race: 2,000 times, a wake from another thread lands
/// anywhere around the moment `block_on` decides to sleep. A wake that landed
/// between "poll returned Pending" and "the thread sleeps" would be lost with
/// a bare `thread::park`-less flag, and the run would hang.
#[test]
fn block_on_never_loses_a_wake_racing_with_its_sleep() {
    within(Duration::from_secs(60), "2,000 racing wakes", || {
        for _ in 0..iterations(2_000, 40) {
            block_on(WokenFromAnotherThread { handed_off: false });
        }
    });
}

/// The extreme case of the race, made certain: the wake happens *during* the
/// poll, before `Pending` is even returned.
#[test]
fn block_on_survives_a_wake_inside_the_poll() {
    let polls = AtomicUsize::new(0);
    let mut woke = false;
    let fut = std::future::poll_fn(move |cx| {
        if woke {
            Poll::Ready(())
        } else {
            woke = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    });
    within(Duration::from_secs(10), "a self-wake", move || {
        block_on(count_polls(fut, &polls));
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    });
}

/// Many wakes before the thread sleeps, from this thread and others, still
/// end in a completed future, and they coalesce: one more poll, not one per
/// wake.
#[test]
fn many_wakes_before_the_sleep_coalesce_into_one_poll() {
    within(Duration::from_secs(10), "many wakes", || {
        let polls = AtomicUsize::new(0);
        let mut first = true;
        let fut = std::future::poll_fn(|cx| {
            if !first {
                return Poll::Ready("done");
            }
            first = false;
            for _ in 0..50 {
                cx.waker().wake_by_ref();
            }
            let wakers: Vec<Waker> = (0..50).map(|_| cx.waker().clone()).collect();
            thread::spawn(move || wakers.into_iter().for_each(Waker::wake))
                .join()
                .unwrap();
            Poll::Pending
        });
        assert_eq!(block_on(count_polls(fut, &polls)), "done");
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    });
}

// ---------------------------------------------------------------------------
// ThreadSleep
// ---------------------------------------------------------------------------

/// Only the latest poll's waker is woken: polled with A, then with B, the
/// sleep wakes B and never A, and it lets go of A at once.
#[test]
fn thread_sleep_wakes_only_the_latest_waker() {
    let (a, a_drops) = counting();
    let (b, _) = counting();
    let mut sleep = pin!(thread_sleep(UNIT));

    let waker_a = waker_from_arc(Arc::clone(&a));
    assert!(poll_with(sleep.as_mut(), &waker_a).is_pending());
    drop(waker_a);
    assert_eq!(Arc::strong_count(&a), 2, "the sleep keeps a clone of A");

    let waker_b = waker_from_arc(Arc::clone(&b));
    assert!(poll_with(sleep.as_mut(), &waker_b).is_pending());
    assert_eq!(Arc::strong_count(&a), 1, "A was replaced and released");

    assert!(
        eventually(UNIT + SLACK * 4, || wakes(&b) == 1),
        "B was never woken"
    );
    assert_eq!(wakes(&a), 0, "A must not be woken");
    assert!(poll_with(sleep.as_mut(), &waker_b).is_ready());
    drop(a);
    assert_eq!(a_drops.load(Ordering::SeqCst), 1);
}

/// Polling again with the same waker keeps it (no clone per poll), and the
/// sleep still completes.
#[test]
fn thread_sleep_polled_twice_with_the_same_waker_wakes_it_once() {
    let (a, _) = counting();
    let waker = waker_from_arc(Arc::clone(&a));
    let mut cx = Context::from_waker(&waker);
    let mut sleep = pin!(thread_sleep(UNIT));
    assert!(sleep.as_mut().poll(&mut cx).is_pending());
    assert!(sleep.as_mut().poll(&mut cx).is_pending());
    assert!(eventually(UNIT + SLACK * 4, || wakes(&a) == 1));
    assert!(sleep.as_mut().poll(&mut cx).is_ready());
    assert_eq!(wakes(&a), 1);
}

/// A sleep that is dropped before its deadline wakes nobody: it lets go of
/// the waker when dropped, and its thread finds nobody to wake.
#[test]
fn a_dropped_thread_sleep_wakes_nobody() {
    let (a, _) = counting();
    let waker = waker_from_arc(Arc::clone(&a));
    let mut sleep = Box::pin(thread_sleep(UNIT));
    assert!(poll_with(sleep.as_mut(), &waker).is_pending());
    drop(waker);
    drop(sleep);
    assert_eq!(
        Arc::strong_count(&a),
        1,
        "the dropped sleep released its waker"
    );
    thread::sleep(UNIT * 5);
    assert_eq!(wakes(&a), 0, "a dropped sleep must not wake anyone");
}

/// A sleep of zero (or of a deadline already past) is ready at the first
/// poll and starts no thread.
#[test]
fn a_zero_thread_sleep_is_ready_at_once() {
    let (a, _) = counting();
    let waker = waker_from_arc(Arc::clone(&a));
    let mut sleep = pin!(ThreadSleep::new(Duration::ZERO));
    assert!(poll_with(sleep.as_mut(), &waker).is_ready());
    assert_eq!(Arc::strong_count(&a), 2, "no clone was kept for a thread");
}

/// `Duration::MAX` does not overflow the deadline: the sleep is made without
/// a panic (and would simply never end).
#[test]
fn thread_sleep_of_duration_max_does_not_panic() {
    let sleep = ThreadSleep::new(Duration::MAX);
    drop(sleep);
}

/// A thread-per-sleep really uses a thread: the sleep is woken from a thread
/// named `tiny-asyncio-thread-sleep`, not from the caller.
#[test]
fn thread_sleep_wakes_from_its_own_named_thread() {
    struct RecordThread(Mutex<Option<String>>);
    impl ArcWake for RecordThread {
        fn wake_by_ref(this: &Arc<Self>) {
            *this.0.lock().unwrap() = thread::current().name().map(String::from);
        }
    }
    let record = Arc::new(RecordThread(Mutex::new(None)));
    let waker = waker_from_arc(Arc::clone(&record));
    let mut sleep = pin!(thread_sleep(UNIT));
    assert!(poll_with(sleep.as_mut(), &waker).is_pending());
    let woken = || record.0.lock().unwrap().is_some();
    assert!(eventually(UNIT + SLACK * 4, woken));
    assert_eq!(
        record.0.lock().unwrap().as_deref(),
        Some("tiny-asyncio-thread-sleep")
    );
}
