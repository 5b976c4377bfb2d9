//! The book's only foreign function: `poll(2)`, declared by hand.
//!
//! std gives us non-blocking sockets (`set_nonblocking`, and `WouldBlock`
//! when an operation would have to wait) but no way to wait for *many*
//! sockets at once. The C library has it: `poll(2)` takes an array of
//! "this descriptor, these events" and sleeps until one of them happens or
//! a timeout passes. This file declares that one function, the struct it
//! reads and writes, and the event bits, exactly as the C headers do, and
//! wraps them in one safe function, [`poll`]. Nothing else in the crate
//! touches `extern "C"`.
//!
//! Why not the `libc` crate? The house rule is "no dependencies" (what std
//! lacks, we write), and one declaration is small enough to check by eye
//! against `man 2 poll` and `/usr/include/bits/poll.h`.
//!
//! **Other platforms.** The layout of `struct pollfd` and the values of
//! the `POLL*` bits below are the same on Linux, the BSDs and macOS; only
//! the integer type of the count (`nfds_t`) differs, hence the `cfg`.
//! Windows has no `poll` on sockets in this form: it would need
//! `WSAPoll` from `ws2_32` (same idea, other names and a `SOCKET` handle
//! instead of an `int`), or, at scale, I/O completion ports, which report
//! *finished* operations rather than readiness and would change the
//! socket futures' shape. That is why the whole chapter is `#[cfg(unix)]`.

#![deny(unsafe_code)]

use std::io;
use std::os::raw::{c_int, c_short};
use std::time::Duration;

/// C's `nfds_t`: `unsigned long` in glibc and musl on Linux…
#[cfg(target_os = "linux")]
type NfdsT = std::os::raw::c_ulong;
/// …and `unsigned int` on the BSDs and macOS.
#[cfg(not(target_os = "linux"))]
type NfdsT = std::os::raw::c_uint;

/// C's `struct pollfd`, field for field (`#[repr(C)]`: same order, same
/// sizes, same padding as the C compiler lays it out).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollFd {
    /// The descriptor to watch. A negative one is skipped by the kernel.
    pub fd: c_int,
    /// What we ask about: a mix of [`POLLIN`] and [`POLLOUT`].
    pub events: c_short,
    /// What happened, filled in by the kernel: any of the bits below,
    /// including [`POLLERR`], [`POLLHUP`] and [`POLLNVAL`], which are
    /// reported even though nobody asks for them.
    pub revents: c_short,
}

/// There is data to read (or, on a listening socket, a connection to
/// accept; or the peer closed its side, so a read returns 0 at once).
pub const POLLIN: c_short = 0x001;
/// Writing now would not block: the send buffer has room (or a connect
/// finished).
pub const POLLOUT: c_short = 0x004;
/// An error is pending on the socket; the next read or write reports it.
pub const POLLERR: c_short = 0x008;
/// Hung up: the connection is closed in both directions.
pub const POLLHUP: c_short = 0x010;
/// The descriptor is not open. Our registry forgets a socket before it is
/// closed, so seeing this is a bug; the selector reports it loudly.
pub const POLLNVAL: c_short = 0x020;

// SAFETY: the declaration matches `<poll.h>`: `poll` takes a pointer to
// an array of `struct pollfd` (whose layout `PollFd` repeats), its length
// as an `nfds_t` and a timeout in milliseconds as an `int`, and returns an
// `int`. A wrong declaration here would be undefined behaviour at every call.
#[allow(unsafe_code)]
unsafe extern "C" {
    /// `int poll(struct pollfd *fds, nfds_t nfds, int timeout);` from
    /// `<poll.h>`. `timeout` is in milliseconds, `-1` meaning "no limit"
    /// and `0` meaning "just look". Returns how many entries have a
    /// non-zero `revents`, or `-1` with `errno` set.
    #[link_name = "poll"]
    fn c_poll(fds: *mut PollFd, nfds: NfdsT, timeout: c_int) -> c_int;
}

/// A timeout as `poll(2)` wants it: whole milliseconds, rounded *up* (so a
/// wait never ends before its deadline, the timer wheel's rule), `-1` for
/// none, and at most `c_int::MAX` (about 24 days; a longer wait just
/// comes back early and is asked again).
pub fn timeout_ms(timeout: Option<Duration>) -> c_int {
    match timeout {
        None => -1,
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000);
            c_int::try_from(ms).unwrap_or(c_int::MAX)
        }
    }
}

/// Waits until one of `fds` is ready or `timeout` passes, and returns how
/// many entries the kernel marked in `revents`. A signal that interrupts
/// the wait (`EINTR`) counts as "nothing ready": the caller looks again.
#[allow(unsafe_code)]
pub fn poll(fds: &mut [PollFd], timeout: Option<Duration>) -> io::Result<usize> {
    for entry in fds.iter_mut() {
        entry.revents = 0;
    }
    let count = NfdsT::try_from(fds.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "poll: more descriptors than nfds_t can count",
        )
    })?;
    // `fds` is a valid, exclusively borrowed slice of `#[repr(C)]`
    // `PollFd`s, the very layout of C's `struct pollfd`. (An empty slice
    // passes a dangling but non-null, aligned pointer with `count` 0, which
    // `poll` never dereferences.)
    // SAFETY: the pointer and `count` describe exactly that slice, so the
    // kernel reads and writes only inside it; `poll` keeps no pointer after
    // it returns, and the borrow outlives the call.
    let ready = unsafe { c_poll(fds.as_mut_ptr(), count, timeout_ms(timeout)) };
    if ready < 0 {
        let error = io::Error::last_os_error();
        if error.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(error);
    }
    // Non-negative, and at most `fds.len()`: it fits in a usize.
    Ok(ready as usize)
}
