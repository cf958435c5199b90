//! `pause_queue` / `resume_queue`, `set_priority` and `shutdown_timeout`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{gated, settle, Probe};
use taskrunner::{
    ConfigError, QueueConfig, Task, TaskContext, TaskError, TaskRunner, TaskStatus, WaitReason,
};
use tokio::sync::Semaphore;

fn one_slot() -> TaskRunner {
    TaskRunner::builder()
        .queue("main", QueueConfig::new().concurrency(1))
        .queue("other", QueueConfig::new().concurrency(1))
        .build()
        .unwrap()
}

/// A task that enters `probe` as `label`, then waits for `gate`.
fn probed(
    label: &str,
    probe: &Arc<Probe>,
    gate: &Arc<Semaphore>,
) -> Task<
    impl Fn(TaskContext) -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync,
> {
    let (label, probe, gate) = (label.to_owned(), Arc::clone(probe), Arc::clone(gate));
    Task::new(label.clone(), move |_: TaskContext| {
        let (label, probe, gate) = (label.clone(), Arc::clone(&probe), Arc::clone(&gate));
        Box::pin(async move {
            let _inside = probe.enter(label);
            gate.acquire().await.unwrap().forget();
            Ok(())
        }) as futures::future::BoxFuture<'static, Result<(), String>>
    })
}

