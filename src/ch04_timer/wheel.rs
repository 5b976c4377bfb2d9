//! # The timing wheel: where a thousand sleeps wait for one thread
//!
//! ## The question
//!
//! Chapter 3 made every `sleep` cost a whole thread, which sleeps and then
//! wakes its task. That is honest but wasteful: E004-5 (`say_after` twice)
//! would need two threads, a server with ten thousand idle connections ten
//! thousand. This chapter gives the program **one** timer thread for every
//! sleep (E003-1, E002-5, E004-5 all end up here). That thread needs a data
//! structure that answers two questions cheaply, however many timers wait:
//!
//! * *Which timers are due by now?* (`advance`)
//! * *When is the next one due?* (`next_deadline`: how long the thread may
//!   sleep, and, on a virtual clock, where time jumps to next.)
//!
//! This file is that structure and nothing else: no threads, no clocks, no
//! `Waker`s. Time is a plain `u64` **tick**; the timer that uses the wheel
//! decides that one tick is one microsecond. Keeping it pure makes it easy to
//! test against a sorted list, which is what `tests/ch04_wheel.rs` does.
//!
//! ## The idea: a clock with eight hands
//!
//! A sorted list would answer both questions, but every insertion would pay
//! for the sorting. Varghese and Lauck's *hierarchical timing wheel* (their
//! "scheme 7", the one tokio uses) sorts lazily instead, like a clock: there
//! are eight **levels** of 64 **slots** each. A slot at level 0 holds the
//! timers of one tick; a slot at level 1 holds 64 ticks' worth of them; a
//! slot at level 2, 64 × 64 ticks; and so on.
//!
//! ```text
//!  level   one slot spans      the level spans (64 slots)   with 1 tick = 1 µs
//!  -----   -----------------   --------------------------   --------------------
//!    7     2^42 ticks          2^48 ticks                   50.9 days / 8.9 years
//!    6     2^36                2^42                         19.1 h    / 50.9 days
//!    5     2^30                2^36                         17.9 min  / 19.1 h
//!    4     2^24                2^30                         16.8 s    / 17.9 min
//!    3     2^18                2^24                         262 ms    / 16.8 s
//!    2     2^12                2^18                         4.1 ms    / 262 ms
//!    1     2^6 = 64            2^12                         64 µs     / 4.1 ms
//!    0     1                   2^6 = 64                     1 µs      / 64 µs
//!
//!           level 2  [ 0 | 1 | 2 | ... | 63 ]   each slot: 4096 ticks
//!           level 1  [ 0 | 1 | 2 | ... | 63 ]   each slot:   64 ticks
//!           level 0  [ 0 | 1 | 2 | ... | 63 ]   each slot:    1 tick
//! ```
//!
//! Cut a deadline's 64 bits into 6-bit **groups**, group 0 being the lowest:
//!
//! ```text
//!  bit    63 ... 48     47..42   41..36   35..30   29..24   23..18   17..12   11..6   5..0
//!       [ beyond range |   g7   |   g6   |   g5   |   g4   |   g3   |   g2   |   g1  |  g0  ]
//! ```
//!
//! A timer goes to the level of the **highest group in which its deadline
//! differs from the current tick**, and to the slot numbered by that group of
//! its deadline. It is how you file a date: if today is 2024-03-05 and the
//! appointment is 2024-07-19, the first field that differs is the month, so
//! it goes in the drawer for July; on 1 July you open that drawer and file
//! its contents by day.
//!
//! In ticks: a timer due within the current 64-tick stretch sits at level
//! 0, in the slot of its exact tick; one due later in the current 4096-tick
//! stretch sits at level 1; and so on. Every group above its level
//! equals the current tick's, which is what keeps the levels in order: all
//! of level 0 is due before anything in level 1, all of level 1 before
//! anything in level 2.
//!
//! ## One deadline followed through a cascade (E004-5)
//!
//! In E004-5, `say_after(1, "hello")` has finished at 1 s; the wheel stands at
//! tick 1 000 000 when `say_after(2, "world")` asks to wake at 3 000 000:
//!
//! ```text
//!                    g3   g2   g1   g0
//!  now   1 000 000 =  3 | 52 |  9 |  0      (3·262144 + 52·4096 + 9·64 + 0)
//!  world 3 000 000 = 11 | 28 | 27 |  0      (11·262144 + 28·4096 + 27·64 + 0)
//!
//!  at tick 1 000 000  highest differing group: g3 → level 3, slot 11,
//!                     which spans [2 883 584, 3 145 728)
//!  at tick 2 883 584  slot 3/11 comes due: re-file against this tick
//!                     (11|0|0|0): g2 differs → level 2, slot 28,
//!                     which spans [2 998 272, 3 002 368)
//!  at tick 2 998 272  slot 2/28 comes due: re-file against 11|28|0|0:
//!                     g1 differs → level 1, slot 27, spans [3 000 000, 3 000 064)
//!  at tick 3 000 000  slot 1/27 comes due: re-file against 3 000 000:
//!                     the deadline is not after now → due: "world" fires.
//! ```
//!
//! Moving an entry down a level when its slot comes due is a **cascade**.
//! The timer was touched four times in two seconds, though the clock passed
//! two million ticks: slots nobody uses are skipped, because each level keeps
//! a 64-bit occupancy bitmap and `trailing_zeros` finds the next busy slot.
//! (Level 0 was never needed: the deadline's g0 is 0, so the level-1 slot
//! starts exactly on it.) The same walk, checked by the compiler:
//!
//! ```
//! use tiny_asyncio::ch04_timer::wheel::{Place, Wheel};
//!
//! let mut wheel = Wheel::new();
//! let mut fired = Vec::new();
//! wheel.advance(1_000_000, &mut fired); // "hello" is printed at 1 s
//! let world = wheel.insert(3_000_000, "world");
//! assert_eq!(wheel.place(world), Some(Place::Slot { level: 3, slot: 11 }));
//! wheel.advance(2_883_584, &mut fired);
//! assert_eq!(wheel.place(world), Some(Place::Slot { level: 2, slot: 28 }));
//! wheel.advance(2_998_272, &mut fired);
//! assert_eq!(wheel.place(world), Some(Place::Slot { level: 1, slot: 27 }));
//! wheel.advance(2_999_999, &mut fired);
//! assert!(fired.is_empty(), "one tick early is still early");
//! wheel.advance(3_000_000, &mut fired);
//! assert_eq!(fired, [(3_000_000, "world")]);
//! ```
//!
//! ## Why nothing fires early, and nothing late
//!
//! * **Never early.** An entry leaves the wheel only from the **due list**,
//!   and it is filed there only when its exact deadline (which it keeps,
//!   never rounded to a slot) is at or before the current tick. The current
//!   tick never passes the `now` given to [`Wheel::advance`]: it steps to
//!   slot starts at or before `now`, then to `now` itself. So nothing is due
//!   before `now` reaches its deadline.
//! * **Never late.** A slot starts at or before every deadline in it.
//!   [`Wheel::advance`] keeps re-filing the earliest busy slot for as long
//!   as that slot starts at or before `now`. So when `advance` returns, no
//!   slot holds a deadline at or before `now`: each such entry has been
//!   cascaded all the way to the due list, and handed out.
//!
//! That loop is also why a later timer cannot hide an earlier one at a
//! cascade boundary: the earliest busy slot always holds the earliest
//! timer (the levels are in order, and within a level the slots are), so
//! both `advance` and `next_deadline` look there first.
//!
//! ## Why equal deadlines keep their registration order
//!
//! asyncio leaves the order of callbacks due at the same moment unspecified.
//! We promise more, so that a document's transcript prints the same every
//! run: every entry carries a sequence number from its `insert`, and the
//! entries that fall due together are sorted by `(deadline, sequence)` before
//! they are handed out. The sort is needed: inside a slot the order is
//! scrambled by cancellation (which swaps the last entry into the hole) and
//! by cascades (which re-file a slot's entries one by one).
//!
//! ## Far futures
//!
//! The eight levels reach 2^48 ticks, 8.9 years of microseconds. A deadline
//! that differs from the current tick above bit 47 (`u64::MAX` included)
//! goes to an **overflow list** instead of a slot. It never sits in a slot it
//! does not belong to, so it cannot fire early by a wrapped-around slot
//! number. When the current tick is about to cross into the 2^48-tick stretch
//! of the earliest overflow entry, the whole list is re-filed against the
//! start of that stretch, just as a slot is cascaded. No `now + x` is ever
//! computed: deadlines are compared and masked, never added to, so no
//! arithmetic can overflow.
//!
//! ## Cancelling in O(1)
//!
//! Entries live in a slab (a `Vec` with a free list). Each slot is a
//! `Vec<u32>` of slab indices, and each entry remembers its position in it.
//! Cancelling swaps the slot's last index into the hole (`swap_remove`) and
//! tells the moved entry its new position: constant time however crowded the
//! slot. A [`TimerKey`] is the slab index plus the entry's sequence number;
//! sequence numbers are never reused, so a key whose entry fired or was
//! cancelled matches nothing, even after its slab cell is reused.
//!
//! ## Limits (on purpose)
//!
//! * `next_deadline` is exact, so it scans the one slot that holds the
//!   earliest entry: cost proportional to that slot's crowd. tokio avoids the
//!   scan by answering with the slot's start; we want the exact instant,
//!   because the virtual clock jumps there.
//! * The overflow list is scanned when the clock enters a new 2^48-tick
//!   stretch and when it holds the earliest entry. Timers nine years away are
//!   rare; a heap would fix it at the price of more code.
//! * The wheel does no locking: it is a plain value, and whoever drives it
//!   (this chapter's timer) owns it or keeps it behind a lock.
//!
//! ## What comes next
//!
//! The rest of this chapter wraps the wheel in a timer thread that stores
//! each sleeping task's `Waker` as the entry's value, calls [`Wheel::advance`]
//! when it wakes, and sleeps until [`Wheel::next_deadline`]. On a virtual
//! clock the same `next_deadline` says where time jumps to instead of how
//! long to sleep, which is why it must be exact.
#![forbid(unsafe_code)]

