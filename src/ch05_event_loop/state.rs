//! The state bits of a task, and the rules that govern them.
//!
//! Read this file second, after `mod.rs`: it is short, and every other file
//! of the chapter obeys it. (smol's `async-task` keeps its task states in a
//! file of their own, `state.rs`, for the same reason: one place to look.)
//!
//! All five bits live in one `AtomicU8` in the task's header (`Header`, in
//! `task.rs`, the next file), because wakes arrive from any thread while
//! the loop thread polls: one atomic operation reads and changes them all
//! at once. Each bit below says who sets it, who clears it, and what it
//! forbids. The life of a task, in the bits it carries (`S` SCHEDULED, `R`
//! RUNNING, `C` COMPLETE; "waiting" is no bit at all: the task is in no
//! queue, and only a wake brings it back):
//!
//! ```text
//!  spawn        pass takes it     poll returns Pending         wake
//! ───────▶ S ─────────────────▶ R ──────────────────▶ waiting ───────▶ S ─▶ …
//!                                 │  (woken during the poll: R+S,
//!                                 │   so Pending re-queues it once)
//!                                 └─ poll returns Ready ─▶ C, then OUTCOME
//! ```
//!
//! `CANCELLED` may join at any point before `C`: the next time the loop takes
//! the task from the queue it drops the future instead of polling it (a
//! waiting task is queued by the cancel itself, so that time comes).
//!
//! The property tests in `tests/ch05_properties.rs` check these rules on
//! random programs (at most once in the queue, exactly one more poll for
//! wakes during a poll, never polled after `C`). Seen from outside, in a
//! recording of what the loop did, the same rules are checked by one
//! checker, [`Trace::check_invariants`](crate::trace::Trace::check_invariants):
//! the pictures' tests and the random programs of `tests/model.rs` both
//! call it, so a rule written here is checked in one place.

/// The task is in the run queue, or will be put back there when its
/// current poll ends. *Rule:* every wake (and a cancel) sets it, but only
/// the one that finds the task waiting (none of SCHEDULED, RUNNING,
/// COMPLETE) pushes it; a wake that finds it set already pushes nothing
/// (so a task is in the queue at most once). Cleared by the loop just
/// before the poll starts, so a wake during the poll sets it again.
pub const SCHEDULED: u8 = 1 << 0;
/// The loop is polling the task right now. *Rule:* a wake while RUNNING
/// sets SCHEDULED but does not enqueue; when the poll returns `Pending`
/// the loop sees SCHEDULED and enqueues the task once: exactly one more
/// poll, however many wakes came during this one.
pub const RUNNING: u8 = 1 << 1;
/// The task is done with its future: it returned `Ready`, panicked, or is
/// being dropped (cancelled, or the loop closes). Set *before* the future
/// is dropped; OUTCOME says when that is over. *Rule:* final. A COMPLETE
/// task is never polled again, and wakes push nothing.
pub const COMPLETE: u8 = 1 << 2;
/// Someone asked to cancel the task (`TaskRef::cancel`). *Rule:* the next
/// time the loop takes the task from the queue it drops the future instead
/// of polling it, and the task becomes COMPLETE. Only the loop thread
/// drops the future: the canceller may be anywhere, mid-poll included, so
/// it only sets this bit.
pub const CANCELLED: u8 = 1 << 3;
/// The task's outcome (output, panic or "cancelled") is stored and its
/// future is gone. *Rule:* set last, after the future was dropped, so
/// whoever sees it (a `JoinHandle`'s `is_finished`) knows that nothing
/// of the task's future is still alive.
pub const OUTCOME: u8 = 1 << 4;
