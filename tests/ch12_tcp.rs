//! Chapter 12: `TcpListener` and `TcpStream` on the loop, over real
//! loopback sockets (127.0.0.1 only). Most tests run on the virtual clock,
//! so a server that answers "after 1 s" answers after exactly 1 s of loop
//! time, in microseconds of real time; each runs under a watchdog, so a
//! lost wake shows up as a failure, never a hang.
#![cfg(unix)]

mod common;

use std::future::poll_fn;
use std::io::{self, ErrorKind};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use common::{ms, panic_text, quiet_planned_panics, secs, within};
use tiny_asyncio::ch05_event_loop::spawn_detached;
use tiny_asyncio::ch12_net::tcp::running_selector;
use tiny_asyncio::ch12_net::{Direction, LINE_LIMIT};
use tiny_asyncio::{
    EventLoop, LineReader, TcpListener, TcpStream, block_on, gather, get_running_loop, sleep,
    spawn, timeout,
};

/// Runs `body` on a fresh virtual-clock loop, under a watchdog.
fn on_virtual_loop<T: Send + 'static, F>(
    what: &'static str,
    body: impl FnOnce() -> F + Send + 'static,
) -> T
where
    F: std::future::Future<Output = T>,
{
    within(Duration::from_secs(30), what, move || {
        EventLoop::with_virtual_clock().run_until_complete(body())
    })
}

/// A listener on 127.0.0.1, on a port the system picks.
fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Reads until the end of the stream.
async fn read_to_end(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(all);
        }
        all.extend_from_slice(&buf[..n]);
    }
}

/// Reads exactly `buf.len()` bytes.
async fn read_exact(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        let n = stream.read(&mut buf[got..]).await?;
        if n == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        got += n;
    }
    Ok(())
}

#[test]
fn a_client_and_a_server_on_one_loop_talk_and_the_loop_time_does_not_move() {
    let at = on_virtual_loop("ping pong", || async {
        let (mut listener, addr) = listener();
        let server = spawn(async move {
            let (mut stream, peer) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4];
            read_exact(&mut stream, &mut buf).await.unwrap();
            assert_eq!(&buf, b"ping");
            stream.write_all(b"pong").await.unwrap();
            peer
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        assert_eq!(client.peer_addr().unwrap(), addr);
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        read_exact(&mut client, &mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        let peer = server.await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        get_running_loop().time()
    });
    assert_eq!(
        at,
        Duration::ZERO,
        "no timer was involved: time stood still"
    );
}

/// EX-5 in virtual time: ten clients, a server that answers each query
/// after 1 s, all on one loop.
#[test]
fn ex_5_ten_queries_to_a_server_that_answers_after_one_second_take_one_second_on_the_loop() {
    let (answers, at) = on_virtual_loop("EX-5", || async {
        let (mut listener, addr) = listener();
        spawn_detached(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                spawn_detached(async move {
                    let mut reader = LineReader::new(stream);
                    let query = reader.read_line().await.unwrap();
                    sleep(secs(1)).await;
                    let mut answer = b"answer to ".to_vec();
                    answer.extend_from_slice(&query);
                    reader.get_mut().write_all(&answer).await.unwrap();
                });
            }
        });
        let clients = (0..10).map(|i| async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            let mut reader = LineReader::new(stream);
            reader
                .get_mut()
                .write_all(format!("query {i}\n").as_bytes())
                .await
                .unwrap();
            String::from_utf8(reader.read_line().await.unwrap()).unwrap()
        });
        let answers = gather(clients).await;
        (answers, get_running_loop().time())
    });
    assert_eq!(at, secs(1), "ten waits of 1 s side by side take 1 s");
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(answer, &format!("answer to query {i}\n"));
    }
}

#[test]
fn connecting_where_nothing_listens_is_refused_with_a_message_that_says_so() {
    let error = on_virtual_loop("refused", || async {
        let (listener, addr) = listener();
        drop(listener);
        TcpStream::connect(addr).await.unwrap_err()
    });
    assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
    let text = error.to_string();
    assert!(text.contains("TcpStream::connect"), "{text}");
    assert!(text.contains("ConnectionRefusedError"), "{text}");
    assert!(text.contains("start the server first"), "{text}");
}

