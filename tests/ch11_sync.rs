//! Chapter 11: taking turns. EX-3 (a few at a time, a `Semaphore`) and EX-4
//! (producer and consumer over a `Queue`) exactly, on the virtual clock; the
//! lock's lost update; the task group's failures; the rules (FIFO, nothing
//! lost when a waiter gives up, wakes outside the lock) and the misuse
//! messages.
mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use common::*;
use tiny_asyncio::{
    Event, EventLoop, Lock, Queue, QueueEmpty, QueueFull, Semaphore, TaskGroup, gather,
    get_running_loop, run, sleep, spawn, timeout, yield_now,
};

fn now() -> Duration {
    get_running_loop().time()
}

// ---------------------------------------------------------------------------
// EX-3: a few at a time
// ---------------------------------------------------------------------------

/// E002-6's `fetch_url` for EX-3: takes a permit, "sends", waits 2 s,
/// answers; counts how many are in flight.
async fn fetch_url(
    i: usize,
    sem: Option<&Semaphore>,
    in_flight: &AtomicUsize,
    most: &AtomicUsize,
    sent_at: &Mutex<Vec<(usize, Duration)>>,
) -> String {
    let _permit = match sem {
        Some(sem) => Some(sem.acquire().await),
        None => None,
    };
    let flying = in_flight.fetch_add(1, SeqCst) + 1;
    most.fetch_max(flying, SeqCst);
    lock(sent_at).push((i, now()));
    sleep(secs(2)).await;
    in_flight.fetch_sub(1, SeqCst);
    format!("url{i} 데이터")
}

/// Runs EX-3's 100 fetches gathered, with a semaphore of `limit` or none;
/// gives the results, the most in flight, when each was sent, and the time.
fn ex3(limit: Option<usize>) -> (Vec<String>, usize, Vec<(usize, Duration)>, Duration) {
    let event_loop = EventLoop::with_virtual_clock();
    let sem = limit.map(Semaphore::new);
    let (in_flight, most, sent_at) = (AtomicUsize::new(0), AtomicUsize::new(0), Mutex::default());
    let results = event_loop.run_until_complete(gather(
        (0..100).map(|i| fetch_url(i, sem.as_ref(), &in_flight, &most, &sent_at)),
    ));
    if let (Some(sem), Some(limit)) = (&sem, limit) {
        assert_eq!(sem.available_permits(), limit, "every permit came back");
    }
    let sent = sent_at.into_inner().unwrap();
    (results, most.into_inner(), sent, event_loop.time())
}

#[test]
fn ex3_a_semaphore_of_ten_runs_a_hundred_fetches_ten_at_a_time_in_twenty_seconds() {
    let (results, most, sent, total) = ex3(Some(10));
    let expected: Vec<String> = (0..100).map(|i| format!("url{i} 데이터")).collect();
    assert_eq!(results, expected, "results in input order");
    assert_eq!(most, 10, "never more than 10 in flight, and 10 at a time");
    assert_eq!(total, secs(20), "10 rounds of 2 s");
    // FIFO: fetch i is sent in round i / 10, in input order.
    for (k, &(i, at)) in sent.iter().enumerate() {
        assert_eq!(i, k, "sent in input order");
        assert_eq!(at, secs(2 * (i as u64 / 10)), "fetch {i} sent in its round");
    }
}

#[test]
fn ex3_unbounded_gather_sends_all_hundred_at_once_and_takes_two_seconds() {
    let (results, most, sent, total) = ex3(None);
    assert_eq!(results.len(), 100);
    assert_eq!(most, 100);
    assert!(sent.iter().all(|&(_, at)| at == Duration::ZERO));
    assert_eq!(total, secs(2));
}

#[test]
fn ex3_a_loop_of_awaits_takes_two_hundred_seconds() {
    let event_loop = EventLoop::with_virtual_clock();
    let (in_flight, most, sent_at) = (AtomicUsize::new(0), AtomicUsize::new(0), Mutex::default());
    let results = event_loop.run_until_complete(async {
        let mut results = Vec::new();
        for i in 0..100 {
            results.push(fetch_url(i, None, &in_flight, &most, &sent_at).await);
        }
        results
    });
    assert_eq!(results.len(), 100);
    assert_eq!(most.into_inner(), 1);
    assert_eq!(event_loop.time(), secs(200));
}

