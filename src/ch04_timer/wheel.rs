//! Temporary stand-in with the wheel's API (replaced by the real wheel).
#![forbid(unsafe_code)]
#![allow(missing_docs)]
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerKey(u64, u64);

pub struct Wheel<T> {
    now: u64,
    seq: u64,
    map: BTreeMap<(u64, u64), T>,
}
impl<T> Default for Wheel<T> {
    fn default() -> Self {
        Self::new()
    }
}
impl<T> Wheel<T> {
    pub fn new() -> Self {
        Wheel {
            now: 0,
            seq: 0,
            map: BTreeMap::new(),
        }
    }
    pub fn now(&self) -> u64 {
        self.now
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    pub fn insert(&mut self, deadline: u64, value: T) -> TimerKey {
        self.seq += 1;
        self.map.insert((deadline, self.seq), value);
        TimerKey(deadline, self.seq)
    }
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        self.map.remove(&(key.0, key.1))
    }
    pub fn get_mut(&mut self, key: TimerKey) -> Option<&mut T> {
        self.map.get_mut(&(key.0, key.1))
    }
    pub fn next_deadline(&self) -> Option<u64> {
        self.map.keys().next().map(|k| k.0)
    }
    pub fn advance(&mut self, now: u64, expired: &mut Vec<(u64, T)>) {
        self.now = self.now.max(now);
        while let Some(entry) = self.map.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let ((d, _), v) = entry.remove_entry();
            expired.push((d, v));
        }
    }
}
