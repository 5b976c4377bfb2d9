//! # Chapter 2 — a coroutine is a value
//!
//! **The question.** In Python, calling an `async def` function prints
//! `<coroutine object do_async at 0x…>` and nothing else happens. What is that
//! object, and why does calling the function not run it?
//!
//! **The documents.**
//! - **E000-1** (seed 000): calling an `async` function runs none of its body
//!   and hands back a coroutine object. Here: calling an `async fn` returns a
//!   *future*, a value; [`do_async`] writes a line when its body runs, and
//!   right after the call that line is not there. It appears when someone
//!   *polls* the future.
//! - **E002-3** (seed 002): a coroutine that returns a string is of type
//!   `coroutine` until it is awaited, and awaiting it gives the string. Here:
//!   [`simple_coroutine`]'s future has a type of its own
//!   ([`std::any::type_name_of_val`] names it) and a size, and polling it to
//!   the end gives `Ready("코루틴 반환값")`.
//!
//! **The idea.** A future is a state machine that runs in steps. The only way
//! to make it go is [`Future::poll`]: run until you either finish
//! ([`Poll::Ready`] with the output) or have to wait ([`Poll::Pending`]). Where
//! an `async fn` has an `.await`, its future can stop and later resume; the
//! compiler turns the function into an enum with one variant per place it can
//! be stopped at. To see that nothing magic happens, this chapter writes the
//! users' look-up of chapter 1 twice:
//! - [`find_users`], an `async fn`, and
//! - [`FindUsers`], the same thing written by hand as the enum the compiler
//!   would make, with a state named after its one `.await`.
//!
//! Driven by hand ([`poll_by_hand`]) both leave exactly the same trace in a
//! [`Journal`]: the lines the body writes, and after each poll what the poll
//! returned.
//!
//! There is no timer yet, so the "wait for one user" step is [`PendingFor`], a
//! tiny leaf future that says `Pending` a given number of times and then
//! `Ready`. A poll needs a [`Context`], which carries a [`Waker`]: the handle a
//! waiting future calls when it is worth polling again. Here the waker is
//! written by hand too ([`noop_waker`]): a [`RawWakerVTable`] of four functions
//! that do nothing, the only `unsafe` in the chapter.
//!
//! **Its limits, on purpose.**
//! - [`poll_by_hand`] ignores the waker and just polls again at once, in a
//!   loop. That is fine for futures that never really wait, and useless for
//!   anything that does (a future waiting 1 s would be polled millions of
//!   times). Python's event loop, and our chapter 3, sleep until woken.
//! - [`PendingFor`] waits for nothing: it wakes its waker straight away.
//! - A [`Journal`] is shared through an `Rc`, so these futures stay on one
//!   thread, which is all a hand-driven future needs.
//!
//! **What the next chapter needs.** Everything here is a seam it builds on: the
//! [`Future`] contract (poll until `Ready`, never poll after `Ready`, wake when
//! worth polling again), a waker built from a vtable, and a driver loop. Chapter
//! 3 gives the waker a job (unpark the driving thread), so its driver,
//! `block_on`, can sleep between polls instead of spinning, and gives the
//! futures something real to wait for.
//!
//! Since Rust 1.85 the standard library has its own `Waker::noop()`; we write
//! ours to see what a waker is made of.
// `unsafe` is denied in this module (as in the whole crate, see `lib.rs`)
// and allowed on exactly one function, `noop_waker`, whose single unsafe
// block builds the waker from its vtable.
#![deny(unsafe_code)]

use std::cell::RefCell;
use std::fmt::Debug;
use std::future::Future;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use crate::ch01_blocking::Step;

/// How many polls [`poll_by_hand`] makes before it gives up on a future.
pub const POLL_LIMIT: usize = 10_000;

/// The panic message of a [`FindUsers`] polled again after it returned
/// `Ready`.
pub const FIND_USERS_POLLED_AFTER_COMPLETION: &str = "`FindUsers` polled after it completed: \
     a future must not be polled again once it returned Ready";