// ---------------------------------------------------------------------------
// EX-4: producer and consumer
// ---------------------------------------------------------------------------

#[test]
fn ex4_producer_and_consumer_over_a_queue_of_two_every_item_once_in_order_join_at_thirty_seconds() {
    let event_loop = EventLoop::with_virtual_clock();
    let journal = Notes::default();
    let queue = Arc::new(Queue::new(2));
    let (got, put_waits, joined_at) = event_loop.run_until_complete({
        let journal = journal.clone();
        let queue = queue.clone();
        async move {
            let consumer = {
                let (queue, journal) = (queue.clone(), journal.clone());
                spawn(async move {
                    let mut got = Vec::new();
                    loop {
                        let item: u32 = queue.get().await;
                        journal.note(format!("got {item}"));
                        assert!(queue.qsize() <= 2);
                        got.push(item);
                        sleep(secs(3)).await; // the consumer's pace
                        queue.task_done();
                    }
                    #[allow(unreachable_code)]
                    got
                })
            };
            // The producer puts one item a second, waiting when full.
            let mut put_waits = Vec::new();
            for item in 0..10 {
                let asked = now();
                queue.put(item).await;
                put_waits.push(now() - asked);
                journal.note(format!("put {item}"));
                sleep(secs(1)).await;
            }
            queue.join().await;
            let joined_at = now();
            consumer.abort();
            let _ = consumer.await;
            (journal.lines(), put_waits, joined_at)
        }
    });
    assert_eq!(
        joined_at,
        secs(30),
        "join when the last item is done: 10 × 3 s"
    );
    // Every item once, in order, one every 3 s.
    for item in 0..10u64 {
        assert_eq!(journal.at(&format!("got {item}")), secs(3 * item));
    }
    let got: Vec<&String> = got.iter().filter(|l| l.starts_with("got")).collect();
    assert_eq!(got.len(), 10);
    // The producer waits whenever the queue is full. Items 1 and 2 fill it
    // by 2 s; at 3 s the consumer takes item 1 just before the producer
    // comes back (its timer was set first), so item 3 still finds a slot;
    // from item 4 on, every put finds two items waiting and waits 2 s for
    // the consumer to take one.
    let two = secs(2);
    let zero = Duration::ZERO;
    assert_eq!(
        put_waits,
        [zero, zero, zero, zero, two, two, two, two, two, two]
    );
    assert_eq!(journal.at("put 9"), secs(21), "put when item 7 is got");
    assert_eq!(queue.unfinished(), 0);
}

// ---------------------------------------------------------------------------
// Lock
// ---------------------------------------------------------------------------

/// Ten tasks add 1 to a shared total across an await: read, wait 1 s, write.
fn lost_update(with_lock: bool) -> (u64, Duration) {
    let event_loop = EventLoop::with_virtual_clock();
    let total = Arc::new(AtomicU64::new(0));
    let lock = Arc::new(Lock::new());
    event_loop.run_until_complete({
        let total = total.clone();
        async move {
            let handles: Vec<_> = (0..10)
                .map(|_| {
                    let (total, lock) = (total.clone(), lock.clone());
                    spawn(async move {
                        let _guard = if with_lock {
                            Some(lock.lock().await)
                        } else {
                            None
                        };
                        let read = total.load(SeqCst);
                        sleep(secs(1)).await;
                        total.store(read + 1, SeqCst);
                    })
                })
                .collect();
            for handle in handles {
                handle.await.unwrap();
            }
        }
    });
    (total.load(SeqCst), event_loop.time())
}

#[test]
fn without_the_lock_nine_of_ten_updates_are_lost() {
    assert_eq!(lost_update(false), (1, secs(1)));
}

#[test]
fn with_the_lock_every_update_lands_one_task_at_a_time() {
    assert_eq!(lost_update(true), (10, secs(10)));
}

