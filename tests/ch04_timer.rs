//! Chapter 4's facts: `sleep` on the timer ends exactly at its deadline (never
//! a tick early), equal deadlines fire in registration order, a dropped sleep
//! wakes nobody, and the timer thread is joined when the last handle goes.
//!
//! There is no event loop before chapter 5, so most tests drive the virtual
//! clock by hand, as the loop will: poll, find the timer's next deadline,
//! move the clock there, fire what is due, poll again. Time is exact: a
//! document's three seconds take microseconds. A few tests use the real
//! clock, with exact lower bounds and generous upper bounds.
mod common;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use proptest::prelude::*;
use tiny_asyncio::ch03_waker::{ArcWake, waker_from_arc};
use tiny_asyncio::ch04_timer::{self, Clock, EnterGuard, TICK, Timer};
use tiny_asyncio::{Sleep, block_on, sleep, sleep_until};

const SECOND: Duration = Duration::from_secs(1);
const MICRO: Duration = Duration::from_micros(1);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A virtual clock, a timer on it, and the timer entered on this thread (so
/// `sleep` and `ch04_timer::now` use it until the guard is dropped).
fn virtual_timer() -> (Clock, Timer, EnterGuard) {
    let clock = Clock::new_virtual();
    let timer = Timer::new(clock.clone());
    let guard = ch04_timer::enter(timer.clone());
    (clock, timer, guard)
}

/// The order in which probes were woken, by id.
type Order = Arc<Mutex<Vec<usize>>>;

/// A waker target that counts its wakes and appends its id to a shared
/// order log each time.
struct Probe {
    id: usize,
    wakes: AtomicUsize,
    order: Order,
}

impl ArcWake for Probe {
    fn wake_by_ref(this: &Arc<Self>) {
        this.wakes.fetch_add(1, Ordering::SeqCst);
        this.order.lock().unwrap().push(this.id);
    }
}

fn probe(id: usize, order: &Order) -> Arc<Probe> {
    Arc::new(Probe {
        id,
        wakes: AtomicUsize::new(0),
        order: Arc::clone(order),
    })
}

fn lone_probe() -> Arc<Probe> {
    probe(0, &Order::default())
}

fn wakes(probe: &Arc<Probe>) -> usize {
    probe.wakes.load(Ordering::SeqCst)
}

/// Polls `fut` once with a waker for `probe`.
fn poll_with<F: Future + ?Sized>(fut: Pin<&mut F>, probe: &Arc<Probe>) -> Poll<F::Output> {
    let waker = waker_from_arc(Arc::clone(probe));
    fut.poll(&mut Context::from_waker(&waker))
}

/// Moves the clock to the timer's next deadline and fires it. Returns the
/// new time and how many wakers fired.
fn step(clock: &Clock, timer: &Timer) -> (Duration, usize) {
    let next = timer
        .next_deadline()
        .expect("nothing is registered: a pending future would wait forever");
    clock.advance_to(next);
    (clock.now(), timer.fire_due())
}

/// Drives `fut` to completion on the virtual clock, the way chapter 5's loop
/// will: poll; while it is pending, step the clock to the next deadline,
/// check that the future's waker was woken, and poll again.
fn drive<F: Future>(clock: &Clock, timer: &Timer, fut: F) -> F::Output {
    let driver = lone_probe();
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(output) = poll_with(fut.as_mut(), &driver) {
            return output;
        }
        let woken = wakes(&driver);
        let (_, fired) = step(clock, timer);
        assert!(fired >= 1, "a deadline was due but nothing fired");
        assert_eq!(wakes(&driver), woken + 1, "the timer did not wake us");
    }
}

/// Lines stamped with the current timer's time (virtual time here).
#[derive(Default)]
struct Lines(RefCell<Vec<(Duration, String)>>);

