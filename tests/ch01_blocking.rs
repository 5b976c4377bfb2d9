//! Chapter 1's facts, checked with a small real time unit.
//!
//! Chapter 1 is the one chapter about real blocking, so these tests really
//! sleep, with a unit of 10 ms instead of the documents' 1 s. A sleep is never
//! shorter than asked, so durations have exact lower bounds; the upper bounds
//! are generous (half a second of slack) because a busy machine may wake a
//! sleeping thread late.
use std::time::Duration;

use proptest::prelude::*;
use tiny_asyncio::ch01_blocking::{
    DOCUMENT_UNIT, FETCH_UNITS, Log, Step, fetch_all_sync, fetch_data_sync, find_users_sync,
    process_sync, unit_from_args,
};

const UNIT: Duration = Duration::from_millis(10);
const SLACK: Duration = Duration::from_millis(500);

/// E000-3: one `find_users_sync(3)` records `3-1 3-2 3-3 done3` and blocks the
/// caller for at least 3 units.
#[test]
fn e000_3_one_request_blocks_one_unit_per_user() {
    let mut log = Log::new();
    find_users_sync(3, UNIT, &mut log);
    let elapsed = log.elapsed();
    assert_eq!(log.tags(), ["3-1", "3-2", "3-3", "done3"]);
    assert!(
        elapsed >= UNIT * 3,
        "returned after {elapsed:?}, before 3 units"
    );
    assert!(elapsed < UNIT * 3 + SLACK, "took {elapsed:?}");
}

/// E000-3: the three requests, served one after the other, in the exact order
/// of the document, 6 units in all.
#[test]
fn e000_3_three_requests_in_order_take_six_units() {
    let mut log = Log::new();
    let timings = process_sync(&[3, 2, 1], UNIT, &mut log);
    assert_eq!(
        log.tags(),
        [
            "3-1", "3-2", "3-3", "done3", "2-1", "2-2", "done2", "1-1", "done1"
        ]
    );
    assert!(timings.total >= UNIT * 6, "total {:?}", timings.total);
    assert!(
        timings.total < UNIT * 6 + SLACK,
        "total {:?}",
        timings.total
    );
}

/// E000-3: each look-up line is printed *before* its one-unit wait, so any two
/// consecutive lines of a request are at least one unit apart.
#[test]
fn e000_3_each_line_comes_one_unit_after_the_previous_look_up() {
    let mut log = Log::new();
    find_users_sync(3, UNIT, &mut log);
    let at: Vec<Duration> = log.entries().iter().map(|e| e.at).collect();
    for pair in at.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= UNIT, "two lines only {gap:?} apart");
    }
}

/// E001-2: the requests for 3, 2 and 1 users are answered at 3, 5 and 6 units,
/// in that order: each waits for everything ahead of it, not just for itself.
#[test]
fn e001_2_each_request_waits_for_the_ones_before_it() {
    let mut log = Log::new();
    let timings = process_sync(&[3, 2, 1], UNIT, &mut log);
    let expected_units = [3, 5, 6];
    assert_eq!(timings.answered_at.len(), 3);
    for (at, units) in timings.answered_at.iter().zip(expected_units) {
        assert!(
            *at >= UNIT * units,
            "answered at {at:?}, before {units} units"
        );
        assert!(*at < UNIT * units + SLACK, "answered at {at:?}");
    }
    assert!(timings.answered_at.is_sorted());
    assert!(timings.total >= timings.answered_at[2]);
}

/// E002-1: one fetch blocks for 2 units between its start and done lines.
#[test]
fn e002_1_one_fetch_blocks_two_units() {
    let mut log = Log::new();
    fetch_data_sync("작업1", UNIT, &mut log);
    assert_eq!(log.tags(), ["start 작업1", "done 작업1"]);
    let gap = log.entries()[1].at - log.entries()[0].at;
    assert!(
        gap >= UNIT * FETCH_UNITS,
        "start and done only {gap:?} apart"
    );
}