#[test]
fn lock_waiters_are_served_in_fifo_order_and_a_newcomer_does_not_barge() {
    let event_loop = EventLoop::with_virtual_clock();
    let order = event_loop.run_until_complete(async {
        let lock = Arc::new(Lock::new());
        let order = Arc::new(Mutex::new(Vec::new()));
        let guard = lock.lock().await;
        let handles: Vec<_> = (0..5)
            .map(|i| {
                let (lock, order) = (lock.clone(), order.clone());
                spawn(async move {
                    let _guard = lock.lock().await;
                    lock_vec(&order).push(i);
                    yield_now().await;
                })
            })
            .collect();
        yield_now().await; // all five queue up
        drop(guard);
        // Handed to the first waiter: still locked, and nobody may take it.
        assert!(lock.locked());
        assert!(lock.try_lock().is_none(), "a newcomer must not barge");
        let late = {
            let (lock, order) = (lock.clone(), order.clone());
            spawn(async move {
                let _guard = lock.lock().await;
                lock_vec(&order).push(99);
            })
        };
        for handle in handles {
            handle.await.unwrap();
        }
        late.await.unwrap();
        assert!(!lock.locked());
        Arc::try_unwrap(order).unwrap().into_inner().unwrap()
    });
    assert_eq!(order, [0, 1, 2, 3, 4, 99]);
}

fn lock_vec<T>(m: &Mutex<Vec<T>>) -> std::sync::MutexGuard<'_, Vec<T>> {
    lock(m)
}

#[test]
fn a_lock_waiter_that_times_out_leaves_the_queue_and_the_next_one_gets_the_lock() {
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        let lock = Arc::new(Lock::new());
        let guard = lock.lock().await;
        let impatient = {
            let lock = lock.clone();
            spawn(async move { timeout(secs(1), lock.lock()).await.map(drop) })
        };
        let patient = {
            let lock = lock.clone();
            spawn(async move {
                drop(lock.lock().await);
                now()
            })
        };
        sleep(secs(2)).await;
        assert!(impatient.await.unwrap().is_err(), "timed out at 1 s");
        drop(guard);
        assert_eq!(patient.await.unwrap(), secs(2));
        assert!(!lock.locked());
    });
}

#[test]
fn a_lock_handed_to_a_waiter_that_is_aborted_before_it_runs_goes_to_the_next() {
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        let lock = Arc::new(Lock::new());
        let guard = lock.lock().await;
        let spawn_waiter = |lock: Arc<Lock>| spawn(async move { drop(lock.lock().await) });
        let first = spawn_waiter(lock.clone());
        let second = spawn_waiter(lock.clone());
        yield_now().await;
        drop(guard); // handed to `first`, which is queued to run ...
        first.abort(); // ... and cancelled before it does
        assert!(first.await.unwrap_err().is_cancelled());
        second.await.unwrap();
        assert!(!lock.locked(), "nothing lost: the lock came back");
    });
}

#[test]
fn releasing_a_lock_twice_panics_with_asyncios_words() {
    let event_loop = EventLoop::with_virtual_clock();
    let message = event_loop.run_until_complete(async {
        let lock = Lock::new();
        lock.acquire().await;
        assert!(lock.locked());
        lock.release();
        panic_text(|| lock.release())
    });
    assert!(message.contains("Lock::release"), "{message}");
    assert!(message.contains("Lock is not acquired"), "{message}");
}

#[test]
fn a_guard_dropped_after_its_lock_was_released_by_hand_says_released_twice() {
    let lock = Lock::new();
    let guard = lock.try_lock().unwrap();
    lock.release();
    let message = panic_text(move || drop(guard));
    assert!(message.contains("released twice"), "{message}");
}

// ---------------------------------------------------------------------------
// Event
// ---------------------------------------------------------------------------

#[test]
fn setting_an_event_wakes_every_waiter_at_that_moment_and_later_waits_return_at_once() {
    let event_loop = EventLoop::with_virtual_clock();
    let journal = Notes::default();
    event_loop.run_until_complete({
        let journal = journal.clone();
        async move {
            let event = Arc::new(Event::new());
            let waiters: Vec<_> = (0..3)
                .map(|i| {
                    let (event, journal) = (event.clone(), journal.clone());
                    spawn(async move {
                        event.wait().await;
                        journal.note(format!("w{i}"));
                    })
                })
                .collect();
            sleep(secs(2)).await;
            event.set();
            event.clear(); // the waiters were notified while it was set
            for waiter in waiters {
                waiter.await.unwrap();
            }
            assert!(!event.is_set());
            event.set();
            event.wait().await; // set: at once
            journal.note("after");
        }
    });
    assert_eq!(journal.steps(), "w0 w1 w2 after");
    assert_eq!(journal.at("w0"), secs(2));
    assert_eq!(journal.at("after"), secs(2));
}

