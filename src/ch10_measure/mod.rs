//! # Chapter 10 — what we gained: threads against tasks, measured
//!
//! **The question.** The documents make two claims that they never measure.
//! Seed 004 (E004-7): threads cost context switches and memory, while
//! asyncio, one thread and an event loop, is "far lighter". Seed 001
//! (E001-1) draws three pictures: *sequential* (one job after another),
//! *concurrent* (jobs take turns on one core, with a context switch at each
//! turn) and *parallel* (jobs at the same time on several cores). With the
//! whole machine built (chapters 3 to 9), we can run both and look.
//!
//! **Lighter, measured (E004-7).** [`sleeping_threads`] starts `N` OS
//! threads that each sleep; [`sleeping_tasks`] spawns `N` tasks on one event
//! loop that each `sleep`. Both report a [`CrowdReport`]: how long starting
//! them all took, the wall time until all were done, the peak memory of the
//! process, and how many context switches the threads involved made. Where
//! the figures come from (Linux's `/proc`, read by `proc.rs`):
//!
//! * **Peak memory** is `VmHWM` in `/proc/self/status`: the high-water mark
//!   of the *process's* resident memory. A process has one such mark, so a
//!   fair comparison runs each measurement in a fresh process (the example
//!   re-executes itself once per row). It counts user-space memory only:
//!   each thread also costs the kernel a kernel stack (16 KiB on x86-64)
//!   and its bookkeeping, which no `/proc/self` field shows, so threads are
//!   heavier than the table says. `VmPeak` shows the *reserved* address
//!   space: each thread reserves a whole stack (2 MiB by default in Rust).
//! * **Context switches** are `voluntary_ctxt_switches` (the thread blocked:
//!   slept, waited on a lock) plus `nonvoluntary_ctxt_switches` (the kernel
//!   took the CPU away). The kernel counts them **per thread**, and
//!   `/proc/self/status` shows only the main thread's; a thread's count
//!   vanishes from `/proc` when it exits. So a sleeping thread reads its own
//!   `/proc/thread-self/status` just before it ends, and the task side sums
//!   `/proc/self/task/*/status` over every thread alive (the loop's thread
//!   and its timer thread) at the end of the run.
//!
//! **Sequential, concurrent, parallel, drawn (E001-1).** Three jobs of 3, 2
//! and 1 steps (the users example's look-ups, [`E001_1_STEPS`]), each step
//! one unit of [`Work`]: either *waiting* (a sleep, like I/O) or
//! *computing* (a fixed amount of CPU work, [`spin`], sized by [`calibrate`]
//! to take one unit on an idle core, so that a busy machine stretches the
//! picture instead of shrinking the work). [`sequential`] awaits the jobs
//! one after another; [`concurrent`] spawns them as tasks on the one loop
//! thread; [`parallel`] gives each job to a pool thread (chapter 9). Each
//! returns a [`JobsRun`] of when every step ran, and [`draw`] turns
//! timelines into a text picture. What the pictures show:
//!
//! * waiting jobs: sequential takes the **sum** (6 units), concurrent the
//!   **max** (3), parallel the max too, but with a thread per job;
//! * computing jobs: concurrent on one thread takes the **sum** again (a
//!   task that computes holds the loop, EX-1; taking turns only reorders the
//!   steps), and only parallel threads make computing faster, up to the
//!   number of cores. (Python's threads would not: the GIL lets one of them
//!   compute at a time. Rust's do.)
//!
//! **Limits.** The `/proc` readers work on Linux only (elsewhere they give
//! an `io::Error`). The figures belong to the machine and the build (a debug
//! build spawned tasks about three times slower than `--release` on the
//! machine the book was measured on); the tests check only the relations
//! that must hold anywhere (sum against max, at least one switch per
//! sleeping thread), never a figure. Sequential and concurrent runs read
//! the loop's clock, so on a virtual clock they are exact; pool threads
//! live outside the loop's time, so [`parallel`] reads the wall clock.
//!
//! **What comes after.** This is the last chapter: the crate root now
//! re-exports the finished runtime, and `CHAPTERS.md`'s table maps every
//! asyncio name to ours and to tokio's, for when you move on.
//!
//! ## How this folder reads
//!
//! 1. `mod.rs` (this file): the question, and what the measurements show.
//! 2. `proc.rs`: the instruments. [`status_field`] and [`ProcStatus`] read
//!    Linux's `/proc/.../status`, [`switches_of_live_threads`] sums the
//!    context switches of every thread alive.
//! 3. `crowd.rs`: E004-7. [`sleeping_threads`] against [`sleeping_tasks`],
//!    each measured with `proc.rs` into a [`CrowdReport`].
//! 4. `three_ways.rs`: E001-1. The jobs of [`E001_1_STEPS`] run
//!    [`sequential`], [`concurrent`] and [`parallel`], and the timelines
//!    [`draw`]n as text. It needs only the earlier chapters' runtime.

#![forbid(unsafe_code)]

mod crowd;
mod proc;
mod three_ways;

pub use crowd::{CrowdReport, Sleepers, sleeping_tasks, sleeping_threads};
pub use proc::{ESRCH, MissingField, ProcStatus, status_field, switches_of_live_threads};
pub use three_ways::{
    COLUMNS_PER_UNIT, E001_1_STEPS, JobsRun, TimedStep, Way, Work, calibrate, concurrent, draw,
    parallel, sequential, spin,
};
