//! Chapter 12: every descriptor the chapter opens is closed, exactly once.
//!
//! Counting `/proc/self/fd` only means something if nothing else in the
//! process opens or closes descriptors meanwhile, so this binary holds a
//! single test, which does everything in order. (A leak leaves the count
//! higher; a double close would close some other descriptor, or fail, and
//! leave it lower.) Linux only: other Unixes have no `/proc/self/fd`.
#![cfg(target_os = "linux")]

mod common;

use std::io::ErrorKind;
use std::net::Shutdown;
use std::time::Duration;

use common::{ms, within};
use tiny_asyncio::ch05_event_loop::spawn_detached;
use tiny_asyncio::{EventLoop, TcpListener, TcpStream, gather, sleep, spawn, timeout};

/// The open descriptors of this process, by number.
fn open_fds() -> Vec<u32> {
    let mut fds: Vec<u32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    fds
}

#[test]
fn every_descriptor_the_chapter_opens_is_closed_exactly_once() {
    within(Duration::from_secs(60), "descriptors", || {
        // Warm up what opens descriptors once per process and keeps them
        // (none that we know of, but a first run settles it).
        let before = open_fds();
        for round in 0..2 {
            let event_loop = EventLoop::with_virtual_clock();
            let during = event_loop.run_until_complete(async {
                let mut listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                // A second bind fails and must leave nothing open.
                assert_eq!(
                    TcpListener::bind(addr).unwrap_err().kind(),
                    ErrorKind::AddrInUse
                );
                spawn_detached(async move {
                    for _ in 0..30 {
                        let (mut stream, _) = listener.accept().await.unwrap();
                        spawn_detached(async move {
                            let mut buf = [0u8; 16];
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => {}
                                Ok(n) => {
                                    let _ = stream.write_all(&buf[..n]).await;
                                }
                            }
                        });
                    }
                    // The listener is dropped here, with accepts done.
                });
                // Twenty clients that talk, five that hang up at once, five
                // whose read is given up by a timeout.
                let talkers = (0..20).map(|_| async move {
                    let mut stream = TcpStream::connect(addr).await.unwrap();
                    stream.write_all(b"hi").await.unwrap();
                    let mut buf = [0u8; 2];
                    let mut got = 0;
                    while got < 2 {
                        got += stream.read(&mut buf[got..]).await.unwrap();
                    }
                });
                gather(talkers).await;
                for _ in 0..5 {
                    let stream = TcpStream::connect(addr).await.unwrap();
                    stream.shutdown(Shutdown::Both).unwrap();
                }
                for _ in 0..5 {
                    let mut stream = TcpStream::connect(addr).await.unwrap();
                    let mut buf = [0u8; 1];
                    assert!(timeout(ms(5), stream.read(&mut buf)).await.is_err());
                }
                sleep(ms(10)).await;
                // Refused: the listener is gone after thirty accepts.
                assert_eq!(
                    TcpStream::connect(addr).await.unwrap_err().kind(),
                    ErrorKind::ConnectionRefused
                );
                // An accept that waits in a task that is aborted.
                let mut listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let waiting = spawn(async move {
                    let _ = listener.accept().await;
                });
                sleep(ms(1)).await;
                waiting.abort();
                let _ = waiting.await;
                open_fds().len()
            });
            assert!(
                during > before.len(),
                "round {round}: the selector's pipe is open"
            );
            event_loop.close();
            assert_eq!(
                open_fds(),
                before,
                "round {round}: the same descriptors, no more, no fewer"
            );
        }
    });
}
