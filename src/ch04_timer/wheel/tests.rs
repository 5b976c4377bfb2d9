//! White-box checks of the invariants the wheel's module doc relies on.
//! The behaviour, seen from outside (against a sorted-map model, across
//! level boundaries, beyond the range), is tested in `tests/ch04_wheel.rs`;
//! this file looks inside, after every single operation, so that a broken
//! bookkeeping field is caught where it breaks and not three cascades later.
//! It is a child module of `wheel`, so it may read the private fields.

use super::*;

impl<T> Wheel<T> {
    /// Panics with a description if any internal invariant is broken.
    fn assert_invariants(&self) {
        let now = self.elapsed;
        // Entries found by walking the lists; must equal `len` at the end.
        let mut listed = 0;
        for (list, ids) in self.lists.iter().enumerate() {
            // 1. A slot's occupancy bit is set exactly when its list holds
            //    something: `next_deadline` trusts the bits and never scans.
            if list < DUE {
                let (level, slot) = (list / SLOTS, list % SLOTS);
                let bit = (self.occupied[level] >> slot) & 1 == 1;
                assert_eq!(bit, !ids.is_empty(), "occupancy bit of {level}/{slot}");
            }
            for (pos, &index) in ids.iter().enumerate() {
                listed += 1;
                let entry = self.entry(index);
                // 2. Each entry knows its own list and position: that is
                //    what makes `cancel` O(1) (swap-remove at `pos`).
                assert_eq!(usize::from(entry.list), list, "stored list");
                assert_eq!(entry.pos as usize, pos, "stored position");
                let d = entry.deadline;
                // 3. Each entry is filed where its deadline says it must be.
                match list {
                    // Due: its time has come, it only waits to be handed out.
                    DUE => assert!(d <= now, "due entry {d} after now {now}"),
                    // Overflow: beyond the 2^48-tick range of the levels.
                    OVERFLOW => assert!(d >> RANGE_BITS > now >> RANGE_BITS),
                    // A slot: strictly in the future, agreeing with now on
                    // every group above its level, in the slot its own
                    // bits name, and ahead of the hand (a slot behind
                    // the hand would be skipped: a timer fired late).
                    _ => {
                        // The list number says the level and the slot; the
                        // level says which 6-bit group of a deadline picks
                        // the slot (`shift`) and where the groups that must
                        // agree with now begin (`above`).
                        let (level, slot) = (list / SLOTS, (list % SLOTS) as u64);
                        let shift = level as u32 * BITS;
                        let above = shift + BITS;
                        // Not yet due: a due entry in a slot would wait for
                        // the hand to come round again.
                        assert!(d > now, "slotted entry {d} not after now {now}");
                        // Same groups above: otherwise it belongs higher up
                        // (it is more than one turn of this level away).
                        assert_eq!(d >> above, now >> above, "groups above level {level}");
                        // Its own group names this slot, no other.
                        assert_eq!((d >> shift) & GROUP_MASK, slot, "slot of {d}");
                        // And the hand has not passed it yet.
                        assert!(slot > ((now >> shift) & GROUP_MASK), "slot not ahead");
                    }
                }
            }
        }
        // 4. The slab agrees with the lists: as many occupied cells as
        //    listed entries, and every other cell on the free chain, so a
        //    cancelled entry's cell is reused and nothing leaks.
        let occupied = self
            .cells
            .iter()
            .filter(|c| matches!(c, Cell::Occupied(_)))
            .count();
        assert_eq!(listed, self.len, "listed entries vs len");
        assert_eq!(occupied, self.len, "occupied cells vs len");
        // Walk the free chain from its head: every link must be a vacant
        // cell (a link into an occupied one would hand out a live entry's
        // cell twice), and the walk must end, covering exactly the rest.
        let mut free = 0;
        let mut next = self.free_head;
        while let Some(index) = next {
            free += 1;
            let Cell::Vacant { next_free } = &self.cells[index as usize] else {
                panic!("free chain reaches an occupied cell");
            };
            next = *next_free;
        }
        assert_eq!(free + occupied, self.cells.len(), "free chain length");
    }
}