impl Lines {
    fn line(&self, text: impl Into<String>) {
        self.0.borrow_mut().push((ch04_timer::now(), text.into()));
    }
    fn get(&self) -> Vec<(Duration, String)> {
        self.0.borrow().clone()
    }
}

fn at(secs: u64, text: &str) -> (Duration, String) {
    (Duration::from_secs(secs), text.to_string())
}

// ---------------------------------------------------------------------------
// The documents' examples, in virtual time
// ---------------------------------------------------------------------------

/// E003-1: one `sleep(1 s)` is still pending at 0.999999 s, and completes at
/// exactly 1 s, woken once.
#[test]
fn e003_1_sleep_of_one_second_ends_at_one_second_not_a_tick_before() {
    let (clock, timer, _guard) = virtual_timer();
    let driver = lone_probe();
    let mut nap = pin!(sleep(SECOND));
    assert_eq!(nap.deadline(), SECOND);
    assert!(poll_with(nap.as_mut(), &driver).is_pending());
    assert_eq!(timer.pending(), 1);
    assert_eq!(timer.next_deadline(), Some(SECOND));

    clock.advance_to(SECOND - MICRO);
    assert_eq!(timer.fire_due(), 0, "fired a tick early");
    assert_eq!(wakes(&driver), 0);
    assert!(poll_with(nap.as_mut(), &driver).is_pending());

    clock.advance_to(SECOND);
    assert_eq!(timer.fire_due(), 1);
    assert_eq!(wakes(&driver), 1);
    assert!(poll_with(nap.as_mut(), &driver).is_ready());
    assert_eq!(ch04_timer::now(), SECOND);
    assert_eq!(timer.pending(), 0);
}

/// E003-1 as the document writes it: `before wait` at 0 s, `after wait 1
/// second` at exactly 1 s.
#[test]
fn e003_1_before_wait_and_after_wait_one_second_apart() {
    let (clock, timer, _guard) = virtual_timer();
    let lines = Lines::default();
    drive(&clock, &timer, async {
        lines.line("before wait");
        sleep(SECOND).await;
        lines.line("after wait 1 second");
    });
    assert_eq!(
        lines.get(),
        [at(0, "before wait"), at(1, "after wait 1 second")]
    );
}

async fn task_with_delay(seconds: u64, lines: &Lines) -> u64 {
    lines.line(format!("{seconds}초 대기 작업 시작"));
    sleep(Duration::from_secs(seconds)).await;
    lines.line(format!("{seconds}초 대기 작업 종료"));
    seconds
}

/// E002-5: `task_with_delay(1)` awaited twice: the second sleep starts when
/// the first ends, and the whole run ends at exactly 2 s with `합계: 2`.
#[test]
fn e002_5_two_sequential_sleeps_end_at_exactly_two_seconds() {
    let (clock, timer, _guard) = virtual_timer();
    let lines = Lines::default();
    let sum = drive(&clock, &timer, async {
        let val1 = task_with_delay(1, &lines).await;
        let val2 = task_with_delay(1, &lines).await;
        lines.line(format!("합계: {}", val1 + val2));
        val1 + val2
    });
    assert_eq!(sum, 2);
    assert_eq!(
        lines.get(),
        [
            at(0, "1초 대기 작업 시작"),
            at(1, "1초 대기 작업 종료"),
            at(1, "1초 대기 작업 시작"),
            at(2, "1초 대기 작업 종료"),
            at(2, "합계: 2"),
        ]
    );
    assert_eq!(clock.now(), 2 * SECOND);
}

async fn say_after(delay: u64, what: &str, lines: &Lines) {
    sleep(Duration::from_secs(delay)).await;
    lines.line(what);
}

