//! Chapter 7's facts: seed 002's gather examples (E002-2, E002-6, E002-7)
//! in exact virtual time, and the contracts of `gather`, `gather!`,
//! `try_gather`, `wait` and `as_completed`: input order, polls only for
//! woken children, what is dropped when, what is handed back.
mod common;

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use common::*;
use tiny_asyncio::ch03_waker::thread_sleep;
use tiny_asyncio::ch07_gather::{PollCounter, naive_join_all};
use tiny_asyncio::{
    EventLoop, ReturnWhen, as_completed, block_on, gather, get_running_loop, run, sleep, spawn,
    try_gather, wait, yield_now,
};

/// Seed 002's `fetch_data_async`: start, a 2-second wait, done.
async fn fetch_data_async(name: &str, log: Notes) {
    log.note(format!("start {name}"));
    sleep(secs(2)).await;
    log.note(format!("done {name}"));
}

/// Seed 002's `fetch_url`: "request sent", a 2-second wait, "<url> 데이터".
async fn fetch_url(url: &str, log: Notes) -> String {
    log.note(format!("{url} 요청 전송"));
    sleep(secs(2)).await;
    format!("{url} 데이터")
}

/// A request with its own latency (for wait and as_completed).
async fn fetch_slow(url: &str, latency: Duration) -> String {
    sleep(latency).await;
    format!("{url} 데이터")
}

/// Counts drops: a guard moved into a future is dropped with it.
#[derive(Clone, Default)]
struct Drops(Rc<RefCell<Vec<(usize, Duration)>>>);

struct DropGuard {
    index: usize,
    drops: Drops,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        let at = get_running_loop().time();
        self.drops.0.borrow_mut().push((self.index, at));
    }
}

impl Drops {
    fn guard(&self, index: usize) -> DropGuard {
        DropGuard {
            index,
            drops: self.clone(),
        }
    }
    fn all(&self) -> Vec<(usize, Duration)> {
        self.0.borrow().clone()
    }
}

const URLS: [&str; 3] = ["google.com", "naver.com", "daum.net"];

// ---------------------------------------------------------------------------
// The documents' examples
// ---------------------------------------------------------------------------

/// E002-2: two fetches gathered start together and end together: `start1
/// start2 done1 done2`, 2 s (chapter 1's blocking version: 4 s).
#[test]
fn e002_2_gather_starts_both_fetches_at_once_and_takes_two_seconds() {
    let log = Notes::default();
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(gather([
        fetch_data_async("작업1", log.clone()),
        fetch_data_async("작업2", log.clone()),
    ]));
    assert_eq!(
        log.timed(),
        [
            (secs(0), "start 작업1".to_string()),
            (secs(0), "start 작업2".to_string()),
            (secs(2), "done 작업1".to_string()),
            (secs(2), "done 작업2".to_string()),
        ]
    );
    assert_eq!(event_loop.time(), secs(2));
}

/// E002-2 with `gather!`, as the document writes it (two arguments).
#[test]
fn e002_2_with_the_gather_macro_is_the_same_story() {
    let log = Notes::default();
    let event_loop = EventLoop::with_virtual_clock();
    let ((), ()) = event_loop.run_until_complete(async {
        tiny_asyncio::gather!(
            fetch_data_async("작업1", log.clone()),
            fetch_data_async("작업2", log.clone()),
        )
        .await
    });
    assert_eq!(
        log.lines(),
        ["start 작업1", "start 작업2", "done 작업1", "done 작업2"]
    );
    assert_eq!(event_loop.time(), secs(2));
}

/// E002-6: three requests gathered: every "request sent" line first (all
/// at 0 s), then the results in input order, at 2 s.
#[test]
fn e002_6_gather_sends_every_request_first_and_keeps_input_order() {
    let log = Notes::default();
    let event_loop = EventLoop::with_virtual_clock();
    let results =
        event_loop.run_until_complete(gather(URLS.map(|url| fetch_url(url, log.clone()))));
    assert_eq!(
        results,
        ["google.com 데이터", "naver.com 데이터", "daum.net 데이터"]
    );
    assert_eq!(
        log.timed(),
        [
            (secs(0), "google.com 요청 전송".to_string()),
            (secs(0), "naver.com 요청 전송".to_string()),
            (secs(0), "daum.net 요청 전송".to_string()),
        ]
    );
    assert_eq!(event_loop.time(), secs(2));
}

