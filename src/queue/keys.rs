//! Per-key concurrency: each concurrency key's waiting tasks in their own order, and one
//! token per key that may start a task, so that a key at its limit never blocks another.
//!
//! The queue's start order holds tasks without a key; [`Keys::tokens`] holds, for each key
//! that has a task waiting and a free slot under the key's limit, one token ranked by that
//! key's best waiting task. A pop takes the better of the two tops. A key's token is pushed
//! again with a fresh sequence number each time the key starts a task, so keys of equal
//! priority take turns (round robin) instead of the oldest key draining first. A key's state
//! is dropped as soon as it has nothing waiting and nothing running.

use std::collections::HashMap;
use std::sync::Arc;

use super::heap::{Heap, Keyed};
use super::order::Order;
use super::Entry;
use crate::TaskId;

pub(super) struct Keys {
    limit: usize,
    map: HashMap<Arc<str>, KeyState>,
    tokens: Heap<Token>,
    /// Entries in every key's order, tombstones included.
    len: usize,
    /// Keys rank by their whole key (aging), not by priority then a fresh sequence number.
    flat: bool,
}

struct KeyState {
    name: Arc<str>,
    running: usize,
    /// Live waiting tasks (the order may also hold tombstones).
    queued: usize,
    waiting: Option<Order<Entry>>,
    /// The key of this key's valid token, if it has one.
    token: Option<u128>,
}

struct Token {
    key: u128,
    name: Arc<str>,
}

impl Keyed for Token {
    fn key(&self) -> u128 {
        self.key
    }
}

impl Keys {
    pub(super) fn new(limit: usize, flat: bool) -> Keys {
        Keys {
            limit,
            map: HashMap::new(),
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
        self.map.len()
    }

    /// Whether `name` may start a task now.
    pub(super) fn is_free(&self, name: &str) -> bool {
        self.map.get(name).is_none_or(|k| k.running < self.limit)
    }

    /// A task of `name` starts directly (the key was free).
    pub(super) fn acquire(&mut self, name: &Arc<str>) {
        self.state(name).running += 1;
    }

    fn state(&mut self, name: &Arc<str>) -> &mut KeyState {
        self.map
            .entry(Arc::clone(name))
            .or_insert_with(|| KeyState {
                name: Arc::clone(name),
                running: 0,
                queued: 0,
                waiting: None,
                token: None,
            })
    }

    /// A task of `name` waits (`new`: a task not counted yet, else a moved task's new entry).
    pub(super) fn push(&mut self, name: &Arc<str>, entry: Entry, new: bool) {
        let (limit, flat) = (self.limit, self.flat);
        let rank = rank(entry.key, flat);
        let state = self.map.entry(Arc::clone(name)).or_insert_with(|| KeyState {
            name: Arc::clone(name),
            running: 0,
            queued: 0,
            waiting: None,
            token: None,
        });
        state.queued += usize::from(new);
        state
            .waiting
            .get_or_insert_with(|| if flat { Order::flat() } else { Order::new() })
            .push(entry);
        self.len += 1;
        // A better task than the one the token ranks by: re-rank the token.
        if state.token.is_some_and(|t| rank > self::rank(t, flat)) {
            state.token = None;
        }
        refresh(state, limit, flat, &mut self.tokens);
    }

    /// A running task of `name` gave up its slot. Returns how many tombstones were dropped.
    pub(super) fn release(&mut self, name: &str) -> usize {
        let Some(state) = self.map.get_mut(name) else {
            return 0;
        };
        state.running -= 1;
        refresh(state, self.limit, self.flat, &mut self.tokens);
        self.tidy(name)
    }

    /// A waiting task of `name` was cancelled. Returns how many tombstones were dropped.
    pub(super) fn cancel_queued(&mut self, name: &str) -> usize {
        if let Some(state) = self.map.get_mut(name) {
            state.queued -= 1;
        }
        self.tidy(name)
    }

    /// Drops `name`'s state if it has nothing waiting or running; returns the tombstones
    /// dropped with it.
    fn tidy(&mut self, name: &str) -> usize {
        if !self
            .map
            .get(name)
            .is_some_and(|s| s.running == 0 && s.queued == 0)
        {
            return 0;
        }
        let dropped = self
            .map
            .remove(name)
            .and_then(|s| s.waiting)
            .map_or(0, |w| w.len());
        self.len -= dropped;
        // Give back the map's memory after a crowd of keys has gone.
        if self.map.capacity() > 64 && self.map.len() * 4 < self.map.capacity() {
            self.map.shrink_to(self.map.len() * 2);
        }
        if self.tokens.len() > 64 && self.tokens.len() > 4 * self.map.len() {
            let map = &self.map;
            self.tokens
                .retain(|t| map.get(&t.name).is_some_and(|s| s.token == Some(t.key)));
        }
        dropped
    }

    /// The best valid token's key (dropping stale tokens on the way).
    pub(super) fn peek_key(&mut self) -> Option<u128> {
        loop {
            let token = self.tokens.peek()?;
            if let Some(state) = self.map.get_mut(&token.name) {
                if state.token == Some(token.key) {
                    if state.running < self.limit {
                        return Some(token.key);
                    }
                    state.token = None;
                }
            }
            self.tokens.pop();
        }
    }

    /// Takes the best token (after [`peek_key`](Self::peek_key) found one): its key's name.
    pub(super) fn pop_token(&mut self) -> Option<Arc<str>> {
        let token = self.tokens.pop()?;
        if let Some(state) = self.map.get_mut(&token.name) {
            state.token = None;
        }
        Some(token.name)
    }

    /// The best waiting entry of `name`, valid or not.
    pub(super) fn pop_entry(&mut self, name: &str) -> Option<Entry> {
        let entry = self.map.get_mut(name)?.waiting.as_mut()?.pop()?;
        self.len -= 1;
        Some(entry)
    }

    /// A waiting task of `name` (popped with `pop_entry`) started.
    pub(super) fn started(&mut self, name: &Arc<str>) {
        if let Some(state) = self.map.get_mut(name) {
            state.queued -= 1;
            state.running += 1;
            refresh(state, self.limit, self.flat, &mut self.tokens);
        }
    }

    /// A key whose token found no live task (all tombstones): re-arm or drop it.
    pub(super) fn exhausted(&mut self, name: &Arc<str>) -> usize {
        if let Some(state) = self.map.get_mut(name) {
            refresh(state, self.limit, self.flat, &mut self.tokens);
        }
        self.tidy(name)
    }

    /// Keeps the entries for which `keep` is true, in every key's order. O(n).
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        self.len = 0;
        for state in self.map.values_mut() {
            if let Some(waiting) = state.waiting.as_mut() {
                waiting.retain(&mut keep);
                self.len += waiting.len();
            }
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

/// Gives `state` a token if it may start a task and has none.
fn refresh(state: &mut KeyState, limit: usize, flat: bool, tokens: &mut Heap<Token>) {
    if state.token.is_some() || state.running >= limit || state.queued == 0 {
        return;
    }
    let Some(head) = state.waiting.as_ref().and_then(Order::peek_key) else {
        return;
    };
    let key = if flat {
        head
    } else {
        // The head's priority, then a fresh number: behind every key already waiting at
        // that priority.
        (head >> 64) << 64 | u128::from(!TaskId::next().as_u64())
    };
    state.token = Some(key);
    tokens.push(Token {
        key,
        name: Arc::clone(&state.name),
    });
}
