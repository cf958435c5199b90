//! A panicking handler fails only its own task; the runner keeps working.

use std::time::Duration;

use taskrunner::{QueueConfig, RetryPolicy, Task, TaskContext, TaskError, TaskRunner, TaskStatus};

#[tokio::test(start_paused = true)]
async fn a_panic_fails_its_task_frees_its_slot_and_the_runner_goes_on() {
    let runner = TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let panicky = runner
        .enqueue_task(
            Task::new("panicky", |_: TaskContext| async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                if true {
                    panic!("index out of bounds");
                }
                Ok::<u8, String>(0)
            })
            .queue("one"),
        )
        .unwrap();
    let after: Vec<_> = (0..5u8)
        .map(|i| {
            runner
                .enqueue_task(
                    Task::new(
                        "after",
                        move |_: TaskContext| async move { Ok::<_, String>(i) },
                    )
                    .queue("one"),
                )
                .unwrap()
        })
        .collect();
    let id = panicky.id();
    match panicky.await {
        Err(TaskError::Panicked(message)) => assert_eq!(message, "index out of bounds"),
        other => panic!("expected Panicked, got {other:?}"),
    }
    let info = runner.get_status(id).unwrap();
    assert_eq!(info.status, TaskStatus::Failed);
    assert_eq!(info.error.as_deref(), Some("panicked: index out of bounds"));
    for (i, handle) in after.into_iter().enumerate() {
        assert_eq!(handle.await.unwrap(), i as u8);
    }
    assert_eq!(runner.queue_stats("one").unwrap().running, 0);
}

#[tokio::test(start_paused = true)]
async fn a_panic_while_making_the_future_is_contained() {
    let runner = TaskRunner::new();
    let handle = runner
        .enqueue_task(Task::new(
            "eager",
            |_: TaskContext| -> std::future::Ready<Result<(), String>> {
                panic!("before any await")
            },
        ))
        .unwrap();
    assert!(matches!(handle.await, Err(TaskError::Panicked(m)) if m == "before any await"));
    // The handler is called again for later tasks of the same kind; nothing is poisoned.
    let ok = runner
        .enqueue_task(Task::new("fine", |_: TaskContext| async {
            Ok::<_, String>(())
        }))
        .unwrap();
    ok.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_panicking_retry_predicate_or_error_display_is_contained() {
    struct Loud;
    impl std::fmt::Display for Loud {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            panic!("display panicked")
        }
    }
    let runner = TaskRunner::new();
    let predicate = runner
        .enqueue_task(
            Task::new("p", |_: TaskContext| async { Err::<(), _>("x") })
                .retry(RetryPolicy::fixed(Duration::from_millis(1)))
                .retry_if(|_: &&str| -> bool { panic!("predicate panicked") }),
        )
        .unwrap();
    assert!(matches!(predicate.await, Err(TaskError::Panicked(m)) if m == "predicate panicked"));

    let display = runner
        .enqueue_task(Task::new("d", |_: TaskContext| async {
            Err::<(), _>(Loud)
        }))
        .unwrap();
    assert!(matches!(display.await, Err(TaskError::Panicked(m)) if m == "display panicked"));
    runner.wait_idle().await;
    assert_eq!(runner.queue_stats("main").unwrap().running, 0);
}

#[tokio::test(start_paused = true)]
async fn a_non_string_panic_payload_gets_a_message() {
    let runner = TaskRunner::new();
    let handle = runner
        .enqueue_task(Task::new("weird", |_: TaskContext| async {
            if true {
                std::panic::panic_any(42_u32);
            }
            Ok::<(), String>(())
        }))
        .unwrap();
    assert!(matches!(handle.await, Err(TaskError::Panicked(m)) if m.contains("non-string")));
}
