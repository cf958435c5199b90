//! Durable notifications in the conformance style: a run submitted with
//! `RunOptions::notify` deposits its notification in the store when it ends, and
//! `drain_run_notifications` on any process hands each to exactly one drainer. Both backends.
#![cfg(all(feature = "sqlite", feature = "postgres"))]

#[macro_use]
mod store_support;

use std::collections::HashSet;
use std::time::Duration;

use store_support::TestDb;
use taskrunner::store::RunNotification;
use taskrunner::{
    QueueConfig, RunId, RunOptions, RunStatus, StoreError, TaskContext, TaskDef, TaskRunner,
};

const POLL: Duration = Duration::from_millis(50);
const LIMIT: Duration = Duration::from_secs(20);
const RUNS: u32 = 60;

/// Takes 10 ms, so that notifications trickle in while both drainers poll.
fn echo() -> TaskDef<
    impl Fn(TaskContext, u32) -> futures::future::BoxFuture<'static, Result<String, String>> + Clone,
> {
    TaskDef::new("echo", |_: TaskContext, n: u32| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if n % 10 == 7 {
                Err(format!("no result for {n}"))
            } else {
                Ok(format!("result {n}"))
            }
        }) as futures::future::BoxFuture<'static, Result<String, String>>
    })
    .queue("work")
}

fn worker(store: taskrunner::store::Store) -> TaskRunner {
    TaskRunner::builder()
        .queue("work", QueueConfig::new().concurrency(2))
        .store(store)
        .register(&echo())
        .poll_interval(POLL)
        .build()
        .unwrap()
}

/// Drains until `expected` notifications were taken (by anyone), or the limit passes.
async fn drain_loop(
    runner: TaskRunner,
    taken: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    expected: usize,
) -> Vec<RunNotification> {
    use std::sync::atomic::Ordering;
    let deadline = tokio::time::Instant::now() + LIMIT;
    let mut mine = Vec::new();
    while taken.load(Ordering::SeqCst) < expected && tokio::time::Instant::now() < deadline {
        let batch = runner.drain_run_notifications().await.unwrap();
        taken.fetch_add(batch.len(), Ordering::SeqCst);
        mine.extend(batch);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    mine
}

// ===== the suite =====

/// Two processes (runners with their own connections) drain while the runs finish: every
/// notified run's notification arrives once, in one of them; runs without notify send none.
async fn two_drainers_each_notification_once(db: TestDb) {
    let def = echo();
    let a = worker(db.store.clone());
    let b = worker(db.reopen().await);
    let mut notified = HashSet::new();
    let mut handles = Vec::new();
    for n in 0..RUNS {
        let options = if n % 4 == 3 {
            RunOptions::new() // no notification for these
        } else {
            RunOptions::new().notify().call_id(format!("call_{n}"))
        };
        let run = a.submit_with(&def, n, options.clone()).await.unwrap();
        if options != RunOptions::new() {
            notified.insert(run.id());
        }
        handles.push(run);
    }
    let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let expected = notified.len();
    let (from_a, from_b) = tokio::join!(
        tokio::spawn(drain_loop(a.clone(), taken.clone(), expected)),
        tokio::spawn(drain_loop(b.clone(), taken.clone(), expected)),
    );
    let (from_a, from_b) = (from_a.unwrap(), from_b.unwrap());
    for run in handles {
        let _ = tokio::time::timeout(LIMIT, run).await.unwrap();
    }
    let all: Vec<RunId> = from_a.iter().chain(&from_b).map(|n| n.run_id).collect();
    let unique: HashSet<RunId> = all.iter().copied().collect();
    assert_eq!(
        all.len(),
        unique.len(),
        "a notification was delivered twice"
    );
    assert_eq!(unique, notified, "every notified run, and only those");
    eprintln!(
        "drained {} by one runner, {} by the other",
        from_a.len(),
        from_b.len()
    );
    for note in from_a.iter().chain(&from_b) {
        let n: u32 = note.call_id.as_deref().unwrap()[5..].parse().unwrap();
        assert_eq!((note.name.as_str(), note.queue.as_str()), ("echo", "work"));
        if n % 10 == 7 {
            assert_eq!(note.status, RunStatus::Failed);
            assert_eq!(note.summary, format!("no result for {n}"));
        } else {
            assert_eq!(note.status, RunStatus::Completed);
            assert_eq!(note.summary, format!("result {n}"));
        }
    }
    // Nothing more, anywhere.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(a.drain_run_notifications().await.unwrap().is_empty());
    assert!(b.drain_run_notifications().await.unwrap().is_empty());
    a.shutdown().await;
    b.shutdown().await;
}

/// A notification waits in the store across a restart, and a cancelled pending run notifies
/// too; summaries are cut to the runner's summary length.
async fn notifications_survive_a_restart(db: TestDb) {
    let long = TaskDef::new("long", |_: TaskContext, n: usize| async move {
        Ok::<_, String>("x".repeat(n))
    })
    .queue("work");
    let first = TaskRunner::builder()
        .queue("work", QueueConfig::new())
        .store(db.store.clone())
        .register(&long)
        .poll_interval(POLL)
        .build()
        .unwrap();
    let run = first
        .submit_with(&long, 500, RunOptions::new().notify())
        .await
        .unwrap();
    let done = run.id();
    tokio::time::timeout(LIMIT, run).await.unwrap().unwrap();
    // Never claimed (no process registers it), then cancelled.
    let orphan = TaskDef::new("orphan", |_: TaskContext, _: u32| async move {
        Ok::<_, String>(())
    });
    let pending = first
        .submit_with(&orphan, 1, RunOptions::new().notify())
        .await
        .unwrap();
    assert!(first.cancel_run(pending.id()).await.unwrap());
    first.shutdown().await;
    drop(first);

    let second = TaskRunner::builder()
        .store(db.reopen().await)
        .summary_len(100)
        .build()
        .unwrap();
    let notes = second.drain_run_notifications().await.unwrap();
    assert_eq!(notes.len(), 2);
    assert_eq!(
        (notes[0].run_id, notes[0].status),
        (done, RunStatus::Completed)
    );
    assert!(notes[0].truncated);
    assert_eq!(
        notes[0].summary.chars().count(),
        100,
        "99 characters and an ellipsis: the summary length bounds the whole summary"
    );
    assert_eq!(
        (notes[1].run_id, notes[1].status),
        (pending.id(), RunStatus::Cancelled)
    );
    assert!(second.drain_run_notifications().await.unwrap().is_empty());
    second.shutdown().await;
}

/// Undrained notifications are pruned with the runs, past the retention's age.
async fn undrained_notifications_are_pruned(db: TestDb) {
    let def = echo();
    let runner = worker(db.store.clone());
    let run = runner
        .submit_with(&def, 1, RunOptions::new().notify())
        .await
        .unwrap();
    tokio::time::timeout(LIMIT, run).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let kept = db
        .store
        .prune(&taskrunner::store::Retention::new().max_age(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(kept, 0);
    db.store
        .prune(&taskrunner::store::Retention::new().max_age(Duration::from_millis(5)))
        .await
        .unwrap();
    assert!(runner.drain_run_notifications().await.unwrap().is_empty());
    runner.shutdown().await;
}

#[tokio::test]
async fn draining_without_a_store_is_an_error() {
    let runner = TaskRunner::new();
    assert!(matches!(
        runner.drain_run_notifications().await,
        Err(StoreError::NoStore)
    ));
}

// ===== instantiation for both backends =====

conformance!(
    two_drainers_each_notification_once,
    notifications_survive_a_restart,
    undrained_notifications_are_pruned,
);
