//! shutdown finishes everything; shutdown_now cancels everything; no handle is lost.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use taskrunner::{
    EnqueueError, QueueConfig, RetryPolicy, Task, TaskContext, TaskError, TaskRunner, TaskStatus,
};
use tokio::time::Instant;

fn runner() -> TaskRunner {
    TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .build()
        .unwrap()
}

fn sleeper(
    secs: u64,
) -> Task<
    impl Fn(TaskContext) -> futures::future::BoxFuture<'static, Result<u64, String>> + Send + Sync,
> {
    Task::new("sleep", move |_: TaskContext| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            Ok(secs)
        }) as futures::future::BoxFuture<'static, Result<u64, String>>
    })
}

#[tokio::test(start_paused = true)]
async fn shutdown_refuses_new_tasks_and_finishes_pending_running_and_retrying_ones() {
    let runner = runner();
    let running = runner.enqueue_task(sleeper(2)).unwrap();
    let queued: Vec<_> = (0..4)
        .map(|_| runner.enqueue_task(sleeper(1).queue("one")).unwrap())
        .collect();
    let flaky = runner
        .enqueue_task(
            Task::new("flaky", |ctx: TaskContext| async move {
                if ctx.attempt() < 3 {
                    Err("again")
                } else {
                    Ok(ctx.attempt())
                }
            })
            .retry(RetryPolicy::fixed(Duration::from_secs(10))),
        )
        .unwrap();

    let began = Instant::now();
    let shutdown = runner.shutdown();
    assert!(runner.is_shutting_down());
    let refused = runner.enqueue_task(sleeper(1));
    assert!(matches!(refused, Err(EnqueueError::ShuttingDown)));
    assert_eq!(
        refused.unwrap_err().to_string(),
        "the task runner is shutting down and accepts no new tasks"
    );

    shutdown.await;
    assert_eq!(
        began.elapsed(),
        Duration::from_secs(20),
        "waited for both retries"
    );
    assert_eq!(running.await.unwrap(), 2);
    for handle in queued {
        assert_eq!(handle.await.unwrap(), 1);
    }
    assert_eq!(flaky.await.unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn shutdown_now_cancels_everything_without_waiting_on_stubborn_handlers() {
    let runner = runner();
    let stubborn: Vec<_> = (0..3)
        .map(|_| runner.enqueue_task(sleeper(3600)).unwrap())
        .collect();
    let queued: Vec<_> = (0..5)
        .map(|_| runner.enqueue_task(sleeper(1).queue("one")).unwrap())
        .collect();
    let retrying = runner
        .enqueue_task(
            Task::new("retrying", |_: TaskContext| async {
                Err::<u64, _>("down".to_owned())
            })
            .retry(RetryPolicy::fixed(Duration::from_secs(3600))),
        )
        .unwrap();
    tokio::task::yield_now().await;

    let began = Instant::now();
    runner.shutdown_now().await;
    assert!(began.elapsed() < Duration::from_secs(1));
    for handle in stubborn.into_iter().chain(queued).chain([retrying]) {
        let id = handle.id();
        assert!(matches!(handle.await, Err(TaskError::Shutdown)));
        let info = runner.get_status(id).unwrap();
        assert_eq!(info.status, TaskStatus::Cancelled);
        assert_eq!(info.error.as_deref(), Some("stopped by shutdown"));
    }
    for queue in ["main", "one"] {
        let stats = runner.queue_stats(queue).unwrap();
        assert_eq!((stats.pending, stats.running, stats.retrying), (0, 0, 0));
    }
    assert!(matches!(
        runner.enqueue_task(sleeper(1)),
        Err(EnqueueError::ShuttingDown)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_handle_resolves_exactly_once_through_shutdown_now() {
    let runner = TaskRunner::builder()
        .queue("a", QueueConfig::new().concurrency(2))
        .queue("b", QueueConfig::new().concurrency(5))
        .build()
        .unwrap();
    let resolved = Arc::new(AtomicUsize::new(0));
    let mut waiters = Vec::new();
    for i in 0..2_000u64 {
        let handle = runner
            .enqueue_task(
                Task::new("t", move |_: TaskContext| async move {
                    if i % 2 == 0 {
                        tokio::task::yield_now().await;
                    } else {
                        tokio::time::sleep(Duration::from_millis(i % 5)).await;
                    }
                    Ok::<_, String>(i)
                })
                .queue(if i % 3 == 0 { "a" } else { "b" })
                .priority((i % 4) as i32),
            )
            .unwrap();
        let resolved = Arc::clone(&resolved);
        waiters.push(tokio::spawn(async move {
            let outcome = handle.await;
            resolved.fetch_add(1, Ordering::SeqCst);
            outcome.map(|_| ()).map_err(|e| e.is_cancelled())
        }));
    }
    tokio::time::sleep(Duration::from_millis(2)).await;
    runner.shutdown_now().await;
    let mut completed = 0;
    for waiter in waiters {
        match waiter.await.unwrap() {
            Ok(()) => completed += 1,
            Err(cancelled) => assert!(cancelled),
        }
    }
    assert_eq!(resolved.load(Ordering::SeqCst), 2_000);
    let infos = runner.list_tasks();
    assert_eq!(
        infos
            .iter()
            .filter(|t| t.status == TaskStatus::Completed)
            .count(),
        completed
    );
    assert!(infos.iter().all(|t| t.status.is_terminal()));
}
