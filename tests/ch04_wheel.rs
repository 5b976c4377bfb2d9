//! Chapter 4, the timing wheel, seen from outside.
//!
//! The wheel is checked against the simplest thing that could be right: a
//! `BTreeMap` sorted by `(deadline, registration)`. Deadlines are drawn where
//! timer wheels have shipped bugs (STYLE.md): on and around the level
//! boundaries 64^k, right around the current tick, and beyond the eight
//! levels' 2^48 ticks up to `u64::MAX`. Then come exhaustive sweeps across
//! boundaries, and one unit test per promise of the API.
//!
//! Ticks are plain numbers here; the chapter's timer reads 1 tick as 1 µs,
//! so `1_000_000` below is the one second of E003-1's `sleep(1)`.

use std::collections::BTreeMap;

use proptest::prelude::*;
use tiny_asyncio::ch04_timer::wheel::*;

const ONE_SECOND: u64 = 1_000_000;
/// The span of the eight levels: 64^8 = 2^48 ticks.
const RANGE: u64 = 1 << 48;

/// `64^level`, the span of one slot at `level` (`level` in 0..=8).
fn slot_span(level: u32) -> u64 {
    1 << (6 * level)
}

/// Advances and returns what fired, for tests that do not reuse the buffer.
fn advance<T>(wheel: &mut Wheel<T>, now: u64) -> Vec<(u64, T)> {
    let mut fired = Vec::new();
    wheel.advance(now, &mut fired);
    fired
}

// ----- the reference model ------------------------------------------------

/// What the wheel must behave like: timers sorted by (deadline, registration).
#[derive(Default)]
struct Model {
    now: u64,
    /// `(deadline, id) -> id`; ids count insertions, so they are the
    /// registration order.
    timers: BTreeMap<(u64, u64), u64>,
    /// The deadline of every id ever inserted, live or not.
    deadline_of: Vec<u64>,
}

impl Model {
    fn insert(&mut self, deadline: u64) -> u64 {
        let id = self.deadline_of.len() as u64;
        self.deadline_of.push(deadline);
        self.timers.insert((deadline, id), id);
        id
    }

    fn cancel(&mut self, id: u64) -> Option<u64> {
        self.timers.remove(&(self.deadline_of[id as usize], id))
    }

    /// Everything with deadline <= now (the clock never goes back), in order.
    fn advance(&mut self, now: u64) -> Vec<(u64, u64)> {
        self.now = self.now.max(now);
        let later = match self.now.checked_add(1) {
            Some(next) => self.timers.split_off(&(next, 0)),
            None => BTreeMap::new(),
        };
        let due = std::mem::replace(&mut self.timers, later);
        due.into_iter().map(|((d, _), id)| (d, id)).collect()
    }

    fn next_deadline(&self) -> Option<u64> {
        self.timers.keys().next().map(|&(d, _)| d)
    }
}

/// A tick chosen relative to the wheel's state when the step runs, so that
/// the interesting places (boundaries, the current tick, the next deadline)
/// are hit far more often than uniform random numbers would.
#[derive(Clone, Debug)]
enum When {
    /// `now + delta`, saturating at both ends.
    NearNow(i16),
    /// A multiple of `64^level` just after now (`ahead` boundaries on, 0 =
    /// the one at or before now), plus `offset`.
    NearBoundary { level: u32, ahead: u8, offset: i8 },
    /// The model's next deadline plus `offset` (now when there is none).
    NearNextDeadline(i8),
    /// `now + 2^shift + extra`: beyond the top level when `shift >= 48`.
    Far { shift: u32, extra: u16 },
    /// `u64::MAX - below`.
    NearMax(u8),
    /// Any tick at all.
    Anywhere(u64),
}

