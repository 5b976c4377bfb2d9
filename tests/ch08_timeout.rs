//! Chapter 8's facts: seed 004's `wait_for` (E004-3) in exact virtual time,
//! and the choices `timeout` documents: the deadline is looked at first (a
//! tie goes to the deadline, as in asyncio), the inner future is dropped
//! before `Elapsed` is returned, the deadline is fixed at the call,
//! zero and huge durations behave. Ends with the property test.
mod common;

use std::future::{Future, pending, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use tiny_asyncio::{
    Elapsed, EventLoop, get_running_loop, sleep, sleep_until, spawn, timeout, timeout_at, yield_now,
};

/// Notes "dropped <name>" when dropped: shows when a future is cancelled.
struct NoteOnDrop {
    name: &'static str,
    log: Notes,
}

impl Drop for NoteOnDrop {
    fn drop(&mut self) {
        self.log.note(format!("dropped {}", self.name));
    }
}

/// Seed 004's coroutine under `wait_for`: a job that takes `duration`.
async fn job(name: &'static str, duration: Duration, log: Notes) -> String {
    let _notice = NoteOnDrop {
        name,
        log: log.clone(),
    };
    log.note(format!("start {name}"));
    sleep(duration).await;
    log.note(format!("done {name}"));
    format!("{name} result")
}

fn line(at: Duration, text: &str) -> (Duration, String) {
    (at, text.to_string())
}

/// E004-3: `wait_for(coro, timeout=3)` on a coroutine that finishes in
/// 2 s gives its result at 2 s.
#[test]
fn e004_3_a_job_that_finishes_within_three_seconds_gives_its_result() {
    let log = Notes::default();
    let event_loop = EventLoop::with_virtual_clock();
    let result = event_loop
        .run_until_complete(async { timeout(secs(3), job("quick", secs(2), log.clone())).await });
    assert_eq!(result, Ok("quick result".to_string()));
    assert_eq!(event_loop.time(), secs(2));
    assert_eq!(
        log.timed(),
        [
            line(secs(0), "start quick"),
            line(secs(2), "done quick"),
            line(secs(2), "dropped quick"),
        ]
    );
}

/// E004-3: a coroutine that would take 5 s gives `TimeoutError` at 3 s,
/// and it is cancelled: dropped at 3 s, *before* the caller hears of the
/// timeout, and it never finishes.
#[test]
fn e004_3_a_longer_job_is_dropped_at_three_seconds_then_elapsed_is_returned() {
    let log = Notes::default();
    let event_loop = EventLoop::with_virtual_clock();
    let result = event_loop.run_until_complete(async {
        let result = timeout(secs(3), job("slow", secs(5), log.clone())).await;
        log.note("timeout returned");
        result
    });
    let error = result.unwrap_err();
    assert_eq!(error.after(), secs(3));
    assert_eq!(error.deadline(), secs(3));
    assert_eq!(event_loop.time(), secs(3));
    assert_eq!(
        log.timed(),
        [
            line(secs(0), "start slow"),
            line(secs(3), "dropped slow"),
            line(secs(3), "timeout returned"),
        ]
    );
    // The job's own sleep was cancelled with it: no timer is left behind.
    assert_eq!(event_loop.handle().timer().pending(), 0);
}

/// The deadline is looked at first: a future that would be ready exactly
/// at the deadline loses to it, as in asyncio, where
/// `wait_for(sleep(3), 3)` raises `TimeoutError` (CPython 3.11-3.13, real
/// clock too). The inner future is dropped at the deadline.
#[test]
fn a_future_due_exactly_at_the_deadline_loses_to_it_as_in_asyncio() {
    let log = Notes::default();
    let event_loop = EventLoop::with_virtual_clock();
    let result = event_loop
        .run_until_complete(async { timeout(secs(3), job("tie", secs(3), log.clone())).await });
    let error = result.unwrap_err();
    assert_eq!(error.deadline(), secs(3));
    assert_eq!(event_loop.time(), secs(3));
    assert_eq!(
        log.timed(),
        [line(secs(0), "start tie"), line(secs(3), "dropped tie")]
    );
}

/// Also when the inner future's timer was registered before the timeout's
/// own (a sleep polled once before the timeout was made), so it fires
/// first at the deadline's instant: the deadline still wins the tie.
#[test]
fn the_deadline_wins_a_tie_whichever_timer_was_registered_first() {
    let event_loop = EventLoop::with_virtual_clock();
    let result = event_loop.run_until_complete(async {
        let mut early = sleep_until(secs(3));
        // Register the inner sleep now, before the timeout exists.
        let first = poll_fn(|cx| Poll::Ready(Pin::new(&mut early).poll(cx))).await;
        assert!(first.is_pending());
        assert_eq!(get_running_loop().timer().pending(), 1);
        timeout(secs(3), early).await
    });
    assert!(result.is_err(), "the deadline wins: {result:?}");
    assert_eq!(event_loop.time(), secs(3));
}

/// One unit earlier is not a tie: the future wins.
#[test]
fn a_future_ready_just_before_the_deadline_wins() {
    let event_loop = EventLoop::with_virtual_clock();
    let result = event_loop.run_until_complete(async {
        timeout(secs(3), async {
            sleep(ms(2_999)).await;
            "just in time"
        })
        .await
    });
    assert_eq!(result, Ok("just in time"));
    assert_eq!(event_loop.time(), ms(2_999));
}

#[test]
fn a_zero_timeout_on_a_pending_future_elapses_at_the_first_poll() {
    let log = Notes::default();
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        let mut timed = pin!(timeout(Duration::ZERO, job("never", secs(1), log.clone())));
        let first = poll_fn(|cx| Poll::Ready(timed.as_mut().poll(cx))).await;
        let Poll::Ready(Err(error)) = first else {
            panic!("a zero timeout must elapse at the first poll");
        };
        assert_eq!(error.after(), Duration::ZERO);
        assert!(!timed.is_running(), "the inner future was dropped");
    });
    assert_eq!(event_loop.time(), Duration::ZERO);
    // Never polled, so its body never started: nothing to log, not even
    // the drop note, which the body would have made first.
    assert!(log.timed().is_empty(), "{:?}", log.timed());
}