/// A tiny xorshift, so this white-box test needs no dependency. (The
/// outside tests use proptest; here a fixed seed is enough, and a failure
/// names the broken invariant, not a shrunk input.)
/// Its one field is the whole state: the last number given.
struct Rng(u64);
impl Rng {
    /// The next number: Marsaglia's xorshift64 with the shifts 13, 7, 17,
    /// which visit every non-zero `u64` before repeating. The seed must
    /// not be 0 (zero maps to zero for ever).
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A number in `0..n`. The modulo is slightly biased for large `n`;
    /// a test that only needs variety does not mind.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A deadline near a level boundary, near now, or far away.
fn some_deadline(rng: &mut Rng, now: u64) -> u64 {
    // Each arm aims at a place where a wheel's arithmetic can go wrong.
    match rng.below(5) {
        // Within a couple of level-0 rotations: the common, short sleep.
        0 => now.saturating_add(rng.below(130)),
        // Within a few ticks of a 64^k boundary (k = 1..8), one or two groups
        // ahead: where a deadline changes level and a cascade must re-file it.
        // In u128, because the boundary above level 7 does not fit in u64.
        1 => {
            // `k` is the bit where a level's range ends; the boundary is
            // the next (or the one after) multiple of 2^k above now.
            let k = BITS * (1 + rng.below(8) as u32);
            let boundary = (u128::from(now >> k) + 1 + u128::from(rng.below(2))) << k;
            let boundary = u64::try_from(boundary).unwrap_or(u64::MAX);
            // Up to four ticks either side of it, saturating at both ends.
            boundary
                .saturating_add(rng.below(5))
                .saturating_sub(rng.below(5))
        }
        // In the past: must be due at once, never filed in a slot.
        2 => now.saturating_sub(rng.below(10)),
        // At or next to the last tick (`NEVER`): past the levels' range.
        3 => u64::MAX - rng.below(3),
        // Anywhere ahead, at every scale from one tick to the whole range.
        _ => now.saturating_add(rng.next() >> rng.below(64)),
    }
}

/// Forty rounds of 300 random inserts, cancels (some of keys already gone,
/// which must be a no-op) and advances (a third of them straight to the next
/// deadline, the event loop's jump), checking every invariant after each.
#[test]
fn internal_invariants_hold_after_every_operation() {
    // A fixed seed: the same 12,000 operations on every run, so a failure
    // is reproduced by running the test again.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _round in 0..40 {
        // A fresh wheel per round: each round starts at tick 0 and, by its
        // far-ahead advances, reaches different levels of the wheel.
        let mut wheel = Wheel::new();
        // Every key ever handed out, cancelled or fired ones included.
        let mut keys = Vec::new();
        let mut fired = Vec::new();
        for _ in 0..300 {
            match rng.below(4) {
                // Half the operations insert, so the wheel fills up.
                0 | 1 => {
                    let d = some_deadline(&mut rng, wheel.now());
                    keys.push(wheel.insert(d, ()));
                }
                // A quarter cancel a key that may be gone already.
                2 if !keys.is_empty() => {
                    let key = keys[rng.below(keys.len() as u64) as usize];
                    wheel.cancel(key);
                }
                // The rest move time on, which fires, cascades, and
                // re-files entries: where bookkeeping goes wrong.
                _ => {
                    // A third jump straight to the next deadline, as the
                    // loop's virtual clock does; an empty wheel gives 0.
                    let target = if rng.below(3) == 0 {
                        wheel.next_deadline().unwrap_or(0)
                    } else {
                        some_deadline(&mut rng, wheel.now())
                    };
                    // A target in the past must be a no-op (time never
                    // goes back); `fired` collects whatever came due.
                    wheel.advance(target, &mut fired);
                }
            }
            // After every single operation, not just at the end.
            wheel.assert_invariants();
        }
    }
}