#[test]
fn binding_an_address_in_use_fails_with_a_message_that_names_the_fix() {
    let (_first, addr) = listener();
    let error = TcpListener::bind(addr).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AddrInUse);
    let text = error.to_string();
    assert!(text.contains("TcpListener::bind"), "{text}");
    assert!(text.contains("address already in use"), "{text}");
    assert!(text.contains("bind port 0"), "{text}");
}

#[test]
fn a_peer_that_resets_the_connection_mid_read_gives_connection_reset() {
    let error = on_virtual_loop("reset", || async {
        let (mut listener, addr) = listener();
        spawn_detached(async move {
            let (stream, _) = listener.accept().await.unwrap();
            // Let the client's bytes arrive and its read start waiting.
            sleep(ms(10)).await;
            // Closing with unread data makes the kernel send a reset.
            drop(stream);
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"never read").await.unwrap();
        let mut buf = [0u8; 16];
        client.read(&mut buf).await.unwrap_err()
    });
    assert_eq!(error.kind(), ErrorKind::ConnectionReset);
    assert!(
        error.to_string().contains("ConnectionResetError"),
        "{error}"
    );
}

#[test]
fn after_a_half_close_the_peer_reads_the_rest_then_the_end_and_can_still_answer() {
    let (request, reply) = on_virtual_loop("half-close", || async {
        let (mut listener, addr) = listener();
        let server = spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let request = read_to_end(&mut stream).await.unwrap();
            stream.write_all(b"got it").await.unwrap();
            request
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"all of my request").await.unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let reply = read_to_end(&mut client).await.unwrap();
        (server.await.unwrap(), reply)
    });
    assert_eq!(request, b"all of my request");
    assert_eq!(reply, b"got it");
}

#[test]
fn a_read_given_up_by_a_timeout_leaves_no_waker_behind_and_the_stream_reads_on() {
    let (first, second, watching) = on_virtual_loop("read dropped", || async {
        let (mut listener, addr) = listener();
        let server = spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            sleep(secs(5)).await;
            stream.write_all(b"late").await.unwrap();
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 4];
        let first = timeout(secs(1), client.read(&mut buf)).await.is_err();
        let watching = running_selector("test")
            .unwrap()
            .is_registered(client.raw_fd(), Direction::Read);
        read_exact(&mut client, &mut buf).await.unwrap();
        server.await.unwrap();
        (first, buf, watching)
    });
    assert!(first, "the read timed out after 1 s");
    assert!(!watching, "the dropped read deregistered its waker");
    assert_eq!(&second, b"late");
}

#[test]
fn a_peer_dropped_while_a_read_waits_ends_the_read_with_zero() {
    let n = on_virtual_loop("peer dropped", || async {
        let (mut listener, addr) = listener();
        spawn_detached(async move {
            let (stream, _) = listener.accept().await.unwrap();
            sleep(secs(1)).await;
            drop(stream);
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 4];
        client.read(&mut buf).await.unwrap()
    });
    assert_eq!(n, 0, "the end of the stream");
}

#[test]
fn a_listener_dropped_while_accept_waits_is_closed_and_forgotten() {
    let (refused, watching) = on_virtual_loop("listener dropped", || async {
        let (mut listener, addr) = listener();
        let acceptor = spawn(async move {
            let _ = listener.accept().await;
        });
        sleep(secs(1)).await;
        let selector = running_selector("test").unwrap();
        let before = selector.watching();
        acceptor.abort();
        assert!(acceptor.await.unwrap_err().is_cancelled());
        let refused = TcpStream::connect(addr).await.unwrap_err().kind();
        (refused, (before, selector.watching()))
    });
    assert_eq!(watching, (1, 0), "the accept's waker went with it");
    assert_eq!(
        refused,
        ErrorKind::ConnectionRefused,
        "the listener is closed"
    );
}

#[test]
fn a_writer_into_a_full_send_buffer_waits_and_a_slow_reader_gets_every_byte_in_order() {
    const SIZE: usize = 4 << 20;
    let (partial, received) = on_virtual_loop("full buffer", || async {
        let (mut listener, addr) = listener();
        let reader = spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut received = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                // Slow: a pause between reads.
                sleep(ms(1)).await;
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    return received;
                }
                received.extend_from_slice(&buf[..n]);
            }
        });
        let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
        let mut client = TcpStream::connect(addr).await.unwrap();
        // One write takes only what fits in the send buffer.
        let partial = client.write(&data).await.unwrap();
        client.write_all(&data[partial..]).await.unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        (partial, reader.await.unwrap())
    });
    assert!(
        partial > 0 && partial < SIZE,
        "a partial write: {partial} of {SIZE}"
    );
    assert_eq!(received.len(), SIZE);
    assert!(
        received
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i % 251) as u8)
    );
}