/// E004-5: `say_after(1, 'hello')` then `say_after(2, 'world')`, awaited in
/// turn: `hello` at 1 s, `world` at 3 s (the waits add up), finished at 3 s.
#[test]
fn e004_5_say_after_awaited_in_turn_ends_at_three_seconds() {
    let (clock, timer, _guard) = virtual_timer();
    let lines = Lines::default();
    drive(&clock, &timer, async {
        lines.line("started");
        say_after(1, "hello", &lines).await;
        say_after(2, "world", &lines).await;
        lines.line("finished");
    });
    assert_eq!(
        lines.get(),
        [
            at(0, "started"),
            at(1, "hello"),
            at(3, "world"),
            at(3, "finished"),
        ]
    );
}

// ---------------------------------------------------------------------------
// The timer's rules
// ---------------------------------------------------------------------------

/// Sleeps with the same deadline are woken in the order they registered
/// (their first poll), not the order they were made. (E000-4 relies on
/// this: tasks resume in the order they went to sleep.)
#[test]
fn equal_deadlines_wake_in_registration_order() {
    let (clock, timer, _guard) = virtual_timer();
    let order = Order::default();
    let mut sleeps: Vec<_> = (0..4).map(|_| Box::pin(sleep(SECOND))).collect();
    let probes: Vec<_> = (0..4).map(|id| probe(id, &order)).collect();
    for i in [2, 0, 3, 1] {
        assert!(poll_with(sleeps[i].as_mut(), &probes[i]).is_pending());
    }
    assert_eq!(step(&clock, &timer), (SECOND, 4));
    assert_eq!(*order.lock().unwrap(), [2, 0, 3, 1]);
    for (nap, probe) in sleeps.iter_mut().zip(&probes) {
        assert!(poll_with(nap.as_mut(), probe).is_ready());
    }
}

/// A later deadline registered first still fires after an earlier one.
#[test]
fn deadlines_fire_in_deadline_order() {
    let (clock, timer, _guard) = virtual_timer();
    let order = Order::default();
    let mut late = pin!(sleep(3 * SECOND));
    let mut early = pin!(sleep(SECOND));
    assert!(poll_with(late.as_mut(), &probe(3, &order)).is_pending());
    assert!(poll_with(early.as_mut(), &probe(1, &order)).is_pending());
    assert_eq!(step(&clock, &timer), (SECOND, 1));
    assert_eq!(step(&clock, &timer), (3 * SECOND, 1));
    assert_eq!(*order.lock().unwrap(), [1, 3]);
}

/// A dropped `Sleep` is cancelled: its entry leaves the timer at once, its
/// waker is released (not kept until the deadline), and it is never woken.
#[test]
fn a_dropped_sleep_is_cancelled_and_wakes_nobody() {
    let (clock, timer, _guard) = virtual_timer();
    let driver = lone_probe();
    let mut nap = Box::pin(sleep(SECOND));
    assert!(poll_with(nap.as_mut(), &driver).is_pending());
    assert_eq!(timer.pending(), 1);
    assert_eq!(Arc::strong_count(&driver), 2, "the timer holds our waker");

    drop(nap);
    assert_eq!(timer.pending(), 0);
    assert_eq!(timer.next_deadline(), None);
    assert_eq!(Arc::strong_count(&driver), 1, "the waker was released");

    clock.advance_to(10 * SECOND);
    assert_eq!(timer.fire_due(), 0);
    assert_eq!(wakes(&driver), 0);
}

/// A sleep that was never polled never registered: dropping it is free.
#[test]
fn an_unpolled_sleep_registers_nothing() {
    let (_clock, timer, _guard) = virtual_timer();
    let nap = sleep(SECOND);
    assert_eq!(timer.pending(), 0);
    drop(nap);
    assert_eq!(timer.pending(), 0);
}

