//! Chapter 12's selector on its own, without a loop: the registry's rules
//! (per socket and direction, latest waker only, a fired interest is gone,
//! deregister and forget) and the self-pipe. Real loopback sockets, and a
//! counting waker in place of a task.
#![cfg(unix)]

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use common::within;
use tiny_asyncio::ch12_net::{Direction, Selector};

/// A waker that counts its wakes (a task stand-in).
#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn counter() -> (Arc<Counter>, Waker) {
    let counter = Arc::new(Counter::default());
    (counter.clone(), Waker::from(counter))
}

fn wakes(counter: &Counter) -> usize {
    counter.0.load(SeqCst)
}

/// A connected pair of std sockets on 127.0.0.1, non-blocking.
fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    client.set_nonblocking(true).unwrap();
    server.set_nonblocking(true).unwrap();
    (client, server)
}

const ZERO: Option<Duration> = Some(Duration::ZERO);

#[test]
fn a_socket_with_data_wakes_its_reader_once_and_is_then_forgotten() {
    let selector = Selector::new().unwrap();
    let (mut client, server) = pair();
    let (reader, waker) = counter();
    selector.register(server.as_raw_fd(), Direction::Read, &waker);
    assert_eq!(selector.select(ZERO).unwrap(), 0, "nothing was sent yet");
    client.write_all(b"x").unwrap();
    assert_eq!(selector.select(Some(Duration::from_secs(5))).unwrap(), 1);
    assert_eq!(wakes(&reader), 1);
    assert_eq!(selector.watching(), 0, "a fired interest is removed");
    // The byte is still unread, but nobody waits: no wake, no spin.
    assert_eq!(selector.select(ZERO).unwrap(), 0);
    assert_eq!(wakes(&reader), 1);
}

#[test]
fn only_the_latest_waker_of_a_socket_and_direction_is_woken() {
    let selector = Selector::new().unwrap();
    let (mut client, server) = pair();
    let (first, first_waker) = counter();
    let (second, second_waker) = counter();
    selector.register(server.as_raw_fd(), Direction::Read, &first_waker);
    selector.register(server.as_raw_fd(), Direction::Read, &second_waker);
    assert_eq!(
        selector.watching(),
        1,
        "one socket, one direction, one waker"
    );
    client.write_all(b"x").unwrap();
    assert_eq!(selector.select(Some(Duration::from_secs(5))).unwrap(), 1);
    assert_eq!((wakes(&first), wakes(&second)), (0, 1));
}

#[test]
fn reading_and_writing_are_separate_interests_on_one_socket() {
    let selector = Selector::new().unwrap();
    let (_client, server) = pair();
    let (reader, read_waker) = counter();
    let (writer, write_waker) = counter();
    let fd = server.as_raw_fd();
    selector.register(fd, Direction::Read, &read_waker);
    selector.register(fd, Direction::Write, &write_waker);
    assert_eq!(selector.watching(), 2);
    // A fresh connection has room to write and nothing to read.
    assert_eq!(selector.select(ZERO).unwrap(), 1);
    assert_eq!((wakes(&reader), wakes(&writer)), (0, 1));
    assert!(selector.is_registered(fd, Direction::Read));
    assert!(!selector.is_registered(fd, Direction::Write));
}

#[test]
fn a_deregistered_or_forgotten_socket_wakes_nobody() {
    let selector = Selector::new().unwrap();
    let (mut client, server) = pair();
    let fd = server.as_raw_fd();
    let (reader, read_waker) = counter();
    let (writer, write_waker) = counter();
    selector.register(fd, Direction::Read, &read_waker);
    selector.deregister(fd, Direction::Read);
    assert_eq!(selector.watching(), 0);
    selector.register(fd, Direction::Read, &read_waker);
    selector.register(fd, Direction::Write, &write_waker);
    selector.forget(fd);
    assert_eq!(selector.watching(), 0);
    client.write_all(b"x").unwrap();
    assert_eq!(selector.select(ZERO).unwrap(), 0);
    assert_eq!((wakes(&reader), wakes(&writer)), (0, 0));
    // Deregistering what is not there is harmless.
    selector.deregister(fd, Direction::Write);
    selector.forget(fd);
}

