//! Per-key concurrency: each concurrency key's waiting tasks in their own order, and one
//! token per key that may start a task, so that a key at its limit never blocks another.
//!
//! The queue's start order holds tasks without a key; the token heap holds, for each key
//! that has a task waiting and a free slot under the key's limit, one token ranked by that
//! key's best waiting task. A pop takes the better of the two tops. A key's token is pushed
//! again with a fresh sequence number each time the key starts a task, so keys of equal
//! priority take turns (round robin) instead of the oldest key draining first. A key's state
//! is dropped as soon as it has nothing waiting and nothing running.
//!
//! Key states live in slots, found by name once per enqueue and per end of an attempt;
//! tokens point at their slot, so a pop hashes no name.

use std::collections::HashMap;
use std::sync::Arc;

use super::heap::{Heap, Keyed};
use super::indexed::seq_rank;
use super::Entry;
use crate::TaskId;

pub(super) struct Keys {
    limit: usize,
    /// Each active key's slot.
    index: HashMap<Arc<str>, usize>,
    slots: Vec<Option<KeyState>>,
    /// Empty slots, reused before the vector grows.
    free: Vec<usize>,
    tokens: Heap<Token>,
    /// Entries in every key's order, tombstones included.
    len: usize,
    /// Keys rank by their whole key (aging), not by priority then a fresh sequence number.
    flat: bool,
}

struct KeyState {
    name: Arc<str>,
    running: usize,
    /// Live waiting tasks (the order may also hold tombstones, never at its head while the
    /// key has a token).
    queued: usize,
    /// A plain heap, not priority levels: a key's backlog is small, and one allocation
    /// per key instead of a tree node and a heap keeps a crowd of keys cache-friendly.
    waiting: Heap<Entry>,
    /// The key of this key's valid token, if it has one. Token keys are unique, so a stale
    /// token never matches, even once its slot holds another key.
    token: Option<u128>,
    /// Its best task does not fit its key budget: no token until the queue lets it try
    /// again.
    held: bool,
}

struct Token {
    key: u128,
    slot: usize,
}

impl Keyed for Token {
    fn key(&self) -> u128 {
        self.key
    }
}

/// Whether an entry is live (its task waits, and it is the task's current entry).
pub(super) type Live<'a> = &'a dyn Fn(&Entry) -> bool;

impl Keys {
    /// Keys of at most `limit` running tasks each, their tokens ranked by priority.
    pub(super) fn ranked(limit: usize) -> Keys {
        Keys::with_rank(limit, false)
    }

    /// Keys whose tokens are ranked by aging keys (flat, as [`Order::flat`](super::order::Order::flat)).
    pub(super) fn flat(limit: usize) -> Keys {
        Keys::with_rank(limit, true)
    }

