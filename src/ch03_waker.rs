//! # Chapter 3 — who polls again? A waker, and `block_on`
//!
//! **The question.** Chapter 2 drove a future by calling `poll` in a loop
//! until it said `Ready`: a busy loop that burns a core while the future
//! waits. Python never does that: `loop.run_until_complete(main())` (E000-2,
//! E003-5) sleeps until something the coroutine waits for has happened. How
//! does the executor know *when* to poll again?
//!
//! **The document.** Seed 003 (E003-1: `before wait`, a one-second
//! `asyncio.sleep`, `after wait 1 second`) and seed 002 (E002-5: two
//! sequential waits add up to two seconds), driven by `run_until_complete`,
//! whose result is the coroutine's (E003-5).
//!
//! **The idea.** A future that cannot finish yet returns `Pending` *and keeps
//! the [`Waker`] it was handed*. Whoever can make progress happen later (a
//! timer, a socket, a thread pool) calls `waker.wake()`. The executor behind
//! the waker then polls the future again. So an executor is two halves:
//!
//! * a **waker** that records "poll me again" and rouses the executor, and
//! * a **loop** that polls, and sleeps between polls until it is roused.
//!
//! A `Waker` is a type-erased pointer plus a table of four functions (a
//! [`RawWakerVTable`]): `clone`, `wake`, `wake_by_ref` and `drop`. Chapter 2
//! wrote one that does nothing. Here we write the real thing over an
//! [`Arc`]: any type that implements our small [`ArcWake`] trait becomes a
//! `Waker` through [`waker_from_arc`]. The four functions are the `Arc`'s
//! reference counting, spelled out by hand:
//!
//! | vtable fn     | what it does to the `Arc`          | strong count |
//! |---------------|------------------------------------|--------------|
//! | `clone`       | makes a second owner               | +1           |
//! | `wake`        | wakes, then gives up its ownership | −1           |
//! | `wake_by_ref` | wakes, keeps its ownership         | 0            |
//! | `drop`        | gives up its ownership             | −1           |
//!
//! Getting one of those wrong is the classic bug of hand-written wakers (a
//! leak, or a use after free); the tests count every reference.
//!
//! [`block_on`] is the smallest executor: poll the future; if it is
//! `Pending`, sleep on a [`Signal`] until its waker fires; repeat. The
//! signal is a flag under a `Mutex` with a `Condvar`, *not* a bare
//! `thread::park`: a wake that lands between "poll returned `Pending`" and
//! "the thread goes to sleep" sets the flag, and the sleeper sees it and
//! does not sleep at all. No wake-up is ever lost.
//!
//! To have something to wait on, [`ThreadSleep`] is a timer future that
//! starts **one OS thread per sleep**; the thread sleeps, then wakes the
//! waker. It is naive on purpose: it takes few lines and shows the whole
//! contract (store the latest waker, wake it from another thread), but ten
//! thousand sleeps cost ten thousand threads. Chapter 4 replaces it with a
//! timer wheel served by a single thread.
//!
//! **What the next chapter needs from this one.** Only the seam: a timer
//! holds wakers and calls them. Chapter 4's timer thread calls the same
//! `Waker`s that `block_on` hands out here, and chapter 5's event loop gives
//! each task its own `ArcWake` type.

// Unsafe code is allowed only on the items that build and implement the
// waker vtable, each marked `#[allow(unsafe_code)]`.
#![deny(unsafe_code)]

use std::future::Future;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::pin::{Pin, pin};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::thread;
use std::time::{Duration, Instant};

/// Something that can be woken, shared behind an [`Arc`].
///
/// Implement `wake_by_ref`; [`waker_from_arc`] turns an `Arc` of your type
/// into a standard [`Waker`]. (The standard library has `std::task::Wake`
/// for exactly this; we write our own to see the vtable it hides.)
pub trait ArcWake: Send + Sync + 'static {
    /// Wakes without giving up this reference.
    fn wake_by_ref(this: &Arc<Self>);

    /// Wakes and gives up this reference. The default forwards to
    /// [`ArcWake::wake_by_ref`] and then drops the `Arc`.
    fn wake(this: Arc<Self>) {
        Self::wake_by_ref(&this);
    }
}

/// Turns an `Arc<W>` into a [`Waker`]. The `Waker` owns the `Arc`: the
/// strong count stays the same, the reference just changes hands.
#[allow(unsafe_code)] // builds a `Waker` from our vtable: the lesson itself
pub fn waker_from_arc<W: ArcWake>(arc: Arc<W>) -> Waker {
    let data = Arc::into_raw(arc).cast::<()>();
    // The vtable for `W` treats `data` as exactly what it is, an `Arc<W>`,
    // and balances the strong count as the module docs' table says.
    // SAFETY: `data` came from `Arc::<W>::into_raw` and is paired with `W`'s
    // vtable; `W: Send + Sync` makes it fine to wake from any thread.
    unsafe { Waker::from_raw(RawWaker::new(data, VTable::<W>::get())) }
}

