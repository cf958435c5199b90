//! Named queues: limits, priority order, independence, immediate start, resizing, stats.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{settle, Probe};
use taskrunner::{QueueConfig, Task, TaskContext, TaskRunner, TaskStatus};
use tokio::sync::Semaphore;

type Res<T> = Result<T, std::io::Error>;

/// A task that enters `probe` as `label` and holds its slot until `gate` gives a permit.
fn gated(
    label: &str,
    probe: &Arc<Probe>,
    gate: &Arc<Semaphore>,
) -> Task<impl Fn(TaskContext) -> futures::future::BoxFuture<'static, Res<()>> + Send + Sync> {
    let (label, probe, gate) = (label.to_owned(), Arc::clone(probe), Arc::clone(gate));
    Task::new(label.clone(), move |_ctx: TaskContext| {
        let (label, probe, gate) = (label.clone(), Arc::clone(&probe), Arc::clone(&gate));
        Box::pin(async move {
            let _inside = probe.enter(label);
            gate.acquire().await.unwrap().forget();
            Ok(())
        }) as futures::future::BoxFuture<'static, Res<()>>
    })
}

#[tokio::test]
async fn main_queue_exists_with_concurrency_3() {
    let runner = TaskRunner::new();
    let stats = runner.queue_stats("main").unwrap();
    assert_eq!((stats.limit, stats.running, stats.pending), (3, 0, 0));
    assert_eq!(runner.queue_names(), ["main"]);

    let runner = TaskRunner::builder()
        .queue("llm", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    assert_eq!(runner.queue_names(), ["llm", "main"]);
    assert_eq!(runner.queue_stats("main").unwrap().limit, 3);
    assert_eq!(runner.queue_stats("llm").unwrap().limit, 1);

    let runner = TaskRunner::builder()
        .queue("main", QueueConfig::new().concurrency(8))
        .build()
        .unwrap();
    assert_eq!(runner.queue_stats("main").unwrap().limit, 8);
    assert!(runner.queue_stats("nope").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_task_with_a_free_slot_is_running_when_enqueue_returns() {
    let runner = TaskRunner::new();
    let (probe, gate) = (Probe::new(), Arc::new(Semaphore::new(0)));
    let handle = runner.enqueue_task(gated("a", &probe, &gate)).unwrap();
    assert_eq!(handle.status(), TaskStatus::Running);
    assert_eq!(runner.queue_stats("main").unwrap().running, 1);
    assert!(runner.get_status(handle.id()).unwrap().started_at.is_some());
    gate.add_permits(1);
    handle.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_queue_never_runs_more_than_its_limit() {
    let runner = TaskRunner::new();
    let (probe, gate) = (Probe::new(), Arc::new(Semaphore::new(0)));
    let handles: Vec<_> = (0..10)
        .map(|i| {
            runner
                .enqueue_task(gated(&i.to_string(), &probe, &gate))
                .unwrap()
        })
        .collect();
    settle().await;
    let stats = runner.queue_stats("main").unwrap();
    assert_eq!((stats.running, stats.pending), (3, 7));
    assert_eq!(probe.inside(), 3);
    let statuses: Vec<_> = handles.iter().map(|h| h.status()).collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == TaskStatus::Running)
            .count(),
        3
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == TaskStatus::Pending)
            .count(),
        7
    );

    for _ in 0..10 {
        gate.add_permits(1);
        settle().await;
        assert!(probe.inside() <= 3);
    }
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(probe.max(), 3);
    assert_eq!(probe.entered().len(), 10);
}

#[tokio::test(start_paused = true)]
async fn a_freed_slot_goes_to_the_highest_priority_then_fifo() {
    let runner = TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let (probe, gate) = (Probe::new(), Arc::new(Semaphore::new(0)));
    let blocker = runner
        .enqueue_task(gated("blocker", &probe, &gate).queue("one"))
        .unwrap();
    let order = [
        ("p1", 1),
        ("p5a", 5),
        ("p3", 3),
        ("p5b", 5),
        ("p0", 0),
        ("neg", -2),
        ("p5c", 5),
    ];
    let handles: Vec<_> = order
        .iter()
        .map(|(label, priority)| {
            runner
                .enqueue_task(gated(label, &probe, &gate).queue("one").priority(*priority))
                .unwrap()
        })
        .collect();
    gate.add_permits(100);
    blocker.await.unwrap();
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(
        probe.entered(),
        ["blocker", "p5a", "p5b", "p5c", "p3", "p1", "p0", "neg"]
    );
}

#[tokio::test(start_paused = true)]
async fn priority_order_holds_for_a_large_backlog() {
    let runner = TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let (probe, gate) = (Probe::new(), Arc::new(Semaphore::new(0)));
    let blocker = runner
        .enqueue_task(gated("blocker", &probe, &gate).queue("one"))
        .unwrap();
    let mut expected = Vec::new();
    let mut handles = Vec::new();
    for i in 0..2_000u32 {
        let priority = (i.wrapping_mul(2_654_435_761) % 17) as i32 - 8;
        let label = format!("{priority}:{i}");
        expected.push((priority, i, label.clone()));
        handles.push(
            runner
                .enqueue_task(gated(&label, &probe, &gate).queue("one").priority(priority))
                .unwrap(),
        );
    }
    gate.add_permits(10_000);
    blocker.await.unwrap();
    for handle in handles {
        handle.await.unwrap();
    }
    expected.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let expected: Vec<String> = expected.into_iter().map(|e| e.2).collect();
    assert_eq!(probe.entered()[1..], expected[..]);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_never_delays_another() {
    let runner = TaskRunner::builder()
        .queue("slow", QueueConfig::new().concurrency(1))
        .queue("fast", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let (probe, gate) = (Probe::new(), Arc::new(Semaphore::new(0)));
    let slow: Vec<_> = (0..50)
        .map(|i| {
            runner
                .enqueue_task(
                    gated(&format!("slow{i}"), &probe, &gate)
                        .queue("slow")
                        .priority(100),
                )
                .unwrap()
        })
        .collect();
    let fast = runner
        .enqueue_task(
            Task::new("fast", |_: TaskContext| async {
                Ok::<_, std::io::Error>(7)
            })
            .queue("fast"),
        )
        .unwrap();
    assert_eq!(fast.await.unwrap(), 7);
    assert_eq!(runner.queue_stats("slow").unwrap().pending, 49);
    gate.add_permits(50);
    for handle in slow {
        handle.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn raising_the_limit_starts_waiting_tasks_at_once() {
    let runner = TaskRunner::builder()
        .queue("q", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let (probe, gate) = (Probe::new(), Arc::new(Semaphore::new(0)));
    let handles: Vec<_> = (0..5)
        .map(|i| {
            runner
                .enqueue_task(gated(&i.to_string(), &probe, &gate).queue("q"))
                .unwrap()
        })
        .collect();
    assert_eq!(runner.queue_stats("q").unwrap().running, 1);

    runner.set_concurrency("q", 4).unwrap();
    // Started before set_concurrency returned: already Running, slots already counted.
    let stats = runner.queue_stats("q").unwrap();
    assert_eq!((stats.limit, stats.running, stats.pending), (4, 4, 1));
    assert_eq!(
        handles
            .iter()
            .filter(|h| h.status() == TaskStatus::Running)
            .count(),
        4
    );
    settle().await;
    assert_eq!(probe.inside(), 4);

    gate.add_permits(5);
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(probe.max(), 4);
}

#[tokio::test(start_paused = true)]
async fn lowering_the_limit_lets_the_excess_finish_then_holds() {
    let runner = TaskRunner::builder()
        .queue("q", QueueConfig::new().concurrency(3))
        .build()
        .unwrap();
    let (probe, gate) = (Probe::new(), Arc::new(Semaphore::new(0)));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            runner
                .enqueue_task(gated(&i.to_string(), &probe, &gate).queue("q"))
                .unwrap()
        })
        .collect();
    settle().await;
    assert_eq!(probe.inside(), 3);

    runner.set_concurrency("q", 1).unwrap();
    let stats = runner.queue_stats("q").unwrap();
    assert_eq!(
        (stats.limit, stats.running),
        (1, 3),
        "running tasks are not stopped"
    );

    // Each finish gives up an excess slot until one is left; then one at a time.
    for expected_inside in [2, 1, 1, 1, 1, 1, 1, 0] {
        gate.add_permits(1);
        settle().await;
        assert_eq!(probe.inside(), expected_inside);
        assert_eq!(runner.queue_stats("q").unwrap().running, expected_inside);
    }
    for handle in handles {
        handle.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn wait_idle_resolves_when_every_queue_is_empty() {
    let runner = TaskRunner::builder()
        .queue("other", QueueConfig::new().concurrency(2))
        .build()
        .unwrap();
    runner.wait_idle().await; // idle from the start

    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for queue in ["main", "other"] {
        for i in 0..6u64 {
            let done = Arc::clone(&done);
            let task = Task::new("sleep", move |_: TaskContext| {
                let done = Arc::clone(&done);
                async move {
                    tokio::time::sleep(Duration::from_millis(10 * (i + 1))).await;
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Ok::<_, std::io::Error>(())
                }
            });
            drop(runner.enqueue_task(task.queue(queue)).unwrap());
        }
    }
    runner.wait_idle().await;
    assert_eq!(done.load(std::sync::atomic::Ordering::SeqCst), 12);
    for queue in ["main", "other"] {
        let stats = runner.queue_stats(queue).unwrap();
        assert_eq!((stats.pending, stats.running, stats.retrying), (0, 0, 0));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_long_backlog_does_not_hog_the_thread() {
    let runner = TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let handles: Vec<_> = (0..10_000)
        .map(|_| {
            let done = Arc::clone(&done);
            runner
                .enqueue_task(
                    Task::new("noop", move |_: TaskContext| {
                        done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        async { Ok::<_, std::io::Error>(()) }
                    })
                    .queue("one"),
                )
                .unwrap()
        })
        .collect();
    // Spawned after the worker, so it runs only when the worker yields.
    let d = Arc::clone(&done);
    let heartbeat = tokio::spawn(async move { d.load(std::sync::atomic::Ordering::SeqCst) });
    runner.wait_idle().await;
    let seen = heartbeat.await.unwrap();
    assert!(seen < 1_000, "the heartbeat ran only after {seen} tasks");
    for handle in handles {
        handle.await.unwrap();
    }
}
