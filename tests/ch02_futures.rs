//! Chapter 2's facts: a future is an inert value, the hand-written state
//! machine behaves like the `async fn`, and the `Future` contract holds
//! (wake before `Pending`, never poll after `Ready`).
//!
//! Nothing here waits for real time: every future is driven by hand.
use std::any::type_name_of_val;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use proptest::prelude::*;
use tiny_asyncio::ch02_futures::{
    FIND_USERS_POLLED_AFTER_COMPLETION, FindUsers, Journal, PendingFor, do_async, find_users,
    noop_waker, poll_by_hand, poll_once, simple_coroutine,
};
use tiny_asyncio::ch05_event_loop::panic_message;

/// A waker that counts its wakes. Built with `std::task::Wake` (safe code),
/// so the tests can check that futures really wake before `Pending`.
#[derive(Default)]
struct CountWakes(AtomicUsize);

impl Wake for CountWakes {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls `fut` to the end with a counting waker; returns (Pendings, wakes).
fn pendings_and_wakes<F: Future>(fut: F) -> (usize, usize) {
    let counter = Arc::new(CountWakes::default());
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    let mut pendings = 0;
    while fut.as_mut().poll(&mut cx).is_pending() {
        pendings += 1;
        assert!(pendings < 1000, "the future never finished");
    }
    (pendings, counter.0.load(Ordering::SeqCst))
}

/// The exact trace of `find_users(3)` driven by `poll_by_hand`: one line per
/// look-up, each followed by the `Pending` of its wait, then the done line and
/// `Ready(3)` in the fourth poll.
fn expected_trace_of_three() -> Vec<String> {
    [
        "3명 중 1번 째 사용자 조회 중 ...",
        "poll 1 → Pending",
        "3명 중 2번 째 사용자 조회 중 ...",
        "poll 2 → Pending",
        "3명 중 3번 째 사용자 조회 중 ...",
        "poll 3 → Pending",
        "> 총 3 명 사용자 비동기 조회 완료!",
        "poll 4 → Ready(3)",
    ]
    .map(String::from)
    .to_vec()
}

/// E000-1: calling an `async fn` runs none of its body; the first poll does.
#[test]
fn e000_1_calling_an_async_fn_runs_none_of_its_body() {
    let journal = Journal::new();
    let fut = do_async(journal.clone());
    assert!(journal.is_empty(), "the body ran at the call: {journal:?}");

    let mut fut = pin!(fut);
    assert_eq!(poll_once(fut.as_mut()), Poll::Ready(()));
    assert_eq!(journal.lines(), ["do_async의 본문 실행"]);
}

/// E000-1: a future dropped without being polled never runs its body.
#[test]
fn e000_1_a_future_dropped_unpolled_never_runs() {
    let journal = Journal::new();
    drop(do_async(journal.clone()));
    drop(find_users(3, journal.clone()));
    drop(FindUsers::new(3, journal.clone()));
    assert!(journal.is_empty(), "{journal:?}");
}

/// E000-1: the future is an ordinary value with a type of its own, and it is
/// at least big enough to hold the arguments it has not used yet.
#[test]
fn e000_1_the_future_is_a_value_that_holds_its_arguments() {
    let journal = Journal::new();
    let fut = find_users(3, journal.clone());
    assert!(
        type_name_of_val(&fut).contains("find_users"),
        "{}",
        type_name_of_val(&fut)
    );
    let arguments = size_of::<usize>() + size_of::<Journal>();
    assert!(size_of_val(&fut) >= arguments);
    assert!(size_of::<FindUsers>() >= arguments);
    assert!(journal.is_empty());
}

/// E002-3: before it is polled the coroutine is a future (its type names the
/// function), and polling it to the end gives the string it returns.
#[test]
fn e002_3_a_coroutine_gives_its_string_when_polled_to_the_end() {
    let fut = simple_coroutine();
    assert!(type_name_of_val(&fut).contains("simple_coroutine"));
    let journal = Journal::new();
    let value = poll_by_hand(fut, &journal);
    assert_eq!(value, "코루틴 반환값");
    assert_eq!(journal.lines(), ["poll 1 → Ready(\"코루틴 반환값\")"]);
}

/// E000-3's look-up as an `async fn`, polled by hand: the exact trace.
#[test]
fn e000_3_async_find_users_trace_polled_by_hand() {
    let journal = Journal::new();
    let found = poll_by_hand(find_users(3, journal.clone()), &journal);
    assert_eq!(found, 3);
    assert_eq!(journal.lines(), expected_trace_of_three());
}

/// E000-3's look-up written by hand as a state machine: the same trace as the
/// `async fn`.
#[test]
fn e000_3_hand_written_find_users_trace_polled_by_hand() {
    let journal = Journal::new();
    let found = poll_by_hand(FindUsers::new(3, journal.clone()), &journal);
    assert_eq!(found, 3);
    assert_eq!(journal.lines(), expected_trace_of_three());
}

/// The hand-written state machine moves through its named states, one poll at
/// a time: not started, waiting at the `.await` for user 1, 2, 3, completed.
#[test]
fn hand_written_find_users_moves_through_its_states() {
    let journal = Journal::new();
    let mut fut = FindUsers::new(3, journal.clone());
    assert!(matches!(fut, FindUsers::NotStarted { n: 3, .. }));
    for user in 1..=3 {
        assert_eq!(poll_once(pin!(&mut fut)), Poll::Pending);
        assert!(
            matches!(fut, FindUsers::AwaitingLookUp { n: 3, user: u, .. } if u == user),
            "after poll {user}: {fut:?}"
        );
        assert_eq!(journal.len(), user);
    }
    assert_eq!(poll_once(pin!(&mut fut)), Poll::Ready(3));
    assert!(matches!(fut, FindUsers::Completed));
}

/// A request for no users finishes in the first poll, in both versions.
#[test]
fn zero_users_finish_in_the_first_poll() {
    for hand_written in [false, true] {
        let journal = Journal::new();
        let found = if hand_written {
            poll_by_hand(FindUsers::new(0, journal.clone()), &journal)
        } else {
            poll_by_hand(find_users(0, journal.clone()), &journal)
        };
        assert_eq!(found, 0);
        assert_eq!(
            journal.lines(),
            ["> 총 0 명 사용자 비동기 조회 완료!", "poll 1 → Ready(0)"]
        );
    }
}

/// `PendingFor(n)` answers `Pending` exactly n times, then `Ready`.
#[test]
fn pending_for_is_pending_n_times_then_ready() {
    let mut fut = PendingFor::new(3);
    for left in (0..3).rev() {
        assert_eq!(poll_once(pin!(&mut fut)), Poll::Pending);
        assert_eq!(fut.remaining(), left);
    }
    assert_eq!(poll_once(pin!(&mut fut)), Poll::Ready(()));
}

/// The contract: every `Pending` comes with a wake, so a driver that polls
/// only when woken would poll again. True of the leaf, and of both versions
/// of the look-up, which pass their caller's waker down to the leaf.
#[test]
fn every_pending_comes_with_a_wake() {
    assert_eq!(pendings_and_wakes(PendingFor::new(4)), (4, 4));
    assert_eq!(pendings_and_wakes(find_users(3, Journal::new())), (3, 3));
    assert_eq!(
        pendings_and_wakes(FindUsers::new(3, Journal::new())),
        (3, 3)
    );
}

/// The hand-written future refuses to be polled after `Ready`, with a message
/// that says what went wrong.
#[test]
#[should_panic(
    expected = "`FindUsers` polled after it completed: a future must not be polled again once it returned Ready"
)]
fn hand_written_future_polled_after_ready_panics() {
    let mut fut = pin!(FindUsers::new(1, Journal::new()));
    while poll_once(fut.as_mut()).is_pending() {}
    let _ = poll_once(fut.as_mut());
}

