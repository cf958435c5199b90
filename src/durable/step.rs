//! The durable side of [`TaskContext::step`](crate::TaskContext::step): look the step up in
//! the store, run it if it has no stored output, store its output fenced by the run's claim.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::registered::RunScope;
use crate::error::StepError;
use crate::store::{duration_ms, StepWrite, StoreError};
use crate::sync::lock_std;

/// How many steps of each name one attempt of a run has called.
pub(crate) type StepCounts = Arc<Mutex<HashMap<String, u32>>>;

/// Tries a store call this many times before giving up on a step.
const STORE_TRIES: u32 = 8;

pub(crate) async fn run<T, E, F, Fut>(scope: &RunScope, name: &str, f: F) -> Result<T, E>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    T: Serialize + DeserializeOwned,
    E: From<StepError> + fmt::Display,
{
    let index = {
        let mut counts = lock_std(&scope.steps);
        let count = counts.entry(name.to_owned()).or_insert(0);
        let index = *count;
        *count += 1;
        index
    };
    let db_index = i32::try_from(index).unwrap_or(i32::MAX);
    let store_error = |e: StoreError| StepError::Store {
        step: name.to_owned(),
        index,
        reason: e.to_string(),
    };
    if scope.lease.is_lost() {
        return Err(StepError::LeaseLost {
            step: name.to_owned(),
            index,
        }
        .into());
    }
    // The emits before the step are committed before it starts.
    scope.emits.flush().await.map_err(|e| StepError::Store {
        step: name.to_owned(),
        index,
        reason: e.to_string(),
    })?;
    let stored = retried(scope, name, || {
        scope.store.load_step(scope.id, name, db_index)
    })
    .await
    .map_err(store_error)?;
    if let Some(json) = stored {
        tracing::debug!(run = %scope.id, step = name, index, "step already done: stored output");
        return serde_json::from_str(&json).map_err(|e| {
            E::from(StepError::Deserialize {
                step: name.to_owned(),
                index,
                type_name: std::any::type_name::<T>(),
                reason: e.to_string(),
            })
        });
    }
    let started = Instant::now();
    let result = f().await;
    let elapsed_ms = duration_ms(started.elapsed());
    match result {
        Ok(value) => {
            let json = serde_json::to_string(&value).map_err(|e| StepError::Serialize {
                step: name.to_owned(),
                index,
                reason: e.to_string(),
            })?;
            let write = StepWrite {
                run: scope.id,
                token: scope.token,
                name,
                index: db_index,
                output: Some(&json),
                error: None,
                elapsed_ms,
            };
            if retried(scope, name, || scope.store.save_step(&write))
                .await
                .map_err(store_error)?
            {
                Ok(value)
            } else {
                // The run is another claim's now: end this claim here (no retry of it).
                scope.lease.lost();
                Err(StepError::LeaseLost {
                    step: name.to_owned(),
                    index,
                }
                .into())
            }
        }
        Err(error) => {
            // Only the message, for `run_info`: the next attempt runs the step again.
            let message = error.to_string();
            let write = StepWrite {
                run: scope.id,
                token: scope.token,
                name,
                index: db_index,
                output: None,
                error: Some(&message),
                elapsed_ms,
            };
            if let Err(e) = scope.store.save_step(&write).await {
                tracing::warn!(run = %scope.id, step = name, index, "could not record a failed step: {e}");
            }
            Err(error)
        }
    }
}

/// Runs a store call, retrying a failing store with a bounded backoff (about 6 s in all)
/// before giving up on the step: one dropped connection or a quick database restart must
/// not fail a run. Both calls retried are safe to repeat: a lookup reads, and a step write
/// that finds its own committed row reports it written.
async fn retried<T, F, Fut>(scope: &RunScope, step: &str, mut call: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut tries = 0;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(e) if tries + 1 < STORE_TRIES => {
                tries += 1;
                tracing::warn!(run = %scope.id, step, "the store failed (try {tries}), retrying: {e}");
                let backoff = Duration::from_millis(50) * 2u32.pow(tries.min(5));
                tokio::time::sleep(backoff).await;
            }
            Err(e) => return Err(e),
        }
    }
}