/// E002-1: two fetches in turn: `start1 done1 start2 done2`, 4 units in all.
#[test]
fn e002_1_two_fetches_in_turn_take_four_units() {
    let mut log = Log::new();
    let timings = fetch_all_sync(&["작업1", "작업2"], UNIT, &mut log);
    assert_eq!(
        log.tags(),
        ["start 작업1", "done 작업1", "start 작업2", "done 작업2"]
    );
    assert!(timings.total >= UNIT * 4, "total {:?}", timings.total);
    assert!(
        timings.total < UNIT * 4 + SLACK,
        "total {:?}",
        timings.total
    );
    assert!(timings.answered_at[0] >= UNIT * 2);
    assert!(timings.answered_at[1] >= UNIT * 4);
}

/// The printed lines keep the documents' wording (seeds 000 and 002).
#[test]
fn e000_3_and_e002_1_lines_use_the_documents_wording() {
    let lines = [
        Step::LookUp { of: 3, user: 1 }.to_string(),
        Step::AllFound { of: 3 }.to_string(),
        Step::FetchStart {
            name: "작업1".into(),
        }
        .to_string(),
        Step::FetchDone {
            name: "작업1".into(),
        }
        .to_string(),
    ];
    assert_eq!(
        lines,
        [
            "3명 중 1번 째 사용자 조회 중 ...",
            "> 총 3 명 사용자 동기 조회 완료!",
            "데이터 조회 시작: 작업1",
            "데이터 조회 완료: 작업1",
        ]
    );
}

/// A request for no users waits for nothing and only says it is done, like
/// Python's `range(1, 1)`.
#[test]
fn zero_users_is_done_at_once() {
    let mut log = Log::new();
    find_users_sync(0, UNIT, &mut log);
    assert_eq!(log.tags(), ["done0"]);
}

/// The example's options: no argument gives the document's 1 s unit,
/// `--unit-ms N` gives N ms, and bad input is refused with a message that says
/// what was wrong.
#[test]
fn unit_from_args_reads_unit_ms_and_explains_bad_input() {
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(unit_from_args(args(&[])), Ok(DOCUMENT_UNIT));
    assert_eq!(
        unit_from_args(args(&["--unit-ms", "100"])),
        Ok(Duration::from_millis(100))
    );
    let missing = unit_from_args(args(&["--unit-ms"])).unwrap_err();
    assert!(missing.contains("needs a value"), "{missing}");
    let not_a_number = unit_from_args(args(&["--unit-ms", "fast"])).unwrap_err();
    assert!(not_a_number.contains("`fast`"), "{not_a_number}");
    let unknown = unit_from_args(args(&["--fast"])).unwrap_err();
    assert!(unknown.contains("unknown argument `--fast`"), "{unknown}");
}

/// The tags each request should produce, built independently of the crate.
fn expected_tags(requests: &[usize]) -> Vec<String> {
    let mut tags = Vec::new();
    for &n in requests {
        tags.extend((1..=n).map(|i| format!("{n}-{i}")));
        tags.push(format!("done{n}"));
    }
    tags
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Invariant (E000-3, E001-2): served synchronously, the requests never
    /// interleave: the log is each request's lines, whole, in arrival order,
    /// and the answers come in arrival order. (A unit of zero keeps it fast;
    /// the order does not depend on the unit.)
    #[test]
    fn sync_requests_never_interleave_and_are_answered_in_arrival_order(
        requests in proptest::collection::vec(0usize..5, 0..5)
    ) {
        let mut log = Log::new();
        let timings = process_sync(&requests, Duration::ZERO, &mut log);
        prop_assert_eq!(log.tags(), expected_tags(&requests));
        prop_assert_eq!(timings.answered_at.len(), requests.len());
        prop_assert!(timings.answered_at.is_sorted());
        prop_assert!(timings.answered_at.iter().all(|at| *at <= timings.total));
    }
}