/// A [`Waker`] that borrows an `Arc<W>` instead of owning a count of it.
///
/// An executor builds one for every poll; borrowing saves an atomic
/// increment and decrement per poll. It derefs to `&Waker`, and it is never
/// dropped as a `Waker` (that would drop a count it never took).
pub struct WakerRef<'a> {
    /// Never dropped as a `Waker`: that would run the vtable's `drop`, −1,
    /// on a count this borrow never took.
    waker: ManuallyDrop<Waker>,
    /// Ties the `WakerRef` to the borrow of the `Arc`, so it cannot outlive
    /// the value its raw pointer points into.
    _arc: PhantomData<&'a ()>,
}

/// Borrows `arc` as a [`Waker`] for as long as the borrow lives.
#[allow(unsafe_code)] // builds a borrowed `Waker` from our vtable
pub fn waker_ref<W: ArcWake>(arc: &Arc<W>) -> WakerRef<'_> {
    let data = Arc::as_ptr(arc).cast::<()>();
    // The waker sits in `ManuallyDrop`, so its `drop` (−1) never runs for the
    // count it did not take; `clone` (+1) and `wake_by_ref` (0) are right on
    // a borrowed pointer, and a by-value `wake` is impossible on a `&Waker`.
    // SAFETY: `data` points into a live `Arc<W>` that the borrow `'_` keeps
    // alive as long as this `WakerRef`, and is paired with `W`'s vtable.
    let waker = unsafe { Waker::from_raw(RawWaker::new(data, VTable::<W>::get())) };
    WakerRef {
        waker: ManuallyDrop::new(waker),
        _arc: PhantomData,
    }
}

impl Deref for WakerRef<'_> {
    type Target = Waker;
    fn deref(&self) -> &Waker {
        &self.waker
    }
}

/// The four vtable functions for one `W`, and the one table that holds them.
///
/// **One address per waker kind.** [`Waker::will_wake`] says "same waker"
/// only when both the data pointer *and the vtable's address* are equal, and
/// every "keep the stored waker if it will wake the same task" shortcut (the
/// timer's, the `JoinHandle`'s, `gather`'s) rests on it. So every waker for
/// one `W` must point at the *same* table: the one `waker_from_arc` and
/// `waker_ref` hand out, and the one `clone_raw` hands to each clone.
///
/// Rust has no generic `static` (`static VTABLE<W>` is not allowed), so the
/// table is an associated `const`, and `&Self::VTABLE` is a constant the
/// compiler places in memory for us. A constant is *not* promised one
/// address: every compiled copy of a function that takes `&Self::VTABLE`
/// may get its own copy of the table. In a release build, small functions
/// are copied into each code-generation unit that calls them, so the waker
/// a task is polled with and a clone of it made in the timer's code pointed
/// at two equal tables at two addresses, and `will_wake` said "no" on every
/// re-poll (correct, but a clone and a drop each time).
///
/// The cure is to take the address in exactly one place, [`VTable::get`],
/// and to forbid copying that place: `#[inline(never)]` keeps one compiled
/// instance of `get::<W>` per crate, so one table, one address. Every path
/// below asks `get` and never names `VTABLE` itself. (Two crates that both
/// make wakers for the same `W` may still each have their instance; then
/// `will_wake` across them answers "no", which only costs a clone. A
/// non-generic waker could use a real `static`; the task waker of chapter 5
/// is generic over its future, so this is the tool that fits all.)
struct VTable<W>(PhantomData<W>);

// The four functions are `unsafe fn` because `RawWakerVTable` demands it:
// each trusts that `data` is the pointer it was built with.
#[allow(unsafe_code)]
impl<W: ArcWake> VTable<W> {
    /// The table's contents. Never take `&VTABLE` anywhere but in `get`.
    const VTABLE: RawWakerVTable = RawWakerVTable::new(
        Self::clone_raw,
        Self::wake_raw,
        Self::wake_by_ref_raw,
        Self::drop_raw,
    );