/// E002-7: the same requests awaited one by one in a loop: each is sent
/// when the previous one is answered, 6 s in all. Same lines, same results.
#[test]
fn e002_7_awaiting_in_a_loop_sends_each_request_after_the_previous_answer() {
    let log = Notes::default();
    let event_loop = EventLoop::with_virtual_clock();
    let results = event_loop.run_until_complete(async {
        let mut results = Vec::new();
        for url in URLS {
            results.push(fetch_url(url, log.clone()).await);
        }
        results
    });
    assert_eq!(
        results,
        ["google.com 데이터", "naver.com 데이터", "daum.net 데이터"]
    );
    assert_eq!(
        log.timed(),
        [
            (secs(0), "google.com 요청 전송".to_string()),
            (secs(2), "naver.com 요청 전송".to_string()),
            (secs(4), "daum.net 요청 전송".to_string()),
        ]
    );
    assert_eq!(event_loop.time(), secs(6));
}

/// E002-6's requests through `wait` (FIRST_COMPLETED, then ALL_COMPLETED on
/// what was pending) and `as_completed`, with different latencies.
#[test]
fn e002_6_requests_through_wait_and_as_completed() {
    let latencies = [secs(2), secs(1), ms(1500)];
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        let requests = URLS
            .iter()
            .zip(latencies)
            .map(|(url, latency)| fetch_slow(url, latency));
        let first = wait(requests, ReturnWhen::FirstCompleted).await;
        assert_eq!(first.done, [(1, "naver.com 데이터".to_string())]);
        assert_eq!(
            first.pending.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            [0, 2]
        );
        assert_eq!(get_running_loop().time(), secs(1));

        let rest = wait(
            first.pending.into_iter().map(|(_, fut)| fut),
            ReturnWhen::AllCompleted,
        )
        .await;
        // Indices are positions in *this* call's input: daum.net was second.
        assert_eq!(
            rest.done,
            [
                (1, "daum.net 데이터".to_string()),
                (0, "google.com 데이터".to_string())
            ]
        );
        assert!(rest.pending.is_empty());
        assert_eq!(get_running_loop().time(), secs(2));
    });

    let event_loop = EventLoop::with_virtual_clock();
    let arrivals = event_loop.run_until_complete(async {
        let mut results = as_completed(
            URLS.iter()
                .zip(latencies)
                .map(|(url, latency)| fetch_slow(url, latency)),
        );
        let mut arrivals = Vec::new();
        while let Some(result) = results.next().await {
            arrivals.push((get_running_loop().time(), result));
        }
        arrivals
    });
    assert_eq!(
        arrivals,
        [
            (secs(1), "naver.com 데이터".to_string()),
            (ms(1500), "daum.net 데이터".to_string()),
            (secs(2), "google.com 데이터".to_string()),
        ]
    );
}

// ---------------------------------------------------------------------------
// gather
// ---------------------------------------------------------------------------

#[test]
fn gather_output_is_in_input_order_whatever_the_completion_order() {
    let event_loop = EventLoop::with_virtual_clock();
    let finished = Rc::new(RefCell::new(Vec::new()));
    let outputs = event_loop.run_until_complete(gather([3, 1, 2].map(|s| {
        let finished = finished.clone();
        async move {
            sleep(secs(s)).await;
            finished.borrow_mut().push(s);
            s * 10
        }
    })));
    assert_eq!(*finished.borrow(), [1, 2, 3], "completion order");
    assert_eq!(outputs, [30, 10, 20], "output order is input order");
    assert_eq!(event_loop.time(), secs(3));
}

#[test]
fn gather_of_nothing_is_an_empty_vec_at_the_first_poll() {
    let mut gathered = pin!(gather(Vec::<std::future::Ready<u8>>::new()));
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(gathered.as_mut().poll(&mut cx), Poll::Ready(vec![]));
}

#[test]
fn gather_macro_of_nothing_is_unit_and_of_one_is_a_one_tuple() {
    let mut cx = Context::from_waker(Waker::noop());
    let mut empty = pin!(tiny_asyncio::gather!());
    assert_eq!(empty.as_mut().poll(&mut cx), Poll::Ready(()));
    let mut one = pin!(tiny_asyncio::gather!(async { 7 }));
    assert_eq!(one.as_mut().poll(&mut cx), Poll::Ready((7,)));
}

