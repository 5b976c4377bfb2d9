//! Chapter 11's conservation laws as property tests, on the virtual clock.
//! Each test's name is the invariant; its doc says how the random programs
//! are drawn. Waiters arrive at random times and give up at random: a
//! `timeout` around the wait, or an `abort` of their task. Whatever gives up,
//! nothing may be lost or given twice, waiters are served first come first
//! served, and every run ends (a lost wake would leave a task waiting for
//! ever, which the virtual clock reports as a deadlock).
mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use tiny_asyncio::{
    Event, EventLoop, JoinHandle, Lock, Queue, Semaphore, get_running_loop, sleep, sleep_until,
    spawn, timeout, yield_now,
};

fn sleep_until_loop_time(at: Duration) -> tiny_asyncio::Sleep {
    sleep_until(at)
}

fn now() -> Duration {
    get_running_loop().time()
}

/// One task that wants a permit (or the lock): it arrives at `arrive` ms,
/// waits at most `patience` ms (or for ever), holds what it got for `hold`
/// ms, and its task may be aborted at `abort_at` ms (before, while or after
/// it waits).
#[derive(Debug, Clone)]
struct Waiter {
    arrive: u64,
    patience: Option<u64>,
    hold: u64,
    abort_at: Option<u64>,
}

fn waiter() -> impl Strategy<Value = Waiter> {
    (
        0u64..20,
        prop::option::of(0u64..20),
        0u64..10,
        prop::option::weighted(0.3, 0u64..40),
    )
        .prop_map(|(arrive, patience, hold, abort_at)| Waiter {
            arrive,
            patience,
            hold,
            abort_at,
        })
}

/// What the waiters saw: each served waiter's arrival number and the loop
/// time it was served at, and the most that held at once.
#[derive(Default)]
struct Seen {
    arrivals: AtomicUsize,
    served: Mutex<Vec<(usize, Duration)>>,
    holding: AtomicUsize,
    most_holding: AtomicUsize,
}

impl Seen {
    fn arrive(&self) -> usize {
        self.arrivals.fetch_add(1, SeqCst)
    }
    fn served(&self, arrival: usize) {
        lock(&self.served).push((arrival, now()));
        let holding = self.holding.fetch_add(1, SeqCst) + 1;
        self.most_holding.fetch_max(holding, SeqCst);
    }
    fn released(&self) {
        self.holding.fetch_sub(1, SeqCst);
    }
}

/// Spawns, for each waiter, its task and (if it has one) its aborter, and
/// awaits them all.
async fn run_waiters<F, Fut>(waiters: &[Waiter], body: F)
where
    F: Fn(Waiter) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let tasks: Vec<JoinHandle<()>> = waiters.iter().map(|w| spawn(body(w.clone()))).collect();
    let aborters: Vec<JoinHandle<()>> = waiters
        .iter()
        .zip(&tasks)
        .filter_map(|(w, task)| {
            let at = w.abort_at?;
            let abort = task.abort_handle();
            Some(spawn(async move {
                sleep(ms(at)).await;
                abort.abort();
            }))
        })
        .collect();
    for task in tasks {
        let _ = task.await; // finished, timed out, or cancelled
    }
    for aborter in aborters {
        aborter.await.unwrap();
    }
}