/// The lines a future "prints", shared between the future and whoever drives
/// it, in the order they were written.
///
/// A future holds a clone (an `Rc`, so cloning is cheap and every clone
/// writes to the same list); [`poll_by_hand`] writes the result of each poll
/// into the same journal, so the trace shows what happened during which poll.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    /// The lines, shared by every clone. `Rc<RefCell<_>>`, not a `Mutex`:
    /// a chapter 2 future never leaves its thread, and the driver and the
    /// future take turns, never writing at the same moment.
    lines: Rc<RefCell<Vec<String>>>,
    /// Also print each line as it is written (the example does; tests read).
    echo: bool,
}

impl Journal {
    /// An empty journal that only records. Tests use this.
    pub fn new() -> Journal {
        Journal::default()
    }

    /// An empty journal that also prints each line on stdout as it is
    /// written. The example uses this.
    pub fn printing() -> Journal {
        Journal {
            echo: true,
            ..Journal::default()
        }
    }

    /// Appends a line (and prints it if this journal prints).
    pub fn write(&self, line: impl Into<String>) {
        let line = line.into();
        if self.echo {
            println!("{line}");
        }
        self.lines.borrow_mut().push(line);
    }

    /// A copy of every line so far, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lines.borrow().clone()
    }

    /// How many lines have been written.
    pub fn len(&self) -> usize {
        self.lines.borrow().len()
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.lines.borrow().is_empty()
    }
}

// ---------------------------------------------------------------------------
// E000-1 and E002-3: futures are values
// ---------------------------------------------------------------------------

/// E000-1's `do_async`, with a body we can see: it writes one line.
///
/// Calling `do_async(journal)` writes nothing; it returns a future that holds
/// `journal` and will write the line the first time it is polled.
pub async fn do_async(journal: Journal) {
    journal.write("do_async의 본문 실행");
}

/// E002-3's `simple_coroutine`: returns the document's string once polled.
pub async fn simple_coroutine() -> String {
    String::from("코루틴 반환값")
}

// ---------------------------------------------------------------------------
// A leaf future to wait on
// ---------------------------------------------------------------------------

/// A leaf future that returns `Pending` a given number of times, then
/// `Ready(())`: the stand-in for "wait one unit" while there is no timer.
///
/// Every time it returns `Pending` it first calls `wake_by_ref` on the
/// waker it was given. That is the [`Future`] contract: a future that returns
/// `Pending` must make sure its waker gets woken once polling again can make
/// progress, or a real driver (one that sleeps until woken, like chapter 3's)
/// would never poll it again. This future could make progress immediately, so
/// it wakes immediately, much as `asyncio.sleep(0)` hands control back and asks
/// to be resumed at once. A real leaf (a timer) instead keeps the waker of the
/// latest poll and calls it when its time comes.
///
/// Polled again after `Ready` it stays `Ready`: the contract allows a future
/// anything then, and nothing here relies on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingFor {
    /// How many more polls answer `Pending`; the poll that finds 0 is `Ready`.
    remaining: usize,
}

impl PendingFor {
    /// A future that will answer `Pending` to its first `times` polls.
    pub fn new(times: usize) -> PendingFor {
        PendingFor { remaining: times }
    }

    /// How many more `Pending`s it will return before `Ready`.
    pub fn remaining(&self) -> usize {
        self.remaining
    }
}

