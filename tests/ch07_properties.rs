//! Chapter 7's invariants as property tests, on the virtual clock (exact
//! times, no real waiting). Each test's name is the invariant; its doc
//! says it in words. Children are "sleep `d` ms, then yield `k` times".
mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use tiny_asyncio::ch07_gather::naive_join_all;
use tiny_asyncio::{
    EventLoop, ReturnWhen, as_completed, gather, get_running_loop, sleep, try_gather, wait,
    yield_now,
};

/// A child: sleeps `d` ms, yields `k` times, returns `index`.
async fn child(index: usize, d: u64, k: u32) -> usize {
    sleep(ms(d)).await;
    for _ in 0..k {
        yield_now().await;
    }
    index
}

/// Counts a future's polls and the wakes of the waker it was given. It
/// hands the inner future a waker of its own that counts, then passes the
/// wake on to the waker of the latest poll.
struct Probe<F> {
    inner: Pin<Box<F>>,
    waker: Arc<ProbeWaker>,
}

#[derive(Default)]
struct ProbeWaker {
    polls: AtomicUsize,
    wakes: AtomicUsize,
    outer: Mutex<Option<Waker>>,
}

impl Wake for ProbeWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        let outer = self.outer.lock().unwrap().clone();
        if let Some(outer) = outer {
            outer.wake();
        }
    }
}

impl<F: Future> Future for Probe<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.waker.polls.fetch_add(1, Ordering::SeqCst);
        *self.waker.outer.lock().unwrap() = Some(cx.waker().clone());
        let waker = Waker::from(self.waker.clone());
        self.inner.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

fn probe<F: Future>(inner: F) -> (Probe<F>, Arc<ProbeWaker>) {
    let waker = Arc::new(ProbeWaker::default());
    (
        Probe {
            inner: Box::pin(inner),
            waker: waker.clone(),
        },
        waker,
    )
}

/// Up to 12 children, each sleeping 0..40 ms (ties likely) and yielding
/// 0..4 times.
fn children() -> impl Strategy<Value = Vec<(u64, u32)>> {
    prop::collection::vec((0u64..40, 0u32..4), 0..12)
}