// ---------------------------------------------------------------------------
// Semaphore
// ---------------------------------------------------------------------------

#[test]
fn a_semaphore_permit_handed_to_a_waiter_that_times_out_at_that_instant_is_not_lost() {
    // Both the holder's release and the waiter's timeout are at 1 s; the
    // timeout future polls its inner acquire first, so the waiter takes
    // the permit it was handed. Either way the count must come back.
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        let sem = Arc::new(Semaphore::new(1));
        let holder = {
            let sem = sem.clone();
            spawn(async move {
                let _permit = sem.acquire().await;
                sleep(secs(1)).await;
            })
        };
        yield_now().await;
        let waiter = {
            let sem = sem.clone();
            spawn(async move { timeout(secs(1), sem.acquire()).await.is_ok() })
        };
        holder.await.unwrap();
        let _ = waiter.await.unwrap();
        assert_eq!(sem.available_permits(), 1);
    });
}

#[test]
fn semaphore_waiters_are_served_in_fifo_order() {
    let event_loop = EventLoop::with_virtual_clock();
    let order = event_loop.run_until_complete(async {
        let sem = Arc::new(Semaphore::new(0));
        let order = Arc::new(Mutex::new(Vec::new()));
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let (sem, order) = (sem.clone(), order.clone());
                spawn(async move {
                    let permit = sem.acquire().await;
                    lock_vec(&order).push(i);
                    permit.forget();
                })
            })
            .collect();
        yield_now().await;
        for _ in 0..4 {
            sem.release();
            assert_eq!(sem.available_permits(), 0, "handed on, not counted");
        }
        for handle in handles {
            handle.await.unwrap();
        }
        Arc::try_unwrap(order).unwrap().into_inner().unwrap()
    });
    assert_eq!(order, [0, 1, 2, 3]);
}

#[test]
fn semaphore_new_past_its_limit_says_so() {
    let message = panic_text(|| {
        let _ = Semaphore::new(Semaphore::MAX_PERMITS + 1);
    });
    assert!(message.contains("Semaphore::new"), "{message}");
    assert!(message.contains("MAX_PERMITS"), "{message}");
    let sem = Semaphore::new(Semaphore::MAX_PERMITS);
    let message = panic_text(|| sem.release());
    assert!(message.contains("Semaphore::release"), "{message}");
}

// ---------------------------------------------------------------------------
// Queue
// ---------------------------------------------------------------------------

#[test]
fn task_done_called_too_often_panics_as_asyncios_value_error() {
    let queue = Queue::new(0);
    queue.put_nowait(1).unwrap();
    queue.task_done();
    let message = panic_text(|| queue.task_done());
    assert!(message.contains("Queue::task_done"), "{message}");
    assert!(
        message.contains("task_done() called too many times"),
        "{message}"
    );
}

#[test]
fn put_nowait_on_a_full_queue_gives_the_item_back_and_get_nowait_on_an_empty_one_says_empty() {
    let queue = Queue::new(1);
    assert_eq!(queue.get_nowait(), Err(QueueEmpty));
    queue.put_nowait("a").unwrap();
    assert!(queue.full());
    let full = queue.put_nowait("b").unwrap_err();
    assert!(matches!(full, QueueFull("b")));
    assert!(full.to_string().contains("QueueFull"));
    assert!(QueueEmpty.to_string().contains("QueueEmpty"));
    assert_eq!(queue.get_nowait(), Ok("a"));
    assert!(queue.empty());
    // maxsize 0: unbounded, never full.
    let unbounded = Queue::new(0);
    for i in 0..1000 {
        unbounded.put_nowait(i).unwrap();
    }
    assert!(!unbounded.full());
    assert_eq!(unbounded.qsize(), 1000);
}