/// asyncio's `wait_for(coro, 0)` never runs the coroutine and raises
/// `TimeoutError` even when it would return at once (3.11-3.13); so does
/// `timeout(0, future)`: the inner future is never polled.
#[test]
fn a_zero_timeout_never_polls_the_future_as_asyncios_wait_for_never_runs_it() {
    let polled = Arc::new(AtomicBool::new(false));
    let p = polled.clone();
    let event_loop = EventLoop::with_virtual_clock();
    let result = event_loop.run_until_complete(async move {
        timeout(Duration::ZERO, async move {
            p.store(true, SeqCst);
            42
        })
        .await
    });
    assert_eq!(result.unwrap_err().after(), Duration::ZERO);
    assert!(!polled.load(SeqCst), "the inner future must not be polled");
    assert_eq!(event_loop.time(), Duration::ZERO);
}

/// `Duration::MAX` and other durations past what the clock holds mean
/// "never": no panic, no overflow, the inner future decides.
#[test]
fn huge_durations_never_panic_or_overflow() {
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        assert_eq!(timeout(Duration::MAX, sleep(secs(1))).await, Ok(()));
        let huge = Duration::from_secs(u64::MAX / 2);
        assert_eq!(timeout(huge, sleep(secs(1))).await, Ok(()));
        assert_eq!(timeout_at(Duration::MAX, sleep(secs(1))).await, Ok(()));
        // Past the deadline of another timeout, still no overflow.
        let timed = timeout(Duration::MAX, async { 7 });
        assert_eq!(timed.deadline(), Duration::MAX);
        assert_eq!(timed.await, Ok(7));
    });
    assert_eq!(event_loop.time(), secs(3));
}

/// The deadline is fixed when `timeout` is called, not at the first poll.
#[test]
fn the_deadline_is_fixed_when_timeout_is_called() {
    let event_loop = EventLoop::with_virtual_clock();
    let result = event_loop.run_until_complete(async {
        let timed = timeout(secs(3), sleep(secs(10)));
        assert_eq!(timed.deadline(), secs(3));
        sleep(secs(1)).await;
        timed.await
    });
    assert_eq!(result.unwrap_err().deadline(), secs(3));
    assert_eq!(
        event_loop.time(),
        secs(3),
        "3 s after the call, not after the poll"
    );
}

