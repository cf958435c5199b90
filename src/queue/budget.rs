//! A queue's [`Budget`]s: the queue's ledger and each key's, the reservation of each running
//! attempt, and the gate that keeps a waiting task back until its estimate fits.
//!
//! The rule for order: the queue's best waiting task is checked against the budgets that
//! apply to it; if it does not fit the queue's budget nothing starts (a large task at the
//! head reserves the window: smaller ones behind it wait too), and a timer is set for when
//! it fits. If it does not fit its key's budget, only that key is held back (its token
//! withdrawn, as a key at its concurrency limit), until its own timer fires or a charge
//! frees room.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use tokio::time::Instant;

use super::flow::{is_live as live_in, Flow};
use super::order::Order;
use super::{Entry, Queue, QueueConfig, State};
use crate::config::Budget;
use crate::error::EnqueueError;
use crate::task::{Header, Job, Stamp};
use crate::TaskId;

use super::ledger::Ledger;

pub(super) struct Budgets {
    queue: Option<Ledger>,
    key_budget: Option<Budget>,
    keys: HashMap<Arc<str>, Ledger>,
    /// Sweep the key ledgers for empty ones once there are this many.
    sweep_at: usize,
    /// The reservation of each attempt that started (suspended ones included) and has not
    /// ended.
    running: HashMap<TaskId, Reserved, IdHasher>,
    /// Keys held back by their budget, and when their best task fits.
    held_keys: Vec<(Instant, Arc<str>)>,
    /// The queue's best waiting task does not fit the queue's budget until then.
    head_until: Option<Instant>,
}

/// What a running attempt holds in the ledgers.
struct Reserved {
    queue: Option<u64>,
    key: Option<(Arc<str>, u64)>,
    amount: u64,
    /// The attempt's number: a context kept from an earlier attempt charges nothing.
    attempt: u32,
}

/// Whether the best waiting task may start as far as the budgets go.
pub(super) enum Gate {
    Go,
    /// Nothing may start (the head does not fit the queue's budget).
    Stop,
    /// Its key is held now; look at the next best task.
    Again,
}

impl Budgets {
    pub(super) fn new(config: &QueueConfig) -> Option<Budgets> {
        if config.budget.is_none() && config.key_budget.is_none() {
            return None;
        }
        Some(Budgets {
            queue: config.budget.map(Ledger::new),
            key_budget: config.key_budget,
            keys: HashMap::new(),
            sweep_at: 64,
            running: HashMap::default(),
            held_keys: Vec::new(),
            head_until: None,
        })
    }

    /// `None` if `header`'s attempt fits (or reserved already: a resumed task), else which
    /// budget it waits for and until when: (`true` for the key's, when).
    fn wait_for(
        &mut self,
        id: TaskId,
        cost: u64,
        key: Option<&Arc<str>>,
        now: Instant,
    ) -> Option<(bool, Instant)> {
        if self.running.contains_key(&id) {
            return None;
        }
        if let Some(at) = self.queue.as_mut().and_then(|l| l.wait_for(cost, now)) {
            return Some((false, at));
        }
        let ledger = self.keys.get_mut(key?)?;
        Some((true, ledger.wait_for(cost, now)?))
    }

    /// Whether `header`'s attempt may start now.
    pub(super) fn fits(&mut self, header: &Header, key: Option<&Arc<str>>, now: Instant) -> bool {
        let cost = header.cost().unwrap_or(0);
        self.wait_for(header.id, cost, key, now).is_none()
    }

    /// `header`'s attempt starts at `now`: reserves its estimate (once an attempt).
    pub(super) fn reserve(&mut self, header: &Header, key: Option<&Arc<str>>, now: Instant) {
        if self.running.contains_key(&header.id) {
            return;
        }
        let cost = header.cost().unwrap_or(0);
        let queue = self.queue.as_mut().map(|ledger| ledger.reserve(cost, now));
        let key = match (self.key_budget, key) {
            (Some(budget), Some(key)) => {
                let ledger = self
                    .keys
                    .entry(Arc::clone(key))
                    .or_insert_with(|| Ledger::new(budget));
                Some((Arc::clone(key), ledger.reserve(cost, now)))
            }
            _ => None,
        };
        header.recharge(0, cost);
        let reserved = Reserved {
            queue,
            key,
            amount: cost,
            // Counted by its worker once started.
            attempt: header.attempts() + 1,
        };
        self.running.insert(header.id, reserved);
        self.head_until = None;
        if self.keys.len() >= self.sweep_at {
            // A running attempt's ledger stays: a new one would reuse its record's number.
            let running: std::collections::HashSet<&str> = (self.running.values())
                .filter_map(|r| r.key.as_ref().map(|(key, _)| &**key))
                .collect();
            (self.keys).retain(|key, ledger| running.contains(&**key) || !ledger.is_empty(now));
            self.sweep_at = 2 * self.keys.len() + 64;
        }
    }

