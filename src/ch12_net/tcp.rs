//! `TcpListener` and `TcpStream`: std's sockets, made non-blocking, with
//! futures that wait on the loop's selector instead of the thread.
//!
//! Every socket operation here follows one pattern, `Source::poll_io`:
//!
//! 1. **Try** the operation on the non-blocking socket (std does the
//!    system call).
//! 2. It worked, or failed for real: that is the answer.
//! 3. It said `WouldBlock`: **register** the task's waker with the running
//!    loop's selector, for this socket and this direction, and return
//!    `Pending`. When `poll(2)` sees the socket ready, the selector wakes
//!    the task, and the next poll goes back to step 1.
//!
//! There is no step "check readiness first": `poll(2)` is level-triggered
//! (it reports a socket as readable for as long as data is waiting), so a
//! byte that arrives between step 1 and step 3 is seen by the very next
//! `select`, and no wake can be lost.
//!
//! A socket remembers which loop's selector it registered with. Polled
//! from another loop (moved to another thread, or kept across two
//! `run_until_complete` of different loops), it **follows the polling
//! loop**: it forgets its entry in the old selector and registers with the
//! new one, so nothing waits on a loop that is not looking. Polled where
//! no loop runs at all (chapter 3's `block_on`), it panics with a message
//! that says so, rather than hang.

#![forbid(unsafe_code)]