    /// The one address of `W`'s table. The `#[inline(never)]` is load
    /// bearing: inlined, each copy of this function could carry its own
    /// copy of the table (see the type's docs), and `will_wake` would fail.
    #[inline(never)]
    fn get() -> &'static RawWakerVTable {
        &Self::VTABLE
    }

    /// `clone`: one more owner (+1), and a new `RawWaker` with the same
    /// pointer and table.
    ///
    /// # Safety
    /// `data` must point to the value inside a live `Arc<W>` (from
    /// `Arc::<W>::into_raw`, or `Arc::as_ptr` of an `Arc` that outlives the
    /// call). The new `RawWaker` owns the count this adds, and must be given
    /// back through `wake_raw` or `drop_raw` exactly once.
    unsafe fn clone_raw(data: *const ()) -> RawWaker {
        // SAFETY: the waker machinery only calls us with the pointer we gave
        // it, which came from `Arc::<W>::into_raw` or `Arc::as_ptr` of a live
        // `Arc<W>`; incrementing its strong count is therefore sound.
        unsafe { Arc::increment_strong_count(data.cast::<W>()) };
        RawWaker::new(data, Self::get())
    }

    /// `wake`: consumes this waker's count (−1) after waking.
    ///
    /// # Safety
    /// `data` must be a pointer from `Arc::<W>::into_raw` (or `clone_raw`)
    /// that owns one strong count, and that count must not be used again
    /// afterwards: this call gives it back.
    unsafe fn wake_raw(data: *const ()) {
        // SAFETY: a by-value `wake` owns one strong count (it came from
        // `into_raw` or from `clone_raw`); `from_raw` takes that count back,
        // and dropping the `Arc` at the end of `W::wake` releases it.
        let arc = unsafe { Arc::from_raw(data.cast::<W>()) };
        W::wake(arc);
    }

    /// `wake_by_ref`: wakes through a borrow; the count is unchanged (0).
    ///
    /// # Safety
    /// `data` must point to the value inside an `Arc<W>` that stays alive
    /// for the whole call. No count is taken or given back.
    unsafe fn wake_by_ref_raw(data: *const ()) {
        // SAFETY: the pointer is a live `Arc<W>`'s; we rebuild the `Arc` to
        // call `wake_by_ref` on it, but inside `ManuallyDrop`, so its count
        // is not released: the caller still owns it.
        let arc = ManuallyDrop::new(unsafe { Arc::from_raw(data.cast::<W>()) });
        W::wake_by_ref(&arc);
    }

    /// `drop`: gives up this waker's count (−1).
    ///
    /// # Safety
    /// As for `wake_raw`: `data` owns one strong count of an `Arc<W>`, and
    /// nobody uses that count after this call, which releases it (and frees
    /// the `W` if it was the last).
    unsafe fn drop_raw(data: *const ()) {
        // SAFETY: a waker being dropped owns one strong count, taken by
        // `into_raw` or `clone_raw`; this gives exactly that one back.
        unsafe { Arc::decrement_strong_count(data.cast::<W>()) };
    }
}

/// A one-bit "you have been woken" flag a thread can sleep on.
///
/// `notify` sets the flag and wakes the sleeper; `wait` sleeps until the
/// flag is set and clears it. Because the flag is checked under the lock
/// before sleeping, a `notify` that comes *before* `wait` is not lost: `wait`
/// returns at once. A bare `thread::park` has no such memory of its own
/// beyond one token, and is easy to misuse; a flag we can read is clearer.
#[derive(Debug, Default)]
pub struct Signal {
    /// The flag: set by `notify`, cleared by `wait`. Under a mutex so that
    /// "check it, then sleep" is one step a `notify` cannot slip between.
    notified: Mutex<bool>,
    /// Where `wait` sleeps while the flag is clear.
    cond: Condvar,
}

impl Signal {
    /// A signal that has not been notified.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the flag and wakes a thread sleeping in [`Signal::wait`].
    pub fn notify(&self) {
        let mut notified = lock(&self.notified);
        if !*notified {
            *notified = true;
            self.cond.notify_one();
        }
    }

    /// Sleeps until the flag is set, then clears it.
    pub fn wait(&self) {
        let mut notified = lock(&self.notified);
        while !*notified {
            notified = self
                .cond
                .wait(notified)
                .unwrap_or_else(|poison| poison.into_inner());
        }
        *notified = false;
    }
}

impl ArcWake for Signal {
    fn wake_by_ref(this: &Arc<Self>) {
        this.notify();
    }
}

/// Locks a mutex, shrugging off poison: our critical sections leave the
/// data consistent even if a panic unwinds through them. Every later
/// chapter locks through this one function (and the tests too), so a
/// panic in user code never leaves a lock unusable.
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// Runs a future to completion on the current thread and returns its output:
/// asyncio's `loop.run_until_complete(fut)` (E000-2, E003-5) for one future.
///
/// Polls once; while the future is `Pending`, sleeps on a [`Signal`] until
/// the future's waker is woken, then polls again. Nothing spins.
///
/// ```
/// let answer = tiny_asyncio::block_on(async { 6 * 7 });
/// assert_eq!(answer, 42);
/// ```
///
/// # Panics
/// Inside another executor on the same thread (another `block_on`, or
/// chapter 5's running event loop): blocking there would stop everything
/// that executor runs, and on a virtual clock nobody would ever move time.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let _entered = enter_executor("block_on");
    let mut future = pin!(future);
    let signal = Arc::new(Signal::new());
    let waker = waker_ref(&signal);
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        signal.wait();
    }
}