#[test]
fn a_spurious_wake_re_registers_without_spinning_or_hanging() {
    let (polls, n) = on_virtual_loop("spurious", || async {
        let (mut listener, addr) = listener();
        spawn_detached(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            sleep(secs(1)).await;
            stream.write_all(b"x").await.unwrap();
            sleep(secs(1)).await;
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        let polls = Arc::new(AtomicUsize::new(0));
        let counted = polls.clone();
        let mut buf = [0u8; 1];
        let mut read = Box::pin(client.read(&mut buf));
        let mut woke_spuriously = false;
        // Polls the read; the first time, also wakes itself (a spurious
        // wake: the socket has nothing yet, so the read says WouldBlock).
        let n = poll_fn(|cx| {
            counted.fetch_add(1, SeqCst);
            let poll = read.as_mut().poll(cx);
            if poll.is_pending() && !woke_spuriously {
                woke_spuriously = true;
                cx.waker().wake_by_ref();
            }
            poll
        })
        .await
        .unwrap();
        (polls.load(SeqCst), n)
    });
    assert_eq!(n, 1);
    assert_eq!(polls, 3, "first poll, the spurious one, then the real wake");
}

#[test]
fn a_socket_polled_outside_any_loop_panics_with_a_message_instead_of_hanging() {
    quiet_planned_panics();
    let text = within(Duration::from_secs(10), "outside a loop", || {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let mut stream = TcpStream::from_std(client).unwrap();
        panic_text(move || {
            let mut buf = [0u8; 1];
            block_on(stream.read(&mut buf)).unwrap();
        })
    });
    assert!(text.contains("TcpStream::read"), "{text}");
    assert!(text.contains("no running event loop"), "{text}");
}

#[test]
fn a_stream_moved_to_another_loop_follows_it() {
    within(Duration::from_secs(30), "two loops", || {
        let first = EventLoop::with_virtual_clock();
        let (mut listener, addr) = listener();
        let (mut client, mut server) = first.run_until_complete(async move {
            let client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            (client, server)
        });
        // Wait once in the first loop, and give up: the socket is registered
        // there, and the loop stays alive.
        first.run_until_complete(async {
            let mut buf = [0u8; 1];
            let _ = timeout(ms(1), client.read(&mut buf)).await;
        });
        let second = EventLoop::new();
        let got = second.run_until_complete(async move {
            // Chapter 6's spawn: its handle knows the task's trace number.
            let reader = tiny_asyncio::ch06_join::spawn(async move {
                let mut buf = [0u8; 5];
                read_exact(&mut client, &mut buf).await.unwrap();
                buf
            });
            sleep(ms(10)).await;
            server.write_all(b"hello").await.unwrap();
            reader.await.unwrap()
        });
        assert_eq!(&got, b"hello");
        drop(first);
    });
}

#[test]
fn read_line_splits_lines_hands_back_the_rest_at_the_end_and_refuses_endless_lines() {
    let (lines, error) = on_virtual_loop("lines", || async {
        let (mut listener, addr) = listener();
        spawn_detached(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            stream.write_all(b"one\ntwo\nthree").await.unwrap();
        });
        let mut reader = LineReader::new(TcpStream::connect(addr).await.unwrap());
        let mut lines = Vec::new();
        for _ in 0..4 {
            lines.push(reader.read_line().await.unwrap());
        }
        let (mut listener, addr) = self::listener();
        spawn_detached(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let _ = stream.write_all(&vec![b'a'; LINE_LIMIT + 5000]).await;
        });
        let mut reader = LineReader::new(TcpStream::connect(addr).await.unwrap());
        (lines, reader.read_line().await.unwrap_err())
    });
    assert_eq!(
        lines,
        vec![
            b"one\n".to_vec(),
            b"two\n".to_vec(),
            b"three".to_vec(),
            vec![]
        ]
    );
    assert_eq!(error.kind(), ErrorKind::InvalidData);
    assert!(
        error.to_string().contains("LineReader::read_line"),
        "{error}"
    );
}