    fn with_rank(limit: usize, flat: bool) -> Keys {
        Keys {
            limit,
            index: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            tokens: Heap::new(),
            len: 0,
            flat,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// How many keys have something waiting or running.
    #[cfg(test)]
    pub(super) fn active(&self) -> usize {
        self.index.len()
    }

    /// How many tokens the heap holds, stale ones included.
    #[cfg(test)]
    pub(super) fn tokens_len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether `name` may start a task now.
    pub(super) fn is_free(&self, name: &str) -> bool {
        match self.index.get(name) {
            Some(&slot) => self.slots[slot]
                .as_ref()
                .is_none_or(|k| k.running < self.limit),
            None => true,
        }
    }

    /// `name`'s slot, made if it has none.
    fn slot_of(&mut self, name: &Arc<str>) -> usize {
        if let Some(&slot) = self.index.get(&**name) {
            return slot;
        }
        let state = KeyState {
            name: Arc::clone(name),
            running: 0,
            queued: 0,
            waiting: Heap::new(),
            token: None,
            held: false,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(state);
                slot
            }
            None => {
                self.slots.push(Some(state));
                self.slots.len() - 1
            }
        };
        self.index.insert(Arc::clone(name), slot);
        slot
    }

    /// A task of `name` starts directly (the key was free, and had nothing waiting).
    pub(super) fn acquire(&mut self, name: &Arc<str>) {
        let slot = self.slot_of(name);
        if let Some(state) = self.slots[slot].as_mut() {
            state.running += 1;
        }
    }

    /// A task of `name` waits (`new`: a task not counted yet, else a moved task's new entry).
    /// Returns how many tombstones were dropped.
    pub(super) fn push(
        &mut self,
        name: &Arc<str>,
        entry: Entry,
        new: bool,
        live: Live<'_>,
    ) -> usize {
        let slot = self.slot_of(name);
        self.len += 1;
        self.update(slot, live, |state| {
            state.queued += usize::from(new);
            state.waiting.push(entry);
        })
    }

    /// A running task of `name` gave up its slot. Returns how many tombstones were dropped.
    pub(super) fn release(&mut self, name: &str, live: Live<'_>) -> usize {
        match self.index.get(name) {
            Some(&slot) => self.update(slot, live, |state| state.running -= 1),
            None => 0,
        }
    }

    /// A waiting task of `name` was cancelled. Returns how many tombstones were dropped.
    pub(super) fn cancel_queued(&mut self, name: &str, live: Live<'_>) -> usize {
        match self.index.get(name) {
            Some(&slot) => self.update(slot, live, |state| state.queued -= 1),
            None => 0,
        }
    }

    /// A waiting task of the key in `slot` (popped with `pop_entry`) started. Returns how
    /// many tombstones were dropped.
    pub(super) fn started(&mut self, slot: usize, live: Live<'_>) -> usize {
        self.update(slot, live, |state| {
            state.queued -= 1;
            state.running += 1;
        })
    }

    /// A key whose token found no live task: re-arm or drop it.
    pub(super) fn exhausted(&mut self, slot: usize, live: Live<'_>) -> usize {
        self.update(slot, live, |_| {})
    }

    /// Applies `change` to the key in `slot` and restores its invariants (see [`settle`]).
    /// Returns how many tombstones were dropped.
    fn update(&mut self, slot: usize, live: Live<'_>, change: impl FnOnce(&mut KeyState)) -> usize {
        let Some(state) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return 0;
        };
        change(state);
        let (mut dropped, idle) =
            settle(state, slot, self.limit, self.flat, &mut self.tokens, live);
        if idle {
            // Nothing waiting or running: the key's state goes, with what its order still
            // holds (only tombstones).
            if let Some(state) = self.slots[slot].take() {
                dropped += state.waiting.len();
                self.index.remove(&state.name);
            }
            self.free.push(slot);
            self.shrink();
        } else if self.tokens.len() > 2 * self.index.len() + 64 {
            // Re-ranked keys leave stale tokens behind: drop them before they pile up.
            self.drop_stale_tokens();
        }
        self.len -= dropped;
        dropped
    }

    /// Gives back memory after a crowd of keys has gone.
    fn shrink(&mut self) {
        if self.index.is_empty() {
            self.slots.clear();
            self.free.clear();
            self.tokens.retain(|_| false);
            if self.slots.capacity() > 64 {
                self.slots.shrink_to(64);
                self.free.shrink_to(64);
                self.tokens.shrink_to(64);
            }
        }
        if self.index.capacity() > 64 && self.index.len() * 4 < self.index.capacity() {
            self.index.shrink_to(self.index.len() * 2);
        }
        if self.tokens.len() > 2 * self.index.len() + 64 {
            self.drop_stale_tokens();
        }
    }

    fn is_current(&self, token: &Token) -> bool {
        self.slots
            .get(token.slot)
            .and_then(Option::as_ref)
            .is_some_and(|state| state.token == Some(token.key))
    }

    /// Keeps only the tokens that are their key's current one. O(tokens).
    fn drop_stale_tokens(&mut self) {
        let slots = &self.slots;
        self.tokens.retain(|t| {
            slots
                .get(t.slot)
                .and_then(Option::as_ref)
                .is_some_and(|s| s.token == Some(t.key))
        });
    }

    /// The best valid token's key (dropping stale tokens on the way).
    pub(super) fn peek_key(&mut self) -> Option<u128> {
        loop {
            let token = self.tokens.peek()?;
            if self.is_current(token) {
                return Some(token.key);
            }
            self.tokens.pop();
        }
    }