use std::fmt;
use std::future::Future;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{self, Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::selector::{Direction, Selector};
use crate::ch05_event_loop::{Handle, expect_running_loop};
use crate::ch09_pool::run_in_executor;

/// The running loop's selector, made on first use.
///
/// It is one of the loop's resources (chapter 5's [`Handle::resource`]),
/// so it is dropped when the loop closes.
///
/// # Panics
/// Outside a running event loop: `operation` is named in the message.
pub fn running_selector(operation: &str) -> io::Result<Selector> {
    let handle = expect_running_loop(operation);
    selector_of(&handle)
}

/// The selector of the loop behind `handle`, made on first use.
pub fn selector_of(handle: &Handle) -> io::Result<Selector> {
    let slot: Rc<LoopSelector> = handle.resource(|| LoopSelector {
        selector: std::cell::OnceCell::new(),
    });
    if let Some(selector) = slot.selector.get() {
        return Ok(selector.clone());
    }
    let selector = Selector::new().map_err(|error| {
        io::Error::new(
            error.kind(),
            format!(
                "the event loop could not make its selector's wake-up pipe ({error}); \
                 the process may be out of file descriptors (ulimit -n)"
            ),
        )
    })?;
    // From now on the loop idles in this selector's `poll(2)`, and wakes
    // from other threads write to its self-pipe (chapter 5's `Idler` seam).
    // Installed once per loop; if someone else installed an idler first,
    // the loop would never look at our sockets: say so rather than hang.
    if handle.set_idler(Box::new(selector.clone())).is_err() {
        return Err(io::Error::other(
            "the event loop already has another idler installed (Handle::set_idler), so it \
             would never poll sockets; a loop can serve chapter 12's sockets only if its \
             selector is its idler",
        ));
    }
    let selector = slot.selector.get_or_init(|| selector).clone();
    Ok(selector)
}

/// The per-loop resource that holds the loop's selector (made lazily: a
/// loop that never touches a socket never opens its self-pipe).
struct LoopSelector {
    selector: std::cell::OnceCell<Selector>,
}

/// What every socket keeps besides the std socket: its descriptor number
/// and the selector it is registered with. Dropped *before* the socket
/// (field order in [`TcpStream`] and [`TcpListener`]), so the selector
/// forgets the descriptor before it is closed.
struct Source {
    fd: RawFd,
    /// The selector of the loop that last waited on this socket; `None`
    /// until the first `WouldBlock`.
    selector: Option<Selector>,
}

impl Source {
    fn new(fd: RawFd) -> Source {
        Source { fd, selector: None }
    }

    /// The running loop's selector, moving this socket's registration
    /// there if it was made in another loop ("follow the polling loop").
    fn attach(&mut self, operation: &str) -> io::Result<&Selector> {
        // Panics outside a running loop, naming `operation`: waiting there
        // would hang, since no loop would ever look at this socket.
        let current = running_selector(operation)?;
        if let Some(old) = &self.selector {
            if !old.same_selector(&current) {
                // Registered with another loop's selector: leave it, so no
                // waker of ours stays there (that loop may never look
                // again, or may outlive us), and move here.
                old.forget(self.fd);
            }
        }
        Ok(self.selector.insert(current))
    }

    /// The pattern of the module doc: try, and on `WouldBlock` register
    /// the waker and return `Pending`.
    fn poll_io<T>(
        &mut self,
        operation: &str,
        direction: Direction,
        cx: &mut Context<'_>,
        mut attempt: impl FnMut() -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        // A loop only for `Interrupted`; every other outcome returns.
        loop {
            match attempt() {
                // A signal interrupted the call: just try again.
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) if error.kind() == ErrorKind::WouldBlock => {
                    let fd = self.fd;
                    match self.attach(operation) {
                        Ok(selector) => selector.register(fd, direction, cx.waker()),
                        Err(error) => return Poll::Ready(Err(error)),
                    }
                    return Poll::Pending;
                }
                done => return Poll::Ready(done),
            }
        }
    }

    /// The future that waited in `direction` is gone or done: remove its
    /// waker (a dropped future must not be woken, and must not keep its
    /// task alive through the registry).
    fn deregister(&self, direction: Direction) {
        if let Some(selector) = &self.selector {
            selector.deregister(self.fd, direction);
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        if let Some(selector) = &self.selector {
            selector.forget(self.fd);
        }
    }
}

/// Adds to a socket error what the operation was, what asyncio would have
/// raised, and what to do. The error's kind is kept, so code can still
/// `match` on it.
fn explain(error: io::Error, operation: &str) -> io::Error {
    let (asyncio, fix) = match error.kind() {
        ErrorKind::ConnectionRefused => (
            "ConnectionRefusedError: [Errno 111] Connect call failed",
            "nothing listens at that address: start the server first, or check the port",
        ),
        ErrorKind::AddrInUse => (
            "OSError: [Errno 98] address already in use",
            "another socket listens there: stop it, or bind port 0 and read local_addr() \
             for the port the system chose",
        ),
        ErrorKind::AddrNotAvailable => (
            "OSError: [Errno 99] Cannot assign requested address",
            "bind an address of this machine, such as 127.0.0.1",
        ),
        ErrorKind::ConnectionReset => (
            "ConnectionResetError: [Errno 104] Connection reset by peer",
            "the peer closed the connection abruptly (it crashed, or closed with unread \
             data): treat it as the end of this connection",
        ),
        ErrorKind::BrokenPipe => (
            "BrokenPipeError: [Errno 32] Broken pipe",
            "the peer has closed its side: stop writing to this connection",
        ),
        _ => return error,
    };
    io::Error::new(
        error.kind(),
        format!("{operation}: {error} (asyncio: {asyncio}); {fix}"),
    )
}

/// A TCP socket listening for connections: asyncio's server socket, as
/// `asyncio.start_server` makes it. Connections come out of
/// [`TcpListener::accept`].
///
/// ```
/// use tiny_asyncio::{TcpListener, TcpStream, run, spawn};
///
/// run(async {
///     let mut listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     let server = spawn(async move {
///         let (mut stream, _peer) = listener.accept().await.unwrap();
///         stream.write_all(b"hello").await.unwrap();
///     });
///     let mut client = TcpStream::connect(addr).await.unwrap();
///     let mut buf = [0u8; 5];
///     let mut got = 0;
///     while got < 5 {
///         got += client.read(&mut buf[got..]).await.unwrap();
///     }
///     assert_eq!(&buf, b"hello");
///     server.await.unwrap();
/// });
/// ```
pub struct TcpListener {
    /// Declared first: dropped (forgotten by the selector) before the
    /// socket below is closed.
    source: Source,
    socket: net::TcpListener,
}

impl TcpListener {
    /// Binds a listening socket to `addr` (port 0: the system picks a free
    /// one; [`TcpListener::local_addr`] tells which). A plain function, as
    /// in std: binding never waits.
    ///
    /// # Errors
    /// The address is taken (`AddrInUse`), not this machine's, or cannot be
    /// resolved; the error says which and what to do.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let socket = net::TcpListener::bind(addr).map_err(|e| explain(e, "TcpListener::bind"))?;
        TcpListener::from_std(socket)
    }

    /// Takes a bound std listener (bound on another thread, say) and makes
    /// it non-blocking, for this crate's futures.
    pub fn from_std(socket: net::TcpListener) -> io::Result<TcpListener> {
        socket.set_nonblocking(true)?;
        Ok(TcpListener {
            source: Source::new(socket.as_raw_fd()),
            socket,
        })
    }

    /// The address the socket listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Waits for the next connection: asyncio's `await loop.sock_accept(s)`.
    /// The stream comes back non-blocking, ready for this crate's futures.
    ///
    /// `&mut self`: one accept at a time per listener, so that the one
    /// read waker the selector keeps for this socket is always the right
    /// one (two tasks accepting at once would take turns being forgotten).
    ///
    /// # Panics
    /// Polled outside a running event loop (it needs the loop's selector).
    pub fn accept(&mut self) -> Accept<'_> {
        Accept {
            listener: self,
            registered: false,
        }
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("addr", &self.socket.local_addr().ok())
            .field("fd", &self.source.fd)
            .finish()
    }
}

