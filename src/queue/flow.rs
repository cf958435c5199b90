//! A queue's flow control: what may hold a waiting task back although a slot is free (a
//! pause, a rate limit, its concurrency key), and the timer that starts it when that ends.
//!
//! A queue with none of these settings never reaches this file: its state has no `Flow`,
//! and each operation pays one branch for all of it.

use crate::status::WaitReason;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::time::Instant;

use super::budget::Budgets;
use super::keys::Keys;
use super::order::Order;
use super::rate::Window;
use super::{Entry, QueueConfig};
use crate::task::Phase;
use crate::task::{Header, Job};
use crate::TaskId;

/// How a task came to its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Came {
    /// Enqueued (it holds a place of `max_pending`, if the queue has one).
    New,
    /// Back from a backoff.
    Retry,
    /// Its start delay ended.
    Delay,
    /// Its group had held it at its cap and now has a place (it holds a place of
    /// `max_pending`, if the queue has one).
    Held,
    /// Its handler gave its slot back while it waited, and wants one again.
    Resume,
}

/// What holds every start of a queue back.
pub(super) enum Block {
    Paused,
    Until(Instant, WaitReason),
}

pub(super) struct Flow {
    pub(super) paused: bool,
    /// No start before this (`TaskContext::pause_queue_for`).
    pub(super) hold_until: Option<Instant>,
    pub(super) rate: Option<Window>,
    /// When the wake-up timer that is set will fire, if one is.
    pub(super) timer: Option<Instant>,
    /// A timer decided under the queue lock, to be set once it is released (see
    /// [`Locked`](super::Locked)).
    pub(super) arm: Option<Instant>,
    /// Places under `max_pending` given back under the queue lock, to be added to the room
    /// once it is released.
    pub(super) room_back: usize,
    /// Tasks moved by `set_priority`: the key of their live entry (older ones are tombstones).
    pub(super) moved: HashMap<TaskId, u128>,
    pub(super) keys: Option<Keys>,
    /// The queue's budget and its keys' (`None` without either).
    pub(super) budgets: Option<Budgets>,
    aging: Option<Aging>,
    /// Waiting tasks that hold no place of `max_pending` (back from a backoff or a delay when
    /// the queue was full).
    pub(super) overflow: usize,
    /// When the queue was made: aging's time origin, and the `now` of a queue that needs no
    /// clock (see [`Flow::now`]).
    epoch: Instant,
}

struct Aging {
    interval_ms: u64,
}

/// Under aging, the low bits of an entry's key that keep its id (the tie-break).
const AGING_ID_BITS: u32 = 61;

impl Flow {
    pub(super) fn new(config: &QueueConfig) -> Flow {
        Flow {
            paused: false,
            hold_until: None,
            rate: config.rate_limit.map(Window::new),
            timer: None,
            arm: None,
            room_back: 0,
            moved: HashMap::new(),
            budgets: Budgets::new(config),
            // A key budget needs the keys' own orders, without a limit of their own if none.
            keys: key_limit(config).map(|n| match config.aging {
                Some(_) => Keys::flat(n),
                None => Keys::ranked(n),
            }),
            aging: config.aging.map(|interval| Aging {
                interval_ms: interval.as_millis() as u64,
            }),
            overflow: 0,
            epoch: Instant::now(),
        }
    }

    /// How many concurrency keys have state (something waiting or running).
    #[cfg(test)]
    pub(super) fn active_keys(&self) -> usize {
        self.keys.as_ref().map_or(0, Keys::active)
    }

    /// (tasks remembered as moved, tokens in the heap): what churn could leave behind.
    #[cfg(test)]
    pub(super) fn leftovers(&self) -> (usize, usize) {
        (
            self.moved.len(),
            self.keys.as_ref().map_or(0, Keys::tokens_len),
        )
    }

    pub(super) fn keyed_len(&self) -> usize {
        self.keys.as_ref().map_or(0, Keys::len)
    }