impl When {
    fn resolve(&self, model: &Model) -> u64 {
        let now = model.now;
        match *self {
            When::NearNow(delta) => now.saturating_add_signed(i64::from(delta)),
            When::NearBoundary {
                level,
                ahead,
                offset,
            } => {
                let shift = 6 * level;
                let boundary = (u128::from(now >> shift) + u128::from(ahead)) << shift;
                u64::try_from(boundary)
                    .unwrap_or(u64::MAX)
                    .saturating_add_signed(i64::from(offset))
            }
            When::NearNextDeadline(offset) => model
                .next_deadline()
                .unwrap_or(now)
                .saturating_add_signed(i64::from(offset)),
            When::Far { shift, extra } => now
                .saturating_add(1 << shift)
                .saturating_add(u64::from(extra)),
            When::NearMax(below) => u64::MAX - u64::from(below),
            When::Anywhere(tick) => tick,
        }
    }
}

fn when_strategy(far_weight: u32) -> impl Strategy<Value = When> {
    prop_oneof![
        6 => (-70i16..200).prop_map(When::NearNow),
        8 => (1u32..=8, 0u8..3, -3i8..=3).prop_map(|(level, ahead, offset)| {
            When::NearBoundary { level, ahead, offset }
        }),
        4 => (-1i8..=1).prop_map(When::NearNextDeadline),
        far_weight => (40u32..64, any::<u16>())
            .prop_map(|(shift, extra)| When::Far { shift, extra }),
        far_weight => (0u8..3).prop_map(When::NearMax),
        1 => any::<u64>().prop_map(When::Anywhere),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    Insert(When),
    /// Cancels the n-th key ever issued (modulo their number): often stale.
    Cancel(usize),
    Advance(When),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => when_strategy(2).prop_map(Op::Insert),
        2 => any::<usize>().prop_map(Op::Cancel),
        // Jumps far ahead are rarer for `advance`, or most runs would end up
        // at u64::MAX after a few steps.
        4 => when_strategy(0).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Invariant: after every step of any mix of insert, cancel and advance,
    /// the wheel agrees with a sorted model. `advance` hands out exactly the
    /// timers whose deadline is at or before the new tick, sorted by deadline
    /// and then by registration order; `cancel` returns the value of a live
    /// timer and `None` for a stale key; `len`, `now` and `next_deadline`
    /// (exact, not a slot boundary) match.
    #[test]
    fn expired_entries_match_a_sorted_model_in_deadline_then_registration_order(
        ops in prop::collection::vec(op_strategy(), 1..120)
    ) {
        let mut wheel = Wheel::new();
        let mut model = Model::default();
        let mut keys = Vec::new();
        let mut fired = Vec::new();
        for op in &ops {
            match op {
                Op::Insert(when) => {
                    let deadline = when.resolve(&model);
                    let id = model.insert(deadline);
                    keys.push(wheel.insert(deadline, id));
                }
                Op::Cancel(n) if !keys.is_empty() => {
                    let id = n % keys.len();
                    prop_assert_eq!(wheel.cancel(keys[id]), model.cancel(id as u64));
                }
                Op::Cancel(_) => {}
                Op::Advance(when) => {
                    let now = when.resolve(&model);
                    fired.clear();
                    wheel.advance(now, &mut fired);
                    prop_assert_eq!(&fired, &model.advance(now), "advance({})", now);
                }
            }
            prop_assert_eq!(wheel.now(), model.now);
            prop_assert_eq!(wheel.len(), model.timers.len());
            prop_assert_eq!(wheel.is_empty(), model.timers.is_empty());
            prop_assert_eq!(wheel.next_deadline(), model.next_deadline());
        }
    }

    /// Invariant: a timer never fires before its deadline, and never stays
    /// behind once the clock has passed it, for deadlines on level boundaries,
    /// beyond the eight levels and at `u64::MAX`, whatever the jumps.
    #[test]
    fn timers_never_fire_early_and_never_stay_behind(
        deadlines in prop::collection::vec(when_strategy(3), 1..40),
        jumps in prop::collection::vec(when_strategy(1), 1..30),
    ) {
        let mut wheel = Wheel::new();
        let start = Model::default();
        for (id, when) in deadlines.iter().enumerate() {
            let deadline = when.resolve(&start);
            wheel.insert(deadline, (id, deadline));
        }
        let mut fired = Vec::new();
        for jump in &jumps {
            let at = Model { now: wheel.now(), ..Model::default() };
            let now = jump.resolve(&at).max(wheel.now());
            fired.clear();
            wheel.advance(now, &mut fired);
            for &(deadline, (_, asked)) in &fired {
                prop_assert_eq!(deadline, asked, "a timer reports its own deadline");
                prop_assert!(deadline <= now, "fired {} early at {}", deadline, now);
            }
            if let Some(next) = wheel.next_deadline() {
                prop_assert!(next > now, "{} stayed behind at {}", next, now);
            }
        }
    }
}

// ----- exhaustive sweeps --------------------------------------------------

/// Windows of ticks that straddle each level boundary 64^k, the end of the
/// eight levels' range (2^48) and the end of time (`u64::MAX`).
fn windows(width: u64) -> Vec<(u64, u64)> {
    let mut windows = vec![(0, 3 * slot_span(2) + width)];
    for level in 2..=8 {
        windows.push((slot_span(level) - width / 2, width));
    }
    windows.push((u64::MAX - width + 1, width));
    windows
}

/// For every tick `t` of each window, stepping one tick at a time: the
/// timers due at `t` fire at `t`, not one tick before or after. Each
/// deadline has two timers, one filed at tick 0 (so it sits in a high level
/// and cascades) and one filed just before the window (a low level); they
/// fire together, in registration order.
#[test]
fn stepping_tick_by_tick_fires_each_timer_exactly_at_its_deadline() {
    for (start, width) in windows(600) {
        let end = start + (width - 1); // inclusive: `start + width` may overflow
        let mut wheel = Wheel::new();
        for d in start..=end {
            wheel.insert(d, (d, "filed at 0"));
        }
        if start > 0 {
            assert_eq!(advance(&mut wheel, start - 1), [], "window at {start}");
        }
        for d in start..=end {
            wheel.insert(d, (d, "filed late"));
        }
        let mut fired = Vec::new();
        for t in start..=end {
            fired.clear();
            wheel.advance(t, &mut fired);
            assert_eq!(
                fired,
                [(t, (t, "filed at 0")), (t, (t, "filed late"))],
                "tick {t}"
            );
            let next = if t < end { Some(t + 1) } else { None };
            assert_eq!(wheel.next_deadline(), next, "after tick {t}");
        }
        assert!(wheel.is_empty());
    }
}

/// For every tick `t` of each window, jumping there in two leaps: exactly
/// the timers with deadline <= t fire, in deadline order, and the next
/// deadline is the smallest one left. The timers sit on every boundary the
/// window crosses and at t - 1, t and t + 1.
#[test]
fn jumping_to_any_tick_fires_exactly_the_timers_due_by_then() {
    for (start, width) in windows(200) {
        let end = start + (width - 1);
        let deadlines: Vec<u64> = (1..=8)
            .map(slot_span)
            .flat_map(|span| {
                let boundary = end / span * span;
                [
                    boundary.saturating_sub(1),
                    boundary,
                    boundary.saturating_add(1),
                ]
            })
            .filter(|d| (start..=end).contains(d))
            .collect();
        for t in start..=end {
            let mut wheel = Wheel::new();
            let mut all = deadlines.clone();
            all.extend([t.saturating_sub(1), t, t.saturating_add(1)]);
            for &d in &all {
                wheel.insert(d, d);
            }
            all.sort_unstable();
            let halfway = start / 2 + t / 2;
            let mut fired = advance(&mut wheel, halfway);
            fired.extend(advance(&mut wheel, t));
            let expected: Vec<(u64, u64)> =
                all.iter().filter(|&&d| d <= t).map(|&d| (d, d)).collect();
            assert_eq!(fired, expected, "jump to {t} via {halfway}");
            let next = all.iter().copied().find(|&d| d > t);
            assert_eq!(wheel.next_deadline(), next, "after jumping to {t}");
        }
    }
}

// ----- one promise per test -----------------------------------------------

/// E003-1: `sleep(1)` fires at exactly one second; one tick before is early.
#[test]
fn a_one_second_sleep_fires_at_one_second_not_a_tick_before_e003_1() {
    let mut wheel = Wheel::new();
    wheel.insert(ONE_SECOND, "after wait 1 second");
    assert_eq!(advance(&mut wheel, ONE_SECOND - 1), []);
    assert_eq!(wheel.now(), ONE_SECOND - 1);
    assert_eq!(
        advance(&mut wheel, ONE_SECOND),
        [(ONE_SECOND, "after wait 1 second")]
    );
    assert!(wheel.is_empty());
}

/// E004-6: `say_after(1, "hello")` and `say_after(2, "world")` as tasks both
/// register at 0; one jump past both hands them out in deadline order.
#[test]
fn two_sleeps_registered_together_fire_in_deadline_order_e004_6() {
    let mut wheel = Wheel::new();
    wheel.insert(2 * ONE_SECOND, "world");
    wheel.insert(ONE_SECOND, "hello");
    assert_eq!(wheel.len(), 2);
    assert_eq!(wheel.next_deadline(), Some(ONE_SECOND));
    assert_eq!(
        advance(&mut wheel, 5 * ONE_SECOND),
        [(ONE_SECOND, "hello"), (2 * ONE_SECOND, "world")]
    );
}

/// Equal deadlines fire in registration order, although the slot's order is
/// scrambled by cancels (swap_remove) and the timers were filed at different
/// levels (some at tick 0, some just before the deadline).
#[test]
fn equal_deadlines_fire_in_registration_order() {
    let deadline = 5 * slot_span(2) + 7;
    let mut wheel = Wheel::new();
    let early: Vec<_> = (0..40).map(|i| wheel.insert(deadline, i)).collect();
    for &i in &[0, 7, 8, 20, 39] {
        assert_eq!(wheel.cancel(early[i]), Some(i));
    }
    assert_eq!(advance(&mut wheel, deadline - 3), []);
    for i in 40..60 {
        wheel.insert(deadline, i);
    }
    let fired = advance(&mut wheel, deadline);
    let expected: Vec<(u64, usize)> = (0..60)
        .filter(|i| ![0, 7, 8, 20, 39].contains(i))
        .map(|i| (deadline, i))
        .collect();
    assert_eq!(fired, expected);
}

/// A cancelled timer never fires, and cancel hands back its value.
#[test]
fn a_cancelled_timer_never_fires() {
    let mut wheel = Wheel::new();
    let hello = wheel.insert(ONE_SECOND, "hello");
    let world = wheel.insert(2 * ONE_SECOND, "world");
    assert_eq!(wheel.cancel(world), Some("world"));
    assert_eq!(wheel.len(), 1);
    assert_eq!(wheel.next_deadline(), Some(ONE_SECOND));
    assert_eq!(advance(&mut wheel, u64::MAX), [(ONE_SECOND, "hello")]);
    assert_eq!(wheel.cancel(hello), None, "fired: stale");
}

/// Cancel is O(1): it swaps the slot's last entry into the hole and updates
/// that entry's stored position, so cancelling in any order out of one
/// crowded slot leaves exactly the others, each still cancellable by key.
#[test]
fn cancel_takes_a_timer_out_of_a_crowded_slot_without_disturbing_the_others() {
    const N: u64 = 10_000;
    let mut wheel = Wheel::new();
    // All in one level-1 slot: 64..128 ticks from 0.
    let keys: Vec<_> = (0..N).map(|i| wheel.insert(64 + i % 64, i)).collect();
    assert_eq!(
        wheel.place(keys[0]),
        Some(Place::Slot { level: 1, slot: 1 })
    );
    // Cancel every third, front first, then from the back: the moves that
    // a stored position gets wrong if it is not kept up to date.
    for i in (0..N).step_by(3) {
        assert_eq!(wheel.cancel(keys[i as usize]), Some(i));
    }
    for i in (0..N).rev().filter(|i| i % 3 == 1) {
        assert_eq!(wheel.cancel(keys[i as usize]), Some(i));
    }
    assert_eq!(wheel.len(), (N / 3) as usize);
    let fired = advance(&mut wheel, 1000);
    let mut expected: Vec<(u64, u64)> = (0..N)
        .filter(|i| i % 3 == 2)
        .map(|i| (64 + i % 64, i))
        .collect();
    expected.sort();
    assert_eq!(fired, expected);
}

/// A stale key (fired, cancelled, or whose slab cell now holds another
/// timer) answers None everywhere and never touches the new occupant.
#[test]
fn a_stale_key_is_harmless() {
    let mut wheel = Wheel::new();
    let cancelled = wheel.insert(10, "cancelled");
    assert_eq!(wheel.cancel(cancelled), Some("cancelled"));
    assert_eq!(wheel.cancel(cancelled), None, "cancelled twice");
    // The freed cell is reused by the next insertion.
    let reuser = wheel.insert(10, "reuser");
    assert_eq!(wheel.cancel(cancelled), None, "old key, reused cell");
    assert_eq!(wheel.get(cancelled), None);
    assert_eq!(wheel.deadline(cancelled), None);
    assert_eq!(wheel.place(cancelled), None);
    assert_eq!(wheel.get(reuser), Some(&"reuser"));
    assert_eq!(advance(&mut wheel, 10), [(10, "reuser")]);
    assert_eq!(wheel.cancel(reuser), None, "fired");
    assert_eq!(wheel.get_mut(reuser), None);
}

/// `u64::MAX` and deadlines past the eight levels never panic, never fire
/// early, and fire in order once the clock gets there.
#[test]
fn far_deadlines_and_u64_max_never_panic_and_never_fire_early() {
    let far = [RANGE - 1, RANGE, RANGE + 1, 1 << 60, u64::MAX - 1, u64::MAX];
    let mut wheel = Wheel::new();
    for (i, &d) in far.iter().enumerate().rev() {
        wheel.insert(d, i);
    }
    assert_eq!(wheel.next_deadline(), Some(RANGE - 1));
    for (i, &d) in far.iter().enumerate() {
        assert_eq!(advance(&mut wheel, d - 1), [], "one tick before {d}");
        assert_eq!(wheel.next_deadline(), Some(d));
        assert_eq!(advance(&mut wheel, d), [(d, i)], "at {d}");
    }
    assert!(wheel.is_empty());
    // At the end of time, everything is due and nothing overflows.
    assert_eq!(advance(&mut wheel, u64::MAX), []);
    let key = wheel.insert(u64::MAX, 99);
    assert_eq!(wheel.place(key), Some(Place::Due));
    assert_eq!(advance(&mut wheel, u64::MAX), [(u64::MAX, 99)]);
}

/// A deadline just past the eight levels' range, seen from a tick inside
/// it, waits in the overflow list: filed by its low bits alone it would
/// wrap into an early slot (slot 0 of level 7 here) and fire 2^48 ticks early.
#[test]
fn a_deadline_past_the_range_does_not_wrap_around_into_an_early_slot() {
    let mut wheel = Wheel::new();
    assert_eq!(advance(&mut wheel, 100), []);
    let key = wheel.insert(100 + RANGE, "nine years on");
    assert_eq!(wheel.place(key), Some(Place::Overflow));
    assert_eq!(wheel.next_deadline(), Some(100 + RANGE));
    assert_eq!(advance(&mut wheel, RANGE - 1), []);
    assert_eq!(wheel.place(key), Some(Place::Overflow));
    // Crossing into its 2^48-tick stretch re-files it: 100 = 1·64 + 36.
    assert_eq!(advance(&mut wheel, RANGE), []);
    assert_eq!(wheel.place(key), Some(Place::Slot { level: 1, slot: 1 }));
    assert_eq!(advance(&mut wheel, RANGE + 99), []);
    assert_eq!(wheel.place(key), Some(Place::Slot { level: 0, slot: 36 }));
    assert_eq!(
        advance(&mut wheel, RANGE + 100),
        [(RANGE + 100, "nine years on")]
    );
}

/// Time never goes backwards: a smaller tick moves nothing and fires nothing.
#[test]
fn advancing_backwards_is_a_no_op() {
    let mut wheel = Wheel::new();
    wheel.insert(50, "early");
    wheel.insert(500, "late");
    assert_eq!(advance(&mut wheel, 100), [(50, "early")]);
    assert_eq!(advance(&mut wheel, 10), []);
    assert_eq!(wheel.now(), 100);
    assert_eq!(wheel.len(), 1);
    assert_eq!(wheel.next_deadline(), Some(500));
    assert_eq!(advance(&mut wheel, 500), [(500, "late")]);
}

/// A deadline at or before now() is due at once: the next advance hands it
/// out, even an advance that does not move the clock, before later ones.
#[test]
fn a_deadline_already_passed_fires_on_the_next_advance() {
    let mut wheel = Wheel::new();
    assert_eq!(advance(&mut wheel, 1000), []);
    let key = wheel.insert(1000, "now");
    wheel.insert(3, "long ago");
    assert_eq!(wheel.place(key), Some(Place::Due));
    assert_eq!(wheel.next_deadline(), Some(3), "exact, even in the past");
    assert_eq!(
        advance(&mut wheel, 0),
        [(3, "long ago"), (1000, "now")],
        "the clock stays, the due timers go"
    );
    assert_eq!(wheel.now(), 1000);
}

/// next_deadline is the exact deadline of a timer sitting in a high level,
/// not the start of its slot, before and after it cascades down.
#[test]
fn next_deadline_is_exact_for_a_timer_in_a_high_level() {
    let deadline = 3 * slot_span(5) + 12_345_678;
    let mut wheel = Wheel::new();
    let key = wheel.insert(deadline, ());
    wheel.insert(deadline + 1, ());
    assert_eq!(wheel.place(key), Some(Place::Slot { level: 5, slot: 3 }));
    assert_eq!(wheel.next_deadline(), Some(deadline));
    assert_eq!(advance(&mut wheel, 3 * slot_span(5)), []);
    assert_eq!(wheel.place(key), Some(Place::Slot { level: 3, slot: 47 }));
    assert_eq!(wheel.next_deadline(), Some(deadline));
}

/// At a cascade boundary, a timer filed later into a lower level does not
/// hide an earlier one, nor does a later one in the same high slot: both
/// next_deadline and advance see the earliest first.
#[test]
fn a_later_timer_never_hides_an_earlier_one_at_a_cascade_boundary() {
    let boundary = slot_span(2); // 4096
    let mut wheel = Wheel::new();
    wheel.insert(boundary, "on the boundary"); // level 2 from tick 0
    assert_eq!(advance(&mut wheel, 4000), []);
    wheel.insert(boundary + 1, "just after"); // same level-2 slot
    wheel.insert(boundary - 1, "just before"); // level 1, filed later
    assert_eq!(wheel.next_deadline(), Some(boundary - 1));
    assert_eq!(
        advance(&mut wheel, boundary - 1),
        [(boundary - 1, "just before")]
    );
    assert_eq!(wheel.next_deadline(), Some(boundary));
    assert_eq!(
        advance(&mut wheel, boundary),
        [(boundary, "on the boundary")]
    );
    assert_eq!(wheel.next_deadline(), Some(boundary + 1));
    assert_eq!(
        advance(&mut wheel, boundary + 1),
        [(boundary + 1, "just after")]
    );
}

/// get_mut replaces a value (the timer thread's new `Waker`) in place: the
/// timer keeps its deadline and its place among equal deadlines.
#[test]
fn get_mut_replaces_a_value_without_losing_its_turn() {
    let mut wheel = Wheel::new();
    let first = wheel.insert(70, "old waker");
    wheel.insert(70, "second");
    *wheel.get_mut(first).unwrap() = "new waker";
    assert_eq!(wheel.deadline(first), Some(70));
    assert_eq!(advance(&mut wheel, 70), [(70, "new waker"), (70, "second")]);
}

/// The constants describe a wheel of 2^48 ticks, and a new wheel is empty
/// at tick 0 whichever way it is made.
#[test]
fn a_new_wheel_is_empty_at_tick_zero_with_eight_levels_of_64_slots() {
    assert_eq!(Wheel::<()>::LEVELS, 8);
    assert_eq!(Wheel::<()>::SLOTS, 64);
    assert_eq!(
        (Wheel::<()>::SLOTS as u64).pow(Wheel::<()>::LEVELS as u32),
        RANGE
    );
    for wheel in [Wheel::<()>::new(), Wheel::default()] {
        assert_eq!((wheel.now(), wheel.len()), (0, 0));
        assert!(wheel.is_empty());
        assert_eq!(wheel.next_deadline(), None);
    }
}
