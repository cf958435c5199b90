//! The notification inbox an agent loop drains, and completion callbacks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use taskrunner::{QueueConfig, Task, TaskContext, TaskError, TaskInfo, TaskRunner, TaskStatus};

#[tokio::test(start_paused = true)]
async fn finished_tasks_that_ask_leave_a_notification() {
    let runner = TaskRunner::builder().summary_len(12).build().unwrap();
    let long = runner
        .enqueue_task(
            Task::new("grep", |_: TaskContext| async {
                Ok::<_, String>("a long line of output".to_owned())
            })
            .call_id("call_1")
            .notify(),
        )
        .unwrap();
    let failed = runner
        .enqueue_task(
            Task::new("build", |_: TaskContext| async {
                Err::<u8, _>("exit 2".to_owned())
            })
            .notify(),
        )
        .unwrap();
    let custom = runner
        .enqueue_task(
            Task::new("count", |_: TaskContext| async {
                Ok::<_, String>(vec![1, 2, 3])
            })
            .notify_with(|v: &Vec<i32>| format!("{} items", v.len())),
        )
        .unwrap();
    let silent = runner
        .enqueue_task(Task::new("quiet", |_: TaskContext| async {
            Ok::<_, String>(())
        }))
        .unwrap();
    let ids = (long.id(), failed.id(), custom.id());
    // The notification is there by the time the handle resolves.
    assert_eq!(long.await.unwrap(), "a long line of output");
    let mut notes = runner.drain_notifications();
    assert!(notes.iter().any(|n| n.id == ids.0));
    drop((failed.await, custom.await, silent.await));

    notes.extend(runner.drain_notifications());
    notes.sort_by_key(|n| n.id);
    assert_eq!(notes.len(), 3, "the quiet task did not ask");
    assert_eq!(
        (
            notes[0].call_id.as_str(),
            notes[0].summary.as_str(),
            notes[0].truncated
        ),
        ("call_1", "\"a long lin…", true)
    );
    assert_eq!(
        (notes[1].id, notes[1].status, notes[1].summary.as_str()),
        (ids.1, TaskStatus::Failed, "exit 2")
    );
    assert_eq!(
        (notes[2].summary.as_str(), notes[2].truncated),
        ("3 items", false)
    );
    assert!(
        runner.drain_notifications().is_empty(),
        "draining empties the inbox"
    );

    // The summary was cut to 12 characters; the whole text is kept by id.
    assert_eq!(
        runner.full_result(ids.0).as_deref(),
        Some("\"a long line of output\"")
    );
}

#[tokio::test(start_paused = true)]
async fn a_cut_summary_says_so_and_the_full_text_stays_retrievable() {
    let runner = TaskRunner::builder().summary_len(5).build().unwrap();
    let h = runner
        .enqueue_task(
            Task::new("t", |_: TaskContext| async { Ok::<_, String>("abcdefgh") })
                .notify_with(|v: &&str| v.to_string()),
        )
        .unwrap();
    let id = h.id();
    h.await.unwrap();
    let note = runner.drain_notifications().pop().unwrap();
    // Five characters, the ellipsis included.
    assert_eq!((note.summary.as_str(), note.truncated), ("abcd…", true));
    assert_eq!(runner.full_result(id).as_deref(), Some("abcdefgh"));
}

#[tokio::test(start_paused = true)]
async fn a_summary_is_at_most_the_default_length_ellipsis_included() {
    let runner = TaskRunner::new();
    let long = "x".repeat(500);
    let exact = "y".repeat(taskrunner::DEFAULT_SUMMARY_LEN);
    for text in [long.clone(), exact.clone()] {
        let h = runner
            .enqueue_task(
                Task::new("t", move |_: TaskContext| {
                    let text = text.clone();
                    async move { Ok::<_, String>(text) }
                })
                .notify_with(|v: &String| v.clone()),
            )
            .unwrap();
        h.await.unwrap();
    }
    let notes = runner.drain_notifications();
    assert_eq!(notes[0].summary.chars().count(), 200);
    assert!(notes[0].truncated && notes[0].summary.ends_with('…'));
    assert_eq!(notes[0].summary, format!("{}…", &long[..199]));
    // Exactly 200 characters fit uncut.
    assert_eq!(
        (notes[1].summary.as_str(), notes[1].truncated),
        (exact.as_str(), false)
    );
}

#[tokio::test(start_paused = true)]
async fn many_finishing_together_lose_nothing_and_notified_wakes_an_idle_loop() {
    let runner = TaskRunner::builder()
        .queue("wide", QueueConfig::new().concurrency(64))
        .build()
        .unwrap();
    // An idle agent waits.
    let waiter = {
        let runner = runner.clone();
        tokio::spawn(async move {
            runner.notified().await;
            runner.drain_notifications().len()
        })
    };
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    for i in 0..500u64 {
        drop(
            runner
                .enqueue_task(
                    Task::new("bg", move |_: TaskContext| async move {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        Ok::<_, String>(i)
                    })
                    .queue("wide")
                    .notify(),
                )
                .unwrap(),
        );
    }
    let first_batch = waiter.await.unwrap();
    assert!(first_batch >= 1);
    runner.wait_idle().await;
    let rest = runner.drain_notifications().len();
    assert_eq!(first_batch + rest, 500);
    assert_eq!(runner.notifications_dropped(), 0);
    // With nothing waiting, notified() waits; with something waiting, it resolves at once.
    assert!(runner.notified().now_or_never().is_none());
}

