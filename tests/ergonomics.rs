//! What a new user writes from the README, as they write it: closures without type
//! annotations, queue names read at run time, tasks returned from helper functions.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use taskrunner::{
    BoxTask, EnqueueError, QueueConfig, RetryPolicy, Task, TaskDef, TaskError, TaskRunner,
};

#[derive(Clone)]
struct Query {
    text: String,
}

/// A helper returning a task: the handler's type cannot be written, the boxed task's can.
fn flaky(fails: u32, calls: &Arc<AtomicU32>) -> BoxTask<u32, String> {
    let calls = Arc::clone(calls);
    Task::new("flaky", move |ctx| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if ctx.attempt() <= fails {
                Err(format!("attempt {}", ctx.attempt()))
            } else {
                Ok(ctx.attempt())
            }
        }
    })
    .retry(RetryPolicy::fixed(Duration::from_millis(10)).max_retries(5))
    .retry_if(|e: &String| e != "attempt 2")
    .boxed()
}

#[tokio::test(start_paused = true)]
async fn a_boxed_task_keeps_its_options_and_runs_like_any_task() {
    let runner = TaskRunner::new();
    let calls = Arc::new(AtomicU32::new(0));
    // Retried once, then succeeds: the policy survived boxing.
    let ok = runner.enqueue_task(flaky(1, &calls)).unwrap();
    assert_eq!(ok.await.unwrap(), 2);
    // The predicate survived boxing too: "attempt 2" is permanent.
    let permanent = runner.enqueue_task(flaky(3, &calls)).unwrap();
    match permanent.await {
        Err(TaskError::Failed(e)) => assert_eq!(e, "attempt 2"),
        other => panic!("expected a permanent failure, got {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);

    // Different handlers, one type: a Vec of tasks, options set after boxing.
    let tasks: Vec<BoxTask<u32, String>> = vec![
        Task::new("one", |_ctx| async { Ok(1) }).boxed(),
        Task::new("two", |_ctx| async { Ok(2) })
            .boxed()
            .priority(3)
            .named("deux"),
        flaky(0, &calls).timeout(Duration::from_secs(1)),
    ];
    let mut total = 0;
    for task in tasks {
        total += runner.enqueue_task(task).unwrap().await.unwrap();
    }
    assert_eq!(total, 4);
}

#[tokio::test(start_paused = true)]
async fn queue_names_can_come_from_any_string() {
    let runner = TaskRunner::builder()
        .queue("tools", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let def = {
        let configured = String::from("tools");
        TaskDef::new("search", |ctx, q: Query| async move {
            Ok::<_, String>(format!("{} in {}", q.text, ctx.queue()))
        })
        .queue(configured.as_str())
    };
    let handle = {
        let from_config = String::from("tools"); // dropped before the task runs
        runner
            .enqueue_task(
                Task::new(
                    "x",
                    |ctx| async move { Ok::<_, String>(ctx.queue().to_owned()) },
                )
                .queue(from_config.as_str()),
            )
            .unwrap()
    };
    assert_eq!(handle.await.unwrap(), "tools");
    let searched = runner
        .enqueue_task(def.with(Query {
            text: "rust".into(),
        }))
        .unwrap();
    assert_eq!(searched.await.unwrap(), "rust in tools");

    let typo = String::from("tols");
    let refused =
        runner.enqueue_task(Task::new("y", |_ctx| async { Ok::<_, String>(()) }).queue(&typo));
    assert!(matches!(refused, Err(EnqueueError::UnknownQueue(q)) if q == "tols"));
    // A long name (not stored inline) works the same.
    let long = "a-queue-name-longer-than-twenty-four-bytes".to_owned();
    let refused =
        runner.enqueue_task(Task::new("z", |_ctx| async { Ok::<_, String>(()) }).queue(&long));
    assert!(matches!(refused, Err(EnqueueError::UnknownQueue(q)) if q == long));
}
