//! `QueueConfig::key_concurrency` with `Task::concurrency_key`: a key never runs more than
//! its limit, a busy key never holds back another key or a task without a key (no
//! head-of-line blocking), priority then FIFO within a key, round robin across keys.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{settle, Probe};
use taskrunner::{
    ConfigError, QueueConfig, RetryPolicy, Task, TaskContext, TaskRunner, TaskStatus, WaitReason,
};
use tokio::sync::Semaphore;

fn keyed_runner(concurrency: usize, per_key: usize) -> TaskRunner {
    TaskRunner::builder()
        .queue(
            "main",
            QueueConfig::new()
                .concurrency(concurrency)
                .key_concurrency(per_key),
        )
        .build()
        .unwrap()
}

/// A task of `key` (if any) that enters `probe` as `label` and waits for `gate`.
fn probed(
    label: &str,
    key: Option<&str>,
    probe: &Arc<Probe>,
    gate: &Arc<Semaphore>,
) -> Task<
    impl Fn(TaskContext) -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync,
> {
    let (l, probe, gate) = (label.to_owned(), Arc::clone(probe), Arc::clone(gate));
    let task = Task::new(label, move |_: TaskContext| {
        let (l, probe, gate) = (l.clone(), Arc::clone(&probe), Arc::clone(&gate));
        Box::pin(async move {
            let _inside = probe.enter(l);
            gate.acquire().await.unwrap().forget();
            Ok(())
        }) as futures::future::BoxFuture<'static, Result<(), String>>
    });
    match key {
        Some(key) => task.concurrency_key(key),
        None => task,
    }
}

