//! Helpers shared by the budget tests (`budget.rs`, `budget_adversarial.rs`): a queue `llm`,
//! tasks that log when they start and charge what they are told.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use taskrunner::{QueueConfig, Task, TaskContext, TaskRunner};
use tokio::time::Instant;

/// Each start: the task's label and its offset from the test's `t0`.
pub type Log = Arc<Mutex<Vec<(String, Duration)>>>;
pub type Handler = Box<dyn Fn(TaskContext) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The budgets' window in these tests.
pub const PER: Duration = Duration::from_secs(10);

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A task that logs `label` and its start offset, takes `work`, then charges `actual`.
pub fn call(
    label: &str,
    log: &Log,
    t0: Instant,
    work: Duration,
    actual: Option<u64>,
) -> Task<Handler> {
    let (name, log) = (label.to_owned(), Arc::clone(log));
    let label = name.clone();
    let handler: Handler = Box::new(move |ctx: TaskContext| {
        log.lock().unwrap().push((label.clone(), t0.elapsed()));
        Box::pin(async move {
            tokio::time::sleep(work).await;
            if let Some(actual) = actual {
                ctx.charge(actual);
            }
            Ok(())
        })
    });
    Task::new(name, handler).queue("llm")
}

/// A runner with one queue, `llm`, configured as `config`.
pub fn runner(config: QueueConfig) -> TaskRunner {
    TaskRunner::builder().queue("llm", config).build().unwrap()
}
