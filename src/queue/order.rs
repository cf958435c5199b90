//! A queue's waiting tasks in start order: highest priority first, FIFO among equals.
//!
//! Tasks are grouped by priority level, in a `BTreeMap` from priority to a [`Heap`] of that
//! level's tasks. Within a level, new tasks arrive in id order, so each lands at the end of
//! its level's sorted run in O(1); only a retried task, re-entering with its old id, goes
//! to the level's heap part. A push or pop is O(log P) in the number of distinct priorities
//! waiting (a handful in practice), and O(log n) at worst, when every priority differs.
//!
//! A priority heap over all tasks would also be O(log n), but a pop in a large backlog is
//! bound by cache misses down the tree; `docs/benchmarks.md` has the measurements.

use std::collections::BTreeMap;

use super::heap::{Heap, Keyed};

/// Waiting entries by priority level.
pub(super) struct Order<T> {
    levels: BTreeMap<i32, Heap<T>>,
    len: usize,
    /// Every entry in one level (level 0), whatever its priority: for keys that are not
    /// grouped by priority (a queue with aging).
    flat: bool,
    /// The storage of the last level that emptied, kept for the next new level, so that a
    /// queue which drains and refills does not allocate each time.
    spare: Option<Heap<T>>,
}

/// An entry's priority level.
pub(super) trait Prioritized: Keyed {
    fn priority(&self) -> i32;
}

/// A spare level keeps at most this much capacity.
pub(super) const SPARE_CAPACITY: usize = 64;

impl<T: Prioritized> Order<T> {
    pub(super) const fn new() -> Self {
        Order {
            levels: BTreeMap::new(),
            len: 0,
            flat: false,
            spare: None,
        }
    }

    /// An order of one level, for keys that do not encode a priority level.
    pub(super) const fn flat() -> Self {
        Order {
            levels: BTreeMap::new(),
            len: 0,
            flat: true,
            spare: None,
        }
    }

    /// The greatest key.
    pub(super) fn peek_key(&self) -> Option<u128> {
        self.levels.last_key_value()?.1.peek_key()
    }

    /// The entry with the greatest key.
    pub(super) fn peek(&self) -> Option<&T> {
        self.levels.last_key_value()?.1.peek()
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn push(&mut self, item: T) {
        let spare = &mut self.spare;
        let level = if self.flat { 0 } else { item.priority() };
        self.levels
            .entry(level)
            .or_insert_with(|| spare.take().unwrap_or_else(Heap::new))
            .push(item);
        self.len += 1;
    }

    pub(super) fn pop(&mut self) -> Option<T> {
        let mut top = self.levels.last_entry()?;
        let item = top.get_mut().pop();
        if top.get().is_empty() {
            let mut emptied = top.remove();
            emptied.shrink_to(SPARE_CAPACITY);
            self.spare = Some(emptied);
        }
        self.len -= usize::from(item.is_some());
        item
    }

    /// The next entry of each priority level: within a level, the one enqueued first.
    /// O(P) in the levels.
    pub(super) fn level_fronts(&self) -> impl Iterator<Item = &T> {
        self.levels.values().filter_map(Heap::peek)
    }

    /// The entry of priority `priority` with key `key`, or `key` with its lowest bit
    /// flipped (not in a flat order).
    pub(super) fn find(&self, priority: i32, key: u128) -> Option<&T> {
        if self.flat {
            return None;
        }
        self.levels.get(&priority)?.find(key)
    }

    /// The entry whose key, at its level's priority, is `key_at(priority)`, or that with its
    /// lowest bit flipped (not in a flat order). O(P log n) in the levels.
    pub(super) fn find_any(&self, key_at: impl Fn(i32) -> u128) -> Option<&T> {
        if self.flat {
            return None;
        }
        self.levels
            .iter()
            .find_map(|(&priority, level)| level.find(key_at(priority)))
    }

    /// Calls `f` on every entry, in no particular order.
    pub(super) fn for_each(&self, mut f: impl FnMut(&T)) {
        for level in self.levels.values() {
            level.iter().for_each(&mut f);
        }
    }

    /// Keeps the entries for which `keep` is true. O(n).
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        for level in self.levels.values_mut() {
            level.retain(&mut keep);
        }
        self.levels.retain(|_, level| !level.is_empty());
        self.len = self.levels.values().map(Heap::len).sum();
    }
}

#[cfg(all(test, not(taskrunner_loom)))]
mod tests {
    use proptest::prelude::*;

    use super::super::heap::Keyed;
    use super::{Order, Prioritized};

    /// (priority, insertion number), ordered like a task's (priority, id).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    struct Item(i8, std::cmp::Reverse<u32>);

    impl Keyed for Item {
        fn key(&self) -> u128 {
            (((self.0 as i64) - (i8::MIN as i64)) as u128) << 32 | u128::from(u32::MAX - self.1 .0)
        }
    }

    impl Prioritized for Item {
        fn priority(&self) -> i32 {
            self.0.into()
        }
    }

    proptest! {
        /// Pops come out as from `std`'s binary heap, with entries re-pushed out of order
        /// (as retried tasks are) and retains along the way.
        #[test]
        fn matches_std_binary_heap(
            ops in prop::collection::vec((0..5u8, any::<i8>()), 0..400),
            levels in 1..20i8,
        ) {
            let mut ours = Order::new();
            let mut std = std::collections::BinaryHeap::new();
            let mut popped = Vec::new();
            for (n, (op, value)) in ops.into_iter().enumerate() {
                let priority = value % levels;
                match op {
                    0 | 1 => {
                        let item = Item(priority, std::cmp::Reverse(n as u32));
                        ours.push(item);
                        std.push(item);
                    }
                    // Re-push a popped entry with its old number, as a retry does.
                    2 if !popped.is_empty() => {
                        let item = popped.swap_remove(value.unsigned_abs() as usize % popped.len());
                        ours.push(item);
                        std.push(item);
                    }
                    3 if value % 5 == 0 => {
                        ours.retain(|v| v.1 .0 % 3 != 0);
                        std.retain(|v| v.1 .0 % 3 != 0);
                    }
                    _ => {
                        let expected = std.pop();
                        prop_assert_eq!(ours.pop(), expected);
                        popped.extend(expected);
                    }
                }
                prop_assert_eq!(ours.len(), std.len());
            }
            while let Some(item) = std.pop() {
                prop_assert_eq!(ours.pop(), Some(item));
            }
            prop_assert_eq!(ours.len(), 0);
        }
    }
}