/// `timeout_at` takes a loop time; `Elapsed::after` is then the time from
/// the call to the deadline. A deadline already past elapses at once.
#[test]
fn timeout_at_takes_the_deadline_in_loop_time() {
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        sleep(secs(1)).await;
        let error = timeout_at(secs(3), sleep(secs(5))).await.unwrap_err();
        assert_eq!(get_running_loop().time(), secs(3));
        assert_eq!(error.deadline(), secs(3));
        assert_eq!(error.after(), secs(2));

        let late = timeout_at(secs(1), pending::<()>()).await.unwrap_err();
        assert_eq!(late.after(), Duration::ZERO);
        assert_eq!(get_running_loop().time(), secs(3));
    });
}

#[test]
fn elapsed_reads_like_asyncios_timeout_error() {
    let event_loop = EventLoop::with_virtual_clock();
    let error: Elapsed = event_loop
        .run_until_complete(async { timeout(ms(1500), pending::<()>()).await })
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "deadline has elapsed (asyncio: TimeoutError) after 1.5s"
    );
    let as_error: Box<dyn std::error::Error> = Box::new(error);
    assert!(as_error.to_string().contains("TimeoutError"));
}

/// Timing out a `JoinHandle` gives up the *wait*: the dropped handle
/// detaches the task, which runs on. `abort()` is how to stop it too.
#[test]
fn a_timed_out_join_handle_detaches_the_task_and_abort_stops_it() {
    let log = Notes::default();
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        let task = spawn({
            let log = log.clone();
            async move {
                sleep(secs(5)).await;
                log.note("detached task finished");
            }
        });
        assert!(timeout(secs(1), task).await.is_err());

        let task = spawn({
            let log = log.clone();
            async move {
                sleep(secs(5)).await;
                log.note("aborted task finished");
            }
        });
        let mut task = pin!(task);
        if timeout(secs(1), task.as_mut()).await.is_err() {
            task.abort();
        }
        let joined = task.await;
        assert!(joined.unwrap_err().is_cancelled());
        sleep(secs(10)).await;
    });
    assert_eq!(log.timed(), [line(secs(5), "detached task finished")]);
}

/// asyncio's `wait_for(task, t)` cancels the task when time runs out; our
/// `timeout(t, handle)` detaches it. `timeout(t, &mut handle)` lends the
/// handle instead: after `Elapsed` the task is still ours, to await again
/// (here it finishes at 5 s) or to abort.
#[test]
fn a_timeout_of_a_borrowed_handle_keeps_the_task_to_await_again_or_abort() {
    let event_loop = EventLoop::with_virtual_clock();
    let (second_wait, aborted) = event_loop.run_until_complete(async {
        let mut slow = spawn(async {
            sleep(secs(5)).await;
            "slow"
        });
        let mut stuck = spawn(pending::<()>());
        assert!(timeout(secs(1), &mut slow).await.is_err());
        assert!(timeout(secs(1), &mut stuck).await.is_err());
        assert_eq!(get_running_loop().time(), secs(2));
        stuck.abort();
        (slow.await, stuck.await)
    });
    assert_eq!(second_wait.unwrap(), "slow");
    assert!(aborted.unwrap_err().is_cancelled());
    assert_eq!(event_loop.time(), secs(5));
}

#[test]
#[should_panic(expected = "Timeout polled after it returned")]
fn a_timeout_polled_after_completion_panics() {
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async {
        let mut timed = pin!(timeout(secs(1), async { 1 }));
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(timed.as_mut().poll(&mut cx), Poll::Ready(Ok(1)));
        let _ = timed.as_mut().poll(&mut cx);
    });
}

