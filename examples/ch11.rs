//! Chapter 11: taking turns (EX-3, EX-4). About 3 s with the default unit.
//!
//! The documents' unit is a second; this example's default unit is 50 ms
//! (`--unit-ms 1000` for the documents' seconds), since EX-3 and EX-4 alone
//! take 50 units.
//!
//! - EX-3: 100 `fetch_url`s of 2 units, at most 10 in flight (a
//!   `Semaphore(10)` inside each, all gathered): results in input order,
//!   never more than 10 running, 20 units; unbounded, the same 100 take 2
//!   units; a loop of awaits would take 200 (run on the virtual clock, so
//!   it takes no real time).
//! - EX-4: a producer puts 10 items, one per unit, into a `Queue(maxsize=2)`;
//!   a consumer takes one every 3 units. The producer waits whenever the
//!   queue is full; every item arrives once, in order; `join()` at 30 units.
//! - A `Lock` around a shared total across an `await`: five tasks add 1
//!   each; without the lock four updates are lost.
//! - A `TaskGroup` whose failing child cancels its sibling.
//!
//! `--timeline` draws EX-3 from a trace of the real run (each fetch is a
//! task, so the picture has 100 rows, ten busy at a time), `--svg FILE`
//! writes it as SVG.
//!
//! ```text
//! cargo run --example ch11                   # 50 ms units
//! cargo run --example ch11 -- --unit-ms 1000 # the documents' seconds
//! cargo run --example ch11 -- --timeline     # and EX-3's picture
//! ```
mod common;

use std::panic;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{exit_if_picture_failed, run_traced, say, units};
use tiny_asyncio::cli::Cli;
use tiny_asyncio::{
    EventLoop, Lock, Queue, Semaphore, TaskGroup, gather, get_running_loop, run, sleep, spawn,
};

/// The command line: `--help`, `--unit-ms N` (default 50) and the picture
/// flags, read as every example reads them (the appendix `cli`).
const CLI: Cli = Cli::new(
    "ch11",
    "EX-3 and EX-4: taking turns with a Semaphore, a Queue, a Lock and a TaskGroup",
)
.unit(Duration::from_millis(50))
.pictures();

fn now() -> Duration {
    get_running_loop().time()
}

/// E002-6's `fetch_url` for EX-3: waits for a permit, "sends", waits 2 units.
async fn fetch_url(
    i: usize,
    sem: Option<Arc<Semaphore>>,
    unit: Duration,
    flying: Arc<Flying>,
) -> String {
    let _permit = match &sem {
        Some(sem) => Some(sem.acquire().await),
        None => None,
    };
    flying.start();
    sleep(unit * 2).await;
    flying.end();
    format!("url{i:02} 데이터")
}

/// How many fetches are in flight, and the most at once.
#[derive(Default)]
struct Flying {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl Flying {
    fn start(&self) {
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
    }
    fn end(&self) {
        self.now.fetch_sub(1, SeqCst);
    }
}

/// EX-3 with a semaphore of `limit` (or none), 100 fetches spawned as tasks
/// and gathered; prints what it measured.
async fn ex3(limit: Option<usize>, unit: Duration) {
    let sem = limit.map(|n| Arc::new(Semaphore::new(n)));
    let flying = Arc::new(Flying::default());
    let tracer = get_running_loop().tracer();
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let handle = spawn(fetch_url(i, sem.clone(), unit, flying.clone()));
            tracer.name(handle.id(), format!("fetch {i:02}"));
            handle
        })
        .collect();
    let results: Vec<String> = gather(handles)
        .await
        .into_iter()
        .map(|r| r.expect("a fetch does not fail"))
        .collect();
    let total = now();
    let in_order = results
        .iter()
        .enumerate()
        .all(|(i, r)| *r == format!("url{i:02} 데이터"));
    say(format!(
        "결과 {}개, 입력 순서 그대로: {in_order}; 동시에 가장 많이 진행된 요청: {}",
        results.len(),
        flying.most.load(SeqCst)
    ));
    let document = if limit.is_some() { 20 } else { 2 };
    println!(
        "총 소요 시간: {:.3} s = {:.2} 단위 (EX-3: {document} 단위)",
        total.as_secs_f64(),
        units(total, unit)
    );
}

