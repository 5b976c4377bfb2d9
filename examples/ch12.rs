//! Chapter 12: waiting on sockets. About 13 s with the documents' 1-second
//! unit (`--unit-ms 100`: about 1.3 s).
//!
//! - EX-5: a "database" server on 127.0.0.1 answers each query after 1
//!   unit. Ten queries one at a time over blocking std sockets (chapter 1's
//!   way) take 10 units; ten clients on the loop over real sockets take 1.
//! - E002-6 for real: three URLs fetched over HTTP from a small local
//!   server that delays each answer by 2 units: gathered, 2 units, where
//!   the three waits add up to 6.
//!
//! Both servers run on their own thread, on their own event loop (the
//! clients' loop only waits on sockets). Every figure printed is measured.
//!
//! `--timeline` draws the clients' loop (ten queries waiting side by side,
//! then the three fetches), `--svg FILE` writes it as SVG. `--echo` runs an
//! echo server on 127.0.0.1 (port 7777, `--port N`) that a learner can
//! `nc 127.0.0.1 7777` into, printing who connected and when, until Ctrl-C
//! (or `--echo-for-ms N`).
//!
//! ```text
//! cargo run --example ch12                  # the documents' durations
//! cargo run --example ch12 -- --unit-ms 100 # ten times faster
//! cargo run --example ch12 -- --timeline    # and the picture
//! cargo run --example ch12 -- --echo        # then: nc 127.0.0.1 7777
//! ```
#![cfg_attr(not(unix), allow(unused))]

mod common;

#[cfg(not(unix))]
fn main() {
    eprintln!("chapter 12 needs poll(2): it runs on Linux and other Unixes only");
}

#[cfg(unix)]
fn main() {
    unix::main();
}

#[cfg(unix)]
mod unix {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{self, SocketAddr};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread;
    use std::time::{Duration, Instant};

    use super::common::{exit_if_picture_failed, say, short_pool_names, units};
    use tiny_asyncio::cli::{Cli, Opt};
    use tiny_asyncio::{
        EventLoop, LineReader, TcpListener, TcpStream, gather, get_running_loop, sleep, spawn,
    };

    /// The example's command line: the common arguments, and the echo
    /// server's own.
    const CLI: Cli = Cli::new("ch12", "EX-5 and E002-6 over real sockets on 127.0.0.1")
        .unit(Duration::from_secs(1))
        .pictures()
        .options(&[
            Opt {
                flag: "--echo",
                values: &[],
                help: "run an echo server on 127.0.0.1 instead (try `nc 127.0.0.1 7777`)",
            },
            Opt {
                flag: "--port",
                values: &["N"],
                help: "the echo server's port (default 7777)",
            },
            Opt {
                flag: "--echo-for-ms",
                values: &["N"],
                help: "stop the echo server after N ms",
            },
        ]);

    const URLS: [&str; 3] = ["google.com", "naver.com", "daum.net"];

