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
                        let (level, slot) = (list / SLOTS, (list % SLOTS) as u64);
                        let shift = level as u32 * BITS;
                        let above = shift + BITS;
                        assert!(d > now, "slotted entry {d} not after now {now}");
                        assert_eq!(d >> above, now >> above, "groups above level {level}");
                        assert_eq!((d >> shift) & GROUP_MASK, slot, "slot of {d}");
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
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
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
            let k = BITS * (1 + rng.below(8) as u32);
            let boundary = (u128::from(now >> k) + 1 + u128::from(rng.below(2))) << k;
            let boundary = u64::try_from(boundary).unwrap_or(u64::MAX);
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
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _round in 0..40 {
        let mut wheel = Wheel::new();
        let mut keys = Vec::new();
        let mut fired = Vec::new();
        for _ in 0..300 {
            match rng.below(4) {
                0 | 1 => {
                    let d = some_deadline(&mut rng, wheel.now());
                    keys.push(wheel.insert(d, ()));
                }
                2 if !keys.is_empty() => {
                    let key = keys[rng.below(keys.len() as u64) as usize];
                    wheel.cancel(key);
                }
                _ => {
                    let target = if rng.below(3) == 0 {
                        wheel.next_deadline().unwrap_or(0)
                    } else {
                        some_deadline(&mut rng, wheel.now())
                    };
                    wheel.advance(target, &mut fired);
                }
            }
            wheel.assert_invariants();
        }
    }
}
