//! Progress: what a handler reports through its context, as the latest value on the handle
//! and the status record, and as coalesced events.

mod common;

use std::time::Duration;

use common::received;
use taskrunner::{EventKind, Task, TaskContext, TaskRunner};

#[tokio::test(start_paused = true)]
async fn progress_events_are_coalesced_and_the_latest_is_kept() {
    let runner = TaskRunner::new();
    let mut events = runner.subscribe();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let rx = std::sync::Mutex::new(Some(rx));
    let handle = runner
        .enqueue_task(Task::new("chatty", move |ctx: TaskContext| {
            let rx = rx.lock().unwrap().take();
            async move {
                // 1,000 updates within 10 ms, then one more 200 ms later.
                for i in 0..1_000 {
                    ctx.set_progress(i as f32 / 10.0, format!("step {i}"));
                    if i % 100 == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                ctx.set_progress(250.0, "over the top");
                if let Some(rx) = rx {
                    let _ = rx.await;
                }
                Ok::<_, String>(())
            }
        }))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let progress = handle.progress().unwrap();
    assert_eq!(
        (progress.percent, progress.message.as_str()),
        (100.0, "over the top"),
        "clamped"
    );
    assert_eq!(
        runner.get_status(handle.id()).unwrap().progress,
        Some(progress)
    );
    tx.send(()).unwrap();
    handle.await.unwrap();

    let progress_events: Vec<_> = received(&mut events)
        .into_iter()
        .filter_map(|e| match e.unwrap().kind {
            EventKind::Progress(p) => Some(p.message),
            _ => None,
        })
        .collect();
    assert_eq!(
        progress_events,
        ["step 0", "over the top"],
        "1,001 updates, two events"
    );
}

#[tokio::test(start_paused = true)]
async fn progress_outside_the_range_is_clamped_and_ignored_after_the_end() {
    let runner = TaskRunner::new();
    let (tx, rx) = std::sync::mpsc::channel::<TaskContext>();
    let handle = runner
        .enqueue_task(Task::new("p", move |ctx: TaskContext| {
            ctx.set_progress(-5.0, "below");
            tx.send(ctx).unwrap();
            async { Ok::<_, String>(()) }
        }))
        .unwrap();
    let id = handle.id();
    handle.await.unwrap();
    let ctx = rx.recv().unwrap();
    assert_eq!(
        runner.get_status(id).unwrap().progress.unwrap().percent,
        0.0
    );
    ctx.set_progress(f32::NAN, "after the end");
    assert_eq!(
        runner.get_status(id).unwrap().progress.unwrap().message,
        "below"
    );
}