/// Checks the laws of one run: at most `limit` held at once, and no
/// barging: a waiter that arrived earlier is served no later (in loop
/// time) than one that arrived after it.
///
/// Served *at the same instant* may still mean "returned in another
/// order": a release hands permits out in arrival order, but a task the
/// timer had already queued (its timeout was due at that instant) runs
/// before one the release has just queued. Handing out is FIFO; which task
/// the loop polls first is the run queue's business.
fn check_served(seen: &Seen, limit: usize) -> Result<(), TestCaseError> {
    let most = seen.most_holding.load(SeqCst);
    prop_assert!(most <= limit, "{} held at once, limit {}", most, limit);
    let mut served = lock(&seen.served).clone();
    served.sort();
    prop_assert!(
        served.windows(2).all(|w| w[0].1 <= w[1].1),
        "an earlier arrival was served later (arrival, time): {:?}",
        served
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Semaphore, any permits and waiters, random timeouts and aborts:
    /// never more holders than permits, waiters served in arrival order,
    /// every permit back at the end (none lost, none made up), and the run
    /// ends (no lost wake).
    #[test]
    fn semaphore_permits_are_conserved_and_waiters_served_fifo_under_timeouts_and_aborts(
        permits in 1usize..4,
        waiters in prop::collection::vec(waiter(), 1..12),
    ) {
        let event_loop = EventLoop::with_virtual_clock();
        let sem = Arc::new(Semaphore::new(permits));
        let seen = Arc::new(Seen::default());
        event_loop.run_until_complete(run_waiters(&waiters, |w| {
            let (sem, seen) = (sem.clone(), seen.clone());
            async move {
                sleep(ms(w.arrive)).await;
                let arrival = seen.arrive();
                let permit = match w.patience {
                    Some(p) => match timeout(ms(p), sem.acquire()).await {
                        Ok(permit) => permit,
                        Err(_) => return,
                    },
                    None => sem.acquire().await,
                };
                seen.served(arrival);
                let _released = Released(&seen);
                sleep(ms(w.hold)).await;
                drop(permit);
            }
        }));
        check_served(&seen, permits)?;
        prop_assert_eq!(sem.available_permits(), permits);
        prop_assert_eq!(seen.holding.load(SeqCst), 0);
    }

    /// Lock, the same programs: one holder at a time, FIFO, unlocked at the
    /// end, and the run ends.
    #[test]
    fn lock_holds_one_at_a_time_and_serves_waiters_fifo_under_timeouts_and_aborts(
        waiters in prop::collection::vec(waiter(), 1..12),
    ) {
        let event_loop = EventLoop::with_virtual_clock();
        let the_lock = Arc::new(Lock::new());
        let seen = Arc::new(Seen::default());
        event_loop.run_until_complete(run_waiters(&waiters, |w| {
            let (the_lock, seen) = (the_lock.clone(), seen.clone());
            async move {
                sleep(ms(w.arrive)).await;
                let arrival = seen.arrive();
                let guard = match w.patience {
                    Some(p) => match timeout(ms(p), the_lock.lock()).await {
                        Ok(guard) => guard,
                        Err(_) => return,
                    },
                    None => the_lock.lock().await,
                };
                seen.served(arrival);
                let _released = Released(&seen);
                sleep(ms(w.hold)).await;
                drop(guard);
            }
        }));
        check_served(&seen, 1)?;
        prop_assert!(!the_lock.locked());
    }

    /// Queue of any maxsize, producers whose puts may time out, consumers
    /// whose gets may time out and whose tasks may be aborted: the items got,
    /// then the ones left in the queue, are exactly the items put, in the
    /// order they were put (each once; a put that timed out put nothing);
    /// and no wake is lost (no item is left in the queue while a consumer
    /// that never gives up waits).
    #[test]
    fn every_item_put_is_got_exactly_once_and_in_order_under_timeouts_and_aborts(
        maxsize in 0usize..4,
        producers in prop::collection::vec(
            (0u64..10, 0u64..3, prop::collection::vec(prop::option::of(0u64..8), 0..6)),
            1..4,
        ),
        consumers in prop::collection::vec(
            (0u64..10, prop::option::of(0u64..8), 0u64..4, prop::option::weighted(0.4, 0u64..12)),
            1..5,
        ),
    ) {
        let event_loop = EventLoop::with_virtual_clock();
        let queue = Arc::new(Queue::new(maxsize));
        let put_log = Arc::new(Mutex::new(Vec::new()));
        let got_log = Arc::new(Mutex::new(Vec::new()));
        let (left, stranded) = event_loop.run_until_complete({
            let (queue, put_log, got_log) = (queue.clone(), put_log.clone(), got_log.clone());
            async move {
                // How many consumers wait in a `get` with no timeout.
                let waiting = Arc::new(AtomicUsize::new(0));
                let consumer_tasks: Vec<_> = consumers
                    .iter()
                    .map(|&(start, patience, pause, _)| {
                        let (queue, got_log, waiting) =
                            (queue.clone(), got_log.clone(), waiting.clone());
                        spawn(async move {
                            sleep(ms(start)).await;
                            loop {
                                let got = match patience {
                                    Some(p) => timeout(ms(p), queue.get()).await.ok(),
                                    None => {
                                        let _waiting = Counted::new(&waiting);
                                        Some(queue.get().await)
                                    }
                                };
                                if let Some(item) = got {
                                    // Logged in the same poll the get returned in.
                                    lock(&got_log).push(item);
                                }
                                sleep(ms(pause + 1)).await;
                            }
                        })
                    })
                    .collect();
                let aborters: Vec<_> = consumers
                    .iter()
                    .zip(&consumer_tasks)
                    .filter_map(|(&(_, _, _, abort_at), task)| {
                        let at = abort_at?;
                        let abort = task.abort_handle();
                        Some(spawn(async move {
                            sleep(ms(at)).await;
                            abort.abort();
                        }))
                    })
                    .collect();
                let producer_tasks: Vec<_> = producers
                    .iter()
                    .enumerate()
                    .map(|(p, (start, gap, puts))| {
                        let (queue, put_log, start, gap, puts) =
                            (queue.clone(), put_log.clone(), *start, *gap, puts.clone());
                        spawn(async move {
                            sleep(ms(start)).await;
                            for (j, patience) in puts.into_iter().enumerate() {
                                let item = (p, j);
                                let put = match patience {
                                    Some(t) => timeout(ms(t), queue.put(item)).await.is_ok(),
                                    None => {
                                        queue.put(item).await;
                                        true
                                    }
                                };
                                if put {
                                    lock(&put_log).push(item);
                                }
                                // A gap of 0 yields: the next put in the same instant.
                                if gap == 0 {
                                    yield_now().await;
                                } else {
                                    sleep(ms(gap)).await;
                                }
                            }
                        })
                    })
                    .collect();
                // No lost wake: everything happens at whole milliseconds, so
                // half-way between two, every task woken has had its turn;
                // then no item may sit in the queue while a consumer waits
                // in a `get` with no timeout.
                let mut stranded = 0;
                for k in 0..100 {
                    sleep_until_loop_time(ms(k) + Duration::from_micros(500)).await;
                    if waiting.load(SeqCst) > 0 {
                        stranded = stranded.max(queue.qsize());
                    }
                }
                // Then stop the consumers and empty what is left.
                for aborter in aborters {
                    aborter.await.unwrap();
                }
                for task in consumer_tasks {
                    task.abort();
                    let _ = task.await;
                }
                for task in producer_tasks {
                    task.abort();
                    let _ = task.await;
                }
                let mut left = Vec::new();
                while let Ok(item) = queue.get_nowait() {
                    left.push(item);
                }
                (left, stranded)
            }
        });
        prop_assert_eq!(stranded, 0, "items left in the queue while a consumer waited");
        let put = lock(&put_log).clone();
        let mut got = lock(&got_log).clone();
        got.extend(left);
        prop_assert_eq!(&got, &put);
        prop_assert_eq!(queue.unfinished(), put.len());
        prop_assert!(queue.empty());
    }

    /// Items processed by consumers at random paces, joiners arriving at
    /// random times, some with a timeout: a joiner that arrives before the
    /// last `task_done` returns exactly when it lands (unless its timeout
    /// comes first, then exactly at its deadline); one that arrives later
    /// returns at once. (Times are drawn so that no deadline falls on the
    /// same instant as a `task_done`.)
    #[test]
    fn join_returns_exactly_when_the_last_task_done_lands(
        items in prop::collection::vec(0u64..6, 1..8),
        consumers in 1usize..4,
        joiners in prop::collection::vec((0u64..20, prop::option::of(0u64..15)), 1..4),
    ) {
        let event_loop = EventLoop::with_virtual_clock();
        let queue = Arc::new(Queue::new(0));
        for &d in &items {
            queue.put_nowait(d).unwrap();
        }
        let done_at = Arc::new(Mutex::new(Vec::new()));
        let outcomes = event_loop.run_until_complete({
            let (queue, done_at, joiners) = (queue.clone(), done_at.clone(), joiners.clone());
            async move {
                let workers: Vec<_> = (0..consumers)
                    .map(|_| {
                        let (queue, done_at) = (queue.clone(), done_at.clone());
                        spawn(async move {
                            loop {
                                let d = queue.get().await;
                                sleep(ms(2 * d)).await; // even ms
                                lock(&done_at).push(now());
                                queue.task_done();
                            }
                        })
                    })
                    .collect();
                let joins: Vec<_> = joiners
                    .iter()
                    .map(|&(arrive, patience)| {
                        let queue = queue.clone();
                        spawn(async move {
                            sleep(ms(2 * arrive)).await;
                            let joined = match patience {
                                // Odd deadlines: never at a task_done's instant.
                                Some(t) => timeout(ms(2 * t + 1), queue.join()).await.is_ok(),
                                None => {
                                    queue.join().await;
                                    true
                                }
                            };
                            (joined, now())
                        })
                    })
                    .collect();
                let mut outcomes = Vec::new();
                for join in joins {
                    outcomes.push(join.await.unwrap());
                }
                // The joiners that gave up did not wait for the work.
                queue.join().await;
                for worker in workers {
                    worker.abort();
                    let _ = worker.await;
                }
                outcomes
            }
        });
        let done_at = lock(&done_at).clone();
        prop_assert_eq!(done_at.len(), items.len(), "every item marked done once");
        let last = *done_at.iter().max().unwrap();
        for (&(arrive, patience), &(joined, at)) in joiners.iter().zip(&outcomes) {
            let arrive = ms(2 * arrive);
            let expected = if arrive >= last {
                (true, arrive)
            } else {
                match patience {
                    Some(t) if arrive + ms(2 * t + 1) < last => (false, arrive + ms(2 * t + 1)),
                    _ => (true, last),
                }
            };
            prop_assert_eq!((joined, at), expected);
        }
    }

    /// An event set at one time, cleared at another (odd ms), set again
    /// later: each waiter (arriving at even ms, perhaps with an odd-ms
    /// timeout) returns at the first set after it arrived, or at once while
    /// the flag is up, or at its deadline if that comes first. No waiter is
    /// missed by a set.
    #[test]
    fn every_waiter_of_an_event_returns_at_the_first_set_after_it_arrived(
        first_set in 0u64..10,
        gap in 0u64..10,
        second_gap in 1u64..10,
        waiters in prop::collection::vec((0u64..30, prop::option::of(0u64..10)), 1..10),
    ) {
        let (set1, clear, set2) = (
            ms(2 * first_set),
            ms(2 * (first_set + gap) + 1),
            ms(2 * (first_set + gap + second_gap)),
        );
        let event_loop = EventLoop::with_virtual_clock();
        let event = Arc::new(Event::new());
        let outcomes = event_loop.run_until_complete({
            let (event, waiters) = (event.clone(), waiters.clone());
            async move {
                let setter = {
                    let event = event.clone();
                    spawn(async move {
                        sleep(set1).await;
                        event.set();
                        sleep(clear - set1).await;
                        event.clear();
                        sleep(set2 - clear).await;
                        event.set();
                    })
                };
                let tasks: Vec<_> = waiters
                    .iter()
                    .map(|&(arrive, patience)| {
                        let event = event.clone();
                        spawn(async move {
                            sleep(ms(2 * arrive)).await;
                            let woke = match patience {
                                Some(t) => timeout(ms(2 * t + 1), event.wait()).await.is_ok(),
                                None => {
                                    event.wait().await;
                                    true
                                }
                            };
                            (woke, now())
                        })
                    })
                    .collect();
                setter.await.unwrap();
                let mut outcomes = Vec::new();
                for task in tasks {
                    outcomes.push(task.await.unwrap());
                }
                outcomes
            }
        });
        for (&(arrive, patience), &outcome) in waiters.iter().zip(&outcomes) {
            let arrive = ms(2 * arrive);
            let wake_at = if arrive < set1 {
                set1
            } else if arrive < clear {
                arrive
            } else if arrive < set2 {
                set2
            } else {
                arrive
            };
            let expected = match patience {
                Some(t) if arrive + ms(2 * t + 1) < wake_at => (false, arrive + ms(2 * t + 1)),
                _ => (true, wake_at),
            };
            prop_assert_eq!(outcome, expected);
        }
    }
}

/// Counts one in while it lives (a consumer waiting in a `get`).
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn new(count: &'a AtomicUsize) -> Counted<'a> {
        count.fetch_add(1, SeqCst);
        Counted(count)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// Counts a holder out when dropped (also when its task is aborted while
/// it holds).
struct Released<'a>(&'a Seen);

impl Drop for Released<'_> {
    fn drop(&mut self) {
        self.0.released();
    }
}