/// The future [`TcpListener::accept`] returns.
#[must_use = "futures do nothing unless awaited"]
pub struct Accept<'a> {
    listener: &'a mut TcpListener,
    /// Whether this future registered a waker, which its drop removes.
    registered: bool,
}

impl Future for Accept<'_> {
    type Output = io::Result<(TcpStream, SocketAddr)>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every field of `Accept` is `Unpin` (a reference and a bool), so
        // the pin can be looked through without `unsafe`.
        let this = &mut *self;
        // Borrow the two halves of the listener apart: the closure below
        // needs the socket while `poll_io` needs the source.
        let TcpListener { source, socket } = &mut *this.listener;
        // A listening socket is "readable" when a connection waits in its
        // backlog: `accept` then takes it without waiting.
        let poll = source.poll_io("TcpListener::accept", Direction::Read, cx, || {
            socket.accept()
        });
        match poll {
            Poll::Pending => {
                // Remember it for `Drop`: our waker is in the selector now.
                this.registered = true;
                Poll::Pending
            }
            Poll::Ready(Ok((stream, peer))) => {
                // Linux does not pass non-blocking on to accepted sockets.
                Poll::Ready(TcpStream::from_std(stream).map(|stream| (stream, peer)))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(explain(error, "TcpListener::accept"))),
        }
    }
}

impl Drop for Accept<'_> {
    fn drop(&mut self) {
        if self.registered {
            self.listener.source.deregister(Direction::Read);
        }
    }
}

/// A TCP connection: asyncio's `StreamReader` and `StreamWriter` in one,
/// or a socket used with `loop.sock_recv` and `loop.sock_sendall`.
///
/// Dropping it closes the connection (once: the std socket inside owns
/// the descriptor).
pub struct TcpStream {
    /// Declared first: dropped (forgotten by the selector) before the
    /// socket below is closed.
    source: Source,
    socket: net::TcpStream,
}

impl TcpStream {
    /// Connects to `addr`: asyncio's `await loop.sock_connect(s, addr)`,
    /// or the first half of `asyncio.open_connection(host, port)`.
    ///
    /// std has no non-blocking connect, so the (blocking) connect, and the
    /// name lookup before it, run on the loop's thread pool (chapter 9),
    /// as asyncio runs `getaddrinfo` in its executor. The loop serves other
    /// tasks meanwhile; on a virtual clock, time stands still until the
    /// connect is done.
    ///
    /// # Errors
    /// Nothing listens there (`ConnectionRefused`), or the address cannot be
    /// resolved; the error says which and what to do.
    ///
    /// # Panics
    /// Outside a running event loop (the thread pool belongs to a loop).
    pub async fn connect<A>(addr: A) -> io::Result<TcpStream>
    where
        A: ToSocketAddrs + Send + 'static,
    {
        // 1. The blocking part, on a pool thread. The job holds the loop's
        //    `KeepAwake` (chapter 9), so a virtual clock waits for it.
        let job = run_in_executor(move || net::TcpStream::connect(addr));
        // 2. Back on the loop: a connected socket, made non-blocking, or
        //    the error explained. A pool that could not run the job (the
        //    loop closing) is an error too, never a panic here.
        match job.await {
            Ok(Ok(socket)) => TcpStream::from_std(socket),
            Ok(Err(error)) => Err(explain(error, "TcpStream::connect")),
            Err(join_error) => Err(io::Error::other(format!(
                "TcpStream::connect: the thread pool job that connects did not finish \
                 ({join_error})"
            ))),
        }
    }