thread_local! {
    /// The executor running on this thread, if any (see [`enter_executor`]).
    static EXECUTOR: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
}

/// Marks this thread as running an executor named `name` until the guard is
/// dropped. An executor blocks its thread while it waits, so a second one
/// started inside the first (from one of its futures) would stop the first
/// dead: refuse it, with a message that says so.
///
/// # Panics
/// If an executor is already running on this thread.
pub fn enter_executor(name: &'static str) -> ExecutorGuard {
    EXECUTOR.with(|running| {
        if let Some(outer) = running.get() {
            panic!(
                "{name}: this thread is already running an executor ({outer}), and blocking \
                 inside it would stop every future it drives (asyncio: RuntimeError: This event \
                 loop is already running). Await the future instead, or spawn it"
            );
        }
        running.set(Some(name));
    });
    ExecutorGuard {
        _not_send: PhantomData,
    }
}

/// Clears the "executor running" mark of [`enter_executor`] when dropped.
pub struct ExecutorGuard {
    /// The mark is per thread: the guard must stay on it.
    _not_send: PhantomData<*const ()>,
}

impl Drop for ExecutorGuard {
    fn drop(&mut self) {
        EXECUTOR.with(|running| running.set(None));
    }
}

/// A sleep that starts one OS thread to do its waiting.
///
/// On its first poll it starts a thread that sleeps until the deadline,
/// marks the sleep done and wakes the *latest* waker it was given (a future
/// may move between tasks, and only the waker from the latest poll is sure
/// to reach whoever polls it now). Dropping it early lets the thread finish
/// its nap and then find nobody to wake.
///
/// Naive on purpose: one thread per sleep. Chapter 4 serves every sleep from
/// one timer thread.
#[derive(Debug)]
pub struct ThreadSleep {
    /// When to wake: fixed at `new`, on the real clock.
    deadline: Instant,
    /// `None` until the first poll starts the thread; then what the future
    /// and its thread share. (A sleep never polled starts no thread.)
    shared: Option<Arc<Mutex<SleepShared>>>,
}

/// What a [`ThreadSleep`] and its thread share.
#[derive(Debug, Default)]
struct SleepShared {
    /// The thread's nap is over: the next poll is `Ready`.
    done: bool,
    /// The latest poll's waker, for the thread to wake; taken back (`None`)
    /// by a drop, so that a dropped sleep wakes nobody.
    waker: Option<Waker>,
}

impl ThreadSleep {
    /// A sleep of `duration`, measured from now. Durations too large for an
    /// `Instant` are clamped to about a hundred years (they never end in
    /// practice, and nothing panics).
    pub fn new(duration: Duration) -> Self {
        let now = Instant::now();
        let deadline = now
            .checked_add(duration)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
        ThreadSleep {
            deadline,
            shared: None,
        }
    }
}

impl Drop for ThreadSleep {
    fn drop(&mut self) {
        // Take the waker back, so that the thread, when its nap ends, finds
        // nobody to wake (and the waker, which may keep a whole task alive,
        // is released now rather than at the deadline).
        if let Some(shared) = &self.shared {
            let waker = lock(shared).waker.take();
            // Dropped outside the lock: dropping a waker may run arbitrary code.
            drop(waker);
        }
    }
}

/// `ThreadSleep::new(duration)`, as a function to read like `asyncio.sleep`.
pub fn thread_sleep(duration: Duration) -> ThreadSleep {
    ThreadSleep::new(duration)
}

impl Future for ThreadSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &self.shared {
            None => {
                if Instant::now() >= self.deadline {
                    return Poll::Ready(());
                }
                let shared = Arc::new(Mutex::new(SleepShared {
                    done: false,
                    waker: Some(cx.waker().clone()),
                }));
                let deadline = self.deadline;
                let for_thread = Arc::clone(&shared);
                thread::Builder::new()
                    .name("tiny-asyncio-thread-sleep".into())
                    .spawn(move || {
                        // `thread::sleep` may wake early on some platforms; loop.
                        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                            if left.is_zero() {
                                break;
                            }
                            thread::sleep(left);
                        }
                        let waker = {
                            let mut shared = lock(&for_thread);
                            shared.done = true;
                            shared.waker.take()
                        };
                        // Wake outside the lock: the waker may run arbitrary code.
                        if let Some(waker) = waker {
                            waker.wake();
                        }
                    })
                    .expect("ThreadSleep: the OS refused to start a timer thread");
                self.shared = Some(shared);
                Poll::Pending
            }
            Some(shared) => {
                let mut shared = lock(shared);
                if shared.done {
                    return Poll::Ready(());
                }
                // Keep only the latest poll's waker.
                match &shared.waker {
                    Some(old) if old.will_wake(cx.waker()) => {}
                    _ => shared.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}
