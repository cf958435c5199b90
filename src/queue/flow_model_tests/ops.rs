//! The programs the model runs: the queue's configuration and the operations, generated.

use proptest::prelude::*;

pub(super) const KEYS: [&str; 3] = ["k0", "k1", "k2"];

#[derive(Debug, Clone)]
pub(super) enum Op {
    Enqueue {
        priority: i32,
        key: Option<usize>,
        delayed: bool,
    },
    Finish {
        pick: usize,
        retry: bool,
    },
    Cancel {
        pick: usize,
    },
    RetryReady {
        pick: usize,
    },
    DelayReady {
        pick: usize,
    },
    SetLimit {
        limit: usize,
    },
    SetPriority {
        pick: usize,
        priority: i32,
    },
    Pause,
    Resume,
    Hold {
        ms: u64,
    },
    Advance {
        ms: u64,
    },
}

pub(super) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (-2..=2i32, prop::option::of(0..KEYS.len()), prop::bool::weighted(0.15))
            .prop_map(|(priority, key, delayed)| Op::Enqueue { priority, key, delayed }),
        4 => (any::<usize>(), prop::bool::weighted(0.3)).prop_map(|(pick, retry)| Op::Finish { pick, retry }),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        1 => any::<usize>().prop_map(|pick| Op::RetryReady { pick }),
        1 => any::<usize>().prop_map(|pick| Op::DelayReady { pick }),
        1 => (1..=4usize).prop_map(|limit| Op::SetLimit { limit }),
        1 => (any::<usize>(), -2..=2i32).prop_map(|(pick, priority)| Op::SetPriority { pick, priority }),
        1 => Just(Op::Pause),
        1 => Just(Op::Resume),
        1 => (1..=6u64).prop_map(|n| Op::Hold { ms: n * 10 }),
        3 => (1..=6u64).prop_map(|n| Op::Advance { ms: n * 10 }),
    ]
}

#[derive(Debug, Clone)]
pub(super) struct Config {
    pub(super) limit: usize,
    pub(super) key_limit: Option<usize>,
    pub(super) rate: Option<(u32, u64)>,
    pub(super) max_pending: Option<usize>,
}

pub(super) fn config() -> impl Strategy<Value = Config> {
    (
        1..=3usize,
        prop::option::of(1..=2usize),
        prop::option::of((1..=3u32, prop_oneof![Just(50u64), Just(100u64)])),
        prop::option::of(1..=4usize),
    )
        .prop_map(|(limit, key_limit, rate, max_pending)| Config {
            limit,
            key_limit,
            rate,
            max_pending,
        })
}
