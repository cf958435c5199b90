//! The handle as a future, polled step by step; and no task lost when the runner is dropped.

mod common;

use std::sync::Arc;

use common::{gated, settle};
use taskrunner::{QueueConfig, Task, TaskContext, TaskError, TaskRunner, TaskStatus};
use tokio::sync::Semaphore;
use tokio_test::{assert_pending, assert_ready, task};

#[tokio::test(start_paused = true)]
async fn a_handle_is_pending_until_its_task_ends_then_woken_once_and_ready() {
    let runner = TaskRunner::new();
    let gate = Arc::new(Semaphore::new(0));
    let handle = runner.enqueue_task(gated("gated", &gate, 7)).unwrap();
    let mut polled = task::spawn(handle);
    assert_pending!(polled.poll());
    settle().await;
    assert_pending!(polled.poll());
    assert!(!polled.is_woken(), "nothing happened yet");

    gate.add_permits(1);
    settle().await;
    assert!(polled.is_woken(), "the end of the task wakes the handle");
    assert_eq!(polled.waker_ref_count(), 1, "the task kept no extra waker");
    assert!(matches!(assert_ready!(polled.poll()), Ok(7)));
}

#[tokio::test(start_paused = true)]
async fn a_handle_polled_from_another_task_gets_the_latest_waker() {
    let runner = TaskRunner::new();
    let gate = Arc::new(Semaphore::new(0));
    let handle = runner.enqueue_task(gated("gated", &gate, ())).unwrap();
    // First polled by one task, then moved into another: the second must be the one woken.
    let mut first = task::spawn(handle);
    assert_pending!(first.poll());
    let handle = first.into_inner();
    let mut second = task::spawn(handle);
    assert_pending!(second.poll());
    gate.add_permits(1);
    settle().await;
    assert!(second.is_woken());
    assert_ready!(second.poll()).unwrap();
}

#[tokio::test(start_paused = true)]
async fn dropping_every_runner_clone_loses_no_task() {
    let runner = TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let handles: Vec<_> = (0..50u32)
        .map(|i| {
            runner
                .enqueue_task(
                    Task::new("t", move |_: TaskContext| async move {
                        tokio::task::yield_now().await;
                        Ok::<_, String>(i)
                    })
                    .queue("one"),
                )
                .unwrap()
        })
        .collect();
    drop(runner);
    for (i, handle) in handles.into_iter().enumerate() {
        assert_ne!(handle.status(), TaskStatus::Cancelled);
        assert_eq!(handle.await.unwrap(), i as u32);
    }
}

#[tokio::test(start_paused = true)]
async fn a_handle_cancelled_before_its_first_poll_resolves_cancelled() {
    let runner = TaskRunner::new();
    let handle = runner
        .enqueue_task(Task::new("t", |_: TaskContext| {
            std::future::pending::<Result<(), String>>()
        }))
        .unwrap();
    assert!(handle.cancel());
    let mut polled = task::spawn(handle);
    // Ready at the first poll if the worker already ended it; else on the next wake.
    settle().await;
    assert!(matches!(
        assert_ready!(polled.poll()),
        Err(TaskError::Cancelled)
    ));
}