use std::fmt;
use std::mem;

/// Bits per level: each level has `2^BITS` = 64 slots.
const BITS: u32 = 6;
/// Selects one 6-bit group once shifted down.
const GROUP_MASK: u64 = (1 << BITS) - 1;
/// How many low bits the eight levels cover: 8 × 6 = 48.
const RANGE_BITS: u32 = 48;
/// Number of levels (the public [`Wheel::LEVELS`]).
const LEVELS: usize = 8;
/// Slots per level (the public [`Wheel::SLOTS`]).
const SLOTS: usize = 64;
/// Lists `0..DUE` are the slots, level-major: list `level * SLOTS + slot`.
/// List `DUE` holds entries whose deadline has been reached; they leave at
/// the end of the next `advance`.
const DUE: usize = LEVELS * SLOTS;
/// List `OVERFLOW` holds entries too far away for the eight levels.
const OVERFLOW: usize = DUE + 1;
/// Total number of entry lists.
const LISTS: usize = OVERFLOW + 1;

/// A handle to an entry registered with [`Wheel::insert`], used to
/// [`cancel`](Wheel::cancel) it or look at it. (Chapter 4's `Timer` hands
/// these out from `Timer::register`: one key per sleeping deadline.)
///
/// It is `Copy` and small. Keys never dangle dangerously: once the entry has
/// fired or been cancelled the key is *stale*, and every method given a stale
/// key answers `None` without touching any other entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerKey {
    /// Where the entry lives in the slab.
    index: u32,
    /// The entry's sequence number: unique for the wheel's whole life, so it
    /// doubles as a generation that tells a reused slab cell from ours.
    seq: u64,
}

