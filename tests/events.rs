//! Events: every task's life as a stream, exactly one terminal event each, lag reported.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{received, settle};
use futures::StreamExt;
use taskrunner::{
    Event, EventKind, Lagged, QueueConfig, RetryPolicy, Task, TaskContext, TaskId, TaskRunner,
};

fn kinds_by_task(events: &[Result<Event, Lagged>]) -> HashMap<TaskId, Vec<EventKind>> {
    let mut by_task: HashMap<TaskId, Vec<EventKind>> = HashMap::new();
    for event in events {
        let event = event.as_ref().expect("no lag expected");
        by_task
            .entry(event.id)
            .or_default()
            .push(event.kind.clone());
    }
    by_task
}

#[tokio::test(start_paused = true)]
async fn a_task_that_retries_then_completes() {
    let runner = TaskRunner::new();
    let mut events = runner.subscribe();
    let handle = runner
        .enqueue_task(
            Task::new("flaky", |ctx: TaskContext| async move {
                if ctx.attempt() == 1 {
                    Err("503")
                } else {
                    Ok(())
                }
            })
            .call_id("call_9")
            .retry(RetryPolicy::fixed(Duration::from_millis(50))),
        )
        .unwrap();
    let id = handle.id();
    handle.await.unwrap();
    let events = received(&mut events);
    let first = events[0].as_ref().unwrap();
    assert_eq!(
        (
            first.id,
            first.call_id.as_str(),
            first.name.as_str(),
            first.queue.as_str()
        ),
        (id, "call_9", "flaky", "main")
    );
    assert_eq!(
        kinds_by_task(&events)[&id],
        [
            EventKind::Enqueued,
            EventKind::Started { attempt: 1 },
            EventKind::Retrying {
                attempt: 1,
                delay: Duration::from_millis(50),
                error: "503".into()
            },
            EventKind::Started { attempt: 2 },
            EventKind::Completed,
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn every_ending_emits_exactly_one_terminal_event() {
    let runner = TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let mut events = runner.subscribe();
    let ok = runner
        .enqueue_task(Task::new("ok", |_: TaskContext| async {
            Ok::<_, String>(())
        }))
        .unwrap();
    let failed = runner
        .enqueue_task(Task::new("failed", |_: TaskContext| async {
            Err::<(), _>("boom".to_owned())
        }))
        .unwrap();
    let panicked = runner
        .enqueue_task(Task::new("panicked", |_: TaskContext| async {
            if true {
                panic!("oops");
            }
            Ok::<(), String>(())
        }))
        .unwrap();
    let timed_out = runner
        .enqueue_task(
            Task::new("timed_out", |_: TaskContext| {
                std::future::pending::<Result<(), String>>()
            })
            .timeout(Duration::from_secs(1)),
        )
        .unwrap();
    // Cancelled while running, while waiting, and while in backoff.
    let blocker = runner
        .enqueue_task(
            Task::new("running", |_: TaskContext| {
                std::future::pending::<Result<(), String>>()
            })
            .queue("one"),
        )
        .unwrap();
    let waiting = runner
        .enqueue_task(
            Task::new("waiting", |_: TaskContext| async { Ok::<_, String>(()) }).queue("one"),
        )
        .unwrap();
    let backoff = runner
        .enqueue_task(
            Task::new("backoff", |_: TaskContext| async {
                Err::<(), _>("later".to_owned())
            })
            .retry(RetryPolicy::fixed(Duration::from_secs(3600))),
        )
        .unwrap();
    settle().await;
    assert!(waiting.cancel() && blocker.cancel() && backoff.cancel());
    // A second cancel adds nothing.
    assert!(!waiting.cancel());

    let ids = [
        ok.id(),
        failed.id(),
        panicked.id(),
        timed_out.id(),
        blocker.id(),
        waiting.id(),
        backoff.id(),
    ];
    drop((
        ok.await,
        failed.await,
        panicked.await,
        timed_out.await,
        blocker.await,
        waiting.await,
        backoff.await,
    ));
    runner.wait_idle().await;

    let by_task = kinds_by_task(&received(&mut events));
    let terminal = |id: &TaskId| -> Vec<EventKind> {
        by_task[id]
            .iter()
            .filter(|k| k.is_terminal())
            .cloned()
            .collect()
    };
    assert_eq!(terminal(&ids[0]), [EventKind::Completed]);
    assert_eq!(
        terminal(&ids[1]),
        [EventKind::Failed {
            error: "boom".into()
        }]
    );
    assert_eq!(
        terminal(&ids[2]),
        [EventKind::Panicked {
            message: "oops".into()
        }]
    );
    assert_eq!(terminal(&ids[3]), [EventKind::TimedOut]);
    for id in &ids[4..] {
        assert_eq!(terminal(id), [EventKind::Cancelled], "task {id}");
        assert_eq!(
            by_task[id].last(),
            Some(&EventKind::Cancelled),
            "nothing after the end"
        );
    }
    // The waiting task never started.
    assert_eq!(
        by_task[&ids[5]],
        [EventKind::Enqueued, EventKind::Cancelled]
    );
}

#[tokio::test(start_paused = true)]
async fn a_lagging_subscriber_is_told_how_many_it_missed_and_never_slows_the_runner() {
    let runner = TaskRunner::builder().event_capacity(16).build().unwrap();
    let mut slow = runner.subscribe();
    for _ in 0..20 {
        runner
            .enqueue_task(Task::new("t", |_: TaskContext| async {
                Ok::<_, String>(())
            }))
            .unwrap()
            .await
            .unwrap();
    }
    // 20 tasks × 3 events, 16 kept: the first read reports the 44 missed.
    let first = slow.next().await.unwrap();
    assert_eq!(first, Err(Lagged(44)));
    assert!(first.unwrap_err().to_string().contains("missed 44 events"));
    let rest: Vec<_> = received(&mut slow);
    assert_eq!(rest.len(), 16);
    assert!(rest.iter().all(Result::is_ok));
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_sees_only_later_events_and_the_stream_ends_with_the_runner() {
    let runner = TaskRunner::new();
    runner
        .enqueue_task(Task::new("before", |_: TaskContext| async {
            Ok::<_, String>(())
        }))
        .unwrap()
        .await
        .unwrap();
    let mut events = runner.subscribe();
    let handle = runner
        .enqueue_task(Task::new("after", |_: TaskContext| async {
            Ok::<_, String>(())
        }))
        .unwrap();
    handle.await.unwrap();
    let seen = received(&mut events);
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|e| e.as_ref().unwrap().name == "after"));
    drop(runner);
    assert!(
        events.recv().await.is_none(),
        "the stream ends when the runner is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_concurrent_cancels_nothing_follows_a_terminal_event() {
    let runner = TaskRunner::builder()
        .queue("q", QueueConfig::new().concurrency(4))
        .event_capacity(1 << 16)
        .build()
        .unwrap();
    let mut events = runner.subscribe();
    let handles: Vec<_> = (0..2_000u32)
        .map(|i| {
            runner
                .enqueue_task(
                    Task::new("racy", move |ctx: TaskContext| async move {
                        tokio::task::yield_now().await;
                        if ctx.attempt() < 3 && i % 2 == 0 {
                            Err("again")
                        } else {
                            Ok(())
                        }
                    })
                    .queue("q")
                    .retry(RetryPolicy::fixed(Duration::from_micros(50))),
                )
                .unwrap()
        })
        .collect();
    // Cancel a third of them while they run, wait or back off.
    for handle in handles.iter().step_by(3) {
        handle.cancel();
        tokio::task::yield_now().await;
    }
    for handle in handles {
        let _ = handle.await;
    }
    runner.wait_idle().await;
    let by_task = kinds_by_task(&received(&mut events));
    assert_eq!(by_task.len(), 2_000);
    for (id, kinds) in by_task {
        let terminal: Vec<_> = kinds.iter().filter(|k| k.is_terminal()).collect();
        assert_eq!(terminal.len(), 1, "task {id}: {kinds:?}");
        assert!(kinds.last().unwrap().is_terminal(), "task {id}: {kinds:?}");
        assert_eq!(kinds[0], EventKind::Enqueued, "task {id}: {kinds:?}");
    }
}