fn main() {
    let args = CLI.from_env();
    let (picture, unit) = (args.picture, args.unit);
    println!("(한 단위 = {} ms)", unit.as_millis());

    println!("== EX-3: Semaphore(10)으로 100개 요청을 10개씩 ==");
    let ((), trace) = run_traced(picture.wants_picture(), ex3(Some(10), unit));
    println!();
    println!("== EX-3: 제한 없이 gather ==");
    run(ex3(None, unit));
    println!();
    println!("== EX-3: 반복문 안에서 하나씩 await (가상 시계: 실제로는 기다리지 않는다) ==");
    let virtual_loop = EventLoop::with_virtual_clock();
    virtual_loop.run_until_complete(async {
        let flying = Arc::new(Flying::default());
        for i in 0..100 {
            fetch_url(i, None, Duration::from_secs(1), flying.clone()).await;
        }
    });
    println!(
        "총 소요 시간: {:?} (가상 시계, 1 단위 = 1 s; EX-3: 200 단위)",
        virtual_loop.time()
    );
    if picture.wants_picture() {
        println!();
        let mut timeline = trace.to_timeline("EX-3: Semaphore(10), 100 fetches of 2 units");
        // The main future's row says nothing here: it only waits.
        timeline
            .rows
            .retain(|row| row.name != trace.name_of(tiny_asyncio::trace::MAIN));
        exit_if_picture_failed(picture.show(&timeline));
    }

    println!();
    println!("== EX-4: Queue(maxsize=2), 생산자는 1 단위마다, 소비자는 3 단위마다 ==");
    ex4(unit);

    println!();
    println!("== Lock: await를 사이에 둔 읽고-쓰기 (5개 태스크가 각자 1씩 더한다) ==");
    for with_lock in [false, true] {
        let (total, took) = lost_update(with_lock, unit);
        println!(
            "{}: 합계 = {total} (잃어버린 갱신 {}), {:.2} 단위",
            if with_lock {
                "Lock 있음"
            } else {
                "Lock 없음"
            },
            5 - total,
            units(took, unit)
        );
    }

    println!();
    println!("== TaskGroup: 실패한 자식이 형제를 취소한다 ==");
    task_group(unit);
}

/// EX-4: the producer and the consumer.
fn ex4(unit: Duration) {
    run(async move {
        let queue = Arc::new(Queue::new(2));
        let got = Arc::new(Mutex::new(Vec::new()));
        let consumer = {
            let (queue, got) = (queue.clone(), got.clone());
            spawn(async move {
                loop {
                    let item: u32 = queue.get().await;
                    say(format!(
                        "      소비자: {item} 꺼냄 (큐에 {}개)",
                        queue.qsize()
                    ));
                    got.lock().unwrap().push(item);
                    sleep(unit * 3).await;
                    queue.task_done();
                }
            })
        };
        let mut waits = 0;
        for item in 0..10 {
            let asked = now();
            queue.put(item).await;
            let waited = now() - asked;
            if waited > unit / 2 {
                waits += 1;
                say(format!(
                    "생산자: {item} 넣음 (큐가 차 있어 {:.1} 단위 기다림)",
                    units(waited, unit)
                ));
            } else {
                say(format!("생산자: {item} 넣음"));
            }
            sleep(unit).await;
        }
        queue.join().await;
        let joined = now();
        consumer.abort();
        let _ = consumer.await;
        let got = got.lock().unwrap().clone();
        say(format!(
            "join() 반환: {:.2} 단위 (EX-4: 30 단위); 생산자가 기다린 횟수 {waits}",
            units(joined, unit)
        ));
        println!(
            "받은 순서: {got:?} (한 번씩, 넣은 순서대로: {})",
            got == (0..10).collect::<Vec<_>>()
        );
    });
}

/// Five tasks add 1 to a shared total: read, wait a unit, write.
fn lost_update(with_lock: bool, unit: Duration) -> (u64, Duration) {
    run(async move {
        let total = Arc::new(AtomicU64::new(0));
        let lock = Arc::new(Lock::new());
        let handles: Vec<_> = (0..5)
            .map(|_| {
                let (total, lock) = (total.clone(), lock.clone());
                spawn(async move {
                    let _guard = if with_lock {
                        Some(lock.lock().await)
                    } else {
                        None
                    };
                    let read = total.load(SeqCst);
                    sleep(unit).await; // another task runs here
                    total.store(read + 1, SeqCst);
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("an adder does not fail");
        }
        (total.load(SeqCst), now())
    })
}

/// Three children: one done at half a unit, one failing at 1 unit, one
/// that would take 5 units.
fn task_group(unit: Duration) {
    // The panic hook reports the planned panic on stderr; one short line.
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(|_| eprintln!("(stderr, 패닉 훅: 자식 b가 패닉)")));
    run(async move {
        let group = TaskGroup::new();
        let a = group.spawn(async move {
            sleep(unit / 2).await;
            say("a: 끝남");
            "a의 결과"
        });
        let _b = group.spawn(async move {
            sleep(unit).await;
            say("b: 패닉!");
            panic!("b failed");
        });
        let c = group.spawn(async move {
            sleep(unit * 5).await;
            say("c: 끝남 (나오면 안 된다)");
        });
        match group.join().await {
            Ok(()) => say("join() → Ok (실패가 없었다?!)"),
            Err(error) => say(format!("join() → Err: {error}")),
        }
        println!(
            "a → {:?}; c 취소됨: {}; join 시각 {:.2} 단위 (b가 실패한 시각)",
            a.await.expect("a finished before the failure"),
            c.await.is_err_and(|e| e.is_cancelled()),
            units(now(), unit)
        );
    });
    panic::set_hook(default_hook);
}