#[test]
fn an_item_kept_for_a_getter_that_is_aborted_goes_to_the_next_getter_in_order() {
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        let queue = Arc::new(Queue::new(0));
        let spawn_getter = |queue: Arc<Queue<u32>>| spawn(async move { queue.get().await });
        let first = spawn_getter(queue.clone());
        let second = spawn_getter(queue.clone());
        let third = spawn_getter(queue.clone());
        yield_now().await;
        queue.put_nowait(1).unwrap(); // kept for `first`
        queue.put_nowait(2).unwrap(); // kept for `second`
        assert_eq!(queue.get_nowait(), Err(QueueEmpty), "both are promised");
        first.abort();
        assert!(first.await.unwrap_err().is_cancelled());
        // Order kept: `second` gets 1, `third` gets 2; nothing lost.
        assert_eq!(second.await.unwrap(), 1);
        assert_eq!(third.await.unwrap(), 2);
        assert!(queue.empty());
    });
}

#[test]
fn a_put_that_times_out_puts_nothing() {
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        let queue = Queue::new(1);
        queue.put("kept").await;
        assert!(timeout(secs(1), queue.put("dropped")).await.is_err());
        assert_eq!(queue.qsize(), 1);
        assert_eq!(queue.get().await, "kept");
        assert_eq!(queue.get_nowait(), Err(QueueEmpty));
        assert_eq!(queue.unfinished(), 1, "only the item put counts");
    });
}

#[test]
fn join_on_a_queue_with_nothing_unfinished_returns_at_once() {
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        Queue::<()>::new(0).join().await;
    });
    assert_eq!(event_loop.time(), Duration::ZERO);
}

#[test]
fn a_consumer_waiting_on_a_queue_with_no_producer_left_is_reported_as_a_deadlock() {
    let event_loop = EventLoop::with_virtual_clock();
    let message = panic_text(|| {
        event_loop.run_until_complete(async {
            let queue = Arc::new(Queue::<u32>::new(0));
            let consumer = {
                let queue = queue.clone();
                spawn(async move { queue.get().await })
            };
            let _ = consumer.await;
        })
    });
    assert!(message.contains("event loop deadlock"), "{message}");
}

// ---------------------------------------------------------------------------
// TaskGroup
// ---------------------------------------------------------------------------

#[test]
fn a_failing_child_cancels_its_siblings_at_once_and_join_reports_it() {
    quiet_planned_panics();
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        let group = TaskGroup::new();
        let quick = group.spawn(async {
            sleep(Duration::from_millis(500)).await;
            "quick"
        });
        let failing = group.spawn(async {
            sleep(secs(1)).await;
            panic!("planned: a failed");
        });
        let slow = group.spawn(async {
            sleep(secs(5)).await;
            "slow"
        });
        let error = group.join().await.unwrap_err();
        assert_eq!(
            now(),
            secs(1),
            "join returns when the siblings are cancelled"
        );
        assert_eq!(error.failures().len(), 1);
        assert_eq!(
            error.failures()[0].panic_message().as_deref(),
            Some("planned: a failed")
        );
        assert_eq!(error.failures()[0].task_id(), failing.id());
        assert!(
            error
                .to_string()
                .starts_with("unhandled errors in a TaskGroup (1 sub-exception)")
        );
        assert_eq!(quick.await.unwrap(), "quick");
        assert_eq!(
            failing.await.unwrap_err().panic_message().as_deref(),
            Some("planned: a failed")
        );
        assert!(slow.await.unwrap_err().is_cancelled());
        // The group's copy of the panic keeps the original payload.
        let payload = error.into_failures().pop().unwrap().into_panic();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"planned: a failed"));
    });
}

#[test]
fn a_child_returning_err_or_aborted_by_its_handle_is_not_a_failure() {
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        let group = TaskGroup::new();
        let erring = group.spawn(async { Err::<(), _>("a value, not a failure") });
        let sibling = group.spawn(async {
            sleep(secs(2)).await;
            7
        });
        let aborted = group.spawn(sleep(secs(9)));
        aborted.abort();
        assert!(group.join().await.is_ok());
        assert_eq!(now(), secs(2));
        assert_eq!(erring.await.unwrap(), Err("a value, not a failure"));
        assert_eq!(sibling.await.unwrap(), 7);
        assert!(aborted.await.unwrap_err().is_cancelled());
    });
}

#[test]
fn dropping_a_group_without_joining_cancels_its_children() {
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        let group = TaskGroup::new();
        let child = group.spawn(sleep(secs(5)));
        sleep(secs(1)).await;
        drop(group);
        assert!(child.await.unwrap_err().is_cancelled());
        assert_eq!(now(), secs(1));
    });
}