/// A timeout of a `Send` future is `Send`: it can be spawned.
#[test]
fn a_timeout_of_a_send_future_can_be_spawned() {
    let event_loop = EventLoop::with_virtual_clock();
    let result = event_loop.run_until_complete(async {
        spawn(timeout(secs(2), async {
            yield_now().await;
            sleep(secs(1)).await;
            "spawned"
        }))
        .await
    });
    assert_eq!(result.unwrap(), Ok("spawned"));
    assert_eq!(event_loop.time(), secs(1));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `timeout(d, sleep(x))` is `Ok` exactly when x < d (a tie goes to
    /// the deadline), ends at min(x, d), and drops the inner future exactly
    /// once, at that moment (a zero timeout never polls it, so its body
    /// never starts).
    #[test]
    fn timeout_of_a_sleep_is_ok_exactly_when_it_ends_before_the_deadline_and_drops_it_once(
        x in 0u64..50,
        d in 0u64..50,
    ) {
        let log = Notes::default();
        let event_loop = EventLoop::with_virtual_clock();
        let result = event_loop.run_until_complete(async {
            timeout(ms(d), job("inner", ms(x), log.clone())).await
        });
        prop_assert_eq!(result.is_ok(), x < d);
        let end = ms(x.min(d));
        prop_assert_eq!(event_loop.time(), end);
        let drops: Vec<Duration> = log
            .timed()
            .into_iter()
            .filter(|(_, text)| text == "dropped inner")
            .map(|(at, _)| at)
            .collect();
        // A zero timeout never polls the job, whose body (and drop note)
        // never starts.
        let expected = if d == 0 { vec![] } else { vec![end] };
        prop_assert_eq!(drops, expected);
    }
}

/// E004-3, written the short way: a `timeout` built outside the loop (the
/// argument of `run_until_complete` is made before the loop runs) still
/// runs on the loop's virtual clock and gives up at exactly 3 s.
#[test]
fn e004_3_a_timeout_made_outside_the_loop_runs_on_the_loops_clock() {
    let event_loop = EventLoop::with_virtual_clock();
    let result = event_loop.run_until_complete(timeout(secs(3), sleep(secs(5))));
    assert!(result.is_err());
    assert_eq!(event_loop.time(), secs(3));
    let ok = event_loop.run_until_complete(timeout(secs(3), sleep(secs(1))));
    assert!(ok.is_ok());
    assert_eq!(event_loop.time(), secs(4));
}

/// `timeout_at` made outside the loop measures "how long it was given" on
/// the loop's clock, at its first poll: with the loop at 5 s, a deadline of
/// 7 s gave the future 2 s.
#[test]
fn e004_3_timeout_at_made_outside_the_loop_reports_the_time_it_gave_on_the_loops_clock() {
    let event_loop = EventLoop::with_virtual_clock();
    event_loop.run_until_complete(async { sleep(secs(5)).await });
    let error = event_loop
        .run_until_complete(timeout_at(secs(7), sleep(secs(10))))
        .unwrap_err();
    assert_eq!(error.after(), secs(2));
    assert_eq!(event_loop.time(), secs(7));
}

/// Issue 12, fault 5: a `timeout` made in one loop and awaited in another
/// runs on the awaiting loop's clock, its inner sleep too: the deadline
/// elapses there, three seconds after it is first polled, and an inner
/// future that is quicker wins there. It used to wait on the first loop's
/// timer, and the second loop panicked "no timer is set".
#[test]
fn a_timeout_made_in_one_loop_runs_on_the_clock_of_the_loop_that_awaits_it() {
    let made_in = EventLoop::with_virtual_clock();
    let (too_slow, quick) = made_inside(&made_in, || {
        (
            timeout(secs(3), pending::<()>()),
            timeout(secs(3), sleep(secs(1))),
        )
    });
    let awaited_in = EventLoop::with_virtual_clock();
    let elapsed = awaited_in.run_until_complete(too_slow).unwrap_err();
    assert_eq!(awaited_in.time(), secs(3));
    assert_eq!((elapsed.after(), elapsed.deadline()), (secs(3), secs(3)));
    let also = EventLoop::with_virtual_clock();
    also.run_until_complete(quick)
        .expect("the inner sleep of 1 s wins");
    assert_eq!(also.time(), secs(1));
    assert_eq!(made_in.time(), Duration::ZERO);
}