/// `sleep(Duration::MAX)` does not panic, is not a "next deadline" anybody
/// should wait for, and never fires, however far the clock moves.
#[test]
fn sleep_of_duration_max_never_panics_and_never_fires() {
    let (clock, timer, _guard) = virtual_timer();
    let driver = lone_probe();
    clock.advance_to(5 * SECOND);
    let mut forever = pin!(sleep(Duration::MAX));
    assert_eq!(forever.deadline(), Duration::MAX);
    assert!(poll_with(forever.as_mut(), &driver).is_pending());
    assert_eq!(timer.pending(), 1);
    assert_eq!(timer.next_deadline(), None);

    let mut also_forever = pin!(sleep_until(Duration::MAX));
    assert!(poll_with(also_forever.as_mut(), &driver).is_pending());
    assert_eq!(timer.next_deadline(), None);

    // About 31,700 years.
    clock.advance_to(Duration::from_secs(1_000_000_000_000));
    assert_eq!(timer.fire_due(), 0);
    assert!(poll_with(forever.as_mut(), &driver).is_pending());
    assert_eq!(wakes(&driver), 0);
}

/// A finite deadline registered next to a "never" one is still found.
#[test]
fn next_deadline_finds_a_real_deadline_beside_a_never() {
    let (clock, timer, _guard) = virtual_timer();
    let driver = lone_probe();
    let mut forever = pin!(sleep(Duration::MAX));
    let mut nap = pin!(sleep(SECOND));
    assert!(poll_with(forever.as_mut(), &driver).is_pending());
    assert!(poll_with(nap.as_mut(), &driver).is_pending());
    assert_eq!(timer.next_deadline(), Some(SECOND));
    assert_eq!(step(&clock, &timer), (SECOND, 1));
    assert_eq!(timer.next_deadline(), None);
    assert!(poll_with(nap.as_mut(), &driver).is_ready());
}

/// `sleep_until` a time already past, `sleep_until(now)` and `sleep(0)` yield
/// once, as `asyncio.sleep(0)` does: the first poll wakes the
/// polling task itself and says `Pending` (to the back of the run queue),
/// registers nothing; the next poll is ready. (Were they ready at the first
/// poll, a translated `await asyncio.sleep(0)` would let no other task run.)
#[test]
fn sleep_until_the_past_and_sleep_zero_yield_once_then_are_ready() {
    let (clock, timer, _guard) = virtual_timer();
    clock.advance_to(5 * SECOND);
    let mut past = pin!(sleep_until(2 * SECOND));
    assert!(past.is_elapsed());
    let now = pin!(sleep_until(5 * SECOND));
    let zero = pin!(sleep(Duration::ZERO));
    let sleeps: [Pin<&mut Sleep>; 3] = [past.as_mut(), now, zero];
    for (i, mut nap) in sleeps.into_iter().enumerate() {
        let driver = lone_probe();
        assert!(
            poll_with(nap.as_mut(), &driver).is_pending(),
            "sleep {i}: the first poll yields"
        );
        assert_eq!(wakes(&driver), 1, "sleep {i}: it woke its own task");
        assert_eq!(timer.pending(), 0, "sleep {i}: a yield needs no timer");
        assert!(
            poll_with(nap.as_mut(), &driver).is_ready(),
            "sleep {i}: ready at the second poll"
        );
        assert_eq!(wakes(&driver), 1);
    }
    assert_eq!(clock.now(), 5 * SECOND, "a yield takes no time");
}

/// A sleep that is due only later is not the yield: once woken at its
/// deadline, its next poll is ready without a second yield.
#[test]
fn a_sleep_that_came_due_while_registered_is_ready_without_a_yield() {
    let (clock, timer, _guard) = virtual_timer();
    let driver = lone_probe();
    let mut nap = pin!(sleep(SECOND));
    assert!(poll_with(nap.as_mut(), &driver).is_pending());
    assert_eq!(wakes(&driver), 0);
    let (now, fired) = step(&clock, &timer);
    assert_eq!((now, fired), (SECOND, 1));
    assert!(poll_with(nap.as_mut(), &driver).is_ready());
    assert_eq!(wakes(&driver), 1, "woken by the timer only");
}