#[test]
fn giving_up_on_a_join_cancels_the_children() {
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        let group = TaskGroup::new();
        let child = group.spawn(sleep(secs(5)));
        assert!(timeout(secs(1), group.join()).await.is_err());
        assert!(child.await.unwrap_err().is_cancelled());
        assert_eq!(now(), secs(1));
        assert_eq!(group.running(), 0);
    });
}

#[test]
fn children_spawned_by_children_through_an_arc_are_joined_too() {
    let event_loop = EventLoop::with_virtual_clock();
    let done = Arc::new(AtomicUsize::new(0));
    event_loop.run_until_complete({
        let done = done.clone();
        async move {
            let group = Arc::new(TaskGroup::new());
            let parent = {
                let (inner, done) = (group.clone(), done.clone());
                group.spawn(async move {
                    sleep(secs(1)).await;
                    let _grandchild = inner.spawn(async move {
                        sleep(secs(1)).await;
                        done.fetch_add(1, SeqCst);
                    });
                })
            };
            group.join().await.unwrap();
            assert_eq!(now(), secs(2), "the grandchild was waited for");
            parent.await.unwrap();
        }
    });
    assert_eq!(done.load(SeqCst), 1);
}

#[test]
fn a_child_spawned_into_a_failing_group_is_cancelled_before_it_runs() {
    quiet_planned_panics();
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        let group = Arc::new(TaskGroup::new());
        let _first = group.spawn(async { panic!("planned: first") });
        yield_now().await; // the child runs and fails
        let ran = Arc::new(AtomicUsize::new(0));
        let late = {
            let ran = ran.clone();
            group.spawn(async move {
                ran.fetch_add(1, SeqCst);
            })
        };
        assert!(late.await.unwrap_err().is_cancelled());
        assert_eq!(ran.load(SeqCst), 0);
        assert_eq!(group.join().await.unwrap_err().failures().len(), 1);
    });
}

#[test]
fn spawning_into_a_joined_group_or_joining_it_twice_is_refused_with_asyncios_words() {
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        let group = TaskGroup::new();
        group.join().await.unwrap();
        let message = panic_text(|| drop(group.spawn(async {})));
        assert!(message.contains("TaskGroup::spawn"), "{message}");
        assert!(message.contains("TaskGroup is finished"), "{message}");
        let mut again = Box::pin(group.join());
        let message = panic_text(|| {
            let waker = Waker::noop();
            let _ = again.as_mut().poll(&mut Context::from_waker(waker));
        });
        assert!(message.contains("joined already"), "{message}");
    });
}

// ---------------------------------------------------------------------------
// Wakes outside the lock: a waker that panics, a waker that re-enters
// ---------------------------------------------------------------------------

/// A waker that panics when woken, or one that counts its wakes.
struct TestWaker {
    panics: bool,
    wakes: AtomicUsize,
}

impl Wake for TestWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, SeqCst);
        if self.panics {
            panic!("planned: the waker panics");
        }
    }
}

fn test_waker(panics: bool) -> (Arc<TestWaker>, Waker) {
    let inner = Arc::new(TestWaker {
        panics,
        wakes: AtomicUsize::new(0),
    });
    (inner.clone(), Waker::from(inner))
}

#[test]
fn a_panicking_waker_does_not_strand_the_other_waiters_of_an_event() {
    quiet_planned_panics();
    let event = Event::new();
    let (bad, bad_waker) = test_waker(true);
    let (good, good_waker) = test_waker(false);
    let mut first = Box::pin(event.wait());
    let mut second = Box::pin(event.wait());
    assert!(
        first
            .as_mut()
            .poll(&mut Context::from_waker(&bad_waker))
            .is_pending()
    );
    assert!(
        second
            .as_mut()
            .poll(&mut Context::from_waker(&good_waker))
            .is_pending()
    );
    let message = panic_text(|| event.set());
    assert_eq!(
        message, "planned: the waker panics",
        "the panic reaches set's caller"
    );
    assert_eq!(bad.wakes.load(SeqCst), 1);
    assert_eq!(
        good.wakes.load(SeqCst),
        1,
        "the second waiter was still woken"
    );
    assert!(event.is_set());
    let noop = Waker::noop();
    assert!(
        first
            .as_mut()
            .poll(&mut Context::from_waker(noop))
            .is_ready()
    );
    assert!(
        second
            .as_mut()
            .poll(&mut Context::from_waker(noop))
            .is_ready()
    );
}

