//! Chapter 7: waiting for many. About 12 s with the documents' 1-second unit.
//!
//! - E002-2: two fetches gathered: `start1 start2 done1 done2`, 2 s
//!   (chapter 1's blocking version took 4 s).
//! - E002-6: three `fetch_url` gathered: three "요청 전송" lines first, the
//!   results in input order, 2 s.
//! - E002-7: the same awaited one by one in a loop: 6 s.
//! - `wait(FIRST_COMPLETED)` then `as_completed` on the same requests, each
//!   with its own latency.
//! - The cost: the naive join against `gather`, polls counted and time
//!   measured, on the virtual clock (no waiting, only the polling).
//!
//! `--timeline` draws E002-6 (gathered) beside E002-7 (in a loop) from
//! traces of the real runs, `--svg FILE` writes the two panels as SVG. Each
//! has one row: gather's children are not tasks, they run inside the main
//! future's poll, so the picture shows one task woken once (gather) or
//! three times (the loop).
//!
//! ```text
//! cargo run --example ch07                  # the documents' durations
//! cargo run --example ch07 -- --unit-ms 100 # ten times faster
//! cargo run --example ch07 -- --timeline    # and the picture
//! cargo run --release --example ch07        # the measurement at full speed
//! ```
mod common;

use std::time::{Duration, Instant};

use common::{exit_if_picture_failed, run_traced, say, units};
use tiny_asyncio::ch07_gather::{PollCounter, naive_join_all};
use tiny_asyncio::cli::Cli;
use tiny_asyncio::{
    EventLoop, ReturnWhen, as_completed, gather, get_running_loop, run, sleep, wait, yield_now,
};

/// The command line: `--help`, `--unit-ms N` and the picture flags.
const CLI: Cli = Cli::new(
    "ch07",
    "E002-2, E002-6 and E002-7: waiting for many with gather",
)
.unit(Duration::from_secs(1))
.pictures();

/// A Python-style list of strings: `['a', 'b']`, as the document prints it.
fn py_list<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|item| format!("'{}'", item.as_ref()))
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// Seed 002's `fetch_data_async`: start, a 2-unit wait, done.
async fn fetch_data_async(name: &str, unit: Duration) {
    say(format!("데이터 조회 시작: {name}"));
    sleep(unit * 2).await;
    say(format!("데이터 조회 완료: {name}"));
}

/// Seed 002's `fetch_url`: "request sent", a wait, "<url> 데이터".
async fn fetch_url(url: &str, latency: Duration) -> String {
    say(format!("{url} 요청 전송"));
    sleep(latency).await;
    format!("{url} 데이터")
}

const URLS: [&str; 3] = ["google.com", "naver.com", "daum.net"];

fn main() {
    let args = CLI.from_env();
    let (picture, unit) = (args.picture, args.unit);

    println!("== E002-2: 비동기 데이터 조회, gather로 두 작업을 동시에 ==");
    run(async {
        gather([
            fetch_data_async("작업1", unit),
            fetch_data_async("작업2", unit),
        ])
        .await;
        let total = get_running_loop().time();
        println!(
            "비동기 총 소요 시간: {:.3} s = {:.3} 단위 (문서: 2 단위; 1장의 동기 방식은 4 단위)",
            total.as_secs_f64(),
            units(total, unit)
        );
    });

    println!();
    println!("== E002-6: gather로 세 URL 요청 ==");
    let ((), gathered) = run_traced(picture.wants_picture(), async {
        let results = gather(URLS.map(|url| fetch_url(url, unit * 2))).await;
        say(format!("수집 결과: {}", py_list(&results)));
        let total = get_running_loop().time();
        println!(
            "총 소요 시간: {:.3} s = {:.3} 단위 (문서: 2 단위, 결과는 입력 순서)",
            total.as_secs_f64(),
            units(total, unit)
        );
    });

    println!();
    println!("== E002-7: 반복문 안의 await는 하나씩 차례로 ==");
    let ((), in_a_loop) = run_traced(picture.wants_picture(), async {
        let mut results = Vec::new();
        for url in URLS {
            results.push(fetch_url(url, unit * 2).await);
        }
        say(format!("수집 결과: {}", py_list(&results)));
        let total = get_running_loop().time();
        println!(
            "총 소요 시간: {:.3} s = {:.3} 단위 (문서: 6 단위)",
            total.as_secs_f64(),
            units(total, unit)
        );
    });
    if picture.wants_picture() {
        println!();
        let panels = [
            gathered.to_timeline("E002-6: gather(fetch_url × 3)"),
            in_a_loop.to_timeline("E002-7: await in a loop"),
        ];
        exit_if_picture_failed(picture.show_panels(&panels));
    }

    println!();
    println!("== wait와 as_completed: 같은 요청, 서버마다 다른 응답 시간 ==");
    let latencies = [unit * 2, unit, unit * 3 / 2];
    println!("(google.com 2 단위, naver.com 1 단위, daum.net 1.5 단위)");
    run(async {
        let requests = URLS
            .iter()
            .zip(latencies)
            .map(|(url, latency)| fetch_url(url, latency));
        let first = wait(requests, ReturnWhen::FirstCompleted).await;
        let done: Vec<String> = first.done.iter().map(|(_, out)| out.clone()).collect();
        let pending: Vec<&str> = first.pending.iter().map(|(i, _)| URLS[*i]).collect();
        say(format!(
            "wait(FIRST_COMPLETED) 반환: done = {}, pending = {}",
            py_list(&done),
            py_list(&pending)
        ));
        println!("as_completed(pending): 끝나는 순서대로");
        let mut rest = as_completed(first.pending.into_iter().map(|(_, fut)| fut));
        while let Some(result) = rest.next().await {
            say(format!("  {result}"));
        }
        let total = get_running_loop().time();
        println!(
            "총 소요 시간: {:.3} s = {:.3} 단위 (가장 느린 요청의 시간)",
            total.as_secs_f64(),
            units(total, unit)
        );
    });

    println!();
    measure();
}

