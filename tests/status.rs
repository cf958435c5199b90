//! Status records: TaskInfo through a task's life, list_tasks, eviction, and the context.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{gated, settle};
use taskrunner::{QueueConfig, RetryPolicy, Task, TaskContext, TaskRunner, TaskStatus};
use tokio::sync::Semaphore;

#[tokio::test(start_paused = true)]
async fn task_info_follows_a_task_through_its_life() {
    let runner = TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let first = runner
        .enqueue_task(gated("first", &gate, ()).queue("one"))
        .unwrap();
    let second = runner
        .enqueue_task(
            Task::new("second", |ctx: TaskContext| async move {
                if ctx.attempt() == 1 {
                    Err("transient")
                } else {
                    Ok(())
                }
            })
            .queue("one")
            .priority(7)
            .call_id("call_42")
            .retry(RetryPolicy::fixed(Duration::from_secs(1))),
        )
        .unwrap();

    let info = runner.get_status(second.id()).unwrap();
    assert_eq!(info.id, second.id());
    assert_eq!(
        (
            info.name.as_str(),
            info.queue.as_str(),
            info.call_id.as_str()
        ),
        ("second", "one", "call_42")
    );
    assert_eq!(
        (info.priority, info.status, info.attempts),
        (7, TaskStatus::Pending, 0)
    );
    assert!(info.started_at.is_none() && info.finished_at.is_none() && info.error.is_none());

    gate.add_permits(1);
    first.await.unwrap();
    settle().await;
    let info = runner.get_status(second.id()).unwrap();
    assert_eq!((info.status, info.attempts), (TaskStatus::Retrying, 1));
    assert_eq!(info.error.as_deref(), Some("transient"));
    assert!(info.started_at.is_some());

    let id = second.id();
    second.await.unwrap();
    let info = runner.get_status(id).unwrap();
    assert_eq!((info.status, info.attempts), (TaskStatus::Completed, 2));
    assert!(info.error.is_none(), "a success clears the last error");
    let (created, started, finished) = (
        info.created_at,
        info.started_at.unwrap(),
        info.finished_at.unwrap(),
    );
    assert!(created <= started && started <= finished);
}

#[tokio::test(start_paused = true)]
async fn generated_call_ids_are_unique_and_the_context_matches_the_handle() {
    let runner = TaskRunner::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let seen = Arc::clone(&seen);
            runner
                .enqueue_task(Task::new("ctx", move |ctx: TaskContext| {
                    seen.lock().unwrap().push((
                        ctx.task_id(),
                        ctx.call_id().to_owned(),
                        ctx.queue().to_owned(),
                        ctx.attempt(),
                        ctx.name().to_owned(),
                    ));
                    async { Ok::<_, String>(()) }
                }))
                .unwrap()
        })
        .collect();
    let ids: Vec<_> = handles
        .iter()
        .map(|h| (h.id(), h.call_id().to_owned()))
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    let seen = seen.lock().unwrap();
    let call_ids: HashSet<_> = seen.iter().map(|s| s.1.clone()).collect();
    assert_eq!(call_ids.len(), 20, "unique");
    for (id, call_id) in ids {
        let entry = seen.iter().find(|s| s.0 == id).unwrap();
        assert_eq!(
            (&entry.1, entry.2.as_str(), entry.3, entry.4.as_str()),
            (&call_id, "main", 1, "ctx")
        );
        assert_eq!(runner.get_status(id).unwrap().call_id, call_id);
    }
}

#[tokio::test(start_paused = true)]
async fn list_tasks_is_in_enqueue_order() {
    let runner = TaskRunner::new();
    let ids: Vec<_> = (0..10)
        .map(|i| {
            runner
                .enqueue_task(Task::new(format!("t{i}"), |_: TaskContext| async {
                    Ok::<_, String>(())
                }))
                .unwrap()
                .id()
        })
        .collect();
    runner.wait_idle().await;
    let listed: Vec<_> = runner.list_tasks().into_iter().map(|t| t.id).collect();
    assert_eq!(listed, ids);
    assert!(runner
        .list_tasks()
        .iter()
        .all(|t| t.status == TaskStatus::Completed));
}