    /// The time, for what needs it (a rate limit, a hold, aging); a queue with none of these
    /// (keys or `max_pending` only) reads no clock.
    pub(super) fn now(&self) -> Instant {
        if self.rate.is_some()
            || self.aging.is_some()
            || self.hold_until.is_some()
            || self.budgets.is_some()
        {
            Instant::now()
        } else {
            self.epoch
        }
    }

    /// The task's concurrency key, if the queue limits keys and the task has one.
    pub(super) fn key_of<'h>(&self, header: &'h Header) -> Option<&'h Arc<str>> {
        self.keys.as_ref()?;
        header.options()?.flow.concurrency_key.as_ref()
    }

    pub(super) fn blocked(&self, now: Instant) -> Option<Block> {
        if self.paused {
            return Some(Block::Paused);
        }
        if let Some(until) = self.hold_until.filter(|&t| t > now) {
            return Some(Block::Until(until, WaitReason::Paused));
        }
        let next = self.rate.as_ref()?.next_start(now)?;
        Some(Block::Until(next, WaitReason::RateLimited))
    }

    /// (paused, why waiting tasks do not start) for the queue's stats; `stuck` if tasks wait
    /// with a slot free.
    pub(super) fn describe(&self, now: Instant, stuck: bool) -> (bool, Option<WaitReason>) {
        let paused = self.paused || self.hold_until.is_some_and(|t| t > now);
        let why = match self.blocked(now) {
            Some(Block::Paused) => Some(WaitReason::Paused),
            Some(Block::Until(_, why)) => Some(why),
            None if self
                .budgets
                .as_ref()
                .is_some_and(|b| b.head_waits(now) || b.holds_keys()) =>
            {
                Some(WaitReason::Budget)
            }
            None => self.keys.as_ref().map(|_| WaitReason::KeyBusy),
        };
        (paused, why.filter(|_| stuck))
    }

    /// The entry for a task entering the order at `now`, ranked among equals by `seq` (its
    /// id, or a fresh number to go behind every task already waiting).
    pub(super) fn entry(&self, job: Arc<dyn Job>, now: Instant, seq: u64) -> Entry {
        let Some(aging) = &self.aging else {
            return Entry::with_seq(job, seq);
        };
        let header = job.header();
        // priority·interval − entry time, in ms since the queue was made: a task's rank
        // against another's does not change as time passes.
        let entered = now.saturating_duration_since(self.epoch).as_millis() as i128;
        let score = i128::from(header.priority()) * i128::from(aging.interval_ms) - entered;
        // |score| < 2^65: biased to unsigned, then the id (inverted: lower ranks higher).
        let biased = (score + (1 << 66)) as u128;
        let id = u128::from(!seq) & ((1 << AGING_ID_BITS) - 1);
        Entry {
            key: biased << AGING_ID_BITS | id,
            job,
        }
    }

    /// `header`'s attempt starts at `now`: counted by the rate limit, reserved in the
    /// budgets.
    pub(super) fn record_start(&mut self, now: Instant, header: &Header) {
        if let Some(rate) = &mut self.rate {
            rate.record(now);
        }
        if self.budgets.is_some() {
            let key = self.key_of(header).cloned();
            if let Some(budgets) = &mut self.budgets {
                budgets.reserve(header, key.as_ref(), now);
            }
        }
    }

    /// Keeps only live entries (queued, and not an old entry of a moved task).
    pub(super) fn retain_live(&mut self, waiting: &mut Order<Entry>) {
        let moved = &self.moved;
        let live = |entry: &Entry| is_live(moved, entry);
        waiting.retain(live);
        if let Some(keys) = &mut self.keys {
            keys.retain(live);
        }
    }
}

/// The per-key limit of a queue's keys, if it has keys: its `key_concurrency`, or none
/// under a `key_budget` alone.
fn key_limit(config: &QueueConfig) -> Option<usize> {
    config
        .key_concurrency
        .or(config.key_budget.map(|_| usize::MAX))
}

/// Whether `entry` is its task's current entry and the task still waits.
pub(super) fn is_live(moved: &HashMap<TaskId, u128>, entry: &Entry) -> bool {
    let header = entry.job.header();
    header.phase() == Phase::Queued && moved.get(&header.id).is_none_or(|key| *key == entry.key)
}