#[test]
fn a_peer_that_closes_wakes_both_directions() {
    let selector = Selector::new().unwrap();
    let (client, server) = pair();
    let fd = server.as_raw_fd();
    let (reader, read_waker) = counter();
    selector.register(fd, Direction::Read, &read_waker);
    drop(client);
    assert_eq!(selector.select(Some(Duration::from_secs(5))).unwrap(), 1);
    assert_eq!(wakes(&reader), 1, "the end of the stream is readable");
}

#[test]
fn a_rouse_from_another_thread_ends_a_wait_with_no_limit() {
    within(Duration::from_secs(10), "select roused", || {
        let selector = Selector::new().unwrap();
        let rouser = selector.clone();
        let start = Instant::now();
        let thread = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            rouser.rouse();
        });
        assert_eq!(selector.select(None).unwrap(), 0, "a rouse wakes no waker");
        assert!(start.elapsed() >= Duration::from_millis(20));
        thread.join().unwrap();
        // The byte was drained: the next look finds nothing.
        assert_eq!(selector.select(ZERO).unwrap(), 0);
    });
}

#[test]
fn many_rouses_before_a_select_end_one_wait_and_leave_nothing_behind() {
    within(Duration::from_secs(10), "select after rouses", || {
        let selector = Selector::new().unwrap();
        for _ in 0..10_000 {
            selector.rouse();
        }
        selector.select(None).unwrap();
        let start = Instant::now();
        selector.select(Some(Duration::from_millis(30))).unwrap();
        assert!(
            start.elapsed() >= Duration::from_millis(30),
            "no stale byte is left to end the next wait early"
        );
        // And rousing works again after the drain.
        selector.rouse();
        selector.select(None).unwrap();
    });
}

#[test]
fn a_zero_timeout_only_looks() {
    let selector = Selector::new().unwrap();
    let (_client, server) = pair();
    let (_reader, waker) = counter();
    selector.register(server.as_raw_fd(), Direction::Read, &waker);
    let start = Instant::now();
    assert_eq!(selector.select(ZERO).unwrap(), 0);
    assert!(start.elapsed() < Duration::from_secs(2));
}

/// A waker whose last drop forgets a socket on the same selector: the
/// selector must never drop (or wake) a waker under its own lock.
struct ForgetsOnDrop {
    selector: Selector,
    fd: i32,
    dropped: Arc<AtomicUsize>,
}

impl Wake for ForgetsOnDrop {
    fn wake(self: Arc<Self>) {}
}

impl Drop for ForgetsOnDrop {
    fn drop(&mut self) {
        self.selector.forget(self.fd);
        self.dropped.fetch_add(1, SeqCst);
    }
}

#[test]
fn a_waker_whose_drop_touches_the_selector_does_not_deadlock_it() {
    within(Duration::from_secs(10), "no deadlock", || {
        let selector = Selector::new().unwrap();
        let (mut client, server) = pair();
        let dropped = Arc::new(AtomicUsize::new(0));
        let make = || {
            Waker::from(Arc::new(ForgetsOnDrop {
                selector: selector.clone(),
                fd: 12345,
                dropped: dropped.clone(),
            }))
        };
        let fd = server.as_raw_fd();
        // Replaced, deregistered and fired: each drops a waker.
        selector.register(fd, Direction::Read, &make());
        selector.register(fd, Direction::Read, &make());
        assert_eq!(dropped.load(SeqCst), 1, "the replaced one");
        selector.deregister(fd, Direction::Read);
        assert_eq!(dropped.load(SeqCst), 2, "the deregistered one");
        selector.register(fd, Direction::Read, &make());
        client.write_all(b"x").unwrap();
        selector.select(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(dropped.load(SeqCst), 3, "the fired one, once woken");
        assert_eq!(selector.watching(), 0);
    });
}