/// Only the latest poll's waker is woken: polled with A, then B, the timer
/// wakes B, never A, and lets go of A at the second poll.
#[test]
fn a_sleep_polled_with_a_new_waker_wakes_only_the_new_one() {
    let (clock, timer, _guard) = virtual_timer();
    let order = Order::default();
    let (a, b) = (probe(1, &order), probe(2, &order));
    let mut nap = pin!(sleep(SECOND));
    assert!(poll_with(nap.as_mut(), &a).is_pending());
    assert_eq!(Arc::strong_count(&a), 2);
    assert!(poll_with(nap.as_mut(), &b).is_pending());
    assert_eq!(Arc::strong_count(&a), 1, "A was replaced and released");
    assert_eq!(timer.pending(), 1, "still one entry, not two");

    assert_eq!(step(&clock, &timer), (SECOND, 1));
    assert_eq!((wakes(&a), wakes(&b)), (0, 1));
    assert!(poll_with(nap.as_mut(), &b).is_ready());
}

/// The deadline is fixed when the sleep is made, not at its first poll.
#[test]
fn the_deadline_counts_from_when_the_sleep_is_made() {
    let (clock, timer, _guard) = virtual_timer();
    let driver = lone_probe();
    clock.advance_to(SECOND);
    let mut nap = pin!(sleep(2 * SECOND));
    clock.advance_to(2 * SECOND);
    assert!(poll_with(nap.as_mut(), &driver).is_pending());
    assert_eq!(timer.next_deadline(), Some(3 * SECOND));
}

/// A deadline between two ticks is rounded up: the sleep never ends early.
#[test]
fn a_deadline_between_ticks_rounds_up() {
    let (clock, timer, _guard) = virtual_timer();
    let driver = lone_probe();
    let deadline = SECOND + TICK / 2;
    let mut nap = pin!(sleep_until(deadline));
    assert!(poll_with(nap.as_mut(), &driver).is_pending());
    assert_eq!(timer.next_deadline(), Some(SECOND + TICK));
    clock.advance_to(SECOND);
    assert_eq!(timer.fire_due(), 0);
    assert!(poll_with(nap.as_mut(), &driver).is_pending());
    assert_eq!(step(&clock, &timer), (SECOND + TICK, 1));
    assert!(poll_with(nap.as_mut(), &driver).is_ready());
}

/// A virtual clock never runs backwards, and only moves when told.
#[test]
fn the_virtual_clock_moves_only_forward_and_only_when_told() {
    let clock = Clock::new_virtual();
    assert!(clock.is_virtual());
    assert_eq!(clock.now(), Duration::ZERO);
    clock.advance_to(2 * SECOND);
    clock.advance_to(SECOND);
    assert_eq!(clock.now(), 2 * SECOND);
    let shared = clock.clone();
    shared.advance_to(3 * SECOND);
    assert_eq!(clock.now(), 3 * SECOND, "clones share one clock");
}

/// Nobody can move the wall clock; trying says so.
#[test]
#[should_panic(expected = "a real clock follows the wall clock and cannot be moved")]
fn moving_a_real_clock_panics_with_a_clear_message() {
    Clock::real().advance_to(SECOND);
}

/// `enter` makes a timer current on this thread, and dropping the guard
/// brings the previous one back.
#[test]
fn enter_sets_the_current_timer_and_the_guard_restores_it() {
    let outer = Timer::new(Clock::new_virtual());
    let inner = Timer::new(Clock::new_virtual());
    let outer_guard = ch04_timer::enter(outer.clone());
    assert!(ch04_timer::current_timer().same_timer(&outer));
    {
        let _inner_guard = ch04_timer::enter(inner.clone());
        assert!(ch04_timer::current_timer().same_timer(&inner));
    }
    assert!(ch04_timer::current_timer().same_timer(&outer));
    drop(outer_guard);
    let default = ch04_timer::current_timer();
    assert!(!default.clock().is_virtual(), "the default timer is real");
}

