//! [`Ledger`]: what a [`Budget`] has charged in its sliding window.

use std::collections::VecDeque;

use tokio::time::Instant;

use crate::config::Budget;

/// A budget's charges still in its window: one record per attempt started under it, at
/// the attempt's start time, with what it reserved (its estimate) or was charged since.
pub(super) struct Ledger {
    budget: Budget,
    records: VecDeque<Record>,
    /// The sum of `records`' amounts (u128: charges are any u64).
    used: u128,
    next_seq: u64,
}

struct Record {
    at: Instant,
    /// Increasing with `at`: finds a record again for a charge.
    seq: u64,
    amount: u64,
}

impl Ledger {
    pub(super) fn new(budget: Budget) -> Ledger {
        Ledger {
            budget,
            records: VecDeque::new(),
            used: 0,
            next_seq: 0,
        }
    }

    /// Drops the records that left the window ending at `now`. Windows are half-open,
    /// `[t, t + per)`: a record exactly `per` old is out.
    fn prune(&mut self, now: Instant) {
        while let Some(front) = self.records.front() {
            if front.at + self.budget.per > now {
                break;
            }
            self.used -= u128::from(front.amount);
            self.records.pop_front();
        }
    }

    /// Units charged in the window ending at `now`.
    pub(super) fn used(&mut self, now: Instant) -> u64 {
        self.prune(now);
        self.used.min(u128::from(u64::MAX)) as u64
    }

    /// `None` if `cost` fits at `now`, else when it will (once enough records leave).
    pub(super) fn wait_for(&mut self, cost: u64, now: Instant) -> Option<Instant> {
        self.prune(now);
        let units = u128::from(self.budget.units);
        let cost = u128::from(cost);
        if self.used + cost <= units {
            return None;
        }
        let mut used = self.used;
        for record in &self.records {
            used -= u128::from(record.amount);
            if used + cost <= units {
                return Some(record.at + self.budget.per);
            }
        }
        // Only a cost over the whole budget never fits (refused at enqueue): when the window
        // is empty.
        self.records.back().map(|last| last.at + self.budget.per)
    }

    /// Reserves `cost` at `now`; returns the record's number, for [`Ledger::set`].
    pub(super) fn reserve(&mut self, cost: u64, now: Instant) -> u64 {
        self.prune(now);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.records.push_back(Record {
            at: now,
            seq,
            amount: cost,
        });
        self.used += u128::from(cost);
        seq
    }

    /// Record `seq` is now `amount` (nothing if it has left the window).
    pub(super) fn set(&mut self, seq: u64, amount: u64) {
        let Ok(i) = self.records.binary_search_by_key(&seq, |r| r.seq) else {
            return;
        };
        let record = &mut self.records[i];
        self.used = self.used - u128::from(record.amount) + u128::from(amount);
        record.amount = amount;
    }

    /// Whether nothing charged is left in the window ending at `now`.
    pub(super) fn is_empty(&mut self, now: Instant) -> bool {
        self.prune(now);
        self.records.is_empty()
    }
}

#[cfg(all(test, not(taskrunner_loom)))]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_window_counts_what_is_younger_than_per() {
        let per = Duration::from_secs(10);
        let mut ledger = Ledger::new(Budget::new(100, per));
        let t0 = Instant::now();
        let first = ledger.reserve(60, t0);
        assert_eq!(ledger.wait_for(40, t0), None);
        assert_eq!(ledger.wait_for(41, t0), Some(t0 + per));
        ledger.set(first, 10);
        assert_eq!(
            ledger.wait_for(90, t0),
            None,
            "a smaller charge frees room at once"
        );
        let second = ledger.reserve(90, t0 + Duration::from_secs(5));
        assert_eq!(ledger.used(t0 + Duration::from_secs(5)), 100);
        assert_eq!(
            ledger.wait_for(50, t0 + Duration::from_secs(5)),
            Some(t0 + Duration::from_secs(15))
        );
        assert_eq!(
            ledger.used(t0 + per),
            90,
            "a record exactly `per` old is out"
        );
        ledger.set(second, 130);
        assert_eq!(ledger.used(t0 + per), 130, "an overshoot counts in full");
        assert!(ledger.is_empty(t0 + Duration::from_secs(15)));
        ledger.set(second, 1);
        assert_eq!(
            ledger.used(t0 + Duration::from_secs(15)),
            0,
            "a charge after its window is lost"
        );
    }
}