#[test]
fn gather_macro_mixes_output_types_in_argument_order_and_takes_the_longest() {
    let event_loop = EventLoop::with_virtual_clock();
    let (a, b, c, d) = event_loop.run_until_complete(async {
        tiny_asyncio::gather!(
            async {
                sleep(secs(3)).await;
                1u8
            },
            async {
                sleep(secs(1)).await;
                "two"
            },
            std::future::ready(3.5f64),
            async {
                sleep(secs(2)).await;
                vec!['4']
            },
        )
        .await
    });
    assert_eq!((a, b, c, d), (1u8, "two", 3.5f64, vec!['4']));
    assert_eq!(event_loop.time(), secs(3));
}

#[test]
fn gather_macro_polls_only_the_woken_child() {
    // Child 0 yields 5 times (5 wakes); child 1 sleeps once (1 wake). Each
    // is polled once per wake plus once at the start, not once per
    // parent wake.
    let counter0 = PollCounter::new();
    let counter1 = PollCounter::new();
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        tiny_asyncio::gather!(
            counter0.count(Box::pin(async {
                for _ in 0..5 {
                    yield_now().await;
                }
            })),
            counter1.count(sleep(secs(1))),
        )
        .await
    });
    assert_eq!(counter0.get(), 6);
    assert_eq!(counter1.get(), 2);
}

/// The children are polled inside the gathering future, never sent to
/// another thread nor stored past it: they may hold an `Rc` and borrow
/// locals.
#[test]
fn gather_children_need_not_be_send_or_static() {
    let shared = Rc::new(Cell::new(0));
    let local = String::from("borrowed");
    let event_loop = EventLoop::with_virtual_clock();
    let lengths = event_loop.run_until_complete(gather((1..=3).map(|i| {
        let shared = shared.clone();
        let local = &local;
        async move {
            sleep(secs(i)).await;
            shared.set(shared.get() + 1);
            local.len() + i as usize
        }
    })));
    assert_eq!(lengths, [9, 10, 11]);
    assert_eq!(shared.get(), 3);
}

/// A gather of `Send` children is itself `Send`: it can be spawned.
#[test]
fn gather_of_send_children_is_send_and_can_be_spawned() {
    fn assert_send<T: Send>(value: T) -> T {
        value
    }
    let event_loop = EventLoop::with_virtual_clock();
    let outputs = event_loop.run_until_complete(async {
        let gathered = assert_send(gather([2u64, 1].map(|s| async move {
            sleep(secs(s)).await;
            s
        })));
        spawn(gathered).await.expect("the gathering task finishes")
    });
    assert_eq!(outputs, [2, 1]);
    assert_eq!(event_loop.time(), secs(2));
}

/// Spawned tasks start at `spawn`, before they are gathered (asyncio's
/// gather wraps coroutines in tasks, so it starts them early too);
/// gathering their handles gives their results in input order.
#[test]
fn gather_of_join_handles_waits_for_tasks_that_already_started() {
    let event_loop = EventLoop::with_virtual_clock();
    let results = event_loop.run_until_complete(async {
        let handles: Vec<_> = [2u64, 1]
            .into_iter()
            .map(|s| {
                spawn(async move {
                    sleep(secs(s)).await;
                    s
                })
            })
            .collect();
        sleep(secs(1)).await;
        gather(handles).await
    });
    let results: Vec<u64> = results.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(results, [2, 1]);
    // 2 s, not 1 + 2: the tasks ran while the main future slept.
    assert_eq!(event_loop.time(), secs(2));
}

/// n children sleeping 1, 2, …, n ms wake the parent n times. gather polls
/// each child twice (start, own wake): 2n. The naive join polls every
/// unfinished child on every wake: n + n + (n-1) + … + 1.
#[test]
fn gather_polls_only_woken_children_and_the_naive_join_polls_them_all() {
    let n = 200u64;
    let event_loop = EventLoop::with_virtual_clock();
    let gather_polls = PollCounter::new();
    let outputs = event_loop.run_until_complete(async {
        gather((1..=n).map(|i| gather_polls.count(sleep(ms(i))))).await
    });
    assert_eq!(outputs.len(), n as usize);
    assert_eq!(gather_polls.get(), 2 * n);

    let event_loop = EventLoop::with_virtual_clock();
    let naive_polls = PollCounter::new();
    event_loop.run_until_complete(async {
        naive_join_all((1..=n).map(|i| naive_polls.count(sleep(ms(i))))).await
    });
    assert_eq!(naive_polls.get(), n + n * (n + 1) / 2);
    assert_eq!(event_loop.time(), ms(n));
}

