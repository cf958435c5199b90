//! The reference model: a plain scan over every task that predicts each start exactly.

use std::collections::HashMap;
use std::sync::Arc;

use super::ops::Config;
use crate::queue::test_job::TestJob;
use crate::task::Job;
use crate::task::Phase;

pub(super) struct Task {
    pub(super) job: Arc<TestJob>,
    /// Its creation number (ids and token numbers share one counter).
    pub(super) id_seq: u64,
    /// The number it ranks by among equal priorities (a fresh one once moved).
    pub(super) seq: u64,
    pub(super) priority: i32,
    pub(super) key: Option<usize>,
    pub(super) phase: Phase,
}

#[derive(Default)]
pub(super) struct KeyModel {
    pub(super) running: usize,
    /// (priority, number) of the key's turn.
    pub(super) token: Option<(i32, u64)>,
}

pub(super) struct Model {
    pub(super) config: Config,
    pub(super) limit: usize,
    pub(super) tasks: Vec<Task>,
    pub(super) running: usize,
    pub(super) keys: HashMap<usize, KeyModel>,
    pub(super) seq: u64,
    pub(super) now: u64,
    pub(super) paused: bool,
    pub(super) hold_until: u64,
    pub(super) starts: Vec<u64>,
    pub(super) room: usize,
    pub(super) overflow: usize,
}

impl Model {
    pub(super) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn blocked(&self) -> bool {
        if self.paused || self.hold_until > self.now {
            return true;
        }
        match self.config.rate {
            Some((n, per)) if self.starts.len() >= n as usize => {
                self.starts[self.starts.len() - n as usize] + per > self.now
            }
            _ => false,
        }
    }

    pub(super) fn keyed(&self, key: Option<usize>) -> Option<usize> {
        key.filter(|_| self.config.key_limit.is_some())
    }

    fn key_free(&self, key: Option<usize>) -> bool {
        match (self.keyed(key), self.config.key_limit) {
            (Some(k), Some(limit)) => self.keys.get(&k).is_none_or(|m| m.running < limit),
            _ => true,
        }
    }

    /// As the queue's `Keys::refresh`: a token ranked by the key's best waiting task exactly
    /// when it may start one, re-drawn when its rank changes; the key dropped when idle.
    pub(super) fn refresh(&mut self, k: usize) {
        let Some(limit) = self.config.key_limit else {
            return;
        };
        if !self.keys.contains_key(&k) {
            return;
        }
        let best = self
            .tasks
            .iter()
            .filter(|t| t.phase == Phase::Queued && t.key == Some(k))
            .map(|t| t.priority)
            .max();
        let running = self.keys[&k].running;
        if running == 0 && best.is_none() {
            self.keys.remove(&k);
            return;
        }
        match best {
            Some(priority) if running < limit => {
                if self.keys[&k].token.is_some_and(|(p, _)| p == priority) {
                    return;
                }
                let seq = self.next_seq();
                self.keys.get_mut(&k).unwrap().token = Some((priority, seq));
            }
            _ => self.keys.get_mut(&k).unwrap().token = None,
        }
    }

    pub(super) fn leave_room(&mut self) {
        if self.config.max_pending.is_some() {
            if self.overflow > 0 {
                self.overflow -= 1;
            } else {
                self.room += 1;
            }
        }
    }

    fn start(&mut self, i: usize) {
        self.tasks[i].phase = Phase::Running;
        self.running += 1;
        self.starts.push(self.now);
    }

    /// Takes the best startable task, if nothing holds every start back.
    pub(super) fn pop(&mut self) -> Option<u64> {
        if self.blocked() {
            return None;
        }
        let rank = |p: i32, seq: u64| (p, std::cmp::Reverse(seq));
        let keyless = self
            .tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.phase == Phase::Queued && self.keyed(t.key).is_none())
            .map(|(i, t)| (rank(t.priority, t.seq), Err(i)));
        let tokens = self
            .keys
            .iter()
            .filter_map(|(k, m)| m.token.map(|(p, seq)| (rank(p, seq), Ok(*k))));
        let (_, best) = keyless.chain(tokens).max_by_key(|(r, _)| *r)?;
        let i = match best {
            Err(i) => i,
            Ok(k) => {
                self.keys.get_mut(&k).unwrap().token = None;
                let i = self
                    .tasks
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.phase == Phase::Queued && t.key == Some(k))
                    .max_by_key(|(_, t)| rank(t.priority, t.seq))
                    .unwrap()
                    .0;
                self.keys.get_mut(&k).unwrap().running += 1;
                self.tasks[i].phase = Phase::Running;
                self.refresh(k);
                i
            }
        };
        self.start(i);
        self.leave_room();
        Some(self.tasks[i].job.header().id.as_u64())
    }

    pub(super) fn fill(&mut self) -> Vec<u64> {
        let mut started = Vec::new();
        while self.running < self.limit {
            match self.pop() {
                Some(id) => started.push(id),
                None => break,
            }
        }
        started
    }

    /// Admits task `i` (new, or back from a backoff or delay); returns whether it started.
    pub(super) fn admit(&mut self, i: usize, new: bool) -> bool {
        let key = self.keyed(self.tasks[i].key);
        let start = self.running < self.limit && !self.blocked() && self.key_free(key);
        self.tasks[i].seq = self.tasks[i].id_seq;
        if start {
            self.start(i);
            if let Some(k) = key {
                self.keys.entry(k).or_default().running += 1;
            }
            if new && self.config.max_pending.is_some() {
                self.room += 1;
            }
            return true;
        }
        if !new && self.config.max_pending.is_some() {
            if self.room > 0 {
                self.room -= 1;
            } else {
                self.overflow += 1;
            }
        }
        self.tasks[i].phase = Phase::Queued;
        if let Some(k) = key {
            self.keys.entry(k).or_default();
            self.refresh(k);
        }
        false
    }
}