/// Where an entry currently waits inside the wheel, as shown by
/// [`Wheel::place`]. Useful for watching a cascade happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Place {
    /// Its deadline has been reached; it leaves at the next
    /// [`advance`](Wheel::advance).
    Due,
    /// In slot `slot` (0..64) of level `level` (0..8).
    Slot {
        /// The level: the highest 6-bit group in which the deadline differed
        /// from the current tick when the entry was last filed.
        level: usize,
        /// The slot: that group of the deadline's bits.
        slot: usize,
    },
    /// Too far away for the eight levels (2^48 ticks); parked until the
    /// clock comes close enough.
    Overflow,
}

/// One registered deadline and the value to hand back at it: what the
/// module docs call an *entry*. (Not chapter 4's `Timer`, which is the
/// whole service: this wheel, a lock and a thread.)
struct WheelEntry<T> {
    /// The exact tick it is due at; never rounded, never changed. Its slot
    /// is worked out from it (and the current tick) each time it is filed.
    deadline: u64,
    /// Registration order: breaks ties between equal deadlines, and serves
    /// as the key's generation.
    seq: u64,
    /// Which list holds it: `level * SLOTS + slot` for a slot, or `DUE`, or
    /// `OVERFLOW`. Read together with `pos`: the pair is the entry's
    /// address in `Wheel::lists`, what `unlink` needs to find it at once.
    list: u16,
    /// Its index inside `lists[list]`. Meaningful only with `list`, and
    /// rewritten whenever a `swap_remove` moves the entry inside its list,
    /// so cancel stays O(1).
    pos: u32,
    /// What the owner asked us to hold (the timer thread stores a `Waker`).
    value: T,
}