    /// Takes a connected std socket and makes it non-blocking, for this
    /// crate's futures.
    pub fn from_std(socket: net::TcpStream) -> io::Result<TcpStream> {
        socket.set_nonblocking(true)?;
        Ok(TcpStream {
            source: Source::new(socket.as_raw_fd()),
            socket,
        })
    }

    /// The address of the other end.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket.peer_addr()
    }

    /// This end's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Shuts down one or both directions: `Shutdown::Write` is asyncio's
    /// `writer.write_eof()`, the peer's reads then return 0 once they have
    /// read everything sent before. Never waits.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.socket.shutdown(how)
    }

    /// Sets `TCP_NODELAY` (no waiting to gather small writes into one
    /// segment): what a request-response protocol wants.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.socket.set_nodelay(nodelay)
    }

    /// The socket's descriptor number (for tests: it identifies the entry
    /// in the selector).
    pub fn raw_fd(&self) -> RawFd {
        self.source.fd
    }

    /// Reads what has arrived, up to `buf.len()` bytes, waiting until at
    /// least one byte has: asyncio's `await reader.read(n)` or
    /// `loop.sock_recv`. `Ok(0)` means the end of the stream (the peer shut
    /// down its writing side, or closed), or an empty `buf`.
    ///
    /// # Panics
    /// Polled outside a running event loop.
    pub fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> ReadFuture<'a> {
        ReadFuture {
            stream: self,
            buf,
            registered: false,
        }
    }

    /// Writes some of `buf`, waiting until the send buffer has room for at
    /// least one byte, and returns how many bytes it took (maybe fewer than
    /// `buf.len()`: the rest is the caller's to write again). asyncio's
    /// `loop.sock_send`.
    ///
    /// # Panics
    /// Polled outside a running event loop.
    pub fn write<'a>(&'a mut self, buf: &'a [u8]) -> WriteFuture<'a> {
        WriteFuture {
            stream: self,
            buf,
            registered: false,
        }
    }

    /// Writes all of `buf`, waiting for room as often as needed: asyncio's
    /// `writer.write(data); await writer.drain()`, or `loop.sock_sendall`.
    ///
    /// # Panics
    /// Polled outside a running event loop.
    pub fn write_all<'a>(&'a mut self, buf: &'a [u8]) -> WriteAll<'a> {
        WriteAll {
            stream: self,
            buf,
            registered: false,
        }
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.socket.local_addr().ok())
            .field("peer", &self.socket.peer_addr().ok())
            .field("fd", &self.source.fd)
            .finish()
    }
}

/// The future [`TcpStream::read`] returns.
#[must_use = "futures do nothing unless awaited"]
pub struct ReadFuture<'a> {
    stream: &'a mut TcpStream,
    buf: &'a mut [u8],
    /// Whether this future registered a waker, which its drop removes.
    registered: bool,
}

impl Future for ReadFuture<'_> {
    type Output = io::Result<usize>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let TcpStream { source, socket } = &mut *this.stream;
        let buf = &mut *this.buf;
        // std's `read` on a non-blocking socket: some bytes, 0 at the end
        // of the stream, or `WouldBlock` when nothing has arrived yet (then
        // `poll_io` registers us and we wait). A read that finds data never
        // touches the selector at all: the fast path is one system call.
        match source.poll_io("TcpStream::read", Direction::Read, cx, || socket.read(buf)) {
            Poll::Pending => {
                this.registered = true;
                Poll::Pending
            }
            Poll::Ready(result) => {
                Poll::Ready(result.map_err(|error| explain(error, "TcpStream::read")))
            }
        }
    }
}

impl Drop for ReadFuture<'_> {
    fn drop(&mut self) {
        if self.registered {
            self.stream.source.deregister(Direction::Read);
        }
    }
}

/// The future [`TcpStream::write`] returns.
#[must_use = "futures do nothing unless awaited"]
pub struct WriteFuture<'a> {
    stream: &'a mut TcpStream,
    buf: &'a [u8],
    /// Whether this future registered a waker, which its drop removes.
    registered: bool,
}

