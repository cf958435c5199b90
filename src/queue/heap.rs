//! A queue's priority order: a 4-ary max-heap, plus a sorted run for the common case.
//!
//! Pushes and pops are O(log n) in the worst case, and O(1) when tasks arrive in the order
//! they will leave (every equal-priority burst, which is how most agents enqueue):
//!
//! - **The run** holds entries pushed in strictly descending key order. A push whose key is
//!   below the run's last is appended; a pop takes from its front. Both O(1), sequential
//!   memory.
//! - **The heap** takes every other push. It is 4-ary: half a binary heap's depth, with a
//!   node's four children side by side, so a pop in a million-entry backlog touches about
//!   half as many cache lines. A pop walks the hole to the bottom along the best child and
//!   sifts the moved element up (as `std`'s `BinaryHeap` does), saving a comparison a level.
//! - A pop returns the greater of the run's front and the heap's top.

use std::collections::VecDeque;

/// An entry's place in the order: a greater key leaves first.
pub(super) trait Keyed {
    fn key(&self) -> u128;
}

/// A max-queue of `T` by [`Keyed::key`]. Keys are expected to be unique.
pub(super) struct Heap<T> {
    run: VecDeque<T>,
    heap: Vec<T>,
}

const ARITY: usize = 4;

impl<T: Keyed> Heap<T> {
    pub(super) const fn new() -> Self {
        Heap {
            run: VecDeque::new(),
            heap: Vec::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.run.len() + self.heap.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.run.is_empty() && self.heap.is_empty()
    }

    /// The entry with the greatest key, without removing it.
    pub(super) fn peek(&self) -> Option<&T> {
        match (self.run.front(), self.heap.first()) {
            (Some(run), Some(heap)) => Some(if run.key() > heap.key() { run } else { heap }),
            (Some(only), None) | (None, Some(only)) => Some(only),
            (None, None) => None,
        }
    }

    /// The greatest key.
    pub(super) fn peek_key(&self) -> Option<u128> {
        self.peek().map(Keyed::key)
    }

    pub(super) fn shrink_to(&mut self, capacity: usize) {
        self.run.shrink_to(capacity);
        self.heap.shrink_to(capacity);
    }

    pub(super) fn push(&mut self, item: T) {
        let key = item.key();
        if self.run.back().is_none_or(|last| key < last.key()) {
            self.run.push_back(item);
        } else {
            self.heap.push(item);
            self.sift_up(self.heap.len() - 1);
        }
    }

    pub(super) fn pop(&mut self) -> Option<T> {
        let from_run = match (self.run.front(), self.heap.first()) {
            (Some(run), Some(heap)) => run.key() > heap.key(),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if from_run {
            return self.run.pop_front();
        }
        let last = self.heap.pop()?;
        if self.heap.is_empty() {
            return Some(last);
        }
        let top = std::mem::replace(&mut self.heap[0], last);
        let bottom = self.sift_down_to_bottom(0);
        self.sift_up(bottom);
        Some(top)
    }

    /// The entry with key `key` or `key` with its lowest bit flipped: O(log n) in the
    /// sorted run, O(n) in the heap part (which holds only the entries pushed out of order).
    pub(super) fn find(&self, key: u128) -> Option<&T> {
        let key = key | 1;
        // The run is in strictly descending key order, so with the lowest bit set too.
        match self
            .run
            .binary_search_by(|entry| key.cmp(&(entry.key() | 1)))
        {
            Ok(i) => self.run.get(i),
            Err(_) => self.heap.iter().find(|entry| entry.key() | 1 == key),
        }
    }

    /// Every entry, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        self.run.iter().chain(self.heap.iter())
    }

    /// Keeps the elements for which `keep` is true. O(n).
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.run.retain(&mut keep);
        self.heap.retain(keep);
        // Floyd's heapify: sift down every inner node, last first.
        for i in (0..self.heap.len() / ARITY + 1).rev() {
            self.sift_down(i);
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        let key = self.heap[i].key();
        while i > 0 {
            let parent = (i - 1) / ARITY;
            if key <= self.heap[parent].key() {
                break;
            }
            self.heap.swap(i, parent);
            i = parent;
        }
    }

    /// The index of the greatest child of `i`, if it has any.
    fn best_child(&self, i: usize) -> Option<usize> {
        let first = ARITY * i + 1;
        let children = self.heap.get(first..(first + ARITY).min(self.heap.len()))?;
        let mut best = 0;
        let mut best_key = children.first()?.key();
        for (offset, child) in children.iter().enumerate().skip(1) {
            let key = child.key();
            if key > best_key {
                best = offset;
                best_key = key;
            }
        }
        Some(first + best)
    }

    /// Moves the element at `i` down to a leaf along the greatest children; returns the leaf.
    fn sift_down_to_bottom(&mut self, mut i: usize) -> usize {
        while let Some(child) = self.best_child(i) {
            self.heap.swap(i, child);
            i = child;
        }
        i
    }

    fn sift_down(&mut self, mut i: usize) {
        let key = self.heap.get(i).map(Keyed::key);
        while let (Some(child), Some(key)) = (self.best_child(i), key) {
            if self.heap[child].key() <= key {
                break;
            }
            self.heap.swap(i, child);
            i = child;
        }
    }
}

#[cfg(all(test, not(taskrunner_loom)))]
mod tests {
    use proptest::prelude::*;

    use super::{Heap, Keyed};

    /// A value with a unique key: (value, insertion number), like a task's (priority, id).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    struct Item(i16, std::cmp::Reverse<u32>);

    impl Keyed for Item {
        fn key(&self) -> u128 {
            ((self.0 as i64 - i16::MIN as i64) as u128) << 32 | u128::from(u32::MAX - self.1 .0)
        }
    }

    proptest! {
        /// Pops come out in the same order as from `std`'s binary heap, through any mix of
        /// pushes, pops and retains, whether the values are spread or mostly equal.
        #[test]
        fn matches_std_binary_heap(
            ops in prop::collection::vec((0..4u8, any::<i16>()), 0..400),
            spread in any::<bool>(),
        ) {
            let mut ours = Heap::new();
            let mut std = std::collections::BinaryHeap::new();
            for (n, (op, value)) in ops.into_iter().enumerate() {
                let value = if spread { value } else { value % 3 };
                let item = Item(value, std::cmp::Reverse(n as u32));
                match op {
                    0 | 1 => {
                        ours.push(item);
                        std.push(item);
                    }
                    2 if value % 7 == 0 => {
                        ours.retain(|v| v.0 % 3 != 0);
                        std.retain(|v| v.0 % 3 != 0);
                    }
                    _ => prop_assert_eq!(ours.pop(), std.pop()),
                }
                prop_assert_eq!(ours.len(), std.len());
            }
            while let Some(item) = std.pop() {
                prop_assert_eq!(ours.pop(), Some(item));
            }
            prop_assert!(ours.is_empty());
        }
    }
}
