//! `Task::dedup_key`: one live task per key in the runner; free again when it ends.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{gated, settle};
use taskrunner::{EnqueueError, QueueConfig, RetryPolicy, Task, TaskContext, TaskRunner};
use tokio::sync::Semaphore;

#[tokio::test(start_paused = true)]
async fn a_live_key_refuses_a_duplicate_naming_the_live_task() {
    let runner = TaskRunner::builder()
        .queue("other", QueueConfig::new())
        .build()
        .unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let first = runner
        .enqueue_task(gated("first", &gate, 1).dedup_key("call_abc"))
        .unwrap();
    // Whatever the queue: the key is the runner's.
    let refused = runner
        .try_enqueue_task(
            gated("second", &gate, 2)
                .dedup_key("call_abc")
                .queue("other"),
        )
        .unwrap_err();
    assert_eq!(
        refused.error,
        EnqueueError::Duplicate {
            key: "call_abc".into(),
            existing: first.id()
        }
    );
    assert!(refused.error.to_string().contains("call_abc"));
    assert_eq!(refused.task.name(), "second");
    // Another key, or no key, is fine.
    let other = runner
        .enqueue_task(gated("other", &gate, 3).dedup_key("call_def"))
        .unwrap();
    let plain = runner.enqueue_task(gated("plain", &gate, 4)).unwrap();
    assert_eq!(runner.list_tasks().len(), 3);

    gate.add_permits(3);
    assert_eq!(first.await.unwrap(), 1);
    // Free again once the first has ended.
    let again = runner
        .enqueue_task(refused.into_task().queue("main"))
        .unwrap();
    gate.add_permits(1);
    assert_eq!(again.await.unwrap(), 2);
    other.await.unwrap();
    plain.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_key_stays_taken_while_retrying_or_delayed_and_frees_on_failure_or_cancel() {
    let runner = TaskRunner::new();
    let failing = runner
        .enqueue_task(
            Task::new("failing", |_: TaskContext| async {
                Err::<(), _>("no".to_owned())
            })
            .retry(RetryPolicy::exponential(Duration::from_secs(1)).max_retries(1))
            .dedup_key("k"),
        )
        .unwrap();
    settle().await;
    let dup = || Task::new("dup", |_: TaskContext| async { Ok::<_, String>(()) }).dedup_key("k");
    assert!(matches!(
        runner.enqueue_task(dup()),
        Err(EnqueueError::Duplicate { .. })
    ));
    assert!(failing.await.is_err());
    runner.enqueue_task(dup()).unwrap().await.unwrap();

    let delayed = runner
        .enqueue_task(dup().delay(Duration::from_secs(5)))
        .unwrap();
    assert!(matches!(
        runner.enqueue_task(dup()),
        Err(EnqueueError::Duplicate { .. })
    ));
    assert!(delayed.cancel());
    runner.enqueue_task(dup()).unwrap().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_refused_duplicate_does_not_count_as_live() {
    let runner = TaskRunner::new();
    let gate = Arc::new(Semaphore::new(0));
    let first = runner
        .enqueue_task(gated("a", &gate, ()).dedup_key("k"))
        .unwrap();
    for _ in 0..3 {
        assert!(runner
            .enqueue_task(gated("b", &gate, ()).dedup_key("k"))
            .is_err());
    }
    gate.add_permits(1);
    first.await.unwrap();
    // wait_idle would hang if a refused task had been counted live.
    runner.wait_idle().await;
}
