//! The handle as a future, polled step by step; dropping a handle or every runner clone loses
//! no task.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{gated, settle, Probe};
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
    let clones = [runner.clone(), runner.clone(), runner];
    let (probe, gate) = (Probe::new(), Arc::new(Semaphore::new(0)));
    let runs = Arc::new(AtomicUsize::new(0));
    // Each task counts its run, enters the probe as its index, and holds the one slot until
    // the gate lets it go: the test decides when each ends.
    let handles: Vec<_> = (0..50u32)
        .map(|i| {
            let (probe, gate, runs) = (Arc::clone(&probe), Arc::clone(&gate), Arc::clone(&runs));
            let task = Task::new("t", move |_: TaskContext| {
                let (probe, gate, runs) =
                    (Arc::clone(&probe), Arc::clone(&gate), Arc::clone(&runs));
                async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    let _inside = probe.enter(i.to_string());
                    gate.acquire().await.unwrap().forget();
                    Ok::<_, String>(i)
                }
            })
            .queue("one");
            // Enqueued through every clone in turn.
            clones[i as usize % clones.len()]
                .enqueue_task(task)
                .unwrap()
        })
        .collect();
    settle().await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "only the first has started");
    assert_eq!(handles[0].status(), TaskStatus::Running);
    assert!(handles[1..]
        .iter()
        .all(|h| h.status() == TaskStatus::Pending));

    drop(clones);
    settle().await;
    // Nothing was cancelled or started early by the drop: the first still runs, the rest wait.
    assert_eq!(handles[0].status(), TaskStatus::Running);
    assert!(handles[1..]
        .iter()
        .all(|h| h.status() == TaskStatus::Pending));

    // Release one task at a time: the next in line starts, alone, and nothing else moves.
    for (done, _) in handles.iter().enumerate() {
        assert_eq!(runs.load(Ordering::SeqCst), done + 1);
        let statuses: Vec<_> = handles.iter().map(|h| h.status()).collect();
        assert!(statuses[..done].iter().all(|s| *s == TaskStatus::Completed));
        assert_eq!(statuses[done], TaskStatus::Running, "task {done}");
        assert!(statuses[done + 1..]
            .iter()
            .all(|s| *s == TaskStatus::Pending));
        gate.add_permits(1);
        settle().await;
    }
    assert!(handles.iter().all(|h| h.status() == TaskStatus::Completed));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        handles.len(),
        "each ran exactly once"
    );
    assert_eq!(probe.max(), 1, "never two at once in a queue of one slot");
    let order: Vec<String> = (0..handles.len()).map(|i| i.to_string()).collect();
    assert_eq!(probe.entered(), order, "run in enqueue order");

    // A lost task would leave its handle pending forever: the timeout turns that into a failure.
    let values = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(handles))
        .await
        .expect("every handle resolves");
    let values: Vec<u32> = values.into_iter().map(Result::unwrap).collect();
    assert_eq!(values, (0..50).collect::<Vec<u32>>());
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

#[tokio::test(start_paused = true)]
async fn dropping_a_handle_does_not_cancel_the_task() {
    let runner = TaskRunner::new();
    let done = Arc::new(AtomicBool::new(false));
    let d = Arc::clone(&done);
    let handle = runner
        .enqueue_task(Task::new("detached", move |_: TaskContext| {
            let d = Arc::clone(&d);
            async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                d.store(true, Ordering::SeqCst);
                Ok::<_, String>(vec![0u8; 1024])
            }
        }))
        .unwrap();
    let id = handle.id();
    drop(handle);
    runner.wait_idle().await;
    assert!(done.load(Ordering::SeqCst));
    assert_eq!(runner.get_status(id).unwrap().status, TaskStatus::Completed);
}
