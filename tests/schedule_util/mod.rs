//! Helpers shared by the schedule tests: a run that logs when it started and works a while.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use taskrunner::{Task, TaskContext};
use tokio::time::Instant;

pub type Handler = Box<dyn Fn(TaskContext) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// When each run started, as time since the log was made (on tokio's clock).
#[derive(Clone)]
pub struct Log {
    t0: Instant,
    starts: Arc<Mutex<Vec<Duration>>>,
}

impl Log {
    pub fn new() -> Log {
        Log {
            t0: Instant::now(),
            starts: Arc::default(),
        }
    }

    /// The start times, as milliseconds since the log was made.
    pub fn starts_ms(&self) -> Vec<u64> {
        let starts = self.starts.lock().unwrap();
        starts.iter().map(|d| d.as_millis() as u64).collect()
    }

    pub fn count(&self) -> usize {
        self.starts.lock().unwrap().len()
    }

    /// A `make_task` whose runs log their start, then work for `work`, then succeed.
    pub fn runs(&self, work: Duration) -> impl Fn() -> Task<Handler> + Send + Sync + 'static {
        self.runs_with(work, |_| Ok(()))
    }

    /// Like `runs`, the n-th run (from 1) ending with `outcome(n)`.
    pub fn runs_with(
        &self,
        work: Duration,
        outcome: impl Fn(usize) -> Result<(), String> + Send + Sync + 'static,
    ) -> impl Fn() -> Task<Handler> + Send + Sync + 'static {
        let log = self.clone();
        let outcome = Arc::new(outcome);
        move || {
            let log = log.clone();
            let outcome = Arc::clone(&outcome);
            let handler: Handler = Box::new(move |_ctx: TaskContext| {
                let n = {
                    let mut starts = log.starts.lock().unwrap();
                    starts.push(log.t0.elapsed());
                    starts.len()
                };
                let outcome = Arc::clone(&outcome);
                Box::pin(async move {
                    tokio::time::sleep(work).await;
                    outcome(n)
                })
            });
            Task::new("run", handler)
        }
    }
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