#[tokio::test(start_paused = true)]
async fn past_its_capacity_the_inbox_drops_the_oldest_and_counts() {
    let runner = TaskRunner::builder()
        .notification_capacity(3)
        .notify_all(true)
        .build()
        .unwrap();
    for i in 0..5u32 {
        let h = runner
            .enqueue_task(Task::new(
                format!("t{i}"),
                move |_: TaskContext| async move { Ok::<_, String>(i) },
            ))
            .unwrap();
        h.await.unwrap();
    }
    let names: Vec<String> = runner
        .drain_notifications()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["t2", "t3", "t4"]);
    assert_eq!(runner.notifications_dropped(), 2);
}

#[tokio::test(start_paused = true)]
async fn notify_all_covers_tasks_that_did_not_ask_and_cancelled_ones() {
    let runner = TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .notify_all(true)
        .build()
        .unwrap();
    let busy = runner
        .enqueue_task(
            Task::new("busy", |_: TaskContext| {
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
    waiting.cancel();
    busy.cancel();
    drop((busy.await, waiting.await));
    let ok = runner
        .enqueue_task(Task::new("plain", |_: TaskContext| async {
            Ok::<_, String>(())
        }))
        .unwrap();
    ok.await.unwrap();
    let notes = runner.drain_notifications();
    let summary = |name: &str| {
        notes
            .iter()
            .find(|n| n.name == name)
            .map(|n| (n.status, n.summary.clone()))
            .unwrap()
    };
    assert_eq!(
        summary("waiting"),
        (TaskStatus::Cancelled, "cancelled".to_owned())
    );
    assert_eq!(
        summary("busy"),
        (TaskStatus::Cancelled, "cancelled".to_owned())
    );
    assert_eq!(
        summary("plain"),
        (TaskStatus::Completed, "completed".to_owned())
    );
}

#[tokio::test(start_paused = true)]
async fn callbacks_run_once_on_every_kind_of_ending() {
    let runner = TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let calls: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = |calls: &Arc<Mutex<Vec<String>>>| {
        let (done, failed) = (Arc::clone(calls), Arc::clone(calls));
        (
            move |info: &TaskInfo| {
                done.lock()
                    .unwrap()
                    .push(format!("{} done {:?}", info.name, info.status))
            },
            move |info: &TaskInfo, error: &str| {
                failed
                    .lock()
                    .unwrap()
                    .push(format!("{} error {:?}: {error}", info.name, info.status))
            },
        )
    };
    let (done, failed) = record(&calls);
    let ok = runner
        .enqueue_task(
            Task::new("ok", |_: TaskContext| async { Ok::<_, String>(()) })
                .on_complete(done)
                .on_error(failed),
        )
        .unwrap();
    let (done, failed) = record(&calls);
    let timeout = runner
        .enqueue_task(
            Task::new("slow", |_: TaskContext| {
                std::future::pending::<Result<(), String>>()
            })
            .timeout(Duration::from_secs(1))
            .on_complete(done)
            .on_error(failed),
        )
        .unwrap();
    let (done, failed) = record(&calls);
    let blocker = runner
        .enqueue_task(
            Task::new("blocker", |_: TaskContext| {
                std::future::pending::<Result<(), String>>()
            })
            .queue("one"),
        )
        .unwrap();
    let cancelled = runner
        .enqueue_task(
            Task::new("cancelled", |_: TaskContext| async { Ok::<_, String>(()) })
                .queue("one")
                .on_complete(done)
                .on_error(failed),
        )
        .unwrap();
    assert!(cancelled.cancel());
    blocker.cancel();
    drop((ok.await, timeout.await, cancelled.await, blocker.await));
    runner.wait_idle().await;

    let mut calls = calls.lock().unwrap().clone();
    calls.sort();
    assert_eq!(
        calls,
        [
            "cancelled error Cancelled: cancelled",
            "ok done Completed",
            "slow error Failed: timed out after 1s",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_callback_or_summary_is_contained() {
    let runner = TaskRunner::new();
    let after = Arc::new(AtomicUsize::new(0));
    let h = runner
        .enqueue_task(
            Task::new("t", |_: TaskContext| async { Ok::<_, String>(1) })
                .notify_with(|_: &i32| panic!("summary panicked"))
                .on_complete(|_: &TaskInfo| panic!("callback panicked")),
        )
        .unwrap();
    assert_eq!(h.await.unwrap(), 1);
    runner.wait_idle().await;
    let note = runner.drain_notifications().pop().unwrap();
    assert_eq!(note.summary, "(the task's summary panicked)");
    // The runner goes on.
    let a = Arc::clone(&after);
    let h = runner
        .enqueue_task(Task::new("next", move |_: TaskContext| {
            a.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, String>(()) }
        }))
        .unwrap();
    h.await.unwrap();
    assert_eq!(after.load(Ordering::SeqCst), 1);
    assert!(matches!(
        runner
            .enqueue_task(Task::new("x", |_: TaskContext| async {
                Err::<(), _>("e".to_owned())
            }))
            .unwrap()
            .await,
        Err(TaskError::Failed(_))
    ));
}
