//! Chapter 12's property: a TCP connection on the loop is a pipe of bytes.
//! Whatever the sizes of the writes on one end and of the reads on the
//! other, the bytes come out the same and in order, both ways (a client
//! sends, a server on the same loop echoes with its own chunk sizes, the
//! client reads it back with yet others).
#![cfg(unix)]

mod common;

use std::time::Duration;

use common::within;
use proptest::prelude::*;
use tiny_asyncio::{EventLoop, TcpListener, TcpStream, spawn};

/// Writes `data` in chunks of the given sizes (cycled), each with `write`
/// (which may take fewer bytes than offered: the rest goes next).
async fn write_in_chunks(stream: &mut TcpStream, data: &[u8], sizes: &[usize]) {
    let mut sent = 0;
    let mut turn = 0;
    while sent < data.len() {
        let size = sizes[turn % sizes.len()].min(data.len() - sent);
        turn += 1;
        sent += stream.write(&data[sent..sent + size]).await.unwrap();
    }
}

/// Reads `total` bytes with reads of the given buffer sizes (cycled).
async fn read_in_chunks(stream: &mut TcpStream, total: usize, sizes: &[usize]) -> Vec<u8> {
    let mut got = Vec::with_capacity(total);
    let mut turn = 0;
    while got.len() < total {
        let mut buf = vec![0u8; sizes[turn % sizes.len()]];
        turn += 1;
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "the stream ended early, after {} of {total} bytes",
            got.len()
        );
        got.extend_from_slice(&buf[..n]);
    }
    got
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Invariant: the bytes a loop's TCP stream delivers are exactly the
    /// bytes written, in order, for any sizes of writes and reads at both
    /// ends.
    #[test]
    fn random_write_and_read_sizes_on_both_ends_deliver_the_same_bytes_in_order(
        data in prop::collection::vec(any::<u8>(), 1..200_000),
        client_writes in prop::collection::vec(1usize..70_000, 1..6),
        server_reads in prop::collection::vec(1usize..70_000, 1..6),
        server_writes in prop::collection::vec(1usize..70_000, 1..6),
        client_reads in prop::collection::vec(1usize..70_000, 1..6),
    ) {
        let expected = data.clone();
        let echoed = within(Duration::from_secs(60), "echo", move || {
            EventLoop::with_virtual_clock().run_until_complete(async move {
                let mut listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                let total = data.len();
                let server = spawn(async move {
                    let (mut stream, _) = listener.accept().await.unwrap();
                    let received = read_in_chunks(&mut stream, total, &server_reads).await;
                    write_in_chunks(&mut stream, &received, &server_writes).await;
                    received
                });
                let mut client = TcpStream::connect(addr).await.unwrap();
                // The server reads everything before it echoes, so the
                // client may write everything before it reads.
                write_in_chunks(&mut client, &data, &client_writes).await;
                let echoed = read_in_chunks(&mut client, total, &client_reads).await;
                let received = server.await.unwrap();
                (received, echoed)
            })
        });
        prop_assert_eq!(&echoed.0, &expected, "server side");
        prop_assert_eq!(&echoed.1, &expected, "client side");
    }
}