impl Future for PendingFor {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.remaining == 0 {
            return Poll::Ready(());
        }
        self.remaining -= 1;
        // "Poll me again": see the type's doc for why this is required.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

// ---------------------------------------------------------------------------
// The users' look-up, twice
// ---------------------------------------------------------------------------

/// The line written before looking up `user` of `n`: the same wording as
/// chapter 1 (and both versions of the document).
fn look_up_line(n: usize, user: usize) -> String {
    Step::LookUp { of: n, user }.to_string()
}

/// The line written when all `n` users were looked up (seed 000's async
/// wording).
fn all_found_line(n: usize) -> String {
    format!("> 총 {n} 명 사용자 비동기 조회 완료!")
}

/// The users' look-up of E000-3 as an `async fn`: for each user, write a line
/// and wait one step ([`PendingFor::new(1)`](PendingFor::new)); then write the
/// "done" line and return how many users were found.
///
/// Calling it runs none of this: it returns a future. [`FindUsers`] is the
/// same future written by hand.
pub async fn find_users(n: usize, journal: Journal) -> usize {
    for user in 1..=n {
        journal.write(look_up_line(n, user));
        PendingFor::new(1).await;
    }
    journal.write(all_found_line(n));
    n
}

/// [`find_users`] written by hand: the state machine the compiler makes of it.
///
/// The compiler names its states `Unresumed`, `Suspend0` (one per `.await`),
/// `Returned` and `Panicked`; here they are named after what they mean. Each
/// state holds exactly what the code after that point still needs, which is
/// why a future's size is the size of its biggest state (plus a tag).
///
/// One call to [`poll`](Future::poll) runs the body from where it stopped to
/// the next `.await` that is not ready yet (returning `Pending`), or to the end
/// (returning `Ready(n)`).
#[derive(Debug)]
pub enum FindUsers {
    /// Just made: the body has not started. Only the arguments are stored.
    NotStarted {
        /// How many users to look up.
        n: usize,
        /// Where to write the lines.
        journal: Journal,
    },
    /// Stopped at the one `.await` of the body, `PendingFor::new(1).await`,
    /// inside the loop, while user `user` is being looked up.
    AwaitingLookUp {
        /// How many users to look up.
        n: usize,
        /// The loop variable: which user is being looked up (1-based).
        user: usize,
        /// Where to write the lines.
        journal: Journal,
        /// The future being awaited: the wait for this user.
        lookup: PendingFor,
    },
    /// Returned `Ready`. Polling it again panics.
    Completed,
}

impl FindUsers {
    /// The future of `find_users(n, journal)`, by hand. Like calling the
    /// `async fn`, it only stores the arguments.
    pub fn new(n: usize, journal: Journal) -> FindUsers {
        FindUsers::NotStarted { n, journal }
    }
}

impl Future for FindUsers {
    type Output = usize;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        // Every field is `Unpin`, so `FindUsers` is `Unpin` and may be used
        // through a plain `&mut`. (The compiler's futures can hold references
        // into themselves across an `.await`, which is why `poll` takes a
        // `Pin` at all: once polled, a future must not move.)
        let this = self.get_mut();
        loop {
            // Take the current state out, leaving `Completed` behind; each arm
            // puts back the state to continue from, unless it finished. (The
            // compiler uses a separate `Panicked` state for a poll that
            // panicked half-way; we let it look `Completed`.)
            match std::mem::replace(this, FindUsers::Completed) {
                FindUsers::NotStarted { n, journal } => {
                    // The body from its start to the first `.await`: the first
                    // turn of the loop, or straight to the end if n == 0.
                    if n == 0 {
                        journal.write(all_found_line(n));
                        return Poll::Ready(n);
                    }
                    journal.write(look_up_line(n, 1));
                    *this = FindUsers::AwaitingLookUp {
                        n,
                        user: 1,
                        journal,
                        lookup: PendingFor::new(1),
                    };
                    // Go round: the `.await` polls `lookup` at once.
                }
                FindUsers::AwaitingLookUp {
                    n,
                    user,
                    journal,
                    mut lookup,
                } => match Pin::new(&mut lookup).poll(cx) {
                    Poll::Pending => {
                        // Stay at this `.await`. `lookup` has arranged for the
                        // waker to be woken, so we may return Pending.
                        *this = FindUsers::AwaitingLookUp {
                            n,
                            user,
                            journal,
                            lookup,
                        };
                        return Poll::Pending;
                    }
                    Poll::Ready(()) => {
                        // Resume after the `.await`: the next turn of the
                        // loop, or the code after the loop.
                        if user < n {
                            journal.write(look_up_line(n, user + 1));
                            *this = FindUsers::AwaitingLookUp {
                                n,
                                user: user + 1,
                                journal,
                                lookup: PendingFor::new(1),
                            };
                        } else {
                            journal.write(all_found_line(n));
                            return Poll::Ready(n);
                        }
                    }
                },
                FindUsers::Completed => panic!("{FIND_USERS_POLLED_AFTER_COMPLETION}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// A waker that does nothing, by hand
// ---------------------------------------------------------------------------

/// Makes the no-op waker's `RawWaker`: no data (a null pointer, never read)
/// and the vtable below.
fn noop_raw_waker() -> RawWaker {
    RawWaker::new(std::ptr::null(), &NOOP_VTABLE)
}

/// The four functions every waker is made of. A `Waker` is just a data
/// pointer and a pointer to this table; the table says what "wake" means.
static NOOP_VTABLE: RawWakerVTable =
    RawWakerVTable::new(noop_clone, noop_wake, noop_wake_by_ref, noop_drop);

/// `clone`: called when someone clones the waker (a future that wants to keep
/// it for later). It must return a new `RawWaker` for the same task; a real
/// waker adds one to a reference count here. Ours has no data, so a clone is
/// just another null pointer with the same vtable.
fn noop_clone(_data: *const ()) -> RawWaker {
    noop_raw_waker()
}

/// `wake`: called by `Waker::wake`, which *consumes* the waker: "the task is
/// worth polling again", then release this waker (a real one schedules the
/// task, then drops its reference). Ours does nothing: whoever uses it polls
/// on their own schedule anyway.
fn noop_wake(_data: *const ()) {}

/// `wake_by_ref`: the same "worth polling again" through a borrowed waker, so
/// nothing is released (a real one must not touch the reference count here).
/// Ours does nothing.
fn noop_wake_by_ref(_data: *const ()) {}

/// `drop`: called when a waker is dropped without being woken; a real waker
/// subtracts one from its reference count. Ours owns nothing.
fn noop_drop(_data: *const ()) {}

/// A [`Waker`] whose wake does nothing, built by hand from
/// [`RawWakerVTable`]. Good enough for a driver that polls again without
/// being asked, like [`poll_by_hand`].
#[allow(unsafe_code)]
pub fn noop_waker() -> Waker {
    // `Waker::from_raw` trusts us that the RawWaker keeps the promises in
    // `RawWaker`'s and `RawWakerVTable`'s docs. Ours does: its four functions
    // never read the (null) pointer and do nothing, so any thread may call
    // them any number of times; `clone` returns the same null pointer and
    // table; the table is a `static`, so it outlives every waker made from it.
    // SAFETY: the null data pointer and the do-nothing vtable above keep
    // every promise `Waker::from_raw` asks for.
    unsafe { Waker::from_raw(noop_raw_waker()) }
}

// ---------------------------------------------------------------------------
// Driving a future by hand
// ---------------------------------------------------------------------------

/// Polls a pinned future once, with the [`noop_waker`], and returns what the
/// poll returned. Tests use it to step a future one poll at a time.
pub fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    fut.poll(&mut cx)
}

/// Drives a future to the end by polling it again and again with the
/// [`noop_waker`], writing each poll's result to `journal`
/// (`poll 1 → Pending`, …, `poll 4 → Ready(3)`), and returns its output.
///
/// The future is pinned on this function's stack (`pin!`), so it never moves
/// once polled. This is the simplest driver there is, and a naive one: it
/// never waits for a wake, it just polls again.
///
/// # Panics
///
/// If the future is still `Pending` after [`POLL_LIMIT`] polls: with a waker
/// that does nothing, a future that waits for something outside itself would
/// spin here for ever.
pub fn poll_by_hand<F>(fut: F, journal: &Journal) -> F::Output
where
    F: Future,
    F::Output: Debug,
{
    let mut fut = pin!(fut);
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    for nth in 1..=POLL_LIMIT {
        match fut.as_mut().poll(&mut cx) {
            Poll::Pending => journal.write(format!("poll {nth} → Pending")),
            Poll::Ready(output) => {
                journal.write(format!("poll {nth} → Ready({output:?})"));
                return output;
            }
        }
    }
    panic!(
        "poll_by_hand gave up: the future was still Pending after {POLL_LIMIT} polls. \
         With a no-op waker nothing else can make it progress; \
         a future that waits for something outside itself needs a real driver"
    );
}