    /// `header`'s running attempt cost `actual`. True if that freed room.
    fn charge(&mut self, header: &Header, attempt: u32, actual: u64) -> bool {
        let Some(reserved) = self.running.get_mut(&header.id) else {
            return false;
        };
        if reserved.attempt != attempt {
            return false;
        }
        if let (Some(seq), Some(ledger)) = (reserved.queue, self.queue.as_mut()) {
            ledger.set(seq, actual);
        }
        if let Some((key, seq)) = &reserved.key {
            if let Some(ledger) = self.keys.get_mut(key) {
                ledger.set(*seq, actual);
            }
        }
        header.recharge(reserved.amount, actual);
        let freed = actual < reserved.amount;
        reserved.amount = actual;
        freed
    }

    /// `id`'s attempt ended: what it charged stays in the window.
    pub(super) fn ended(&mut self, id: TaskId) {
        self.running.remove(&id);
    }

    /// Units charged in the queue budget's window ending at `now`.
    pub(super) fn used(&mut self, now: Instant) -> Option<u64> {
        Some(self.queue.as_mut()?.used(now))
    }

    /// Whether the queue's best waiting task waits for the queue's budget at `now`.
    pub(super) fn head_waits(&self, now: Instant) -> bool {
        self.head_until.is_some_and(|t| t > now)
    }

    /// Whether any key is held back by its budget.
    pub(super) fn holds_keys(&self) -> bool {
        !self.held_keys.is_empty()
    }

    /// When the next held key may try again.
    pub(super) fn next_key_release(&self) -> Option<Instant> {
        self.held_keys.iter().map(|(at, _)| *at).min()
    }

    /// The held keys that may try again at `now` (all of them with `all`).
    pub(super) fn release_keys(&mut self, now: Instant, all: bool) -> Vec<Arc<str>> {
        let mut released = Vec::new();
        self.held_keys.retain(|(at, key)| {
            let due = all || *at <= now;
            if due {
                released.push(Arc::clone(key));
            }
            !due
        });
        released
    }
}

/// Task ids are unique numbers: a multiply spreads them well enough, at a fraction of
/// SipHash's cost (a lookup at every start, end and charge).
#[derive(Default, Clone, Copy)]
struct IdHasher;

impl std::hash::BuildHasher for IdHasher {
    type Hasher = IdHash;

    fn build_hasher(&self) -> IdHash {
        IdHash(0)
    }
}

struct IdHash(u64);

impl std::hash::Hasher for IdHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

// ===== impl Queue: budgets =====

impl Queue {
    /// Refuses a task whose estimate is larger than a whole budget of this queue.
    pub(crate) fn check_cost<F, P>(
        &self,
        task: &crate::task::Task<F, P>,
    ) -> Result<(), EnqueueError> {
        let Some(options) = task.options() else {
            return Ok(());
        };
        let Some(cost) = options.flow.cost else {
            return Ok(());
        };
        let keyed = options.flow.concurrency_key.is_some();
        let key_budget = self.budgets[1].filter(|_| keyed);
        for budget in [self.budgets[0], key_budget].into_iter().flatten() {
            if cost > budget.units() {
                return Err(EnqueueError::OverBudget {
                    queue: self.name().to_owned(),
                    cost,
                    units: budget.units(),
                });
            }
        }
        Ok(())
    }