/// A cell of the slab: an entry, or a link in the chain of free cells.
enum Cell<T> {
    /// Holds a live entry; some list names this cell's index.
    Occupied(WheelEntry<T>),
    /// Free. `next_free` is the next free cell (`None`: the end of the
    /// chain), so the free cells form a stack threaded through the slab
    /// itself and a reuse costs no search.
    Vacant { next_free: Option<u32> },
}

/// A hierarchical timing wheel of `T`s: 8 levels × 64 slots, exact deadlines,
/// O(1) insert and cancel, firing in `(deadline, registration)` order.
///
/// See the [module documentation](self) for how it works.
///
/// ```
/// use tiny_asyncio::ch04_timer::wheel::Wheel;
///
/// let mut wheel = Wheel::new();
/// wheel.insert(20, "second");
/// wheel.insert(10, "first");
/// assert_eq!(wheel.next_deadline(), Some(10));
///
/// let mut fired = Vec::new();
/// wheel.advance(15, &mut fired);
/// assert_eq!(fired, [(10, "first")]);
/// assert_eq!(wheel.now(), 15);
/// assert_eq!(wheel.next_deadline(), Some(20));
/// ```
pub struct Wheel<T> {
    /// The current tick: every entry in a slot is due strictly after it.
    /// It moves only forward, and only inside `advance`; every entry's level
    /// and slot are relative to it.
    elapsed: u64,
    /// The sequence number the next `insert` gets.
    next_seq: u64,
    /// The slab of entries. A key's `index` points here; the lists hold
    /// indices into it, never the entries themselves, so moving an entry
    /// between lists (a cascade) moves four bytes.
    cells: Vec<Cell<T>>,
    /// Head of the chain of vacant cells, reused before the slab grows
    /// (`None`: no free cell, the next insert pushes a new one).
    free_head: Option<u32>,
    /// Number of registered entries (the occupied cells).
    len: usize,
    /// `LISTS` lists of slab indices: the 512 slots, then `DUE`, `OVERFLOW`.
    lists: Vec<Vec<u32>>,
    /// Bit `s` of `occupied[l]` is set when slot `s` of level `l` is not
    /// empty: a copy of "is `lists[l * SLOTS + s]` non-empty?", kept in step
    /// by `file`, `unlink` and `refile`, so that the next busy slot is one
    /// `trailing_zeros` away instead of a scan of 512 lists.
    occupied: [u64; LEVELS],
}

