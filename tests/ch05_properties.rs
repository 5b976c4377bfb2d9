//! The event loop's scheduling rules as properties (proptest), on the
//! virtual clock. Each test's name states its invariant; its doc says how
//! the random programs are drawn. The rules themselves are written beside
//! the state bits in `tiny_asyncio::ch05_event_loop::state`.
//!
//! A lost wake-up on the virtual clock does not hang a test: with nothing
//! queued, no timer and no `KeepAwake`, the loop panics "event loop
//! deadlock", and the property fails.

mod common;

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use proptest::prelude::*;
use tiny_asyncio::ch03_waker::{ArcWake, waker_from_arc};
use tiny_asyncio::ch05_event_loop::spawn_detached;
use tiny_asyncio::{EventLoop, get_running_loop, sleep, sleep_until, yield_now};

fn spin_for(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// Who opens a gate, and when.
#[derive(Debug, Clone)]
enum Opener {
    /// The main future, after this many turns.
    Main { yields: u8 },
    /// A helper task, after this many turns.
    Helper { yields: u8 },
    /// Another thread, after this much real time (holding a `KeepAwake`).
    Thread { micros: u16 },
    /// The waiting task itself, inside its own poll, after it stored its
    /// waker: a wake while RUNNING.
    DuringPoll,
}

fn opener() -> impl Strategy<Value = Opener> {
    prop_oneof![
        (0u8..4).prop_map(|yields| Opener::Main { yields }),
        (0u8..4).prop_map(|yields| Opener::Helper { yields }),
        (0u16..400).prop_map(|micros| Opener::Thread { micros }),
        Just(Opener::DuringPoll),
    ]
}

/// One waiting task: turns it takes before waiting, real time it spins
/// inside each poll after its last look at the gate (so that a thread's wake
/// can land while it is RUNNING), and who opens its gate.
#[derive(Debug, Clone)]
struct Waiter {
    yields_first: u8,
    spin_micros: u8,
    opener: Opener,
}

fn waiter() -> impl Strategy<Value = Waiter> {
    (0u8..3, 0u8..60, opener()).prop_map(|(yields_first, spin_micros, opener)| Waiter {
        yields_first,
        spin_micros,
        opener,
    })
}

/// The waiting side of a gate, with the protocol that cannot lose a wake:
/// store the waker, then look at the condition.
fn wait_for(gate: Arc<Gate>, spin: Duration, open_myself: bool) -> impl Future<Output = ()> {
    let mut first = true;
    poll_fn(move |cx| {
        if gate.open.load(SeqCst) {
            return Poll::Ready(());
        }
        *gate.waker.lock().unwrap() = Some(cx.waker().clone());
        if open_myself && std::mem::take(&mut first) {
            // Woken during its own poll; must still be polled once more.
            gate.open();
            return Poll::Pending;
        }
        if gate.open.load(SeqCst) {
            return Poll::Ready(());
        }
        spin_for(spin);
        Poll::Pending
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(128)))]

    /// No lost wake-up: whoever sets a task's condition and then wakes it
    /// (the main future, another task, another thread, or the task itself
    /// during its poll), the task completes. Random waiters, each with a
    /// random opener, random turns before waiting, and random real-time
    /// spins inside polls so that thread wakes land at every moment.
    #[test]
    fn no_lost_wake_up_a_task_woken_after_its_condition_is_set_always_completes(
        waiters in prop::collection::vec(waiter(), 1..8),
    ) {
        let event_loop = EventLoop::with_virtual_clock();
        let completed = Arc::new(AtomicUsize::new(0));
        let c = completed.clone();
        let how_many = waiters.len();
        event_loop.run_until_complete(async move {
            let done = Countdown::new(waiters.len());
            let mut main_opens: Vec<(u8, Arc<Gate>)> = Vec::new();
            let mut threads = Vec::new();
            for w in &waiters {
                let gate = Arc::new(Gate::default());
                let spin = Duration::from_micros(u64::from(w.spin_micros));
                let open_myself = matches!(w.opener, Opener::DuringPoll);
                let (g, d, c) = (gate.clone(), done.clone(), c.clone());
                let yields_first = w.yields_first;
                spawn_detached(async move {
                    for _ in 0..yields_first {
                        yield_now().await;
                    }
                    wait_for(g, spin, open_myself).await;
                    c.fetch_add(1, SeqCst);
                    d.count_down();
                });
                match w.opener {
                    Opener::Main { yields } => main_opens.push((yields, gate)),
                    Opener::Helper { yields } => {
                        spawn_detached(async move {
                            for _ in 0..yields {
                                yield_now().await;
                            }
                            gate.open();
                        });
                    }
                    Opener::Thread { micros } => {
                        let keep_awake = get_running_loop().keep_awake();
                        threads.push(thread::spawn(move || {
                            spin_for(Duration::from_micros(u64::from(micros)));
                            gate.open();
                            drop(keep_awake);
                        }));
                    }
                    Opener::DuringPoll => {}
                }
            }
            for turn in 0..4 {
                for (_, gate) in main_opens.iter().filter(|(y, _)| *y == turn) {
                    gate.open();
                }
                yield_now().await;
            }
            done.wait().await;
            for t in threads {
                t.join().unwrap();
            }
        });
        prop_assert_eq!(completed.load(SeqCst), how_many);
        // Every waiter and every helper task is gone.
        prop_assert_eq!(event_loop.live_tasks(), 0);
        prop_assert_eq!(event_loop.time(), Duration::ZERO);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// At most once in the queue: a task woken k times while it is queued
    /// (from the loop thread or from k other threads) is polled exactly
    /// once for all of them. Random rounds, each with a random k.
    #[test]
    fn at_most_once_in_the_queue_a_task_woken_k_times_while_queued_is_polled_once(
        rounds in prop::collection::vec((1usize..8, any::<bool>()), 1..6),
    ) {
        let event_loop = EventLoop::with_virtual_clock();
        let polls = Arc::new(AtomicUsize::new(0));
        let latest: Arc<Mutex<Option<Waker>>> = Arc::default();
        let (p, l) = (polls.clone(), latest.clone());
        let last = rounds.len() + 1;
        let seen = event_loop.run_until_complete(async {
            spawn_detached(poll_fn(move |cx| {
                let n = p.fetch_add(1, SeqCst) + 1;
                *l.lock().unwrap() = Some(cx.waker().clone());
                if n == last { Poll::Ready(()) } else { Poll::Pending }
            }));
            yield_now().await;
            let mut seen = vec![polls.load(SeqCst)];
            for (k, from_threads) in &rounds {
                let waker = latest.lock().unwrap().clone().unwrap();
                if *from_threads {
                    thread::scope(|scope| {
                        for _ in 0..*k {
                            let waker = waker.clone();
                            scope.spawn(move || waker.wake());
                        }
                    });
                } else {
                    for _ in 0..*k {
                        waker.wake_by_ref();
                    }
                }
                yield_now().await;
                seen.push(polls.load(SeqCst));
            }
            seen
        });
        let expected: Vec<usize> = (1..=last).collect();
        prop_assert_eq!(seen, expected);
        prop_assert_eq!(event_loop.stats().task_polls, last as u64);
    }

    /// Never polled after completion: tasks that need a random number of
    /// polls, whose wakers are then woken again and again (from the loop
    /// thread and other threads) after they finished, are polled exactly as
    /// often as they needed, never once more.
    #[test]
    fn never_polled_after_completion_whatever_wakes_come_later(
        tasks in prop::collection::vec((1usize..5, 0usize..5), 1..8),
    ) {
        let event_loop = EventLoop::with_virtual_clock();
        let late_polls = Arc::new(AtomicUsize::new(0));
        let total_polls = Arc::new(AtomicUsize::new(0));
        let wakers: Arc<Mutex<Vec<Waker>>> = Arc::default();
        let lp = late_polls.clone();
        let tp = total_polls.clone();
        let ws = wakers.clone();
        let tasks2 = tasks.clone();
        event_loop.run_until_complete(async move {
            let done = Countdown::new(tasks2.len());
            for (needed, _) in &tasks2 {
                let needed = *needed;
                let (lp, tp, ws, d) = (lp.clone(), tp.clone(), ws.clone(), done.clone());
                let mut polls = 0;
                let mut finished = false;
                spawn_detached(poll_fn(move |cx| {
                    tp.fetch_add(1, SeqCst);
                    if finished {
                        lp.fetch_add(1, SeqCst);
                        return Poll::Ready(());
                    }
                    polls += 1;
                    if polls == needed {
                        finished = true;
                        ws.lock().unwrap().push(cx.waker().clone());
                        d.count_down();
                        Poll::Ready(())
                    } else {
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                }));
            }
            done.wait().await;
            let wakers = ws.lock().unwrap().clone();
            for (waker, (_, later)) in wakers.iter().zip(&tasks2) {
                for _ in 0..*later {
                    waker.wake_by_ref();
                }
                let w = waker.clone();
                thread::spawn(move || w.wake()).join().unwrap();
            }
            for _ in 0..3 {
                yield_now().await;
            }
        });
        let needed: usize = tasks.iter().map(|(n, _)| n).sum();
        prop_assert_eq!(late_polls.load(SeqCst), 0);
        prop_assert_eq!(total_polls.load(SeqCst), needed);
        prop_assert_eq!(event_loop.stats().task_polls, needed as u64);
    }
}

/// A waker that counts its wakes and passes them on.
struct CountingWaker {
    inner: Waker,
    wakes: Arc<AtomicUsize>,
}

impl ArcWake for CountingWaker {
    fn wake_by_ref(this: &Arc<Self>) {
        this.wakes.fetch_add(1, SeqCst);
        this.inner.wake_by_ref();
    }
}

/// Wraps a task's future: counts its polls, and hands it (and whoever
/// wants to wake it from outside) a waker that counts every wake.
struct Counted<F> {
    inner: Pin<Box<F>>,
    polls: Arc<AtomicUsize>,
    wakes: Arc<AtomicUsize>,
    latest: Arc<Mutex<Option<Waker>>>,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        this.polls.fetch_add(1, SeqCst);
        let waker = waker_from_arc(Arc::new(CountingWaker {
            inner: cx.waker().clone(),
            wakes: this.wakes.clone(),
        }));
        *this.latest.lock().unwrap() = Some(waker.clone());
        this.inner.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

/// One step of a random task.
#[derive(Debug, Clone)]
enum Step {
    /// `yield_now().await`.
    Yield,
    /// Sleep this many ms of loop time.
    SleepMs(u16),
    /// Wake itself this many times inside one poll, then return `Pending`.
    SelfWake(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        Just(Step::Yield),
        (0u16..50).prop_map(Step::SleepMs),
        (1u8..4).prop_map(Step::SelfWake),
    ]
}

async fn run_steps(steps: Vec<Step>) {
    for step in steps {
        match step {
            Step::Yield => yield_now().await,
            Step::SleepMs(ms) => sleep(Duration::from_millis(u64::from(ms))).await,
            Step::SelfWake(k) => {
                let mut woke = false;
                poll_fn(|cx| {
                    if std::mem::replace(&mut woke, true) {
                        return Poll::Ready(());
                    }
                    for _ in 0..k {
                        cx.waker().wake_by_ref();
                    }
                    Poll::Pending
                })
                .await;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// Poll count ≤ wakes + 1: a task is polled once when spawned and at
    /// most once per wake after that, whoever wakes it (itself, its
    /// timers, or the main future's extra, spurious wakes). Random tasks
    /// of yields, sleeps and self-wakes; random extra wakes from main.
    #[test]
    fn poll_count_is_at_most_wakes_plus_one(
        programs in prop::collection::vec(prop::collection::vec(step(), 0..6), 1..6),
        pokes in prop::collection::vec((0usize..6, 1u8..4), 0..10),
    ) {
        let event_loop = EventLoop::with_virtual_clock();
        let counters: Vec<(Arc<AtomicUsize>, Arc<AtomicUsize>)> = programs
            .iter()
            .map(|_| (Arc::default(), Arc::default()))
            .collect();
        let c = counters.clone();
        event_loop.run_until_complete(async move {
            let done = Countdown::new(programs.len());
            let mut latest = Vec::new();
            for (steps, (polls, wakes)) in programs.into_iter().zip(c) {
                let slot: Arc<Mutex<Option<Waker>>> = Arc::default();
                latest.push(slot.clone());
                let d = done.clone();
                spawn_detached(Counted {
                    inner: Box::pin(async move {
                        run_steps(steps).await;
                        d.count_down();
                    }),
                    polls,
                    wakes,
                    latest: slot,
                });
            }
            for (task, times) in pokes {
                yield_now().await;
                let waker = latest[task % latest.len()].lock().unwrap().clone();
                if let Some(waker) = waker {
                    for _ in 0..times {
                        waker.wake_by_ref();
                    }
                }
            }
            done.wait().await;
        });
        for (polls, wakes) in &counters {
            let (polls, wakes) = (polls.load(SeqCst), wakes.load(SeqCst));
            prop_assert!(polls >= 1);
            prop_assert!(polls <= wakes + 1, "polls {} > wakes {} + 1", polls, wakes);
        }
        prop_assert_eq!(event_loop.live_tasks(), 0);
    }
}

/// What the main future does: spawn a child (which itself spawns leaves,
/// with turns in between), or take a turn.
#[derive(Debug, Clone)]
enum MainAction {
    Spawn(Vec<bool>),
    Yield,
}

fn main_action() -> impl Strategy<Value = MainAction> {
    prop_oneof![
        prop::collection::vec(any::<bool>(), 0..4).prop_map(MainAction::Spawn),
        Just(MainAction::Yield),
    ]
}

/// Spawns a task that records its number at its first poll; the number is
/// taken at spawn time, so numbers are spawn order.
fn spawn_numbered(
    next: &Arc<AtomicUsize>,
    firsts: &Arc<Mutex<Vec<usize>>>,
    done: &Arc<Countdown>,
    children: Vec<bool>,
) {
    let me = next.fetch_add(1, SeqCst);
    let (next, firsts, done) = (next.clone(), firsts.clone(), done.clone());
    spawn_detached(async move {
        firsts.lock().unwrap().push(me);
        // `true`: spawn a leaf; `false`: take a turn.
        for spawn_leaf in children {
            if spawn_leaf {
                spawn_numbered(&next, &firsts, &done, Vec::new());
            } else {
                yield_now().await;
            }
        }
        done.count_down();
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// FIFO: tasks run their first poll in the order they were spawned,
    /// whoever spawned them (the main future or other tasks) and whatever
    /// turns were taken in between. Random spawn trees, two levels deep.
    #[test]
    fn fifo_tasks_spawned_in_order_i_run_their_first_poll_in_order_i(
        actions in prop::collection::vec(main_action(), 1..10),
    ) {
        let total: usize = actions
            .iter()
            .map(|a| match a {
                MainAction::Spawn(children) => 1 + children.iter().filter(|c| **c).count(),
                MainAction::Yield => 0,
            })
            .sum();
        let event_loop = EventLoop::with_virtual_clock();
        let firsts: Arc<Mutex<Vec<usize>>> = Arc::default();
        let f = firsts.clone();
        event_loop.run_until_complete(async move {
            let next = Arc::new(AtomicUsize::new(0));
            // One extra count so that a program without tasks still ends.
            let done = Countdown::new(total + 1);
            for action in actions {
                match action {
                    MainAction::Spawn(children) => spawn_numbered(&next, &f, &done, children),
                    MainAction::Yield => yield_now().await,
                }
            }
            done.count_down();
            done.wait().await;
        });
        let firsts = firsts.lock().unwrap().clone();
        let expected: Vec<usize> = (0..total).collect();
        prop_assert_eq!(firsts, expected);
    }

    /// Equal deadlines fire in registration order: tasks that sleep until
    /// one of a few deadlines resume sorted by deadline, and among equal
    /// deadlines in the order they registered their timers (not the order
    /// they were spawned), each exactly at its deadline. Random deadlines
    /// and random turns before registering.
    #[test]
    fn equal_deadlines_fire_in_registration_order(
        tasks in prop::collection::vec((1u64..4, 0u8..3), 1..10),
    ) {
        let event_loop = EventLoop::with_virtual_clock();
        let registered = Arc::new(AtomicUsize::new(0));
        let resumed: Arc<Mutex<Vec<(u64, usize, Duration)>>> = Arc::default();
        let (r, res) = (registered.clone(), resumed.clone());
        let t = tasks.clone();
        event_loop.run_until_complete(async move {
            let done = Countdown::new(t.len());
            for (deadline, yields) in t {
                let (r, res, d) = (r.clone(), res.clone(), done.clone());
                spawn_detached(async move {
                    for _ in 0..yields {
                        yield_now().await;
                    }
                    // The timer is registered by the sleep's first poll,
                    // right after this number is taken.
                    let order = r.fetch_add(1, SeqCst);
                    sleep_until(Duration::from_secs(deadline)).await;
                    let now = get_running_loop().time();
                    res.lock().unwrap().push((deadline, order, now));
                    d.count_down();
                });
            }
            done.wait().await;
        });
        let resumed = resumed.lock().unwrap().clone();
        let mut expected = resumed.clone();
        expected.sort_by_key(|(deadline, order, _)| (*deadline, *order));
        prop_assert_eq!(&resumed, &expected);
        for (deadline, _, at) in &resumed {
            prop_assert_eq!(*at, Duration::from_secs(*deadline));
        }
        let latest = tasks.iter().map(|(d, _)| *d).max().unwrap();
        prop_assert_eq!(event_loop.time(), Duration::from_secs(latest));
    }
}
