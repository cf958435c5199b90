//! 429s: `Task::retry_after` waits what the error asks instead of the backoff, without
//! counting against `max_retries` (under `RETRY_AFTER_LIMIT`); `TaskContext::pause_queue_for`
//! holds every start in the queue until the time passes.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{gated, settle};
use taskrunner::{
    QueueConfig, RetryPolicy, Task, TaskContext, TaskError, TaskRunner, TaskStatus, WaitReason,
    RETRY_AFTER_LIMIT,
};
use tokio::sync::Semaphore;
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq)]
enum ApiError {
    TooMany(Duration),
    Broken,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

fn asks(e: &ApiError) -> Option<Duration> {
    match e {
        ApiError::TooMany(wait) => Some(*wait),
        ApiError::Broken => None,
    }
}

/// A task whose attempt n returns `script[n - 1]` (Ok past its end), logging start offsets.
fn scripted(
    script: Vec<ApiError>,
    starts: &Arc<Mutex<Vec<Duration>>>,
) -> Task<
    impl Fn(TaskContext) -> futures::future::BoxFuture<'static, Result<u32, ApiError>> + Send + Sync,
> {
    let (starts, t0) = (Arc::clone(starts), Instant::now());
    Task::new("api", move |ctx: TaskContext| {
        starts.lock().unwrap().push(t0.elapsed());
        let outcome = match script.get(ctx.attempt() as usize - 1) {
            Some(e) => Err(e.clone()),
            None => Ok(ctx.attempt()),
        };
        Box::pin(async move { outcome })
            as futures::future::BoxFuture<'static, Result<u32, ApiError>>
    })
}

#[tokio::test(start_paused = true)]
async fn a_429_waits_what_it_asks_and_does_not_burn_a_retry() {
    let runner = TaskRunner::new();
    let starts = Arc::new(Mutex::new(Vec::new()));
    let script = vec![
        ApiError::TooMany(Duration::from_secs(7)),
        ApiError::Broken,
        ApiError::TooMany(Duration::from_secs(3)),
        ApiError::TooMany(Duration::from_secs(2)),
    ];
    let handle = runner
        .enqueue_task(
            scripted(script, &starts)
                .retry(RetryPolicy::exponential(Duration::from_millis(100)).max_retries(1))
                .retry_after(asks),
        )
        .unwrap();
    // Three 429s and one real failure: max_retries(1) is enough.
    assert_eq!(handle.await.unwrap(), 5);
    let ms = |m: u64| Duration::from_millis(m);
    assert_eq!(
        *starts.lock().unwrap(),
        [ms(0), ms(7_000), ms(7_100), ms(10_100), ms(12_100)],
        "the asked waits replace the backoff; the real failure gets the backoff"
    );
}

#[tokio::test(start_paused = true)]
async fn without_retry_after_a_429_is_an_ordinary_failure() {
    let runner = TaskRunner::new();
    let starts = Arc::new(Mutex::new(Vec::new()));
    let handle = runner
        .enqueue_task(
            scripted(vec![ApiError::TooMany(Duration::from_secs(7)); 3], &starts)
                .retry(RetryPolicy::exponential(Duration::from_millis(100)).max_retries(1)),
        )
        .unwrap();
    assert!(matches!(
        handle.await,
        Err(TaskError::Failed(ApiError::TooMany(_)))
    ));
    assert_eq!(starts.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn retry_after_works_without_a_retry_policy_and_none_means_fail() {
    let runner = TaskRunner::new();
    let starts = Arc::new(Mutex::new(Vec::new()));
    let ok = runner
        .enqueue_task(
            scripted(vec![ApiError::TooMany(Duration::from_secs(1))], &starts).retry_after(asks),
        )
        .unwrap();
    assert_eq!(ok.await.unwrap(), 2);
    let failed = runner
        .enqueue_task(scripted(vec![ApiError::Broken], &starts).retry_after(asks))
        .unwrap();
    assert!(matches!(
        failed.await,
        Err(TaskError::Failed(ApiError::Broken))
    ));
}

#[tokio::test(start_paused = true)]
async fn a_provider_that_answers_429_forever_is_bounded() {
    let runner = TaskRunner::new();
    let starts = Arc::new(Mutex::new(Vec::new()));
    let forever = vec![ApiError::TooMany(Duration::from_secs(1)); 1000];
    let handle = runner
        .enqueue_task(
            scripted(forever, &starts)
                .retry(RetryPolicy::exponential(Duration::from_millis(10)).max_retries(2))
                .retry_after(asks),
        )
        .unwrap();
    assert!(matches!(
        handle.await,
        Err(TaskError::Failed(ApiError::TooMany(_)))
    ));
    // The first attempt, RETRY_AFTER_LIMIT retries on the asked wait, then the policy's 2.
    assert_eq!(
        starts.lock().unwrap().len() as u32,
        1 + RETRY_AFTER_LIMIT + 2
    );
}

#[tokio::test(start_paused = true)]
async fn pause_queue_for_holds_every_start_in_the_queue_until_the_time_passes() {
    let runner = TaskRunner::builder()
        .queue("api", QueueConfig::new().concurrency(3))
        .build()
        .unwrap();
    let t0 = Instant::now();
    let gate = Arc::new(Semaphore::new(0));
    let running = runner
        .enqueue_task(gated("running", &gate, ()).queue("api"))
        .unwrap();
    let throttled = runner
        .enqueue_task(
            Task::new("throttled", |ctx: TaskContext| async move {
                ctx.pause_queue_for(Duration::from_secs(20));
                // A shorter hold later does not cut the longer one.
                ctx.pause_queue_for(Duration::from_secs(1));
                Ok::<_, String>(())
            })
            .queue("api"),
        )
        .unwrap();
    throttled.await.unwrap();
    let started_at = Arc::new(Mutex::new(None));
    let s = Arc::clone(&started_at);
    let next = runner
        .enqueue_task(
            Task::new("next", move |_: TaskContext| {
                *s.lock().unwrap() = Some(t0.elapsed());
                async { Ok::<_, String>(()) }
            })
            .queue("api"),
        )
        .unwrap();
    settle().await;
    let stats = runner.queue_stats("api").unwrap();
    assert!(stats.paused);
    assert_eq!(
        (stats.running, stats.pending),
        (1, 1),
        "a free slot, but held"
    );
    assert_eq!(
        runner.get_status(next.id()).unwrap().waiting_for,
        Some(WaitReason::Paused)
    );
    assert_eq!(running.status(), TaskStatus::Running, "running tasks go on");
    // Other queues go on.
    runner
        .enqueue_task(Task::new("elsewhere", |_: TaskContext| async {
            Ok::<_, String>(())
        }))
        .unwrap()
        .await
        .unwrap();
    next.await.unwrap();
    assert_eq!(*started_at.lock().unwrap(), Some(Duration::from_secs(20)));
    assert!(!runner.queue_stats("api").unwrap().paused);
    gate.add_permits(1);
    running.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_429_handler_holds_the_queue_and_retries_itself_after_the_wait() {
    let runner = TaskRunner::builder()
        .queue("api", QueueConfig::new().concurrency(2))
        .build()
        .unwrap();
    let t0 = Instant::now();
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = Arc::clone(&log);
    let first = runner
        .enqueue_task(
            Task::new("first", move |ctx: TaskContext| {
                l.lock()
                    .unwrap()
                    .push(("first", ctx.attempt(), t0.elapsed()));
                async move {
                    if ctx.attempt() == 1 {
                        ctx.pause_queue_for(Duration::from_secs(30));
                        return Err(ApiError::TooMany(Duration::from_secs(30)));
                    }
                    Ok(())
                }
            })
            .queue("api")
            .retry_after(asks),
        )
        .unwrap();
    settle().await;
    let l = Arc::clone(&log);
    let second = runner
        .enqueue_task(
            Task::new("second", move |ctx: TaskContext| {
                l.lock()
                    .unwrap()
                    .push(("second", ctx.attempt(), t0.elapsed()));
                async { Ok::<_, ApiError>(()) }
            })
            .queue("api"),
        )
        .unwrap();
    first.await.unwrap();
    second.await.unwrap();
    let log = log.lock().unwrap().clone();
    let secs = Duration::from_secs;
    assert_eq!(log[0], ("first", 1, secs(0)));
    // Both start when the hold ends, the retried one first (it is older).
    assert_eq!(log[1..], [("first", 2, secs(30)), ("second", 1, secs(30))]);
}

#[tokio::test(start_paused = true)]
async fn absurd_durations_do_not_panic() {
    let runner = TaskRunner::new();
    // A hold for ever: the queue stays held; shutdown_now still ends what waits.
    runner
        .enqueue_task(Task::new("hold", |ctx: TaskContext| async move {
            ctx.pause_queue_for(Duration::MAX);
            Ok::<_, String>(())
        }))
        .unwrap()
        .await
        .unwrap();
    assert!(runner.queue_stats("main").unwrap().paused);
    let waiting = runner
        .enqueue_task(Task::new("w", |_: TaskContext| async {
            Ok::<_, String>(())
        }))
        .unwrap();
    let delayed = runner
        .enqueue_task(
            Task::new("d", |_: TaskContext| async { Ok::<_, String>(()) }).delay(Duration::MAX),
        )
        .unwrap();
    assert_eq!(delayed.status(), TaskStatus::Delayed);
    runner.shutdown_timeout(Duration::from_secs(1)).await;
    assert!(matches!(waiting.await, Err(TaskError::Shutdown)));
    assert!(matches!(delayed.await, Err(TaskError::Shutdown)));

    // A window over a year is refused, naming the queue and the setting.
    let err = TaskRunner::builder()
        .queue(
            "api",
            QueueConfig::new().rate_limit(taskrunner::RateLimit::new(1, Duration::MAX)),
        )
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("queue `api`"), "{err}");
    assert!(err.to_string().contains("rate_limit"), "{err}");
}