    pub fn main() {
        let args = CLI.from_env();
        let picture = args.picture.clone();
        let echo = args.has("--echo");
        let port: u16 = match args.value("--port") {
            None => 7777,
            Some(value) => value.parse().unwrap_or_else(|_| {
                CLI.refuse(format!("`--port` expects a port number, got `{value}`"))
            }),
        };
        let echo_for = args.value("--echo-for-ms").map(|value| {
            let ms: u64 = value.parse().unwrap_or_else(|_| {
                CLI.refuse(format!(
                    "`--echo-for-ms` expects milliseconds, got `{value}`"
                ))
            });
            Duration::from_millis(ms)
        });
        if !echo && (echo_for.is_some() || args.value("--port").is_some()) {
            CLI.refuse("`--port` and `--echo-for-ms` go with `--echo`");
        }
        if echo {
            echo_server(port, echo_for);
            return;
        }
        let unit = args.unit;

        // Both servers on one thread of their own, on their own loop.
        let db = net::TcpListener::bind("127.0.0.1:0").expect("bind the database server");
        let http = net::TcpListener::bind("127.0.0.1:0").expect("bind the web server");
        let (db_addr, http_addr) = (db.local_addr().unwrap(), http.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let servers = {
            let stop = stop.clone();
            thread::Builder::new()
                .name("servers".into())
                .spawn(move || run_servers(db, http, unit, stop))
                .expect("start the servers' thread")
        };

        println!("== EX-5: 1 단위 뒤에 답하는 \"데이터베이스\" 서버 ({db_addr}) ==");
        println!("-- 질의 10개를 하나씩, 블로킹 std 소켓으로 (1장의 방식)");
        let started = Instant::now();
        for i in 0..10 {
            let answer = blocking_query(db_addr, i);
            println!(
                "[{:7.3}s] {}",
                started.elapsed().as_secs_f64(),
                answer.trim_end()
            );
        }
        let blocking = started.elapsed();
        println!(
            "블로킹 총 소요 시간: {:.3} s = {:.2} 단위 (문서: 10 단위)",
            blocking.as_secs_f64(),
            units(blocking, unit)
        );

        println!();
        println!("-- 같은 질의 10개를, 이벤트 루프 위의 진짜 소켓으로 동시에");
        let event_loop = EventLoop::new();
        if picture.wants_picture() {
            event_loop.enable_trace();
        }
        let on_loop = event_loop.run_until_complete(async {
            let tracer = get_running_loop().tracer();
            let queries: Vec<_> = (0..10)
                .map(|i| {
                    let task = spawn(loop_query(db_addr, i));
                    tracer.name(task.id(), format!("query {i}"));
                    task
                })
                .collect();
            for answer in gather(queries).await {
                say(answer.expect("a query task").trim_end());
            }
            get_running_loop().time()
        });
        println!(
            "루프 위 총 소요 시간: {:.3} s = {:.2} 단위 (문서: 1 단위); 블로킹의 {:.1}배 빠름",
            on_loop.as_secs_f64(),
            units(on_loop, unit),
            blocking.as_secs_f64() / on_loop.as_secs_f64()
        );
        let ex5_trace = event_loop.take_trace();

        println!();
        println!("== E002-6, 진짜로: 2 단위 늦게 답하는 HTTP 서버 ({http_addr})에서 URL 세 개 ==");
        let (results, gathered, waits) = event_loop.run_until_complete(async {
            let start = get_running_loop().time();
            let tracer = get_running_loop().tracer();
            let fetches: Vec<_> = URLS
                .iter()
                .map(|url| {
                    let task = spawn(fetch_url(http_addr, url));
                    tracer.name(task.id(), url.split('.').next().unwrap_or(url));
                    task
                })
                .collect();
            let outcomes: Vec<(String, Duration)> = gather(fetches)
                .await
                .into_iter()
                .map(|outcome| outcome.expect("a fetch task"))
                .collect();
            let gathered = get_running_loop().time() - start;
            let waits: Duration = outcomes.iter().map(|(_, waited)| *waited).sum();
            let results: Vec<String> = outcomes.into_iter().map(|(body, _)| body).collect();
            (results, gathered, waits)
        });
        let quoted: Vec<String> = results.iter().map(|r| format!("'{r}'")).collect();
        println!("수집 결과: [{}]", quoted.join(", "));
        println!(
            "총 소요 시간: {:.3} s = {:.2} 단위 (문서: 2 단위); 세 요청이 각각 기다린 시간의 합은 \
             {:.2} 단위 (하나씩 await하면 걸렸을 시간, 문서: 6 단위)",
            gathered.as_secs_f64(),
            units(gathered, unit),
            units(waits, unit)
        );
        let http_trace = event_loop.take_trace();
        event_loop.close();

        // Stop the servers: raise the flag, then knock once on each door so
        // that their waiting accepts see it.
        stop.store(true, Ordering::SeqCst);
        let _ = net::TcpStream::connect(db_addr);
        let _ = net::TcpStream::connect(http_addr);
        servers.join().expect("the servers' thread");

        if picture.wants_picture() {
            println!();
            let mut panels = [
                ex5_trace.to_timeline("EX-5: ten queries, side by side"),
                http_trace.to_timeline("E002-6: three GETs gathered"),
            ];
            for panel in &mut panels {
                // The main future only gathers; the picture is about the
                // requests.
                panel.rows.retain(|row| row.name != "main");
                short_pool_names(panel);
            }
            exit_if_picture_failed(picture.show_panels(&panels));
            println!(
                "(: is a task waiting on its socket, until the loop's selector finds it ready; \
                 the pool rows are the connects, which std can only do blocking, and a task \
                 waits for its connect as for any job, ~)"
            );
        }
    }

    /// One query with chapter 1's tools: a blocking connect, write, and a
    /// blocking read of the answer line.
    fn blocking_query(addr: SocketAddr, i: usize) -> String {
        let mut stream = net::TcpStream::connect(addr).expect("connect to the database");
        writeln!(stream, "SELECT * FROM users WHERE id = {i}").expect("send the query");
        let mut answer = String::new();
        BufReader::new(stream)
            .read_line(&mut answer)
            .expect("read the answer");
        answer
    }

    /// The same query on the loop: the waits are the socket's.
    async fn loop_query(addr: SocketAddr, i: usize) -> String {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to the database");
        let mut reader = LineReader::new(stream);
        let query = format!("SELECT * FROM users WHERE id = {i}\n");
        reader
            .get_mut()
            .write_all(query.as_bytes())
            .await
            .expect("send the query");
        let answer = reader.read_line().await.expect("read the answer");
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// Seed 002's `fetch_url`, over HTTP: "request sent", the wait for the
    /// answer, then the body. Gives the body and how long it waited.
    async fn fetch_url(addr: SocketAddr, url: &str) -> (String, Duration) {
        let sent = get_running_loop().time();
        let mut stream = TcpStream::connect(addr)
            .await
            .expect("connect to the web server");
        let request = format!("GET /{url} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("send the request");
        say(format!("{url} 요청 전송"));
        let mut response = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let n = stream.read(&mut buf).await.expect("read the response");
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buf[..n]);
        }
        let response = String::from_utf8_lossy(&response).into_owned();
        let body = response
            .split_once("\r\n\r\n")
            .map_or("", |(_head, body)| body)
            .to_string();
        say(format!("{url} 응답 받음"));
        (body, get_running_loop().time() - sent)
    }

    /// The servers' thread: the database and the web server, on one loop,
    /// until `stop` is raised.
    fn run_servers(
        db: net::TcpListener,
        http: net::TcpListener,
        unit: Duration,
        stop: Arc<AtomicBool>,
    ) {
        let db = TcpListener::from_std(db).expect("the database listener");
        let http = TcpListener::from_std(http).expect("the web listener");
        EventLoop::new().run_until_complete(async move {
            let db_server = spawn(serve(db, stop.clone(), move |stream| {
                database_connection(stream, unit)
            }));
            let http_server = spawn(serve(http, stop, move |stream| {
                http_connection(stream, unit * 2)
            }));
            db_server.await.expect("the database server");
            http_server.await.expect("the web server");
        });
    }

    /// Accepts connections and spawns `handle` for each, until `stop`.
    async fn serve<F, H>(mut listener: TcpListener, stop: Arc<AtomicBool>, handle: H)
    where
        H: Fn(TcpStream) -> F,
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        loop {
            let Ok((stream, _peer)) = listener.accept().await else {
                continue;
            };
            if stop.load(Ordering::SeqCst) {
                return;
            }
            drop(spawn(handle(stream)));
        }
    }