/// A virtual timer starts no thread: nothing moves unless we move it.
#[test]
fn a_virtual_timer_never_fires_by_itself() {
    let (_clock, timer, _guard) = virtual_timer();
    let driver = lone_probe();
    let mut nap = pin!(sleep(Duration::from_micros(1)));
    assert!(poll_with(nap.as_mut(), &driver).is_pending());
    thread::sleep(Duration::from_millis(20));
    assert_eq!(wakes(&driver), 0);
    assert_eq!(timer.pending(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// For any set of deadlines (ties included), stepping the clock from one
    /// deadline to the next wakes every sleep exactly once, exactly at its
    /// own deadline (never before), in (deadline, registration) order.
    #[test]
    fn sleeps_wake_once_at_their_deadline_in_deadline_then_registration_order(
        deadlines_us in prop::collection::vec(0u64..2_000, 1..40)
    ) {
        let (clock, timer, _guard) = virtual_timer();
        let order = Order::default();
        let probes: Vec<_> = (0..deadlines_us.len()).map(|id| probe(id, &order)).collect();
        let mut sleeps: Vec<_> = deadlines_us
            .iter()
            .map(|&us| Box::pin(sleep_until(Duration::from_micros(us))))
            .collect();
        let mut woken_at = vec![None; sleeps.len()];
        for (i, nap) in sleeps.iter_mut().enumerate() {
            prop_assert!(poll_with(nap.as_mut(), &probes[i]).is_pending(), "a first poll is never ready");
            if deadlines_us[i] == 0 {
                // Due at its first poll: a yield (asyncio's sleep(0)). It
                // woke itself once; the next poll is ready.
                prop_assert_eq!(wakes(&probes[i]), 1);
                prop_assert!(poll_with(nap.as_mut(), &probes[i]).is_ready());
                woken_at[i] = Some(Duration::ZERO);
            } else {
                prop_assert_eq!(wakes(&probes[i]), 0);
            }
        }
        while timer.next_deadline().is_some() {
            let seen = order.lock().unwrap().len();
            // Every sleep still pending is pending for a reason.
            for (i, nap) in sleeps.iter_mut().enumerate() {
                if woken_at[i].is_none() {
                    prop_assert!(poll_with(nap.as_mut(), &probes[i]).is_pending());
                }
            }
            let (now, fired) = step(&clock, &timer);
            let newly: Vec<usize> = order.lock().unwrap()[seen..].to_vec();
            prop_assert_eq!(newly.len(), fired);
            for i in newly {
                prop_assert!(woken_at[i].is_none(), "woken twice");
                woken_at[i] = Some(now);
                prop_assert!(poll_with(sleeps[i].as_mut(), &probes[i]).is_ready());
            }
        }
        let mut expected: Vec<usize> = (0..deadlines_us.len()).collect();
        expected.sort_by_key(|&i| deadlines_us[i]);
        prop_assert_eq!(&*order.lock().unwrap(), &expected);
        for (i, at) in woken_at.iter().enumerate() {
            prop_assert_eq!(*at, Some(Duration::from_micros(deadlines_us[i])));
        }
        prop_assert_eq!(timer.pending(), 0);
    }
}

// ---------------------------------------------------------------------------
// The real clock and the timer thread
// ---------------------------------------------------------------------------

const UNIT: Duration = Duration::from_millis(20);
const SLACK: Duration = Duration::from_millis(500);

/// `block_on(sleep(20 ms))` on the default (real) timer takes at least 20 ms.
#[test]
fn block_on_sleep_on_the_real_clock_is_never_short() {
    let start = Instant::now();
    block_on(sleep(UNIT));
    let took = start.elapsed();
    assert!(took >= UNIT, "woke after {took:?}");
    assert!(took < UNIT + SLACK, "took {took:?}");
}

/// E002-5 in real time on a private real timer: two sequential sleeps take
/// at least two units, each at least one.
#[test]
fn e002_5_two_real_sleeps_in_turn_take_two_units() {
    let timer = Timer::new(Clock::real());
    let _guard = ch04_timer::enter(timer.clone());
    let start = Instant::now();
    let ends = block_on(async {
        sleep(UNIT).await;
        let first = start.elapsed();
        sleep(UNIT).await;
        (first, start.elapsed())
    });
    assert!(ends.0 >= UNIT, "first ended at {:?}", ends.0);
    assert!(ends.1 - ends.0 >= UNIT, "second was short: {ends:?}");
    assert!(ends.1 < 2 * UNIT + SLACK, "took {:?}", ends.1);
}

/// On a real clock, a deadline earlier than the one the timer thread sleeps
/// toward rouses the thread: the early sleep is not held up by the late one.
#[test]
fn an_earlier_deadline_rouses_the_sleeping_timer_thread() {
    let timer = Timer::new(Clock::real());
    let (late, early) = (lone_probe(), lone_probe());
    let _late_key = timer.register(
        timer.now() + Duration::from_secs(3600),
        waker_from_arc(Arc::clone(&late)),
    );
    // Let the thread go to sleep toward the late deadline.
    thread::sleep(UNIT);
    let start = Instant::now();
    timer.register(timer.now() + UNIT, waker_from_arc(Arc::clone(&early)));
    assert!(eventually(UNIT + SLACK * 4, || wakes(&early) == 1));
    let took = start.elapsed();
    assert!(took >= UNIT, "fired early, after {took:?}");
    assert_eq!(wakes(&late), 0);
}

/// The thread a waker runs on: its name and its kernel thread id (from
/// `/proc/thread-self`, which links to `<pid>/task/<tid>`).
struct WhereWoken(Mutex<Option<(Option<String>, PathBuf)>>);

impl ArcWake for WhereWoken {
    fn wake_by_ref(this: &Arc<Self>) {
        let name = thread::current().name().map(String::from);
        let task = std::fs::read_link("/proc/thread-self").expect("Linux's /proc/thread-self");
        *this.0.lock().unwrap() = Some((name, PathBuf::from("/proc").join(task)));
    }
}

/// Linux keeps only the first 15 bytes of a thread's name in `comm`, so
/// `tiny-asyncio-timer` shows there as `tiny-asyncio-ti`.
const TIMER_COMM: &str = "tiny-asyncio-ti";

fn task_is_a_timer_thread(task: &Path) -> bool {
    std::fs::read_to_string(task.join("comm")).is_ok_and(|comm| comm.trim_end() == TIMER_COMM)
}

/// The timer thread (named `tiny-asyncio-timer`) runs while any handle
/// lives and is joined when the last handle is dropped.
///
/// Other tests run in parallel in this process, with timer threads of their
/// own, so counting threads by name would be racy. Instead this test follows
/// *its own* timer's thread: a waker run by that thread records the
/// thread's kernel id, and a second waker left in the wheel shows when the
/// thread has let go of the timer's shared state (the wheel is freed, and
/// the waker with it, only once the thread has ended). That second check
/// holds the moment `drop` returns, because `drop` joins the thread.
#[test]
fn the_timer_thread_is_joined_when_the_last_handle_drops() {
    let timer = Timer::new(Clock::real());
    let woken = Arc::new(WhereWoken(Mutex::new(None)));
    timer.register(
        timer.now() + Duration::from_millis(1),
        waker_from_arc(Arc::clone(&woken)),
    );
    assert!(eventually(SLACK * 4, || woken.0.lock().unwrap().is_some()));
    let (name, task) = woken.0.lock().unwrap().clone().unwrap();
    assert_eq!(name.as_deref(), Some("tiny-asyncio-timer"));
    assert!(
        task_is_a_timer_thread(&task),
        "{task:?} is not our timer thread"
    );

    let parked = lone_probe();
    timer.register(
        timer.now() + Duration::from_secs(3600),
        waker_from_arc(Arc::clone(&parked)),
    );
    assert_eq!(Arc::strong_count(&parked), 2);

    let second_handle = timer.clone();
    drop(timer);
    thread::sleep(UNIT);
    assert!(
        task_is_a_timer_thread(&task),
        "the thread ended while a handle lived"
    );
    assert_eq!(Arc::strong_count(&parked), 2);

    let parked_strong_after_drop = within(Duration::from_secs(10), "dropping the last handle", {
        let parked = Arc::clone(&parked);
        move || {
            drop(second_handle);
            // Read at once, on the dropping thread: without the join the
            // timer thread would still be on its way out.
            Arc::strong_count(&parked) - 1
        }
    });
    assert_eq!(
        parked_strong_after_drop, 1,
        "the timer's state outlived its last handle: the thread was not joined"
    );
    assert_eq!(wakes(&parked), 0, "shutting down wakes nobody");
    // The kernel removes the thread's /proc entry a moment after it exits.
    assert!(
        eventually(SLACK * 4, || !task_is_a_timer_thread(&task)),
        "{task:?} is still a timer thread"
    );
}

/// A real timer whose only sleep is "forever" shuts down cleanly: its thread
/// waits with no deadline, and dropping the last handle still ends it.
#[test]
fn a_real_timer_with_only_a_never_deadline_shuts_down() {
    within(
        Duration::from_secs(10),
        "a never-sleep on a real timer",
        || {
            let timer = Timer::new(Clock::real());
            let _guard = ch04_timer::enter(timer.clone());
            let driver = lone_probe();
            let mut forever = Box::pin(sleep(Duration::MAX));
            assert!(poll_with(forever.as_mut(), &driver).is_pending());
            assert_eq!(timer.next_deadline(), None);
            thread::sleep(UNIT);
            assert_eq!(wakes(&driver), 0);
            drop(forever);
            assert_eq!(timer.pending(), 0);
        },
    );
}

/// A waker run on the timer thread may drop the last timer handle (say, a
/// task that owned the last sleep finishes inside the wake). A thread cannot
/// join itself: the handle's drop must let the thread exit on its own, not
/// hang.
#[test]
fn a_waker_that_drops_the_last_handle_on_the_timer_thread_does_not_hang() {
    struct DropOnWake(Mutex<Option<Timer>>, Mutex<Option<Waker>>);
    impl ArcWake for DropOnWake {
        fn wake_by_ref(this: &Arc<Self>) {
            let timer = this.0.lock().unwrap().take();
            drop(timer);
            if let Some(done) = this.1.lock().unwrap().take() {
                done.wake();
            }
        }
    }
    within(
        Duration::from_secs(10),
        "the last handle dropped by the timer thread",
        || {
            let done = lone_probe();
            let holder = Arc::new(DropOnWake(
                Mutex::new(None),
                Mutex::new(Some(waker_from_arc(Arc::clone(&done)))),
            ));
            let timer = Timer::new(Clock::real());
            timer.register(timer.now() + UNIT, waker_from_arc(Arc::clone(&holder)));
            *holder.0.lock().unwrap() = Some(timer);
            assert!(eventually(UNIT + SLACK * 4, || wakes(&done) == 1));
        },
    );
}

/// A sleep made where no timer is entered (as in
/// `event_loop.run_until_complete(sleep(d))`, built before the loop runs)
/// does not grab the process-wide real timer: it binds at its first poll to
/// the timer entered there, and counts its duration from that moment.
#[test]
fn a_sleep_made_outside_any_timer_binds_to_the_timer_of_its_first_poll() {
    let made_outside = sleep(Duration::from_secs(2));
    assert!(!made_outside.is_elapsed());
    let (clock, timer, _entered) = virtual_timer();
    clock.advance_to(Duration::from_secs(5));
    drive(&clock, &timer, made_outside);
    // 5 s when first polled, plus its 2 s, on the virtual clock.
    assert_eq!(clock.now(), Duration::from_secs(7));
}