/// The compiler's future does the same, with the compiler's own message.
#[test]
#[should_panic(expected = "`async fn` resumed after completion")]
fn async_fn_future_polled_after_ready_panics() {
    let mut fut = pin!(find_users(1, Journal::new()));
    while poll_once(fut.as_mut()).is_pending() {}
    let _ = poll_once(fut.as_mut());
}

/// The published constant is the message the hand-written future panics with.
#[test]
fn polled_after_completion_message_is_the_constant() {
    let result = std::panic::catch_unwind(|| {
        let mut fut = pin!(FindUsers::new(0, Journal::new()));
        assert_eq!(poll_once(fut.as_mut()), Poll::Ready(0));
        let _ = poll_once(fut.as_mut());
    });
    let payload = result.expect_err("the second poll should panic");
    assert_eq!(panic_message(&*payload), FIND_USERS_POLLED_AFTER_COMPLETION);
}

/// The no-op waker survives every vtable function (clone, wake_by_ref, wake,
/// drop), and a clone is recognised as the same waker.
#[test]
fn noop_waker_can_be_cloned_woken_and_dropped() {
    let waker = noop_waker();
    let clone = waker.clone();
    assert!(waker.will_wake(&clone));
    clone.wake_by_ref();
    clone.wake();
    drop(waker);
}

/// A future that never finishes makes `poll_by_hand` give up with a message
/// that says why, instead of spinning for ever.
#[test]
#[should_panic(expected = "still Pending after 10000 polls")]
fn poll_by_hand_gives_up_on_a_future_that_never_finishes() {
    poll_by_hand(std::future::pending::<()>(), &Journal::new());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Invariant: for any number of users, the hand-written state machine and
    /// the `async fn` leave the same trace, take n + 1 polls (one `Pending`
    /// per user) and return n.
    #[test]
    fn hand_written_and_async_fn_leave_the_same_trace_for_any_n(n in 0usize..8) {
        let by_compiler = Journal::new();
        let by_hand = Journal::new();
        prop_assert_eq!(poll_by_hand(find_users(n, by_compiler.clone()), &by_compiler), n);
        prop_assert_eq!(poll_by_hand(FindUsers::new(n, by_hand.clone()), &by_hand), n);
        prop_assert_eq!(by_compiler.lines(), by_hand.lines());
        let polls = by_hand.lines().iter().filter(|l| l.starts_with("poll ")).count();
        prop_assert_eq!(polls, n + 1);
    }

    /// Invariant: `PendingFor(k)` takes exactly k + 1 polls and wakes k times.
    #[test]
    fn pending_for_k_is_pending_k_times_and_wakes_k_times(k in 0usize..50) {
        prop_assert_eq!(pendings_and_wakes(PendingFor::new(k)), (k, k));
    }
}
