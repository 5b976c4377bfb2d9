//! What a `JoinHandle` promises, as properties (proptest) on the virtual
//! clock. Each test's name states its invariant; its doc says how the
//! random programs are drawn.

mod common;

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use tiny_asyncio::ch05_event_loop::panic_message;
use tiny_asyncio::{EventLoop, JoinError, block_on, get_running_loop, sleep, sleep_until, spawn};

/// What happens to a task. Tasks end at odd milliseconds and aborts come
/// at even ones, so an abort is never at the same instant as an end.
#[derive(Debug, Clone)]
enum Fate {
    /// Returns its number at `2 * half + 1` ms.
    Complete { half: u64 },
    /// Panics at `2 * half + 1` ms.
    Panic { half: u64 },
    /// Would return at `2 * half + 1` ms; aborted at `2 * abort_half` ms
    /// (0: before its first poll), which may come after it finished.
    Aborted { half: u64, abort_half: u64 },
    /// Sleeps an hour: still running when the loop closes.
    Unfinished,
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        (0u64..20).prop_map(|half| Fate::Complete { half }),
        (0u64..20).prop_map(|half| Fate::Panic { half }),
        (0u64..20, 0u64..20).prop_map(|(half, abort_half)| Fate::Aborted { half, abort_half }),
        Just(Fate::Unfinished),
    ]
}

/// How the test treats a task's handle.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Use {
    /// Dropped at once: the task is detached.
    Drop,
    /// Awaited inside the loop once every task had time to end.
    AwaitInside,
    /// Kept, and awaited (`block_on`) after the loop closed.
    AwaitAfterClose,
}

fn handle_use() -> impl Strategy<Value = Use> {
    prop_oneof![
        Just(Use::Drop),
        Just(Use::AwaitInside),
        Just(Use::AwaitAfterClose)
    ]
}

/// What a handle should resolve to, given the task's fate.
fn expected(i: usize, fate: &Fate) -> Result<usize, String> {
    match fate {
        Fate::Complete { .. } => Ok(i),
        Fate::Panic { .. } => Err(format!("panic: planned: task {i} fails")),
        Fate::Aborted { half, abort_half } if abort_half > half => Ok(i),
        Fate::Aborted { .. } | Fate::Unfinished => Err("cancelled".to_string()),
    }
}