#[tokio::test(start_paused = true)]
async fn a_busy_key_never_blocks_another_key_or_a_keyless_task() {
    let runner = keyed_runner(3, 1);
    let (probe, gate) = (Probe::new(), Arc::new(Semaphore::new(0)));
    let mut handles = Vec::new();
    for label in ["a1", "a2", "a3"] {
        handles.push(
            runner
                .enqueue_task(probed(label, Some("a"), &probe, &gate))
                .unwrap(),
        );
    }
    let b1 = runner
        .enqueue_task(probed("b1", Some("b"), &probe, &gate))
        .unwrap();
    let free = runner
        .enqueue_task(probed("free", None, &probe, &gate))
        .unwrap();
    settle().await;
    assert_eq!(probe.entered(), ["a1", "b1", "free"]);
    assert_eq!(b1.status(), TaskStatus::Running);
    assert_eq!(free.status(), TaskStatus::Running);
    let a2 = runner.get_status(handles[1].id()).unwrap();
    assert_eq!(a2.status, TaskStatus::Pending);
    let stats = runner.queue_stats("main").unwrap();
    assert_eq!((stats.running, stats.pending), (3, 2));
    gate.add_permits(100);
    for h in handles.into_iter().chain([b1, free]) {
        h.await.unwrap();
    }
    assert_eq!(probe.max(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_key_never_runs_more_than_its_limit_and_says_why_its_tasks_wait() {
    let runner = keyed_runner(10, 2);
    let (probe, gate) = (Probe::new(), Arc::new(Semaphore::new(0)));
    let per_key: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let max_per_key: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let mut handles = Vec::new();
    for i in 0..30 {
        let key = format!("k{}", i % 3);
        let (per_key, max_per_key, gate) = (
            Arc::clone(&per_key),
            Arc::clone(&max_per_key),
            Arc::clone(&gate),
        );
        let k = key.clone();
        handles.push(
            runner
                .enqueue_task(
                    Task::new("t", move |_: TaskContext| {
                        let (per_key, max_per_key, gate, k) = (
                            Arc::clone(&per_key),
                            Arc::clone(&max_per_key),
                            Arc::clone(&gate),
                            k.clone(),
                        );
                        async move {
                            {
                                let mut now = per_key.lock().unwrap();
                                let n = now.entry(k.clone()).or_default();
                                *n += 1;
                                let mut max = max_per_key.lock().unwrap();
                                let m = max.entry(k.clone()).or_default();
                                *m = (*m).max(*n);
                            }
                            gate.acquire().await.unwrap().forget();
                            *per_key.lock().unwrap().get_mut(&k).unwrap() -= 1;
                            Ok::<_, String>(())
                        }
                    })
                    .concurrency_key(key),
                )
                .unwrap(),
        );
    }
    settle().await;
    let stats = runner.queue_stats("main").unwrap();
    assert_eq!((stats.running, stats.pending), (6, 24));
    assert_eq!(stats.waiting_for, Some(WaitReason::KeyBusy));
    let waiting = runner.get_status(handles[29].id()).unwrap();
    assert_eq!(waiting.waiting_for, Some(WaitReason::KeyBusy));
    drop(probe);
    for _ in 0..30 {
        gate.add_permits(1);
        settle().await;
    }
    for h in handles {
        h.await.unwrap();
    }
    let max = max_per_key.lock().unwrap();
    assert!(max.values().all(|&m| m == 2), "{max:?}");
}

#[tokio::test(start_paused = true)]
async fn within_a_key_priority_then_fifo() {
    let runner = keyed_runner(4, 1);
    let (probe, gate) = (Probe::new(), Arc::new(Semaphore::new(0)));
    let mut handles = Vec::new();
    for (label, priority) in [
        ("first", 0),
        ("low", -1),
        ("mid1", 1),
        ("high", 5),
        ("mid2", 1),
    ] {
        handles.push(
            runner
                .enqueue_task(probed(label, Some("k"), &probe, &gate).priority(priority))
                .unwrap(),
        );
    }
    for _ in 0..5 {
        settle().await;
        gate.add_permits(1);
    }
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(probe.entered(), ["first", "high", "mid1", "mid2", "low"]);
    assert_eq!(probe.max(), 1);
}

#[tokio::test(start_paused = true)]
async fn keys_of_equal_priority_take_turns() {
    let runner = keyed_runner(1, 1);
    let (probe, gate) = (Probe::new(), Arc::new(Semaphore::new(0)));
    let mut handles = Vec::new();
    // Tenant a enqueues a thousand tasks, then tenant b and c one each, then a keyless one.
    for i in 0..1000 {
        handles.push(
            runner
                .enqueue_task(probed(&format!("a{i}"), Some("a"), &probe, &gate))
                .unwrap(),
        );
    }
    for label in ["b0", "c0"] {
        handles.push(
            runner
                .enqueue_task(probed(label, Some(&label[..1]), &probe, &gate))
                .unwrap(),
        );
    }
    handles.push(
        runner
            .enqueue_task(probed("x", None, &probe, &gate))
            .unwrap(),
    );
    for label in ["b1", "c1"] {
        handles.push(
            runner
                .enqueue_task(probed(label, Some(&label[..1]), &probe, &gate))
                .unwrap(),
        );
    }
    gate.add_permits(2000);
    for h in handles {
        h.await.unwrap();
    }
    let entered = probe.entered();
    // b and c do not wait behind a's thousand: each key gets a turn.
    assert_eq!(
        entered[..8],
        ["a0", "b0", "c0", "x", "a1", "b1", "c1", "a2"]
    );
    assert_eq!(entered.len(), 1005);
}

#[tokio::test(start_paused = true)]
async fn a_higher_priority_key_goes_first_and_a_retry_frees_its_key_slot() {
    let runner = keyed_runner(1, 1);
    let (probe, gate) = (Probe::new(), Arc::new(Semaphore::new(0)));
    let blocker = runner
        .enqueue_task(probed("blocker", None, &probe, &gate))
        .unwrap();
    let low = runner
        .enqueue_task(probed("low", Some("a"), &probe, &gate))
        .unwrap();
    let high = runner
        .enqueue_task(probed("high", Some("b"), &probe, &gate).priority(3))
        .unwrap();
    gate.add_permits(3);
    for h in [blocker, high, low] {
        h.await.unwrap();
    }
    assert_eq!(probe.entered(), ["blocker", "high", "low"]);

    // A task in backoff holds no key slot: another task of its key runs meanwhile.
    let runner = keyed_runner(2, 1);
    let flaky = runner
        .enqueue_task(
            Task::new("flaky", |ctx: TaskContext| async move {
                if ctx.attempt() == 1 {
                    Err("once".to_owned())
                } else {
                    Ok(())
                }
            })
            .concurrency_key("k")
            .retry(RetryPolicy::exponential(Duration::from_secs(1))),
        )
        .unwrap();
    settle().await;
    assert_eq!(flaky.status(), TaskStatus::Retrying);
    let gate = Arc::new(Semaphore::new(0));
    let probe = Probe::new();
    let other = runner
        .enqueue_task(probed("other", Some("k"), &probe, &gate))
        .unwrap();
    assert_eq!(other.status(), TaskStatus::Running);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(flaky.status(), TaskStatus::Pending, "its key is busy now");
    gate.add_permits(1);
    other.await.unwrap();
    flaky.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn cancelling_waiting_keyed_tasks_keeps_counts_and_order() {
    let runner = keyed_runner(1, 1);
    let (probe, gate) = (Probe::new(), Arc::new(Semaphore::new(0)));
    let first = runner
        .enqueue_task(probed("first", Some("a"), &probe, &gate))
        .unwrap();
    let cancelled: Vec<_> = (0..200)
        .map(|i| {
            runner
                .enqueue_task(probed(&format!("x{i}"), Some("b"), &probe, &gate))
                .unwrap()
        })
        .collect();
    let kept = runner
        .enqueue_task(probed("kept", Some("a"), &probe, &gate))
        .unwrap();
    let last = runner
        .enqueue_task(probed("last", Some("b"), &probe, &gate))
        .unwrap();
    for h in &cancelled {
        assert!(h.cancel());
    }
    assert_eq!(runner.queue_stats("main").unwrap().pending, 2);
    gate.add_permits(3);
    for h in [first, kept, last] {
        h.await.unwrap();
    }
    assert_eq!(probe.entered(), ["first", "last", "kept"]);
    assert_eq!(runner.queue_stats("main").unwrap().pending, 0);
}

#[tokio::test(start_paused = true)]
async fn a_key_is_ignored_on_a_queue_without_key_concurrency() {
    let runner = TaskRunner::new();
    let (probe, gate) = (Probe::new(), Arc::new(Semaphore::new(0)));
    let handles: Vec<_> = (0..3)
        .map(|i| {
            runner
                .enqueue_task(probed(&i.to_string(), Some("k"), &probe, &gate))
                .unwrap()
        })
        .collect();
    settle().await;
    assert_eq!(probe.inside(), 3);
    gate.add_permits(3);
    for h in handles {
        h.await.unwrap();
    }
}

#[test]
fn key_concurrency_zero_is_a_config_error() {
    let err = TaskRunner::builder()
        .queue("chat", QueueConfig::new().key_concurrency(0))
        .build()
        .unwrap_err();
    assert!(matches!(
        &err,
        ConfigError::InvalidSetting { queue, setting: "key_concurrency", .. } if queue == "chat"
    ));
}