/// The loop time a child finishes at: its sleep (the yields take no time).
fn longest(spec: &[(u64, u32)]) -> Duration {
    spec.iter().map(|&(d, _)| ms(d)).max().unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// For any child durations, gather's output is in input order (child i
    /// returns i) and the gather ends exactly when the slowest child does.
    #[test]
    fn gather_output_is_in_input_order_and_it_takes_as_long_as_the_slowest_child(
        spec in children()
    ) {
        let event_loop = EventLoop::with_virtual_clock();
        let outputs = event_loop.run_until_complete(gather(
            spec.iter().enumerate().map(|(i, &(d, k))| child(i, d, k)),
        ));
        prop_assert_eq!(outputs, (0..spec.len()).collect::<Vec<_>>());
        prop_assert_eq!(event_loop.time(), longest(&spec));
    }

    /// The naive join and gather give the same outputs at the same time:
    /// polling fewer children changes the cost, never the result.
    #[test]
    fn naive_join_and_gather_give_the_same_outputs(spec in children()) {
        let make = || spec.iter().enumerate().map(|(i, &(d, k))| child(i, d, k));
        let naive_loop = EventLoop::with_virtual_clock();
        let naive = naive_loop.run_until_complete(naive_join_all(make()));
        let gather_loop = EventLoop::with_virtual_clock();
        let gathered = gather_loop.run_until_complete(gather(make()));
        prop_assert_eq!(naive, gathered);
        prop_assert_eq!(naive_loop.time(), gather_loop.time());
    }

    /// gather polls each child at most (its wakes + 1) times: once at the
    /// start, then only when the child's own waker was woken.
    #[test]
    fn gather_polls_each_child_at_most_wakes_plus_one(spec in children()) {
        let (probes, counters): (Vec<_>, Vec<_>) = spec
            .iter()
            .enumerate()
            .map(|(i, &(d, k))| probe(child(i, d, k)))
            .unzip();
        let event_loop = EventLoop::with_virtual_clock();
        event_loop.run_until_complete(gather(probes));
        for (i, counter) in counters.iter().enumerate() {
            let polls = counter.polls.load(Ordering::SeqCst);
            let wakes = counter.wakes.load(Ordering::SeqCst);
            prop_assert!(polls >= 1, "child {} never polled", i);
            prop_assert!(
                polls <= wakes + 1,
                "child {} polled {} times for {} wakes", i, polls, wakes
            );
        }
    }

    /// as_completed yields in deadline order, ties in registration order
    /// (the children register their sleeps in input order), each output at
    /// its own deadline.
    #[test]
    fn as_completed_yields_in_deadline_order_ties_in_registration_order(
        durations in prop::collection::vec(0u64..10, 0..12)
    ) {
        let event_loop = EventLoop::with_virtual_clock();
        let yielded = event_loop.run_until_complete(async {
            let mut results = as_completed(
                durations.iter().enumerate().map(|(i, &d)| child(i, d, 0)),
            );
            let mut yielded = Vec::new();
            while let Some(index) = results.next().await {
                yielded.push((get_running_loop().time(), index));
            }
            yielded
        });
        let mut expected: Vec<usize> = (0..durations.len()).collect();
        expected.sort_by_key(|&i| durations[i]); // stable: ties keep input order
        let expected: Vec<(Duration, usize)> =
            expected.into_iter().map(|i| (ms(durations[i]), i)).collect();
        prop_assert_eq!(yielded, expected);
    }

    /// try_gather gives every value in input order if no child fails;
    /// otherwise the error of the earliest failure (by time, ties by input
    /// order), at that moment.
    #[test]
    fn try_gather_fails_with_the_earliest_error_at_its_time(
        spec in prop::collection::vec((0u64..20, any::<bool>()), 0..10)
    ) {
        let event_loop = EventLoop::with_virtual_clock();
        let result = event_loop.run_until_complete(try_gather(spec.iter().enumerate().map(
            |(i, &(d, ok))| async move {
                sleep(ms(d)).await;
                if ok { Ok(i) } else { Err(i) }
            },
        )));
        let first_failure = spec
            .iter()
            .enumerate()
            .filter(|(_, (_, ok))| !ok)
            .min_by_key(|(i, (d, _))| (*d, *i));
        match first_failure {
            None => {
                prop_assert_eq!(result, Ok((0..spec.len()).collect::<Vec<_>>()));
                let end = spec.iter().map(|&(d, _)| ms(d)).max().unwrap_or_default();
                prop_assert_eq!(event_loop.time(), end);
            }
            Some((i, &(d, _))) => {
                prop_assert_eq!(result, Err(i));
                prop_assert_eq!(event_loop.time(), ms(d));
            }
        }
    }

    /// wait(FIRST_COMPLETED) returns at the earliest deadline with exactly
    /// the children due then (in input order), and hands back the others.
    #[test]
    fn wait_first_completed_returns_at_the_earliest_deadline_with_all_due_then(
        durations in prop::collection::vec(0u64..10, 1..12)
    ) {
        let event_loop = EventLoop::with_virtual_clock();
        let waited = event_loop.run_until_complete(async {
            wait(
                durations.iter().enumerate().map(|(i, &d)| child(i, d, 0)),
                ReturnWhen::FirstCompleted,
            )
            .await
        });
        let earliest = *durations.iter().min().unwrap();
        let due: Vec<(usize, usize)> = (0..durations.len())
            .filter(|&i| durations[i] == earliest)
            .map(|i| (i, i))
            .collect();
        let rest: Vec<usize> = (0..durations.len())
            .filter(|&i| durations[i] != earliest)
            .collect();
        prop_assert_eq!(event_loop.time(), ms(earliest));
        prop_assert_eq!(waited.done, due);
        prop_assert_eq!(waited.pending.iter().map(|(i, _)| *i).collect::<Vec<_>>(), rest);
    }
}
