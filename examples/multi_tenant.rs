//! A multi-tenant agent: many users' conversations share one model provider.
//!
//! - The provider allows 8 requests a second: the `llm` queue's rate limit keeps every start
//!   (retries included) under it, with a sliding window.
//! - Each conversation runs one model call at a time (`key_concurrency(1)`, the conversation
//!   as the key), so alice, who fires twelve messages, does not hold back the five users who
//!   send two each: conversations take turns.
//! - The provider answers one call with 429 and a Retry-After: the handler holds the whole
//!   queue for that long (`pause_queue_for`) and the call is retried after it
//!   (`retry_after`), without using up one of its retries.
//! - A retried agent turn enqueues the same call again: its dedup key refuses the duplicate.
//! - At most 50 calls may wait; past that the caller gets `QueueFull` with its task back.
//!
//! Run with `cargo run --release --example multi_tenant` (about 3 seconds).

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use taskrunner::{
    EnqueueError, QueueConfig, RateLimit, RetryPolicy, Task, TaskContext, TaskHandle, TaskRunner,
};

/// What the provider can answer besides a completion.
#[derive(Debug)]
enum ApiError {
    /// HTTP 429, with the wait its Retry-After header asks for.
    TooManyRequests { retry_after: Duration },
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::TooManyRequests { retry_after } => {
                write!(f, "429 Too Many Requests (retry after {retry_after:?})")
            }
        }
    }
}

/// A stand-in for a model API: 150 ms a completion, and a 429 on the sixth request.
struct Provider {
    requests: AtomicU32,
}

impl Provider {
    async fn complete(&self, prompt: &str) -> Result<String, ApiError> {
        let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        if n == 6 {
            return Err(ApiError::TooManyRequests {
                retry_after: Duration::from_millis(600),
            });
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        Ok(format!("reply to {prompt:?}"))
    }
}

fn log(what: impl fmt::Display) {
    static START: OnceLock<Instant> = OnceLock::new();
    let ms = START.get_or_init(Instant::now).elapsed().as_millis();
    println!("{ms:>6} ms  {what}");
}

/// One model call of `user`'s conversation.
fn model_call(
    provider: &Arc<Provider>,
    user: &'static str,
    message: u32,
) -> Task<
    impl Fn(TaskContext) -> futures::future::BoxFuture<'static, Result<String, ApiError>> + Send + Sync,
> {
    let provider = Arc::clone(provider);
    Task::new("chat", move |ctx: TaskContext| {
        let provider = Arc::clone(&provider);
        Box::pin(async move {
            log(format_args!(
                "{:<12} start (attempt {})",
                ctx.call_id(),
                ctx.attempt()
            ));
            match provider.complete(&format!("{user} #{message}")).await {
                Err(ApiError::TooManyRequests { retry_after }) => {
                    log(format_args!(
                        "{:<12} 429: hold the queue {retry_after:?}",
                        ctx.call_id()
                    ));
                    // No other call should hit the provider meanwhile either.
                    ctx.pause_queue_for(retry_after);
                    Err(ApiError::TooManyRequests { retry_after })
                }
                Ok(reply) => {
                    log(format_args!("{:<12} done: {reply}", ctx.call_id()));
                    Ok(reply)
                }
            }
        }) as futures::future::BoxFuture<'static, Result<String, ApiError>>
    })
    .queue("llm")
    .concurrency_key(format!("conversation/{user}"))
    .call_id(format!("{user}#{message}"))
    .dedup_key(format!("{user}#{message}"))
    .retry(RetryPolicy::exponential(Duration::from_millis(200)).max_retries(2))
    // A 429 waits what the provider asks, and is not counted as a failure.
    .retry_after(|e: &ApiError| match e {
        ApiError::TooManyRequests { retry_after } => Some(*retry_after),
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runner = TaskRunner::builder()
        .queue(
            "llm",
            QueueConfig::new()
                .concurrency(4)
                .rate_limit(RateLimit::new(8, Duration::from_secs(1)))
                .key_concurrency(1)
                .max_pending(50),
        )
        .build()?;
    let provider = Arc::new(Provider {
        requests: AtomicU32::new(0),
    });
    log("alice sends 12 messages, then bob, carol, dave, erin and frank 2 each");

    let mut handles: Vec<(&str, TaskHandle<String, ApiError>)> = Vec::new();
    for message in 1..=12 {
        handles.push((
            "alice",
            runner.enqueue_task(model_call(&provider, "alice", message))?,
        ));
    }
    for user in ["bob", "carol", "dave", "erin", "frank"] {
        for message in 1..=2 {
            handles.push((
                user,
                runner.enqueue_task(model_call(&provider, user, message))?,
            ));
        }
    }

    // A retried agent turn enqueues bob's first call again: refused, the first one stands.
    match runner.enqueue_task(model_call(&provider, "bob", 1)) {
        Err(EnqueueError::Duplicate { key, existing }) => {
            log(format_args!(
                "duplicate of {key} refused (task {existing} is live)"
            ));
        }
        other => log(format_args!("unexpected: {other:?}")),
    }
    let stats = runner.queue_stats("llm").expect("declared");
    log(format_args!(
        "llm: {} running, {} waiting (why: {:?})",
        stats.running, stats.pending, stats.waiting_for
    ));

    // When each user's last reply came.
    let mut last_reply: Vec<(&str, u128)> = Vec::new();
    for (user, handle) in handles {
        let id = handle.id();
        if let Err(error) = handle.await {
            log(format_args!("task {id} failed: {error}"));
        }
        let info = runner.get_status(id).expect("kept");
        let done = info.finished_at.expect("finished");
        let ms = done
            .duration_since(info.created_at)
            .unwrap_or_default()
            .as_millis();
        match last_reply.iter_mut().find(|(u, _)| *u == user) {
            Some((_, last)) => *last = (*last).max(ms),
            None => last_reply.push((user, ms)),
        }
    }
    for (user, ms) in last_reply {
        println!("{user:>6}: all replies after {ms} ms");
    }
    runner.shutdown().await;
    Ok(())
}
