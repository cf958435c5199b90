//! `QueueConfig::max_pending`: a full queue refuses new tasks with `QueueFull` and hands
//! them back (`try_enqueue_task`); `enqueue_task_wait` waits for room, first come first
//! served, and a dropped wait takes no room.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{gated, settle};
use taskrunner::{
    ConfigError, EnqueueError, QueueConfig, RetryPolicy, Task, TaskContext, TaskRunner, TaskStatus,
};
use tokio::sync::Semaphore;

fn bounded(concurrency: usize, max_pending: usize) -> TaskRunner {
    TaskRunner::builder()
        .queue(
            "io",
            QueueConfig::new()
                .concurrency(concurrency)
                .max_pending(max_pending),
        )
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_a_new_task_and_hands_it_back() {
    let runner = bounded(2, 1);
    let gate = Arc::new(Semaphore::new(0));
    // Running tasks are not counted: two run, one waits.
    let mut handles = Vec::new();
    for label in ["r1", "r2", "w1"] {
        handles.push(
            runner
                .enqueue_task(gated(label, &gate, label).queue("io"))
                .unwrap(),
        );
    }
    let stats = runner.queue_stats("io").unwrap();
    assert_eq!((stats.running, stats.pending), (2, 1));

    let refused = runner
        .try_enqueue_task(gated("back", &gate, "back").queue("io"))
        .unwrap_err();
    assert_eq!(
        refused.error,
        EnqueueError::QueueFull {
            queue: "io".into(),
            max_pending: 1
        }
    );
    assert!(refused.error.to_string().contains("queue `io` is full"));
    assert_eq!(refused.task.name(), "back");
    // The plain call refuses the same way.
    let plain = runner.enqueue_task(gated("plain", &gate, "plain").queue("io"));
    assert!(matches!(plain, Err(EnqueueError::QueueFull { .. })));
    assert_eq!(
        runner.list_tasks().len(),
        3,
        "nothing refused was registered"
    );

    // Room frees as the waiting task starts; the handed-back task is enqueued and runs.
    gate.add_permits(1);
    settle().await;
    let back = runner.enqueue_task(refused.into_task()).unwrap();
    gate.add_permits(10);
    assert_eq!(back.await.unwrap(), "back");
    for h in handles {
        h.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_waiting_task_makes_room() {
    let runner = bounded(1, 1);
    let gate = Arc::new(Semaphore::new(0));
    let _running = runner
        .enqueue_task(gated("r", &gate, ()).queue("io"))
        .unwrap();
    let waiting = runner
        .enqueue_task(gated("w", &gate, ()).queue("io"))
        .unwrap();
    assert!(runner
        .enqueue_task(gated("x", &gate, ()).queue("io"))
        .is_err());
    assert!(waiting.cancel());
    let next = runner
        .enqueue_task(gated("y", &gate, ()).queue("io"))
        .unwrap();
    assert_eq!(next.status(), TaskStatus::Pending);
    gate.add_permits(2);
    next.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn waiters_get_room_in_arrival_order() {
    let runner = bounded(1, 1);
    let gate = Arc::new(Semaphore::new(0));
    let _running = runner
        .enqueue_task(gated("r", &gate, ()).queue("io"))
        .unwrap();
    let _waiting = runner
        .enqueue_task(gated("w", &gate, ()).queue("io"))
        .unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for i in 0..4 {
        let (runner, order, gate) = (runner.clone(), Arc::clone(&order), Arc::clone(&gate));
        waiters.push(tokio::spawn(async move {
            let handle = runner
                .enqueue_task_wait(gated(&format!("wait{i}"), &gate, i).queue("io"))
                .await
                .unwrap();
            order.lock().unwrap().push(i);
            handle.await.unwrap()
        }));
        // Each waiter is waiting before the next arrives.
        settle().await;
    }
    assert!(order.lock().unwrap().is_empty(), "no room yet");
    for step in 1..=4 {
        gate.add_permits(1);
        settle().await;
        assert_eq!(*order.lock().unwrap(), (0..step).collect::<Vec<_>>());
        assert!(runner.queue_stats("io").unwrap().pending <= 1);
    }
    gate.add_permits(10);
    for (i, w) in waiters.into_iter().enumerate() {
        assert_eq!(w.await.unwrap(), i);
    }
}

#[tokio::test(start_paused = true)]
async fn a_dropped_wait_takes_no_room() {
    let runner = bounded(1, 1);
    let gate = Arc::new(Semaphore::new(0));
    let _running = runner
        .enqueue_task(gated("r", &gate, ()).queue("io"))
        .unwrap();
    let _waiting = runner
        .enqueue_task(gated("w", &gate, ()).queue("io"))
        .unwrap();
    let gave_up = tokio::time::timeout(
        Duration::from_secs(1),
        runner.enqueue_task_wait(gated("impatient", &gate, ()).queue("io")),
    )
    .await;
    assert!(gave_up.is_err(), "it was still waiting");
    gate.add_permits(1);
    settle().await;
    // The room that freed is not held by the dropped wait.
    let next = runner
        .enqueue_task(gated("next", &gate, ()).queue("io"))
        .unwrap();
    gate.add_permits(10);
    next.await.unwrap();
    runner.wait_idle().await;
    assert!(runner.list_tasks().iter().all(|t| t.name != "impatient"));
}

#[tokio::test(start_paused = true)]
async fn enqueue_task_wait_on_a_queue_with_room_enqueues_at_once() {
    let runner = bounded(1, 1);
    let handle = runner
        .enqueue_task_wait(
            Task::new("t", |_: TaskContext| async { Ok::<_, String>(7) }).queue("io"),
        )
        .await
        .unwrap();
    assert_eq!(handle.await.unwrap(), 7);
    // A queue without max_pending, and an unknown queue.
    let handle = runner
        .enqueue_task_wait(Task::new("t", |_: TaskContext| async {
            Ok::<_, String>(8)
        }))
        .await
        .unwrap();
    assert_eq!(handle.await.unwrap(), 8);
    let unknown = runner
        .enqueue_task_wait(
            Task::new("t", |_: TaskContext| async { Ok::<_, String>(8) }).queue("nope"),
        )
        .await;
    assert!(matches!(unknown, Err(EnqueueError::UnknownQueue(_))));
}

#[tokio::test(start_paused = true)]
async fn a_retry_coming_back_to_a_full_queue_is_not_lost() {
    let runner = bounded(1, 1);
    let gate = Arc::new(Semaphore::new(0));
    let flaky = runner
        .enqueue_task(
            Task::new("flaky", |ctx: TaskContext| async move {
                if ctx.attempt() == 1 {
                    Err("once".to_owned())
                } else {
                    Ok(ctx.attempt())
                }
            })
            .queue("io")
            .retry(RetryPolicy::exponential(Duration::from_millis(100)).max_retries(1)),
        )
        .unwrap();
    settle().await;
    assert_eq!(flaky.status(), TaskStatus::Retrying);
    let _r = runner
        .enqueue_task(gated("r", &gate, ()).queue("io"))
        .unwrap();
    let _w = runner
        .enqueue_task(gated("w", &gate, ()).queue("io"))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Back from its backoff into a full queue: it waits anyway.
    assert_eq!(flaky.status(), TaskStatus::Pending);
    assert_eq!(runner.queue_stats("io").unwrap().pending, 2);
    gate.add_permits(10);
    assert_eq!(flaky.await.unwrap(), 2);
    runner.wait_idle().await;
    // Counts settle: room for exactly one waiting task again.
    let gate2 = Arc::new(Semaphore::new(0));
    let _r = runner
        .enqueue_task(gated("r2", &gate2, ()).queue("io"))
        .unwrap();
    let _w = runner
        .enqueue_task(gated("w2", &gate2, ()).queue("io"))
        .unwrap();
    assert!(runner
        .enqueue_task(gated("x2", &gate2, ()).queue("io"))
        .is_err());
    gate2.add_permits(10);
}

#[test]
fn max_pending_zero_is_a_config_error_naming_queue_and_setting() {
    let err = TaskRunner::builder()
        .queue("io", QueueConfig::new().max_pending(0))
        .build()
        .unwrap_err();
    assert!(matches!(
        &err,
        ConfigError::InvalidSetting { queue, setting: "max_pending", .. } if queue == "io"
    ));
    assert!(err.to_string().contains("queue `io`"));
    assert!(err.to_string().contains("max_pending"));
}