/// A child woken several times before the parent looks is listed once and
/// polled once. (The child is still pending after that poll, on a sleep:
/// were it listed twice, it would be polled a second time for nothing, and
/// the count would be 4, not 3.)
#[test]
fn a_child_woken_twice_before_the_parent_looks_is_polled_once_more() {
    let counter = PollCounter::new();
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(gather([counter.count(Box::pin(async {
        let mut woke_twice = false;
        poll_fn(|cx| {
            if woke_twice {
                return Poll::Ready(());
            }
            woke_twice = true;
            cx.waker().wake_by_ref();
            cx.waker().wake_by_ref();
            Poll::Pending
        })
        .await;
        sleep(ms(1)).await;
    }))]));
    // The first poll, one for the two wakes, one when the sleep ends.
    assert_eq!(counter.get(), 3);
    assert_eq!(event_loop.time(), ms(1));
}

/// A finished child's waker that fires late (it was kept somewhere) does
/// not confuse the gather: the finished child is not polled again.
#[test]
fn a_late_wake_of_a_finished_child_is_ignored() {
    let stash: Arc<Mutex<Option<Waker>>> = Arc::default();
    let event_loop = EventLoop::with_virtual_clock();
    let outputs = event_loop.run_until_complete(gather([
        Box::pin({
            let stash = stash.clone();
            async move {
                poll_fn(|cx| {
                    *stash.lock().unwrap() = Some(cx.waker().clone());
                    Poll::Ready(())
                })
                .await;
                0
            }
        }) as std::pin::Pin<Box<dyn Future<Output = i32>>>,
        Box::pin({
            let stash = stash.clone();
            async move {
                sleep(secs(1)).await;
                stash.lock().unwrap().take().unwrap().wake();
                yield_now().await;
                1
            }
        }),
    ]));
    assert_eq!(outputs, [0, 1]);
}