#[test]
fn on_the_real_clock_the_loop_sleeps_in_poll_and_timers_and_sockets_both_wake_it() {
    let elapsed = within(Duration::from_secs(30), "real clock", || {
        let started = std::time::Instant::now();
        EventLoop::new().run_until_complete(async {
            let (mut listener, addr) = listener();
            spawn_detached(async move {
                let (mut stream, _) = listener.accept().await.unwrap();
                // A timer thread's wake must reach a loop asleep in poll(2).
                sleep(ms(50)).await;
                stream.write_all(b"ok").await.unwrap();
            });
            let mut client = TcpStream::connect(addr).await.unwrap();
            let mut buf = [0u8; 2];
            read_exact(&mut client, &mut buf).await.unwrap();
            assert_eq!(&buf, b"ok");
        });
        started.elapsed()
    });
    assert!(elapsed >= ms(50), "{elapsed:?}");
}

#[test]
fn five_hundred_connections_on_one_loop_all_get_their_answers() {
    let answers = on_virtual_loop("500 connections", || async {
        let (mut listener, addr) = listener();
        spawn_detached(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                spawn_detached(async move {
                    let mut buf = [0u8; 8];
                    read_exact(&mut stream, &mut buf).await.unwrap();
                    sleep(secs(1)).await;
                    stream.write_all(&buf).await.unwrap();
                });
            }
        });
        // Connected one after the other: a burst of 500 connects at once
        // would overflow the listen backlog (std asks for 128, asyncio's
        // start_server for 100), and the kernel would drop SYNs for the
        // client to resend a second later (real time; the virtual clock
        // holds still meanwhile, so the test would pass, slowly).
        let mut streams = Vec::new();
        for _ in 0..500 {
            streams.push(TcpStream::connect(addr).await.unwrap());
        }
        // Then all 500 open at once, each waiting for its answer.
        let clients = streams
            .into_iter()
            .zip(0u64..)
            .map(|(mut stream, i)| async move {
                stream.write_all(&i.to_le_bytes()).await.unwrap();
                let mut buf = [0u8; 8];
                read_exact(&mut stream, &mut buf).await.unwrap();
                u64::from_le_bytes(buf)
            });
        let answers = gather(clients).await;
        assert_eq!(get_running_loop().time(), secs(1));
        answers
    });
    assert_eq!(answers, (0..500).collect::<Vec<u64>>());
}

#[test]
fn thousands_of_wakes_from_other_threads_all_reach_a_loop_asleep_in_poll() {
    let done = within(Duration::from_secs(60), "remote wakes", || {
        EventLoop::new().run_until_complete(async {
            // An accept that waits forever installs the selector and keeps
            // one socket in it: the loop now idles in poll(2).
            let (mut listener, _addr) = listener();
            spawn_detached(async move {
                let _ = listener.accept().await;
            });
            tiny_asyncio::yield_now().await;
            assert!(running_selector("test").unwrap().watching() >= 1);
            // Each job's wake comes from a pool thread, through the
            // self-pipe; one lost wake would hang here (the watchdog fails).
            let mut done = 0;
            for i in 0..2_000u32 {
                done += tiny_asyncio::run_in_executor(move || i % 2).await.unwrap();
            }
            done
        })
    });
    assert_eq!(done, 1_000);
}