/// The naive join against `gather`, on the virtual clock: n children that
/// sleep 1, 2, …, n ms wake the parent n times, one child per wake.
fn measure() {
    println!("== 비용: 자식 n개가 각자 다른 시각(1, 2, …, n ms)에 깨어날 때 (가상 시계) ==");
    println!("naive: 깨어날 때마다 모든 자식을 poll / gather: 깨운 자식만 poll");
    println!(
        "{:>7} | {:>12} {:>10} | {:>12} {:>10}",
        "n", "naive polls", "time", "gather polls", "time"
    );
    // A debug build polls ~10x slower: smaller sizes keep the run short.
    let (sizes, gather_only): (&[u64], &[u64]) = if cfg!(debug_assertions) {
        (&[250, 500, 1_000], &[10_000])
    } else {
        (&[1_000, 2_000, 4_000], &[10_000, 100_000])
    };
    for &n in sizes {
        let (naive_polls, naive_time) = count_polls(n, true);
        let (gather_polls, gather_time) = count_polls(n, false);
        println!(
            "{n:>7} | {naive_polls:>12} {:>8.1}ms | {gather_polls:>12} {:>8.1}ms",
            naive_time.as_secs_f64() * 1e3,
            gather_time.as_secs_f64() * 1e3,
        );
    }
    for &n in gather_only {
        let (polls, time) = count_polls(n, false);
        println!(
            "{n:>7} | {:>12} {:>10} | {polls:>12} {:>8.1}ms",
            "-",
            "-",
            time.as_secs_f64() * 1e3,
        );
    }
    println!("naive는 n이 두 배면 poll이 네 배 (n + n(n+1)/2), gather는 두 배 (2n).");

    // The other extreme: every child wakes at every turn (each yields
    // once). Then every poll of the naive join is useful, and gather's
    // bookkeeping (a waker per child, the woken list) is pure overhead.
    let n = 100_000u32;
    let per_child = |took: Duration| took.as_secs_f64() * 1e9 / f64::from(n);
    let event_loop = EventLoop::with_virtual_clock();
    let started = Instant::now();
    event_loop.run_until_complete(gather((0..n).map(|_| yield_now())));
    let gather_took = started.elapsed();
    let started = Instant::now();
    event_loop.run_until_complete(naive_join_all((0..n).map(|_| yield_now())));
    let naive_took = started.elapsed();
    println!(
        "모든 자식이 매번 깨어날 때 (한 번씩 양보하는 자식 {n}개): \
         gather {:.0} ns, naive {:.0} ns / 자식{}",
        per_child(gather_took),
        per_child(naive_took),
        if cfg!(debug_assertions) {
            " (디버그 빌드; --release로 재면 훨씬 빠르다)"
        } else {
            ""
        }
    );
    println!("깨어나는 자식이 드물수록 gather가 이기고, 모두가 매번 깨어나면 naive가 더 싸다.");
}

/// Polls and real time to join n children that sleep 1..=n ms.
fn count_polls(n: u64, naive: bool) -> (u64, Duration) {
    let event_loop = EventLoop::with_virtual_clock();
    let counter = PollCounter::new();
    let started = Instant::now();
    event_loop.run_until_complete(async {
        let children = (1..=n).map(|i| counter.count(sleep(Duration::from_millis(i))));
        if naive {
            naive_join_all(children).await.len()
        } else {
            gather(children).await.len()
        }
    });
    assert_eq!(event_loop.time(), Duration::from_millis(n));
    (counter.get(), started.elapsed())
}
