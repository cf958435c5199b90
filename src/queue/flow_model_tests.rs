//! The queue's flow-control path checked step by step against a reference model on random
//! programs: concurrency keys, a rate limit, pauses and holds, delays, `set_priority` and
//! `max_pending` in the mix. The model is a plain scan over every task, so it predicts
//! every start exactly: which task takes a slot, when a rate limit or pause holds it back,
//! and which key's turn it is (keys of equal priority take turns by the moment they became
//! ready, drawn from the same counter as task ids).
//!
//! Invariants checked after every step: the queue's counts and every task's phase match the
//! model; no queue runs more than its limit, no key more than its limit; no window of the
//! rate's length holds more starts than it allows; a key's state is gone once it has nothing
//! waiting or running; `max_pending`'s room matches.
//!
//! The operations and configurations are generated in `ops`, the model is in `model`, one
//! program's run and its checks in `run`; `leftovers` holds two fixed programs.

use proptest::prelude::*;

mod keys_and_rate;
mod leftovers;
mod model;
mod ops;
mod run;

use ops::{config, op};
use run::run;

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_flow_path_matches_its_model(config in config(), ops in prop::collection::vec(op(), 1..150)) {
        // A paused clock that only `Advance` moves.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(run(config, ops))?;
    }
}