#[test]
fn dropping_a_gather_drops_every_running_child_and_cancels_their_timers() {
    let drops = Drops::default();
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        let gathered = gather((0..3).map(|i| {
            let guard = drops.guard(i);
            async move {
                let _guard = guard;
                sleep(secs(10)).await;
            }
        }));
        let mut gathered = pin!(gathered);
        // One poll starts every child (and registers three timers).
        poll_fn(|cx| {
            assert!(gathered.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        assert_eq!(get_running_loop().timer().pending(), 3);
        sleep(secs(1)).await;
    });
    // The main future (and the gather in it) is dropped when it returns.
    assert_eq!(drops.all(), [(0, secs(1)), (1, secs(1)), (2, secs(1))]);
    assert_eq!(event_loop.handle().timer().pending(), 0);
}

/// A finished child is dropped when it finishes, not when the gather ends.
#[test]
fn a_finished_child_is_dropped_at_once() {
    let drops = Drops::default();
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(gather([3u64, 1, 2].into_iter().enumerate().map(
        |(i, s)| {
            let guard = drops.guard(i);
            async move {
                let _guard = guard;
                sleep(secs(s)).await;
            }
        },
    )));
    assert_eq!(drops.all(), [(1, secs(1)), (2, secs(2)), (0, secs(3))]);
}

#[test]
#[should_panic(expected = "gather polled after it returned its outputs")]
fn gather_polled_after_completion_panics() {
    let mut gathered = pin!(gather([async { 1 }]));
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(gathered.as_mut().poll(&mut cx), Poll::Ready(vec![1]));
    let _ = gathered.as_mut().poll(&mut cx);
}

/// Outside any loop, `block_on` drives a gather of real sleeps (chapter 4's
/// default timer): concurrent, so about the longest, not the sum.
#[test]
fn gather_runs_under_block_on_in_real_time() {
    let start = Instant::now();
    let outputs = block_on(gather([30u64, 10, 20].map(|m| async move {
        sleep(ms(m)).await;
        m
    })));
    let took = start.elapsed();
    assert_eq!(outputs, [30, 10, 20]);
    assert!(took >= ms(30), "a sleep is never shorter: {took:?}");
    assert!(took < ms(1000), "concurrent, not sequential: {took:?}");
}

/// On a real loop, children woken from other threads (chapter 3's
/// thread-per-sleep) reach the gather through their own wakers.
#[test]
fn gather_children_woken_from_other_threads() {
    let start = Instant::now();
    let outputs = run(gather([20u64, 10].map(|m| async move {
        thread_sleep(ms(m)).await;
        m
    })));
    assert_eq!(outputs, [20, 10]);
    assert!(start.elapsed() >= ms(20));
}

#[test]
fn naive_join_all_gives_the_same_outputs_as_gather() {
    let make = || {
        [3u64, 1, 2].map(|s| async move {
            sleep(secs(s)).await;
            s
        })
    };
    let event_loop = EventLoop::with_virtual_clock();
    let naive = event_loop.run_until_complete(naive_join_all(make()));
    let event_loop = EventLoop::with_virtual_clock();
    let efficient = event_loop.run_until_complete(gather(make()));
    assert_eq!(naive, efficient);
    assert_eq!(naive, [3, 1, 2]);
}

// ---------------------------------------------------------------------------
// try_gather
// ---------------------------------------------------------------------------

async fn check(s: u64, ok: bool) -> Result<u64, String> {
    sleep(secs(s)).await;
    if ok {
        Ok(s)
    } else {
        Err(format!("failed after {s}s"))
    }
}

#[test]
fn try_gather_of_successes_gives_every_value_in_input_order() {
    let event_loop = EventLoop::with_virtual_clock();
    let result =
        event_loop.run_until_complete(try_gather([check(2, true), check(1, true), check(3, true)]));
    assert_eq!(result, Ok(vec![2, 1, 3]));
    assert_eq!(event_loop.time(), secs(3));
}

/// The first error *by completion order* (index 2 fails at 1 s, before
/// index 1 at 2 s) is returned the moment it happens, and every other
/// child is dropped right then, before the error reaches the caller.
#[test]
fn try_gather_returns_the_first_error_to_happen_and_drops_the_rest_at_once() {
    let drops = Drops::default();
    let event_loop = EventLoop::with_virtual_clock();
    let result = event_loop.run_until_complete(async {
        let children = [(5, true), (2, false), (1, false)]
            .into_iter()
            .enumerate()
            .map(|(i, (s, ok))| {
                let guard = drops.guard(i);
                async move {
                    let _guard = guard;
                    check(s, ok).await
                }
            });
        let result = try_gather(children).await;
        // Everything was dropped before try_gather returned.
        assert_eq!(drops.all().len(), 3);
        assert_eq!(get_running_loop().timer().pending(), 0);
        result
    });
    assert_eq!(result, Err("failed after 1s".to_string()));
    assert_eq!(event_loop.time(), secs(1));
    assert_eq!(drops.all(), [(2, secs(1)), (0, secs(1)), (1, secs(1))]);
}

#[test]
fn try_gather_of_nothing_is_ok_and_empty() {
    let mut gathered = pin!(try_gather(Vec::<std::future::Ready<Result<u8, ()>>>::new()));
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(gathered.as_mut().poll(&mut cx), Poll::Ready(Ok(vec![])));
}

// ---------------------------------------------------------------------------
// wait
// ---------------------------------------------------------------------------

#[test]
fn wait_all_completed_reports_every_output_with_its_index_in_completion_order() {
    let event_loop = EventLoop::with_virtual_clock();
    let waited = event_loop.run_until_complete(async {
        wait(
            [3u64, 1, 2].map(|s| async move {
                sleep(secs(s)).await;
                s
            }),
            ReturnWhen::AllCompleted,
        )
        .await
    });
    assert_eq!(waited.done, [(1, 1), (2, 2), (0, 3)]);
    assert!(waited.pending.is_empty());
    assert_eq!(event_loop.time(), secs(3));
}

/// FIRST_COMPLETED returns at the first finish; the others come back as
/// they were, polled no further while we look away, and can be awaited later.
#[test]
fn wait_first_completed_returns_at_the_first_finish_and_hands_back_the_rest_unpolled() {
    let counter = PollCounter::new();
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        let waited = wait(
            [3u64, 1, 2].map(|s| counter.count(sleep(secs(s)))),
            ReturnWhen::FirstCompleted,
        )
        .await;
        assert_eq!(get_running_loop().time(), secs(1));
        assert_eq!(waited.done, [(1, ())]);
        let pending_indices: Vec<usize> = waited.pending.iter().map(|(i, _)| *i).collect();
        assert_eq!(pending_indices, [0, 2]);
        // 3 first polls + 1 for the one that finished.
        assert_eq!(counter.get(), 4);

        // Past both deadlines (they are plain futures: nothing polls them
        // while they sit in `pending`), then awaited later: one poll each,
        // and they are simply done.
        sleep(secs(5)).await;
        gather(waited.pending.into_iter().map(|(_, fut)| fut)).await;
        assert_eq!(counter.get(), 6);
        assert_eq!(get_running_loop().time(), secs(6));
    });
}