impl Future for WriteFuture<'_> {
    type Output = io::Result<usize>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let TcpStream { source, socket } = &mut *this.stream;
        let buf = this.buf;
        // The kernel copies what fits in the socket's send buffer and says
        // how much; `WouldBlock` only when not a single byte fits.
        match source.poll_io("TcpStream::write", Direction::Write, cx, || {
            socket.write(buf)
        }) {
            Poll::Pending => {
                this.registered = true;
                Poll::Pending
            }
            Poll::Ready(result) => {
                Poll::Ready(result.map_err(|error| explain(error, "TcpStream::write")))
            }
        }
    }
}

impl Drop for WriteFuture<'_> {
    fn drop(&mut self) {
        if self.registered {
            self.stream.source.deregister(Direction::Write);
        }
    }
}

/// The future [`TcpStream::write_all`] returns.
#[must_use = "futures do nothing unless awaited"]
pub struct WriteAll<'a> {
    stream: &'a mut TcpStream,
    /// What is still to be written (the front is cut off as it goes).
    buf: &'a [u8],
    /// Whether this future registered a waker, which its drop removes.
    registered: bool,
}

impl Future for WriteAll<'_> {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        // Write as much as the send buffer takes, again and again, until
        // all is written or it says `WouldBlock` (then wait for room).
        while !this.buf.is_empty() {
            let TcpStream { source, socket } = &mut *this.stream;
            let buf = this.buf;
            match source.poll_io("TcpStream::write_all", Direction::Write, cx, || {
                socket.write(buf)
            }) {
                Poll::Pending => {
                    this.registered = true;
                    return Poll::Pending;
                }
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::new(
                        ErrorKind::WriteZero,
                        "TcpStream::write_all: the socket took no bytes (asyncio: \
                         ConnectionError); the connection cannot carry the rest",
                    )));
                }
                Poll::Ready(Ok(n)) => this.buf = &this.buf[n..],
                Poll::Ready(Err(error)) => {
                    return Poll::Ready(Err(explain(error, "TcpStream::write_all")));
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for WriteAll<'_> {
    fn drop(&mut self) {
        if self.registered {
            self.stream.source.deregister(Direction::Write);
        }
    }
}

/// The longest line [`LineReader::read_line`] accepts: asyncio's
/// `StreamReader` limit (64 KiB).
pub const LINE_LIMIT: usize = 64 * 1024;

/// A stream with a read buffer, for line-based protocols: asyncio's
/// `StreamReader.readline`, small.
pub struct LineReader {
    stream: TcpStream,
    /// Bytes read from the socket and not handed out yet.
    buffer: Vec<u8>,
}

impl LineReader {
    /// Wraps `stream`; nothing is read yet.
    pub fn new(stream: TcpStream) -> LineReader {
        LineReader {
            stream,
            buffer: Vec::new(),
        }
    }

    /// The next line, with its `\n`: asyncio's `await reader.readline()`.
    /// At the end of the stream, what is left (without `\n`), and then an
    /// empty vector, as asyncio gives `b''`.
    ///
    /// # Errors
    /// A line longer than [`LINE_LIMIT`] (asyncio: `ValueError: Separator
    /// is not found, and chunk exceed the limit`), or the socket's error.
    pub async fn read_line(&mut self) -> io::Result<Vec<u8>> {
        // How much of the buffer is known to hold no `\n`: each round looks
        // only at the bytes that arrived since, so a long line costs one
        // scan, not one per read.
        let mut searched = 0;
        loop {
            // A whole line is buffered: hand it out (with its `\n`), keep
            // the rest for the next call.
            if let Some(at) = self.buffer[searched..].iter().position(|&b| b == b'\n') {
                let end = searched + at + 1;
                return Ok(self.buffer.drain(..end).collect());
            }
            searched = self.buffer.len();
            if searched > LINE_LIMIT {
                return Err(io::Error::new(
                    ErrorKind::InvalidData,
                    format!(
                        "LineReader::read_line: no end of line in {searched} bytes, more than \
                         the limit of {LINE_LIMIT} (asyncio: ValueError: Separator is not \
                         found, and chunk exceed the limit); read such data with read()"
                    ),
                ));
            }
            // Not yet: wait for more bytes from the socket.
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            // The end of the stream: the last, unterminated line (maybe
            // empty, which tells the caller that nothing is left).
            if n == 0 {
                return Ok(std::mem::take(&mut self.buffer));
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    /// The stream, to write to it (what is buffered stays buffered).
    pub fn get_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// The stream back, and what was read but not handed out.
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.stream, self.buffer)
    }
}
