//! Chapter 2: a coroutine is a value. Runs instantly.
//!
//! - E000-1: calling an `async fn` runs none of its body; polling does.
//! - The users' look-up as an `async fn` and as a hand-written state machine,
//!   both polled by hand with a hand-written no-op waker: the same trace.
//! - Polling a future again after `Ready` panics, in both versions.
//! - E002-3: a coroutine's type before it runs, and its string after.
//!
//! ```text
//! cargo run --example ch02
//! ```
use std::any::{Any, type_name_of_val};
use std::panic::{self, AssertUnwindSafe};
use std::pin::pin;

use tiny_asyncio::ch02_futures::{
    FindUsers, Journal, PendingFor, do_async, find_users, poll_by_hand, poll_once, simple_coroutine,
};
use tiny_asyncio::ch05_event_loop::panic_message;
use tiny_asyncio::cli::Cli;

/// The command line: only `--help` (everything here is instant, and no
/// time passes to draw: the polls are by hand, one after another).
const CLI: Cli = Cli::new(
    "ch02",
    "E000-1 and E002-3: a coroutine is a value, polled by hand",
);

fn main() {
    CLI.from_env();
    // E000-1: the call makes a value; nothing in the body has run.
    println!("== E000-1: async fn을 호출하면 본문은 실행되지 않는다 ==");
    let journal = Journal::printing();
    let fut = do_async(journal.clone());
    println!("do_async(journal) 호출 결과:");
    println!("  타입: {}", type_name_of_val(&fut));
    println!("  크기: {} 바이트", size_of_val(&fut));
    println!("  지금까지 본문이 쓴 줄 수: {}", journal.len());
    println!("첫 poll:");
    let mut fut = pin!(fut);
    let result = poll_once(fut.as_mut());
    println!(
        "  poll 결과: {result:?}, 본문이 쓴 줄 수: {}",
        journal.len()
    );

    // A leaf future that is Pending a few times, and wakes each time.
    println!();
    println!("== PendingFor(3): 세 번 Pending, 그다음 Ready ==");
    let journal = Journal::printing();
    poll_by_hand(PendingFor::new(3), &journal);

    // The look-up, written twice, driven by hand.
    println!();
    println!("== find_users(3): async fn, 손으로 poll ==");
    let by_compiler = Journal::printing();
    let fut = find_users(3, by_compiler.clone());
    println!(
        "(타입: {}, 크기: {} 바이트)",
        type_name_of_val(&fut),
        size_of_val(&fut)
    );
    poll_by_hand(fut, &by_compiler);

    println!();
    println!("== FindUsers::new(3): 손으로 쓴 상태 기계, 손으로 poll ==");
    let by_hand = Journal::printing();
    let fut = FindUsers::new(3, by_hand.clone());
    println!(
        "(타입: {}, 크기: {} 바이트)",
        type_name_of_val(&fut),
        size_of_val(&fut)
    );
    poll_by_hand(fut, &by_hand);
    println!(
        "두 기록이 같은가? {}",
        if by_compiler.lines() == by_hand.lines() {
            "예"
        } else {
            "아니오"
        }
    );

    // Polled again after Ready: both panic. The default panic report is
    // silenced while we catch the panics, and printed by us instead.
    println!();
    println!("== Ready 이후에 다시 poll하면 ==");
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let hand = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut fut = pin!(FindUsers::new(1, Journal::new()));
        while poll_once(fut.as_mut()).is_pending() {}
        let _ = poll_once(fut.as_mut());
    }));
    let compiler = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut fut = pin!(find_users(1, Journal::new()));
        while poll_once(fut.as_mut()).is_pending() {}
        let _ = poll_once(fut.as_mut());
    }));
    panic::set_hook(default_hook);
    println!("FindUsers:  panic: {}", caught(hand));
    println!("find_users: panic: {}", caught(compiler));

    // E002-3: a coroutine that returns a string.
    println!();
    println!("== E002-3: 코루틴의 반환값 ==");
    let coro = simple_coroutine();
    println!("객체 유형: {}", type_name_of_val(&coro));
    let journal = Journal::printing();
    let value: String = poll_by_hand(coro, &journal);
    println!("{value}");
}

/// The text of a caught panic (by chapter 5's `panic_message`, the crate's
/// one reader of panic payloads), or a note that there was none.
fn caught(result: Result<(), Box<dyn Any + Send>>) -> String {
    match result {
        Ok(()) => "(panic 없음)".to_owned(),
        Err(payload) => panic_message(&*payload),
    }
}