/// E002-6 for real: seed 002's three `fetch_url`, over HTTP/1.0 from a
/// local server that delays each answer by 2 s, gathered.
#[test]
fn e002_6_three_gets_from_a_server_that_delays_two_seconds_take_two_seconds_in_input_order() {
    let (bodies, sent, at) = on_virtual_loop("E002-6", || async {
        let (mut listener, addr) = listener();
        spawn_detached(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                spawn_detached(async move {
                    let mut reader = LineReader::new(stream);
                    let first = reader.read_line().await.unwrap();
                    while reader.read_line().await.unwrap() != b"\r\n" {}
                    let first = String::from_utf8(first).unwrap();
                    let url = first.split_whitespace().nth(1).unwrap()[1..].to_string();
                    sleep(secs(2)).await;
                    let body = format!("{url} 데이터");
                    let response = format!(
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    reader
                        .get_mut()
                        .write_all(response.as_bytes())
                        .await
                        .unwrap();
                });
            }
        });
        let fetches = ["google.com", "naver.com", "daum.net"].map(|url| async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let request = format!("GET /{url} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            let sent = get_running_loop().time();
            let response = String::from_utf8(read_to_end(&mut stream).await.unwrap()).unwrap();
            let (_head, body) = response.split_once("\r\n\r\n").unwrap();
            (body.to_string(), sent)
        });
        let results = gather(fetches).await;
        let sent: Vec<Duration> = results.iter().map(|(_, sent)| *sent).collect();
        let bodies: Vec<String> = results.into_iter().map(|(body, _)| body).collect();
        (bodies, sent, get_running_loop().time())
    });
    assert_eq!(
        bodies,
        ["google.com 데이터", "naver.com 데이터", "daum.net 데이터"]
    );
    assert_eq!(
        sent,
        [Duration::ZERO; 3],
        "the three requests go out at once"
    );
    assert_eq!(at, secs(2), "2 s, not 6");
}

/// A task waiting on a socket is drawn as waiting on a socket: the wake the
/// selector gives it is credited to the socket (not to a thread, as if it
/// were a pool job), and its row shows `Mark::Socket` for exactly the time
/// the peer kept it waiting (1 s of virtual time).
#[test]
fn a_wait_on_a_socket_is_traced_and_drawn_as_a_socket_wait() {
    use tiny_asyncio::timeline::Mark;
    use tiny_asyncio::trace::{Event, WakeSource};
    let (trace, reader) = within(Duration::from_secs(30), "socket trace", || {
        let event_loop = EventLoop::with_virtual_clock();
        event_loop.enable_trace();
        let sink = event_loop.handle().tracer();
        let reader = event_loop.run_until_complete(async {
            let (mut listener, addr) = listener();
            let client = TcpStream::connect(addr).await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            // Chapter 6's spawn: its handle knows the task's trace number.
            let reader = tiny_asyncio::ch06_join::spawn(async move {
                let mut buf = [0u8; 5];
                read_exact(&mut server, &mut buf).await.unwrap();
                buf
            });
            let writer = spawn(async move {
                let mut client = client;
                sleep(secs(1)).await;
                client.write_all(b"hello").await.unwrap();
            });
            let id = reader.id();
            assert_eq!(&reader.await.unwrap(), b"hello");
            writer.await.unwrap();
            id
        });
        event_loop.close();
        (sink.take(), reader)
    });
    let reader_wakes: Vec<(Duration, WakeSource)> = trace
        .of_task(reader)
        .filter_map(|r| match &r.event {
            Event::Woken { by } => Some((r.at, by.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(reader_wakes, [(secs(1), WakeSource::Socket)]);
    let picture = trace.to_timeline("socket");
    let name = trace.name_of(reader);
    let row = picture
        .rows
        .iter()
        .find(|row| row.name == name)
        .expect("the reader has a row");
    let waits: Vec<(Duration, Duration)> = row
        .spans
        .iter()
        .filter(|s| s.mark == Mark::Socket)
        .map(|s| (s.start, s.end))
        .collect();
    assert_eq!(waits, [(Duration::ZERO, secs(1))]);
    assert!(
        row.spans.iter().all(|s| s.mark != Mark::Job),
        "the reader never waited on a job:\n{}",
        picture.render_text(80)
    );
}