impl<T> Wheel<T> {
    /// Number of levels.
    pub const LEVELS: usize = LEVELS;
    /// Slots per level. With 1 tick = 1 µs, `SLOTS^LEVELS` = 2^48 ticks is
    /// about 8.9 years; later deadlines are fine too (see [`Place::Overflow`]).
    pub const SLOTS: usize = SLOTS;

    /// An empty wheel at tick 0.
    pub fn new() -> Self {
        Wheel {
            elapsed: 0,
            next_seq: 0,
            cells: Vec::new(),
            free_head: None,
            len: 0,
            lists: (0..LISTS).map(|_| Vec::new()).collect(),
            occupied: [0; LEVELS],
        }
    }

    /// The tick the wheel has advanced to.
    pub fn now(&self) -> u64 {
        self.elapsed
    }

    /// How many entries are registered (neither fired nor cancelled).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is registered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Registers `value` to be handed back at tick `deadline`, in O(1).
    ///
    /// A deadline at or before [`now`](Self::now) fires on the next
    /// [`advance`](Self::advance), whatever tick that is given. Any `u64`,
    /// `u64::MAX` included, is a valid deadline: this never panics on it.
    ///
    /// # Panics
    ///
    /// Only if more than `u32::MAX` entries are registered at once.
    pub fn insert(&mut self, deadline: u64, value: T) -> TimerKey {
        // 1. A sequence number: the tie-breaker between equal deadlines and
        //    the key's generation. 2^64 insertions would take centuries at a
        //    billion a second, so it never wraps.
        let seq = self.next_seq;
        self.next_seq += 1;
        // 2. The entry, not yet in any list (`list` and `pos` are filled in
        //    by `file`).
        let entry = WheelEntry {
            deadline,
            seq,
            list: 0,
            pos: 0,
            value,
        };
        // 3. A slab cell for it (a free one if any), then 4. the list its
        //    deadline belongs in, seen from the current tick: a slot, DUE
        //    if it is already due, or OVERFLOW if it is years away. No
        //    sorting: the slot is computed from the deadline's bits.
        let index = self.alloc(entry);
        self.file(index);
        self.len += 1;
        // 5. The key names the cell and, by `seq`, this use of it.
        TimerKey { index, seq }
    }