#[tokio::test(start_paused = true)]
async fn finished_records_are_evicted_oldest_first_past_the_cap() {
    // The short tasks run one at a time, so they finish in enqueue order.
    let runner = TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .retain_finished(5)
        .build()
        .unwrap();
    let gate = Arc::new(Semaphore::new(0));
    // An unfinished task is never evicted, however many finish after it.
    let long = runner.enqueue_task(gated("long", &gate, ())).unwrap();
    let mut handles = Vec::new();
    for i in 0..20 {
        handles.push(
            runner
                .enqueue_task(
                    Task::new(format!("t{i}"), |_: TaskContext| async {
                        Ok::<_, String>(())
                    })
                    .queue("one"),
                )
                .unwrap(),
        );
    }
    let ids: Vec<_> = handles.iter().map(|h| h.id()).collect();
    for handle in handles.drain(..10) {
        handle.await.unwrap();
    }
    runner.wait_idle_or(&long).await;
    let listed: Vec<_> = runner.list_tasks().into_iter().map(|t| t.id).collect();
    assert_eq!(listed.len(), 6);
    assert_eq!(listed[0], long.id());
    assert_eq!(listed[1..], ids[15..]);
    assert!(runner.get_status(ids[0]).is_none());
    // A handle still knows its own task after eviction.
    assert_eq!(handles[0].info().status, TaskStatus::Completed);

    gate.add_permits(1);
    let long_id = long.id();
    long.await.unwrap();
    let listed: Vec<_> = runner.list_tasks().into_iter().map(|t| t.id).collect();
    // `long` finished last, evicting the oldest of the others; listed by id, it comes first.
    assert_eq!(listed[0], long_id);
    assert_eq!(listed[1..], ids[16..]);

    let none = TaskRunner::builder().retain_finished(0).build().unwrap();
    let h = none
        .enqueue_task(Task::new("x", |_: TaskContext| async {
            Ok::<_, String>(())
        }))
        .unwrap();
    let id = h.id();
    h.await.unwrap();
    assert!(none.get_status(id).is_none());
    assert!(none.list_tasks().is_empty());
}

trait WaitIdleOr {
    /// Waits until only `task` is left running.
    async fn wait_idle_or<T: 'static, E: 'static>(&self, task: &taskrunner::TaskHandle<T, E>);
}

impl WaitIdleOr for TaskRunner {
    async fn wait_idle_or<T: 'static, E: 'static>(&self, task: &taskrunner::TaskHandle<T, E>) {
        while self
            .list_tasks()
            .iter()
            .any(|t| !t.status.is_terminal() && t.id != task.id())
        {
            settle().await;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_terminal_status_is_visible_when_the_handle_resolves() {
    let runner = TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let handles: Vec<_> = (0..20)
        .map(|i| {
            runner
                .enqueue_task(
                    Task::new("t", move |_: TaskContext| async move {
                        if i % 3 == 0 {
                            Err("odd one")
                        } else {
                            Ok(i)
                        }
                    })
                    .queue("one"),
                )
                .unwrap()
        })
        .collect();
    let checker = {
        let runner = runner.clone();
        tokio::spawn(async move {
            for handle in handles {
                let id = handle.id();
                let result = handle.await;
                let info = runner.get_status(id).unwrap();
                assert!(info.status.is_terminal(), "{info:?}");
                assert!(info.finished_at.is_some());
                assert_eq!(result.is_ok(), info.status == TaskStatus::Completed);
                let stats = runner.queue_stats("one").unwrap();
                assert!(stats.running <= 1);
            }
        })
    };
    checker.await.unwrap();
    assert_eq!(runner.queue_stats("one").unwrap().running, 0);
}

#[tokio::test(start_paused = true)]
async fn a_huge_retention_cap_is_clamped_not_an_allocation_failure() {
    // Would be a ring of usize::MAX slots unclamped; clamped to 2^20 it builds and works.
    let runner = TaskRunner::builder()
        .retain_finished(usize::MAX)
        .build()
        .unwrap();
    let handle = runner
        .enqueue_task(Task::new("t", |_: TaskContext| async {
            Ok::<_, String>(())
        }))
        .unwrap();
    let id = handle.id();
    handle.await.unwrap();
    assert_eq!(runner.get_status(id).unwrap().status, TaskStatus::Completed);
}