    /// Takes the best token (after [`peek_key`](Self::peek_key) found one): its key's slot.
    pub(super) fn pop_token(&mut self) -> Option<usize> {
        let token = self.tokens.pop()?;
        if let Some(state) = self.slots.get_mut(token.slot).and_then(Option::as_mut) {
            state.token = None;
        }
        Some(token.slot)
    }

    /// The best waiting entry of the key in `slot`, live or not.
    pub(super) fn pop_entry(&mut self, slot: usize) -> Option<Entry> {
        let state = self.slots.get_mut(slot)?.as_mut()?;
        let entry = state.waiting.pop()?;
        self.len -= 1;
        Some(entry)
    }

    /// The best valid token's key's best waiting entry, live or not, and its slot.
    pub(super) fn peek_entry(&mut self) -> Option<(usize, &Entry)> {
        self.peek_key()?;
        let slot = self.tokens.peek()?.slot;
        let entry = self.slots.get(slot)?.as_ref()?.waiting.peek()?;
        Some((slot, entry))
    }

    /// The key in `slot` may start nothing until [`unhold`](Self::unhold) (its budget has no
    /// room for its best task).
    pub(super) fn hold(&mut self, slot: usize) {
        if let Some(state) = self.slots.get_mut(slot).and_then(Option::as_mut) {
            state.held = true;
            state.token = None;
        }
    }

    /// `name` may try again. Returns how many tombstones were dropped.
    pub(super) fn unhold(&mut self, name: &str, live: Live<'_>) -> usize {
        match self.index.get(name) {
            Some(&slot) => self.update(slot, live, |state| state.held = false),
            None => 0,
        }
    }

    /// Whether `name` is held back (see [`hold`](Self::hold)).
    pub(super) fn is_held(&self, name: &str) -> bool {
        let slot = self
            .index
            .get(name)
            .and_then(|&slot| self.slots[slot].as_ref());
        slot.is_some_and(|state| state.held)
    }

    /// Waiting tasks of held keys.
    pub(super) fn held_queued(&self) -> usize {
        let held = self.slots.iter().flatten().filter(|state| state.held);
        held.map(|state| state.queued).sum()
    }

    /// Keeps the entries for which `keep` is true, in every key's order. O(n).
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        self.len = 0;
        for state in self.slots.iter_mut().flatten() {
            state.waiting.retain(&mut keep);
            self.len += state.waiting.len();
        }
    }
}

/// What a key ranks by: its priority (the high half), or the whole key under aging.
fn rank(key: u128, flat: bool) -> u128 {
    if flat {
        key
    } else {
        key >> 64
    }
}

/// Restores a key's invariants after a change: dead entries off the head of its order; a
/// token, ranked by its best live task, exactly when it may start one (a token whose rank no
/// longer matches is re-issued with a fresh number). Returns the entries it dropped, and
/// whether the key is idle (nothing waiting or running: its state should go).
fn settle(
    state: &mut KeyState,
    slot: usize,
    limit: usize,
    flat: bool,
    tokens: &mut Heap<Token>,
    live: Live<'_>,
) -> (usize, bool) {
    let mut dropped = 0;
    while state.waiting.peek().is_some_and(|head| !live(head)) {
        state.waiting.pop();
        dropped += 1;
    }
    if state.running == 0 && state.queued == 0 {
        state.token = None;
        return (dropped, true);
    }
    let head = match state.waiting.peek_key() {
        Some(head) if state.running < limit && state.queued > 0 && !state.held => head,
        _ => {
            state.token = None;
            return (dropped, false);
        }
    };
    if state
        .token
        .is_some_and(|t| rank(t, flat) == rank(head, flat))
    {
        return (dropped, false);
    }
    let key = if flat {
        head
    } else {
        // The head's priority, then a fresh number: behind every key (and task) already
        // waiting at that priority.
        (head >> 64) << 64 | seq_rank(TaskId::next().as_u64())
    };
    state.token = Some(key);
    tokens.push(Token { key, slot });
    (dropped, false)
}