    /// Whether the best waiting task (from a key's token with `from_key`) may start as far
    /// as the budgets go; holds back the queue or its key if not, and sets the timer.
    pub(super) fn budget_gate(
        &self,
        flow: &mut Flow,
        waiting: &Order<Entry>,
        from_key: bool,
        now: Instant,
    ) -> Gate {
        let head = if from_key {
            flow.keys.as_mut().and_then(|keys| keys.peek_entry())
        } else {
            waiting.peek().map(|entry| (0, entry))
        };
        let Some((slot, entry)) = head else {
            return Gate::Go;
        };
        if !live_in(&flow.moved, entry) {
            // A tombstone: the pop drops it.
            return Gate::Go;
        }
        // What the check needs of the task, so that the entry's borrow (of the keys, with
        // `from_key`) ends here: no clone of its handle on this path.
        let header = entry.job.header();
        let (id, cost) = (header.id, header.cost().unwrap_or(0));
        // From a key's token: the queue has keys, so the task's key is the one it counts on.
        let key = if from_key {
            header
                .options()
                .and_then(|o| o.flow.concurrency_key.clone())
        } else {
            None
        };
        let Some(budgets) = flow.budgets.as_mut() else {
            return Gate::Go;
        };
        match budgets.wait_for(id, cost, key.as_ref(), now) {
            None => Gate::Go,
            Some((false, at)) => {
                budgets.head_until = Some(at);
                self.arm_at(flow, at);
                Gate::Stop
            }
            Some((true, at)) => {
                if let (Some(key), Some(keys)) = (key, flow.keys.as_mut()) {
                    keys.hold(slot);
                    budgets.held_keys.push((at, key));
                }
                self.arm_at(flow, at);
                Gate::Again
            }
        }
    }

    /// Lets the held keys whose time has come (all with `all`) try again, and sets the
    /// timer for the others.
    pub(super) fn release_keys(&self, state: &mut State, now: Instant, all: bool) {
        let Some(flow) = state.flow.as_deref_mut() else {
            return;
        };
        let Some(budgets) = flow.budgets.as_mut() else {
            return;
        };
        if !budgets.holds_keys() {
            return;
        }
        let released = budgets.release_keys(now, all);
        let next = budgets.next_key_release();
        let Flow { moved, keys, .. } = &mut *flow;
        if let Some(keys) = keys {
            for key in released {
                state.tombstones -= keys.unhold(&key, &|e| live_in(moved, e));
            }
        }
        if let Some(at) = next {
            self.arm_at(flow, at);
        }
    }

    /// A waiting task was cancelled or moved: if a budget held the queue (or a key) back for
    /// its best waiting task, the best may be another one now. Returns what starts.
    pub(super) fn budget_recheck(&self, state: &mut State) -> Vec<Arc<dyn Job>> {
        let now = Instant::now();
        let Some(budgets) = state.flow.as_deref_mut().and_then(|f| f.budgets.as_mut()) else {
            return Vec::new();
        };
        if !budgets.head_waits(now) && !budgets.holds_keys() {
            return Vec::new();
        }
        budgets.head_until = None;
        self.release_keys(state, now, true);
        self.fill(state, Stamp::now())
    }

    /// Runs `started` (from [`budget_recheck`](Self::budget_recheck)), outside the lock.
    pub(super) fn start_jobs(&self, started: Vec<Arc<dyn Job>>) {
        if started.is_empty() {
            return;
        }
        if let Some(host) = self.host.get().and_then(Weak::upgrade) {
            for job in started {
                host.start_job(job);
            }
        }
    }

    /// The running `job`'s attempt cost `actual`: corrects the ledgers, and starts what
    /// fits now if that freed room.
    pub(super) fn charge(&self, job: &Arc<dyn Job>, attempt: u32, actual: u64) {
        let stamp = Stamp::now();
        let mut state = self.lock();
        let Some(budgets) = state.flow.as_deref_mut().and_then(|f| f.budgets.as_mut()) else {
            return;
        };
        if !budgets.charge(job.header(), attempt, actual) {
            return;
        }
        budgets.head_until = None;
        let now = Instant::now();
        self.release_keys(&mut state, now, true);
        let started = self.fill(&mut state, stamp);
        drop(state);
        if started.is_empty() {
            return;
        }
        if let Some(host) = self.host.get().and_then(Weak::upgrade) {
            for job in started {
                host.start_job(job);
            }
        }
    }
}
