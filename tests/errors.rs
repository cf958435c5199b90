//! Bad input gets a clear error naming the thing at fault, never a panic.

use std::time::Duration;

use taskrunner::{ConfigError, EnqueueError, QueueConfig, Task, TaskContext, TaskRunner};

fn noop() -> Task<impl Fn(TaskContext) -> std::future::Ready<Result<(), String>> + Send + Sync> {
    Task::new("noop", |_: TaskContext| std::future::ready(Ok(())))
}

#[tokio::test]
async fn enqueue_into_an_unknown_queue() {
    let runner = TaskRunner::new();
    let err = runner.enqueue_task(noop().queue("llm")).unwrap_err();
    assert_eq!(err, EnqueueError::UnknownQueue("llm".into()));
    assert_eq!(
        err.to_string(),
        "unknown queue `llm`: declare it with `TaskRunner::builder().queue(\"llm\", QueueConfig::new())`"
    );
    assert!(runner.list_tasks().is_empty(), "nothing was registered");
}

#[tokio::test]
async fn set_concurrency_on_an_unknown_queue_or_to_zero() {
    let runner = TaskRunner::new();
    let err = runner.set_concurrency("llm", 2).unwrap_err();
    assert_eq!(err, ConfigError::UnknownQueue("llm".into()));
    assert!(err.to_string().contains("declare it with"));

    let err = runner.set_concurrency("main", 0).unwrap_err();
    assert_eq!(
        err,
        ConfigError::ZeroConcurrency {
            queue: "main".into()
        }
    );
    assert!(err.to_string().contains("queue `main` has concurrency 0"));
    assert_eq!(runner.queue_stats("main").unwrap().limit, 3, "unchanged");
}

#[test]
fn build_rejects_zero_concurrency_duplicates_and_empty_names() {
    let err = TaskRunner::builder()
        .queue("tools", QueueConfig::new().concurrency(0))
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        ConfigError::ZeroConcurrency {
            queue: "tools".into()
        }
    );

    let err = TaskRunner::builder()
        .queue("tools", QueueConfig::new())
        .queue("tools", QueueConfig::new().concurrency(2))
        .build()
        .unwrap_err();
    assert_eq!(err, ConfigError::DuplicateQueue("tools".into()));
    assert!(err.to_string().contains("`tools`"));

    let err = TaskRunner::builder()
        .queue("", QueueConfig::new())
        .build()
        .unwrap_err();
    assert_eq!(err, ConfigError::EmptyQueueName);

    let err = TaskRunner::builder()
        .queue("main", QueueConfig::new().concurrency(0))
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        ConfigError::ZeroConcurrency {
            queue: "main".into()
        }
    );
}

#[tokio::test]
async fn a_zero_timeout_is_rejected() {
    let runner = TaskRunner::new();
    let err = runner
        .enqueue_task(noop().timeout(Duration::ZERO))
        .unwrap_err();
    assert_eq!(
        err,
        EnqueueError::ZeroTimeout {
            task: "noop".into()
        }
    );
    assert!(err.to_string().contains("task `noop` has a zero timeout"));
}

#[test]
fn enqueue_outside_a_runtime_is_an_error_not_a_panic() {
    let runner = TaskRunner::new();
    let err = runner.enqueue_task(noop()).unwrap_err();
    assert_eq!(err, EnqueueError::NoRuntime);
    assert!(err.to_string().contains("tokio runtime"));
    assert!(runner.list_tasks().is_empty());
    // The refused task left nothing behind: the runner is idle.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        runner.wait_idle().await;
        // Inside a runtime the same runner works.
        runner.enqueue_task(noop()).unwrap().await.unwrap();
    });
}

#[test]
fn a_runner_built_inside_a_runtime_can_be_used_from_plain_threads() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let runner = rt.block_on(async { TaskRunner::new() });
    let handle = std::thread::spawn({
        let runner = runner.clone();
        move || runner.enqueue_task(noop()).map(|h| h.id())
    })
    .join()
    .unwrap()
    .unwrap();
    rt.block_on(runner.wait_idle());
    assert!(runner.get_status(handle).unwrap().status.is_terminal());
}