    /// Removes the entry and returns its value, in O(1). Returns `None` for a
    /// stale key (its entry already fired or was cancelled).
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        // 1. A stale key (fired, cancelled, or its cell reused by a later
        //    entry whose `seq` differs) names nothing: stop here.
        self.get(key)?;
        // 2. Out of its list: the entry knows its `list` and `pos`, so no
        //    search; the list's last index fills the hole.
        self.unlink(key.index);
        // 3. Its cell goes on the free chain, and the value goes back to
        //    the caller (chapter 4's timer drops the `Waker` outside its lock).
        Some(self.release(key.index).value)
    }

    /// The value of a registered entry, or `None` for a stale key.
    pub fn get(&self, key: TimerKey) -> Option<&T> {
        self.live(key).map(|entry| &entry.value)
    }

    /// The value of a registered entry, mutably (the timer thread uses this to
    /// replace a stored `Waker` without losing the entry's place in line), or
    /// `None` for a stale key.
    pub fn get_mut(&mut self, key: TimerKey) -> Option<&mut T> {
        match self.cells.get_mut(key.index as usize) {
            Some(Cell::Occupied(entry)) if entry.seq == key.seq => Some(&mut entry.value),
            _ => None,
        }
    }

    /// The deadline a registered entry was given, or `None` for a stale key.
    pub fn deadline(&self, key: TimerKey) -> Option<u64> {
        self.live(key).map(|entry| entry.deadline)
    }

    /// Where a registered entry currently waits, or `None` for a stale key.
    /// It changes only when [`advance`](Self::advance) cascades it.
    pub fn place(&self, key: TimerKey) -> Option<Place> {
        let list = usize::from(self.live(key)?.list);
        Some(match list {
            DUE => Place::Due,
            OVERFLOW => Place::Overflow,
            _ => Place::Slot {
                level: list / SLOTS,
                slot: list % SLOTS,
            },
        })
    }

    /// The exact earliest deadline among the registered entries (not a slot
    /// boundary), or `None` when the wheel is empty.
    ///
    /// It finds the earliest busy slot through the occupancy bitmaps, never
    /// ticking through empty slots, then scans that one slot for its smallest
    /// deadline. A deadline already passed (inserted at or before
    /// [`now`](Self::now)) is returned as it is, smaller than `now`.
    pub fn next_deadline(&self) -> Option<u64> {
        let earliest_in = |list: usize| {
            self.lists[list]
                .iter()
                .map(|&index| self.entry(index).deadline)
                .min()
        };
        // Everything due precedes every slot, and every slot precedes the
        // overflow list: the first non-empty of the three holds the answer.
        if let Some(deadline) = earliest_in(DUE) {
            return Some(deadline);
        }
        if let Some(slot) = self.earliest_slot() {
            return earliest_in(slot.list);
        }
        earliest_in(OVERFLOW)
    }

    /// Moves the wheel to tick `now` and appends every entry with deadline
    /// `<= now` to `expired` as `(deadline, value)`, sorted by deadline and,
    /// for equal deadlines, by registration order.
    ///
    /// Time never goes backwards: a `now` smaller than [`now()`](Self::now)
    /// leaves the clock where it is, and only the entries already due (those
    /// inserted with a deadline at or before `now()`) are handed out.
    /// Its cost is one step per busy slot on the way, however far `now` is:
    /// empty slots are skipped, and each entry is re-filed at most once per
    /// level. (Overflow entries are re-checked whenever the clock enters a
    /// 2^48-tick stretch that holds one of them: rare by design.)
    pub fn advance(&mut self, now: u64, expired: &mut Vec<(u64, T)>) {
        // Time never runs backwards: an earlier `now` only hands out what
        // is already due.
        let target = now.max(self.elapsed);
        // The cascade loop, one busy slot a turn, earliest first. Repeat
        // until the earliest busy slot starts after `target`: then no entry
        // left in any slot is due by `target` (see "never late" above).
        while let Some(slot) = self.next_due_slot(target) {
            // 1. The earliest busy slot starts after the current tick and
            //    not after `target`: step the current tick to its start.
            //    (It must strictly move, or this loop would never end.)
            // 2. Re-file the slot's entries against the new tick. Seen from
            //    there, each differs from now in a lower group (it is
            //    closer), so it lands one level lower at least, or in DUE
            //    if its exact deadline is this very tick.
            debug_assert!(slot.start > self.elapsed, "a busy slot is not ahead of now");
            self.elapsed = slot.start;
            self.refile(slot.list);
        }
        // 3. The rest of the way to `target` crosses no busy slot's start,
        //    so no entry changes level: just move the hand.
        // 4. Hand out DUE, sorted, to the caller.
        self.elapsed = target;
        self.fire_due(expired);
    }

    // ----- where entries go -------------------------------------------------

    /// The list an entry with `deadline` belongs in, seen from the current tick.
    fn list_for(&self, deadline: u64) -> usize {
        // Reached already: due, whatever its bits say.
        if deadline <= self.elapsed {
            return DUE;
        }
        // The highest bit where deadline and now differ; its 6-bit group is
        // the level. Above bit 47 no level is wide enough: overflow.
        let highest = 63 - (deadline ^ self.elapsed).leading_zeros();
        let level = (highest / BITS) as usize;
        if level >= LEVELS {
            return OVERFLOW;
        }
        // The slot is the deadline's own group at that level. It is after
        // the current tick's group there (the deadline is later, and the
        // groups above are equal), so it is never the slot the hand is on.
        let slot = ((deadline >> (level as u32 * BITS)) & GROUP_MASK) as usize;
        level * SLOTS + slot
    }

    /// Puts the entry at `index` at the end of the list it belongs in.
    fn file(&mut self, index: u32) {
        // Which list, from the deadline's bits; then append (O(1)).
        let list = self.list_for(self.entry(index).deadline);
        let pos = self.lists[list].len() as u32;
        self.lists[list].push(index);
        // A slot that just became busy gets its occupancy bit (DUE and
        // OVERFLOW have no bit: they are looked at directly).
        if list < DUE {
            self.occupied[list / SLOTS] |= 1 << (list % SLOTS);
        }
        // The entry learns its address, for a later O(1) unlink.
        let entry = self.entry_mut(index);
        entry.list = list as u16;
        entry.pos = pos;
    }

    /// Takes the entry at `index` out of its list in O(1): the list's last
    /// index fills the hole, and is told its new position.
    fn unlink(&mut self, index: u32) {
        let (list, pos) = {
            let entry = self.entry(index);
            (usize::from(entry.list), entry.pos as usize)
        };
        let ids = &mut self.lists[list];
        debug_assert_eq!(ids[pos], index, "an entry's stored position is stale");
        // `swap_remove` moves the list's last index into `pos`; unless we
        // removed the last one, some other entry now sits at `pos` and must
        // be told, or its own cancel would later remove the wrong index.
        ids.swap_remove(pos);
        let moved = ids.get(pos).copied();
        let now_empty = ids.is_empty();
        if let Some(moved) = moved {
            self.entry_mut(moved).pos = pos as u32;
        }
        // An emptied slot clears its occupancy bit, so the search for the
        // next busy slot does not stop at it.
        if now_empty && list < DUE {
            self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
        }
    }

    /// Re-files every entry of `list` against the current tick: the cascade.
    /// Called once the current tick stands at the slot's start, so every
    /// entry's group at the slot's level now equals the tick's: the highest
    /// group that differs is lower, and none lands in the same slot again.
    /// Overflow entries may stay in the overflow list (still too far).
    fn refile(&mut self, list: usize) {
        // Take the whole list out first (the slot is now empty, its bit
        // cleared), then file each entry afresh against the new current
        // tick: `file` sends it to a lower level's slot, or to DUE.
        let mut ids = mem::take(&mut self.lists[list]);
        if list < DUE {
            self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
        }
        for &index in &ids {
            self.file(index);
        }
        // Give the emptied list its buffer back, so a busy slot does not
        // reallocate every time round. (Only if it is still empty: the
        // overflow list may have taken back some of its own entries.)
        ids.clear();
        if self.lists[list].is_empty() {
            self.lists[list] = ids;
        }
    }

    /// Hands out the due list, sorted by `(deadline, seq)`.
    fn fire_due(&mut self, expired: &mut Vec<(u64, T)>) {
        if self.lists[DUE].is_empty() {
            return;
        }
        // Cancels and cascades have shuffled DUE: restore the promised
        // order, deadline first, then registration (`seq` is unique, so an
        // unstable sort is exact).
        let mut due = mem::take(&mut self.lists[DUE]);
        due.sort_unstable_by_key(|&index| {
            let entry = self.entry(index);
            (entry.deadline, entry.seq)
        });
        // Each leaves the slab (its cell freed, its key stale from now on)
        // and its value goes to the caller, who wakes it outside any lock.
        expired.reserve(due.len());
        for &index in &due {
            let entry = self.release(index);
            expired.push((entry.deadline, entry.value));
        }
        due.clear();
        self.lists[DUE] = due;
    }

    // ----- finding the next slot --------------------------------------------

    /// The earliest non-empty slot and the tick it starts at.
    ///
    /// Lower levels come first: every entry of level `l` is due inside the
    /// current tick's 64^(l+1)-tick stretch, every entry above it later.
    /// Within a level the slot number is the order, and every busy slot is
    /// after the current tick's own, so the lowest set bit wins.
    fn earliest_slot(&self) -> Option<DueSlot> {
        // The lowest level with any busy slot, and its lowest busy slot.
        let level = self.occupied.iter().position(|&bits| bits != 0)?;
        let slot = u64::from(self.occupied[level].trailing_zeros());
        // Its start: the current tick's groups above this level, this
        // slot's number as this level's group, zeros below.
        let shift = level as u32 * BITS;
        let above = shift + BITS; // at most 48: the shifts below cannot overflow
        let start = ((self.elapsed >> above) << above) | (slot << shift);
        Some(DueSlot {
            list: level * SLOTS + slot as usize,
            start,
        })
    }

    /// The next list to re-file on the way to `target`, if any starts by then.
    fn next_due_slot(&self, target: u64) -> Option<DueSlot> {
        if let Some(slot) = self.earliest_slot() {
            // The overflow list is later than any slot: no need to look at it.
            return (slot.start <= target).then_some(slot);
        }
        // Overflow entries are all in later 2^48-tick stretches than the
        // current tick. Only if `target` leaves the current stretch can one
        // come due; then the earliest one's stretch start is where to stop.
        if self.lists[OVERFLOW].is_empty() || target >> RANGE_BITS == self.elapsed >> RANGE_BITS {
            return None;
        }
        let stretch = self.lists[OVERFLOW]
            .iter()
            .map(|&index| self.entry(index).deadline >> RANGE_BITS)
            .min()?;
        let start = stretch << RANGE_BITS;
        (start <= target).then_some(DueSlot {
            list: OVERFLOW,
            start,
        })
    }

    // ----- the slab ---------------------------------------------------------

    /// The live entry `key` names, if it is not stale.
    fn live(&self, key: TimerKey) -> Option<&WheelEntry<T>> {
        match self.cells.get(key.index as usize) {
            Some(Cell::Occupied(entry)) if entry.seq == key.seq => Some(entry),
            _ => None,
        }
    }

    fn entry(&self, index: u32) -> &WheelEntry<T> {
        match &self.cells[index as usize] {
            Cell::Occupied(entry) => entry,
            Cell::Vacant { .. } => unreachable!("a list names a vacant slab cell"),
        }
    }

    fn entry_mut(&mut self, index: u32) -> &mut WheelEntry<T> {
        match &mut self.cells[index as usize] {
            Cell::Occupied(entry) => entry,
            Cell::Vacant { .. } => unreachable!("a list names a vacant slab cell"),
        }
    }

    /// Stores `entry` in a vacant cell (or a new one) and returns its index.
    fn alloc(&mut self, entry: WheelEntry<T>) -> u32 {
        match self.free_head {
            Some(index) => {
                let cell = mem::replace(&mut self.cells[index as usize], Cell::Occupied(entry));
                let Cell::Vacant { next_free } = cell else {
                    unreachable!("the free chain names an occupied slab cell")
                };
                self.free_head = next_free;
                index
            }
            None => {
                let index = u32::try_from(self.cells.len())
                    .expect("a timer wheel holds at most u32::MAX timers at once");
                self.cells.push(Cell::Occupied(entry));
                index
            }
        }
    }

    /// Empties the (already unlinked) cell at `index`, returning its entry.
    fn release(&mut self, index: u32) -> WheelEntry<T> {
        let vacant = Cell::Vacant {
            next_free: self.free_head,
        };
        let Cell::Occupied(entry) = mem::replace(&mut self.cells[index as usize], vacant) else {
            unreachable!("released a vacant slab cell")
        };
        self.free_head = Some(index);
        self.len -= 1;
        entry
    }
}

/// A list to re-file and the tick at which it comes due.
#[derive(Clone, Copy)]
struct DueSlot {
    /// The list to re-file: a slot's index, or `OVERFLOW`.
    list: usize,
    /// The tick the current tick jumps to before re-filing it: the slot's
    /// first tick (for `OVERFLOW`, the start of its earliest stretch).
    start: u64,
}

impl<T> Default for Wheel<T> {
    /// Same as [`Wheel::new`]: empty, at tick 0.
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Wheel<T> {
    /// Shows the clock and the queue, not the values (which need not be
    /// `Debug`: the timer thread stores `Waker`s).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wheel")
            .field("now", &self.elapsed)
            .field("len", &self.len)
            .field("next_deadline", &self.next_deadline())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