    /// One client of the "database": each query line is answered after
    /// `delay`.
    async fn database_connection(stream: TcpStream, delay: Duration) {
        let mut reader = LineReader::new(stream);
        loop {
            let query = match reader.read_line().await {
                Ok(line) if !line.is_empty() => line,
                _ => return,
            };
            sleep(delay).await;
            let query = String::from_utf8_lossy(&query);
            let answer = format!("{} -> 1 row\n", query.trim_end());
            if reader.get_mut().write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    /// One HTTP/1.0 request: read the head, wait `delay`, answer with
    /// "<url> 데이터", close.
    async fn http_connection(stream: TcpStream, delay: Duration) {
        let mut reader = LineReader::new(stream);
        let Ok(first) = reader.read_line().await else {
            return;
        };
        // The rest of the head, up to the empty line.
        loop {
            match reader.read_line().await {
                Ok(line) if line != b"\r\n" && !line.is_empty() => continue,
                _ => break,
            }
        }
        let first = String::from_utf8_lossy(&first);
        let url = first
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .trim_start_matches('/');
        sleep(delay).await;
        let body = format!("{url} 데이터");
        let response = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = reader.get_mut().write_all(response.as_bytes()).await;
    }

    /// `--echo`: an echo server on 127.0.0.1:`port`, printing who connected
    /// and when, until Ctrl-C (or `limit`).
    fn echo_server(port: u16, limit: Option<Duration>) {
        let mut listener = match TcpListener::bind(("127.0.0.1", port)) {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("error: {error}");
                std::process::exit(1);
            }
        };
        let addr = listener.local_addr().unwrap();
        println!(
            "echo server on {addr}: try `nc 127.0.0.1 {}` (Ctrl-C stops it)",
            addr.port()
        );
        EventLoop::new().run_until_complete(async move {
            let server = spawn(async move {
                let mut clients = 0u64;
                loop {
                    let (mut stream, peer) = match listener.accept().await {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            say(format!("accept failed: {error}"));
                            continue;
                        }
                    };
                    clients += 1;
                    let client = clients;
                    say(format!("client {client} connected from {peer}"));
                    drop(spawn(async move {
                        let mut buf = [0u8; 4096];
                        let mut echoed = 0usize;
                        loop {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    if stream.write_all(&buf[..n]).await.is_err() {
                                        break;
                                    }
                                    echoed += n;
                                }
                            }
                        }
                        say(format!(
                            "client {client} ({peer}) left after {echoed} bytes"
                        ));
                    }));
                }
            });
            match limit {
                Some(limit) => {
                    sleep(limit).await;
                    server.abort();
                    say("time is up: the echo server stops");
                }
                None => {
                    let _ = server.await;
                }
            }
        });
    }
}