/// Everything that finished in the same turn is reported, not just one.
#[test]
fn wait_first_completed_reports_every_future_done_in_the_same_turn() {
    let event_loop = EventLoop::with_virtual_clock();
    let waited = event_loop.run_until_complete(async {
        wait(
            [2u64, 1, 3, 1].map(|s| async move {
                sleep(secs(s)).await;
                s
            }),
            ReturnWhen::FirstCompleted,
        )
        .await
    });
    assert_eq!(waited.done, [(1, 1), (3, 1)]);
    assert_eq!(
        waited.pending.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        [0, 2]
    );
    assert_eq!(event_loop.time(), secs(1));
}

/// Like asyncio's, `wait` never fails: errors are outputs like any other.
#[test]
fn wait_never_fails_errors_are_just_outputs() {
    let event_loop = EventLoop::with_virtual_clock();
    let waited = event_loop.run_until_complete(async {
        wait([check(1, false), check(2, true)], ReturnWhen::AllCompleted).await
    });
    assert_eq!(
        waited.done,
        [(0, Err("failed after 1s".to_string())), (1, Ok(2))]
    );
}

#[test]
fn wait_of_nothing_returns_empty_at_once_in_both_modes() {
    let mut cx = Context::from_waker(Waker::noop());
    for mode in [ReturnWhen::FirstCompleted, ReturnWhen::AllCompleted] {
        let mut waiting = pin!(wait(Vec::<std::future::Ready<u8>>::new(), mode));
        let Poll::Ready(waited) = waiting.as_mut().poll(&mut cx) else {
            panic!("wait over nothing must be ready at once ({mode:?})");
        };
        assert!(waited.done.is_empty() && waited.pending.is_empty());
    }
}

#[test]
fn dropping_what_wait_handed_back_cancels_it() {
    let drops = Drops::default();
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        let waited = wait(
            [1u64, 5].into_iter().enumerate().map(|(i, s)| {
                let guard = drops.guard(i);
                async move {
                    let _guard = guard;
                    sleep(secs(s)).await;
                }
            }),
            ReturnWhen::FirstCompleted,
        )
        .await;
        assert_eq!(drops.all(), [(0, secs(1))]);
        drop(waited);
        assert_eq!(drops.all(), [(0, secs(1)), (1, secs(1))]);
        assert_eq!(get_running_loop().timer().pending(), 0);
    });
}

// ---------------------------------------------------------------------------
// as_completed
// ---------------------------------------------------------------------------

/// Equal deadlines fire in registration order, and the children registered
/// in input order: ties come out in input order.
#[test]
fn as_completed_yields_ties_in_registration_order() {
    let event_loop = EventLoop::with_virtual_clock();
    let order = event_loop.run_until_complete(async {
        let mut results = as_completed([(2u64, 'a'), (1, 'b'), (2, 'c'), (1, 'd')].map(
            |(s, name)| async move {
                sleep(secs(s)).await;
                name
            },
        ));
        assert_eq!(results.remaining(), 4);
        let mut order = Vec::new();
        while let Some(name) = results.next().await {
            order.push((get_running_loop().time(), name));
        }
        assert_eq!(results.remaining(), 0);
        order
    });
    assert_eq!(
        order,
        [
            (secs(1), 'b'),
            (secs(1), 'd'),
            (secs(2), 'a'),
            (secs(2), 'c')
        ]
    );
}

#[test]
fn as_completed_over_nothing_is_none_and_stays_none() {
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        let mut results = as_completed(Vec::<std::future::Ready<u8>>::new());
        assert_eq!(results.next().await, None);
        let mut one = as_completed([async { 1 }]);
        assert_eq!(one.next().await, Some(1));
        assert_eq!(one.next().await, None);
        assert_eq!(one.next().await, None);
    });
}

/// 64 children, each woken from its own thread (chapter 3's
/// thread-per-sleep), some at the same moment: every wake reaches the
/// woken list, and every child finishes.
#[test]
fn many_children_woken_from_their_own_threads_all_finish() {
    let woken = Arc::new(AtomicUsize::new(0));
    let outputs = run(gather((0..64u64).map(|i| {
        let woken = woken.clone();
        async move {
            thread_sleep(ms(1 + i % 4)).await;
            woken.fetch_add(1, Ordering::SeqCst);
            i
        }
    })));
    assert_eq!(outputs, (0..64).collect::<Vec<_>>());
    assert_eq!(woken.load(Ordering::SeqCst), 64);
}