/// A handle's result in a form that compares.
fn outcome(result: Result<usize, JoinError>) -> Result<usize, String> {
    result.map_err(|e| {
        assert_ne!(e.is_cancelled(), e.is_panic());
        match e.panic_message() {
            Some(m) => format!("panic: {m}"),
            None => "cancelled".to_string(),
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// Each JoinHandle resolves exactly once, to its task's fate: the value
    /// if it returned (also when an abort came too late), a panic error if
    /// it panicked, "cancelled" if it was aborted first or was still running
    /// when the loop closed. Every task's future is dropped exactly once,
    /// detached or not, no timer is left behind, and a handle polled again
    /// after it resolved panics. Random fates, abort times and handle uses.
    #[test]
    fn each_join_handle_resolves_exactly_once_to_its_tasks_fate(
        tasks in prop::collection::vec((fate(), handle_use()), 1..10),
    ) {
        let event_loop = EventLoop::with_virtual_clock();
        let timer = event_loop.handle().timer().clone();
        let drops: Vec<Arc<AtomicUsize>> = tasks.iter().map(|_| Arc::default()).collect();
        let t = tasks.clone();
        let d = drops.clone();
        let (inside, mut kept) = event_loop.run_until_complete(async move {
            let mut handles = Vec::new();
            for (i, (fate, _)) in t.iter().enumerate() {
                let probe = Probe(d[i].clone());
                let fate = fate.clone();
                handles.push(spawn(async move {
                    let _probe = probe;
                    match fate {
                        Fate::Complete { half } | Fate::Aborted { half, .. } => {
                            sleep(ms(2 * half + 1)).await;
                        }
                        Fate::Panic { half } => {
                            sleep(ms(2 * half + 1)).await;
                            panic!("planned: task {i} fails");
                        }
                        Fate::Unfinished => sleep(Duration::from_secs(3600)).await,
                    }
                    i
                }));
            }
            let mut aborts: Vec<(u64, usize)> = t
                .iter()
                .enumerate()
                .filter_map(|(i, (fate, _))| match fate {
                    Fate::Aborted { abort_half, .. } => Some((2 * abort_half, i)),
                    _ => None,
                })
                .collect();
            aborts.sort();
            for (at, i) in aborts {
                sleep_until(ms(at)).await;
                handles[i].abort();
            }
            sleep_until(ms(50)).await;
            let mut inside = Vec::new();
            let mut kept = Vec::new();
            for (i, handle) in handles.into_iter().enumerate() {
                match t[i].1 {
                    Use::Drop => drop(handle),
                    Use::AwaitInside if !matches!(t[i].0, Fate::Unfinished) => {
                        inside.push((i, outcome(handle.await)));
                    }
                    Use::AwaitInside | Use::AwaitAfterClose => kept.push((i, handle)),
                }
            }
            (inside, kept)
        });
        for (i, got) in &inside {
            prop_assert_eq!(got, &expected(*i, &tasks[*i].0), "task {}", i);
        }
        event_loop.close();
        for (i, handle) in &mut kept {
            prop_assert!(handle.is_finished());
            let got = outcome(block_on(&mut *handle));
            prop_assert_eq!(&got, &expected(*i, &tasks[*i].0), "task {}", i);
            // Resolved once: polling it again is a clear error, not a second result.
            let again = panic::catch_unwind(AssertUnwindSafe(|| block_on(&mut *handle)));
            let message = panic_message(&*again.expect_err("a second result"));
            prop_assert!(message.contains("polled after it returned"), "{}", message);
        }
        for (i, count) in drops.iter().enumerate() {
            prop_assert_eq!(count.load(SeqCst), 1, "task {}'s future", i);
        }
        prop_assert_eq!(timer.pending(), 0);
    }
}

/// Sleeps each of `sleeps_ms` in turn and gives the loop time at the end.
async fn program(sleeps_ms: Vec<u64>) -> Duration {
    for d in sleeps_ms {
        sleep(ms(d)).await;
    }
    get_running_loop().time()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// Sequential waits add up, concurrent waits take the longest: random
    /// programs (each a sequence of sleeps in ms). As tasks, each program
    /// ends exactly at the sum of its own sleeps and the whole run takes the
    /// largest sum (E004-2, E004-6); awaited one after another, each ends at
    /// the running total and the run takes the sum of all (E004-1, E004-5).
    #[test]
    fn sequential_waits_add_up_and_concurrent_waits_take_the_longest(
        programs in prop::collection::vec(prop::collection::vec(0u64..300, 0..5), 0..6),
    ) {
        let sums: Vec<Duration> = programs.iter().map(|p| ms(p.iter().sum())).collect();

        let concurrent = EventLoop::with_virtual_clock();
        let p = programs.clone();
        let ends = concurrent.run_until_complete(async move {
            let handles: Vec<_> = p.into_iter().map(|p| spawn(program(p))).collect();
            let mut ends = Vec::new();
            for handle in handles {
                ends.push(handle.await.unwrap());
            }
            ends
        });
        prop_assert_eq!(&ends, &sums);
        let longest = sums.iter().copied().max().unwrap_or_default();
        prop_assert_eq!(concurrent.time(), longest);

        let sequential = EventLoop::with_virtual_clock();
        let p = programs.clone();
        let ends = sequential.run_until_complete(async move {
            let mut ends = Vec::new();
            for p in p {
                ends.push(program(p).await);
            }
            ends
        });
        let running_totals: Vec<Duration> = sums
            .iter()
            .scan(Duration::ZERO, |total, s| {
                *total += *s;
                Some(*total)
            })
            .collect();
        prop_assert_eq!(&ends, &running_totals);
        prop_assert_eq!(sequential.time(), sums.iter().sum::<Duration>());
    }
}