#[tokio::test(start_paused = true)]
async fn a_paused_queue_starts_nothing_new_and_running_tasks_go_on() {
    let runner = one_slot();
    let gate = Arc::new(Semaphore::new(0));
    let running = runner.enqueue_task(gated("running", &gate, ())).unwrap();
    runner.pause_queue("main").unwrap();
    runner.pause_queue("main").unwrap(); // twice is once
    let stats = runner.queue_stats("main").unwrap();
    assert!(stats.paused);
    let waiting = runner.enqueue_task(gated("waiting", &gate, ())).unwrap();
    // A paused queue says so before anything else.
    let info = runner.get_status(waiting.id()).unwrap();
    assert_eq!(info.waiting_for, Some(WaitReason::Paused));
    gate.add_permits(1);
    running.await.unwrap();
    settle().await;
    // The slot is free, but the queue is paused.
    assert_eq!(waiting.status(), TaskStatus::Pending);
    let info = runner.get_status(waiting.id()).unwrap();
    assert_eq!(info.waiting_for, Some(WaitReason::Paused));
    let stats = runner.queue_stats("main").unwrap();
    assert_eq!((stats.running, stats.pending), (0, 1));
    assert_eq!(stats.waiting_for, Some(WaitReason::Paused));
    // Another queue is not affected.
    let elsewhere = runner
        .enqueue_task(gated("elsewhere", &gate, ()).queue("other"))
        .unwrap();
    assert_eq!(elsewhere.status(), TaskStatus::Running);

    runner.resume_queue("main").unwrap();
    assert_eq!(
        waiting.status(),
        TaskStatus::Running,
        "starts at once on resume"
    );
    assert!(!runner.queue_stats("main").unwrap().paused);
    gate.add_permits(2);
    waiting.await.unwrap();
    elsewhere.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn resume_fills_every_free_slot_in_priority_order() {
    let runner = TaskRunner::new(); // concurrency 3
    let (probe, gate) = (Probe::new(), Arc::new(Semaphore::new(0)));
    runner.pause_queue("main").unwrap();
    let mut handles = Vec::new();
    for (label, priority) in [("a", 0), ("b", 2), ("c", 1), ("d", 3)] {
        handles.push(
            runner
                .enqueue_task(probed(label, &probe, &gate).priority(priority))
                .unwrap(),
        );
    }
    settle().await;
    assert_eq!(probe.inside(), 0);
    runner.resume_queue("main").unwrap();
    settle().await;
    assert_eq!(probe.entered(), ["d", "b", "c"]);
    gate.add_permits(4);
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(probe.entered(), ["d", "b", "c", "a"]);
}

#[tokio::test]
async fn pausing_an_unknown_queue_is_an_error() {
    let runner = TaskRunner::new();
    assert_eq!(
        runner.pause_queue("nope"),
        Err(ConfigError::UnknownQueue("nope".into()))
    );
    assert_eq!(
        runner.resume_queue("nope"),
        Err(ConfigError::UnknownQueue("nope".into()))
    );
}

#[tokio::test(start_paused = true)]
async fn set_priority_moves_a_waiting_task() {
    let runner = one_slot();
    let (probe, gate) = (Probe::new(), Arc::new(Semaphore::new(0)));
    let blocker = runner
        .enqueue_task(probed("blocker", &probe, &gate))
        .unwrap();
    let a = runner.enqueue_task(probed("a", &probe, &gate)).unwrap();
    let b = runner.enqueue_task(probed("b", &probe, &gate)).unwrap();
    let c = runner.enqueue_task(probed("c", &probe, &gate)).unwrap();
    let info = runner.get_status(c.id()).unwrap();
    assert_eq!(info.waiting_for, Some(WaitReason::NoSlot));
    assert_eq!(
        runner.queue_stats("main").unwrap().waiting_for,
        None,
        "no free slot"
    );
    assert_eq!(runner.get_status(blocker.id()).unwrap().waiting_for, None);
    assert!(runner.set_priority(c.id(), 5));
    assert_eq!(runner.get_status(c.id()).unwrap().priority, 5);
    assert!(!runner.set_priority(c.id(), 5), "already there");
    assert!(runner.set_priority(a.id(), -1));
    assert!(
        runner.set_priority(b.id(), 5),
        "behind c at the same priority"
    );
    // Only a waiting task moves.
    assert!(!runner.set_priority(blocker.id(), 9));
    assert_eq!(runner.queue_stats("main").unwrap().pending, 3);
    gate.add_permits(10);
    for h in [blocker, a, b, c] {
        h.await.unwrap();
    }
    assert_eq!(probe.entered(), ["blocker", "c", "b", "a"]);
}

#[tokio::test(start_paused = true)]
async fn set_priority_on_a_finished_or_unknown_task_is_false() {
    let runner = TaskRunner::new();
    let done = runner
        .enqueue_task(Task::new("done", |_: TaskContext| async {
            Ok::<_, String>(())
        }))
        .unwrap();
    let id = done.id();
    done.await.unwrap();
    assert!(!runner.set_priority(id, 3));
    // An id this runner never had (another runner's task).
    let other = TaskRunner::new();
    let stranger = other
        .enqueue_task(Task::new("stranger", |_: TaskContext| async {
            Ok::<_, String>(())
        }))
        .unwrap();
    assert!(!runner.set_priority(stranger.id(), 3));
    stranger.await.unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let (probe, _) = (Probe::new(), ());
    let _blockers: Vec<_> = (0..3)
        .map(|i| {
            runner
                .enqueue_task(probed(&i.to_string(), &probe, &gate))
                .unwrap()
        })
        .collect();
    let waiting = runner.enqueue_task(probed("w", &probe, &gate)).unwrap();
    assert!(waiting.cancel());
    assert!(!runner.set_priority(waiting.id(), 3), "cancelled");
    gate.add_permits(10);
    runner.wait_idle().await;
}

#[tokio::test(start_paused = true)]
async fn a_moved_then_cancelled_task_never_runs_and_counts_settle() {
    let runner = one_slot();
    let (probe, gate) = (Probe::new(), Arc::new(Semaphore::new(0)));
    let blocker = runner
        .enqueue_task(probed("blocker", &probe, &gate))
        .unwrap();
    let moved = runner.enqueue_task(probed("moved", &probe, &gate)).unwrap();
    let other = runner.enqueue_task(probed("other", &probe, &gate)).unwrap();
    assert!(runner.set_priority(moved.id(), 3));
    assert!(runner.set_priority(moved.id(), 0));
    assert!(moved.cancel());
    assert_eq!(runner.queue_stats("main").unwrap().pending, 1);
    gate.add_permits(10);
    blocker.await.unwrap();
    other.await.unwrap();
    assert!(matches!(moved.await, Err(TaskError::Cancelled)));
    assert_eq!(probe.entered(), ["blocker", "other"]);
    assert_eq!(runner.queue_stats("main").unwrap().pending, 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_timeout_is_graceful_until_its_deadline_then_stops_the_rest() {
    let runner = one_slot();
    let quick = runner
        .enqueue_task(Task::new("quick", |_: TaskContext| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, String>(())
        }))
        .unwrap();
    let slow = runner
        .enqueue_task(Task::new("slow", |_: TaskContext| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, String>(())
        }))
        .unwrap();
    let start = tokio::time::Instant::now();
    runner.shutdown_timeout(Duration::from_secs(5)).await;
    assert_eq!(tokio::time::Instant::now() - start, Duration::from_secs(5));
    assert!(quick.await.is_ok(), "finished within the grace period");
    assert!(matches!(slow.await, Err(TaskError::Shutdown)));

    // Everything done in time: returns as soon as it is.
    let runner = one_slot();
    let h = runner
        .enqueue_task(Task::new("quick", |_: TaskContext| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, String>(())
        }))
        .unwrap();
    let start = tokio::time::Instant::now();
    runner.shutdown_timeout(Duration::from_secs(30)).await;
    assert_eq!(tokio::time::Instant::now() - start, Duration::from_secs(1));
    h.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_paused_queue_holds_a_graceful_shutdown_until_its_deadline() {
    let runner = one_slot();
    runner.pause_queue("main").unwrap();
    let gate = Arc::new(Semaphore::new(10));
    let held = runner.enqueue_task(gated("held", &gate, ())).unwrap();
    let start = tokio::time::Instant::now();
    runner.shutdown_timeout(Duration::from_secs(3)).await;
    assert_eq!(tokio::time::Instant::now() - start, Duration::from_secs(3));
    assert!(
        matches!(held.await, Err(TaskError::Shutdown)),
        "never started"
    );

    // Resumed, the graceful shutdown runs it.
    let runner = one_slot();
    runner.pause_queue("main").unwrap();
    let held = runner.enqueue_task(gated("held", &gate, ())).unwrap();
    let shutdown = tokio::spawn(runner.shutdown());
    settle().await;
    assert!(!shutdown.is_finished());
    runner.resume_queue("main").unwrap();
    shutdown.await.unwrap();
    held.await.unwrap();
}