#[test]
fn a_panicking_waker_leaves_the_lock_handed_to_its_waiter() {
    quiet_planned_panics();
    let lock = Lock::new();
    let guard = lock.try_lock().unwrap();
    let (_, bad_waker) = test_waker(true);
    let mut waiter = Box::pin(lock.lock());
    assert!(
        waiter
            .as_mut()
            .poll(&mut Context::from_waker(&bad_waker))
            .is_pending()
    );
    let message = panic_text(move || drop(guard));
    assert_eq!(message, "planned: the waker panics");
    // The state was consistent before the waker ran: the lock is the waiter's.
    assert!(lock.locked());
    let Poll::Ready(guard) = waiter
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    else {
        panic!("the waiter was handed the lock");
    };
    drop(guard);
    assert!(!lock.locked());
}

/// A waker that, when woken, calls back into the semaphore that wakes it.
struct ReentrantWaker {
    sem: Arc<Semaphore>,
    took: AtomicUsize,
}

impl Wake for ReentrantWaker {
    fn wake(self: Arc<Self>) {
        // Would deadlock if the semaphore woke us under its own lock.
        if let Some(permit) = self.sem.try_acquire() {
            self.took.fetch_add(1, SeqCst);
            drop(permit);
        }
        self.sem.available_permits();
    }
}

#[test]
fn a_waker_may_call_back_into_the_semaphore_that_wakes_it() {
    let sem = Arc::new(Semaphore::new(1));
    let reentrant = Arc::new(ReentrantWaker {
        sem: sem.clone(),
        took: AtomicUsize::new(0),
    });
    let waker = Waker::from(reentrant.clone());
    let held = sem.try_acquire().unwrap();
    let mut waiter = Box::pin(sem.acquire());
    assert!(
        waiter
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    drop(held); // wakes the waker, which looks at the semaphore: no deadlock
    assert_eq!(
        reentrant.took.load(SeqCst),
        0,
        "the permit was handed to the waiter"
    );
    let Poll::Ready(permit) = waiter.as_mut().poll(&mut Context::from_waker(&waker)) else {
        panic!("the waiter was handed the permit");
    };
    drop(permit);
    assert_eq!(sem.available_permits(), 1, "the waiter's permit came back");
}

// ---------------------------------------------------------------------------
// Both clocks, and other threads
// ---------------------------------------------------------------------------

#[test]
fn ex3_in_small_on_the_real_clock_takes_at_least_its_rounds() {
    // 6 fetches of 20 ms, 2 at a time: 3 rounds, at least 60 ms.
    let started = Instant::now();
    let sem = Semaphore::new(2);
    let results = run(gather((0..6).map(|i| {
        let sem = &sem;
        async move {
            let _permit = sem.acquire().await;
            sleep(ms(20)).await;
            i
        }
    })));
    let took = started.elapsed();
    assert_eq!(results, [0, 1, 2, 3, 4, 5]);
    assert!(took >= ms(60), "took {took:?}");
    assert!(took < secs(5), "took {took:?}");
}

#[test]
fn items_put_from_another_thread_wake_a_getter_on_the_real_clock() {
    let got = within(secs(10), "a getter woken from another thread", || {
        let queue = Arc::new(Queue::new(0));
        let producer = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    std::thread::sleep(Duration::from_micros(50));
                    queue.put_nowait(i).unwrap();
                }
            })
        };
        let got = run(async move {
            let mut got = Vec::new();
            for _ in 0..100 {
                got.push(queue.get().await);
            }
            got
        });
        producer.join().unwrap();
        got
    });
    assert_eq!(got, (0..100).collect::<Vec<_>>());
}

#[test]
fn the_primitives_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Lock>();
    send_sync::<Event>();
    send_sync::<Semaphore>();
    send_sync::<Queue<String>>();
    send_sync::<TaskGroup>();
    fn send<T: Send>(_: &T) {}
    let lock = Lock::new();
    send(&lock.lock());
    let queue = Queue::<u8>::new(1);
    send(&queue.put(1));
    send(&queue.get());
}
