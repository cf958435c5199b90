//! The durable store's conformance suite: every test runs against SQLite (a file in a temp
//! dir) and PostgreSQL (a fresh database through `TASKRUNNER_PG_URL`; skipped without it).
#![cfg(all(feature = "sqlite", feature = "postgres"))]

#[macro_use]
mod store_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use store_support::{eventually, TestDb};
use taskrunner::store::{Ending, Finish, Retention};
use taskrunner::{
    QueueConfig, RetryPolicy, RunFilter, RunOptions, RunStatus, StoreError, TaskContext, TaskDef,
    TaskError, TaskRunner,
};

const LEASE: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(100);
const LIMIT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Request {
    topic: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Report {
    summary: String,
}

fn research(
) -> TaskDef<impl Fn(TaskContext, Request) -> futures::future::Ready<Result<Report, String>> + Clone>
{
    TaskDef::new("research", |_: TaskContext, req: Request| {
        futures::future::ready(Ok(Report {
            summary: format!("about {}", req.topic),
        }))
    })
    .queue("agents")
}

fn builder(db: &TestDb) -> taskrunner::TaskRunnerBuilder {
    TaskRunner::builder()
        .queue("agents", QueueConfig::new().concurrency(4))
        .store(db.store.clone())
        .lease(LEASE)
        .poll_interval(POLL)
}

fn req(topic: &str) -> Request {
    Request {
        topic: topic.into(),
    }
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

// ===== the suite =====

async fn submit_runs_and_stores_the_output(db: TestDb) {
    let def = research();
    let runner = builder(&db).register(&def).build().unwrap();
    let run = runner.submit(&def, req("rust")).await.unwrap();
    let id = run.id();
    assert_eq!(
        within("the run", run).await.unwrap(),
        Report {
            summary: "about rust".into()
        }
    );
    let info = runner.run_info(id).await.unwrap().unwrap();
    assert_eq!(info.status, RunStatus::Completed);
    assert_eq!(
        (info.name.as_str(), info.queue.as_str()),
        ("research", "agents")
    );
    assert_eq!(info.attempts, 1);
    assert_eq!(
        info.output,
        Some(serde_json::json!({"summary": "about rust"}))
    );
    assert!(info.finished_at.is_some() && info.started_at.is_some());

    let many = runner
        .submit_many(&def, ["a", "b", "c"].map(req))
        .await
        .unwrap();
    assert_eq!(many.len(), 3);
    for (run, topic) in many.into_iter().zip(["a", "b", "c"]) {
        assert_eq!(
            within("a batch run", run).await.unwrap().summary,
            format!("about {topic}")
        );
    }
    let listed = runner
        .list_runs(
            RunFilter::new()
                .status(RunStatus::Completed)
                .name("research")
                .limit(2),
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed[0].id > listed[1].id, "newest first");
    assert!(runner
        .list_runs(RunFilter::new().queue("elsewhere"))
        .await
        .unwrap()
        .is_empty());
    runner.shutdown().await;
}

async fn claims_by_priority_then_submission_order(db: TestDb) {
    let order = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&order);
    let def = TaskDef::new("ordered", move |_: TaskContext, label: String| {
        seen.lock().unwrap().push(label);
        futures::future::ready(Ok::<_, String>(()))
    })
    .queue("one");
    // Submitted by a process that runs nothing, before any worker exists.
    let submitter = TaskRunner::builder()
        .store(db.store.clone())
        .build()
        .unwrap();
    for (label, priority) in [("low", 0), ("high-1", 5), ("mid", 1), ("high-2", 5)] {
        let _run = submitter
            .submit_with(&def, label.to_owned(), RunOptions::new().priority(priority))
            .await
            .unwrap();
    }
    let worker = TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .store(db.store.clone())
        .register(&def)
        .poll_interval(POLL)
        .build()
        .unwrap();
    eventually(LIMIT, "all four runs", || {
        let order = Arc::clone(&order);
        async move { order.lock().unwrap().len() == 4 }
    })
    .await;
    assert_eq!(*order.lock().unwrap(), ["high-1", "high-2", "mid", "low"]);
    worker.shutdown().await;
}

async fn equal_priorities_are_claimed_by_scheduled_time(db: TestDb) {
    let order = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&order);
    let def = TaskDef::new("timed", move |_: TaskContext, label: String| {
        seen.lock().unwrap().push(label);
        futures::future::ready(Ok::<_, String>(()))
    })
    .queue("one");
    let submitter = TaskRunner::builder()
        .store(db.store.clone())
        .build()
        .unwrap();
    // Submitted a, b, c; due c (now), b (+200 ms), a (+300 ms).
    for (label, delay) in [("a", 300), ("b", 200), ("c", 0)] {
        let _run = submitter
            .submit_with(
                &def,
                label.to_owned(),
                RunOptions::new().delay(Duration::from_millis(delay)),
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(400)).await; // all due before a worker exists
    let worker = TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .store(db.store.clone())
        .register(&def)
        .poll_interval(POLL)
        .build()
        .unwrap();
    eventually(LIMIT, "all three runs", || {
        let order = Arc::clone(&order);
        async move { order.lock().unwrap().len() == 3 }
    })
    .await;
    assert_eq!(*order.lock().unwrap(), ["c", "b", "a"]);
    worker.shutdown().await;
}

async fn a_panicking_run_fails_and_the_worker_goes_on(db: TestDb) {
    let def = TaskDef::new("panicky", |_: TaskContext, n: u32| async move {
        if n == 0 {
            panic!("bad state");
        }
        Ok::<_, String>(n)
    })
    .queue("agents")
    .retry(RetryPolicy::fixed(Duration::from_millis(10)).max_retries(2));
    let runner = builder(&db).register(&def).build().unwrap();
    let run = runner.submit(&def, 0).await.unwrap();
    let id = run.id();
    match within("the panicking run", run).await {
        Err(TaskError::Panicked(message)) => assert!(message.contains("bad state"), "{message}"),
        other => panic!("expected a panic, got {other:?}"),
    }
    let info = runner.run_info(id).await.unwrap().unwrap();
    assert_eq!(
        (info.status, info.attempts),
        (RunStatus::Failed, 1),
        "panics are not retried"
    );
    assert_eq!(
        within("a good run", runner.submit(&def, 5).await.unwrap())
            .await
            .unwrap(),
        5
    );
    runner.shutdown().await;
}

async fn a_delayed_run_waits_its_delay(db: TestDb) {
    let def = research();
    let runner = builder(&db).register(&def).build().unwrap();
    let run = runner
        .submit_with(
            &def,
            req("later"),
            RunOptions::new().delay(Duration::from_millis(600)),
        )
        .await
        .unwrap();
    let id = run.id();
    let info = runner.run_info(id).await.unwrap().unwrap();
    assert_eq!(info.status, RunStatus::Delayed);
    assert_eq!(
        runner
            .list_runs(RunFilter::new().status(RunStatus::Delayed))
            .await
            .unwrap()
            .len(),
        1
    );
    within("the delayed run", run).await.unwrap();
    let info = runner.run_info(id).await.unwrap().unwrap();
    let waited = info
        .started_at
        .unwrap()
        .duration_since(info.created_at)
        .unwrap();
    assert!(
        waited >= Duration::from_millis(550),
        "started after {waited:?}"
    );
    runner.shutdown().await;
}

async fn a_dedup_key_returns_the_unfinished_run(db: TestDb) {
    let def = research();
    let submitter = TaskRunner::builder()
        .store(db.store.clone())
        .build()
        .unwrap();
    let key = RunOptions::new().dedup_key("req-42");
    let first = submitter
        .submit_with(&def, req("x"), key.clone())
        .await
        .unwrap();
    let again = submitter
        .submit_with(&def, req("y"), key.clone())
        .await
        .unwrap();
    assert_eq!(first.id(), again.id());
    let batch = submitter
        .submit_many_with(
            &def,
            [(req("z"), key.clone()), (req("w"), RunOptions::new())],
        )
        .await
        .unwrap();
    assert_eq!(batch[0].id(), first.id());
    assert_ne!(batch[1].id(), first.id());

    let runner = builder(&db).register(&def).build().unwrap();
    assert_eq!(within("the run", first).await.unwrap().summary, "about x");
    // Finished: the key is free again.
    let fresh = runner.submit_with(&def, req("v"), key).await.unwrap();
    assert_ne!(fresh.id(), again.id());
    assert_eq!(
        within("the new run", fresh).await.unwrap().summary,
        "about v"
    );
    runner.shutdown().await;
}

async fn a_failing_run_is_retried_and_its_attempts_counted(db: TestDb) {
    let def = TaskDef::new("flaky", |ctx: TaskContext, n: u32| async move {
        if ctx.attempt() < 3 {
            Err(format!("HTTP 503 on attempt {}", ctx.attempt()))
        } else {
            Ok(n + 1)
        }
    })
    .queue("agents")
    .retry(RetryPolicy::fixed(Duration::from_millis(20)).max_retries(3));
    let always = TaskDef::new("broken", |_: TaskContext, _: u32| async move {
        Err::<u32, _>("no such page".to_owned())
    })
    .queue("agents")
    .retry(RetryPolicy::fixed(Duration::from_millis(10)).max_retries(1));
    let runner = builder(&db)
        .register(&def)
        .register(&always)
        .build()
        .unwrap();
    let run = runner.submit(&def, 41).await.unwrap();
    let id = run.id();
    assert_eq!(within("the flaky run", run).await.unwrap(), 42);
    let info = runner.run_info(id).await.unwrap().unwrap();
    assert_eq!(
        (info.status, info.attempts, info.max_attempts),
        (RunStatus::Completed, 3, 4)
    );

    let run = runner.submit(&always, 1).await.unwrap();
    let id = run.id();
    match within("the broken run", run).await {
        Err(TaskError::Failed(message)) => assert_eq!(message, "no such page"),
        other => panic!("expected a failure, got {other:?}"),
    }
    let info = runner.run_info(id).await.unwrap().unwrap();
    assert_eq!((info.status, info.attempts), (RunStatus::Failed, 2));
    assert_eq!(info.error.as_deref(), Some("no such page"));
    runner.shutdown().await;
}

async fn a_run_past_its_timeout_fails_timed_out(db: TestDb) {
    let def = TaskDef::new("slow", |_: TaskContext, _: ()| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<_, String>(())
    })
    .queue("agents")
    .timeout(Duration::from_millis(100));
    let runner = builder(&db).register(&def).build().unwrap();
    let run = runner.submit(&def, ()).await.unwrap();
    let id = run.id();
    assert!(matches!(
        within("the slow run", run).await,
        Err(TaskError::TimedOut)
    ));
    let info = runner.run_info(id).await.unwrap().unwrap();
    assert_eq!(info.status, RunStatus::Failed);
    assert_eq!(info.error.as_deref(), Some("timed out"));
    runner.shutdown().await;
}

async fn a_pending_run_is_cancelled_and_never_runs(db: TestDb) {
    let ran = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&ran);
    let def = TaskDef::new("never", move |_: TaskContext, _: ()| {
        count.fetch_add(1, Ordering::SeqCst);
        futures::future::ready(Ok::<_, String>(()))
    })
    .queue("agents");
    let runner = builder(&db).register(&def).build().unwrap();
    let run = runner
        .submit_with(
            &def,
            (),
            RunOptions::new().delay(Duration::from_millis(300)),
        )
        .await
        .unwrap();
    let id = run.id();
    assert!(runner.cancel_run(id).await.unwrap());
    assert!(matches!(
        within("the cancelled run", run).await,
        Err(TaskError::Cancelled)
    ));
    assert!(!runner.cancel_run(id).await.unwrap(), "already finished");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(
        runner.run_info(id).await.unwrap().unwrap().status,
        RunStatus::Cancelled
    );
    runner.shutdown().await;
}

fn blocker(
    started: Arc<AtomicUsize>,
) -> TaskDef<
    impl Fn(TaskContext, u32) -> futures::future::BoxFuture<'static, Result<u32, String>> + Clone,
> {
    TaskDef::new("blocker", move |_: TaskContext, n: u32| {
        started.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(n)
        }) as futures::future::BoxFuture<'static, Result<u32, String>>
    })
    .queue("agents")
}

async fn a_running_run_is_cancelled_wherever_it_runs(db: TestDb) {
    let started = Arc::new(AtomicUsize::new(0));
    let def = blocker(Arc::clone(&started));
    let worker = builder(&db).register(&def).build().unwrap();
    // Cancelled by the process running it.
    let run = worker.submit(&def, 1).await.unwrap();
    let id = run.id();
    eventually(LIMIT, "the run to start", || {
        let started = Arc::clone(&started);
        async move { started.load(Ordering::SeqCst) == 1 }
    })
    .await;
    assert!(worker.cancel_run(id).await.unwrap());
    assert!(matches!(
        within("the cancel", run).await,
        Err(TaskError::Cancelled)
    ));

    // Cancelled by another process, which only shares the store.
    let other = TaskRunner::builder()
        .store(db.reopen().await)
        .poll_interval(POLL)
        .build()
        .unwrap();
    let run = other.submit(&def, 2).await.unwrap();
    eventually(LIMIT, "the second run to start", || {
        let started = Arc::clone(&started);
        async move { started.load(Ordering::SeqCst) == 2 }
    })
    .await;
    assert!(other.cancel_run(run.id()).await.unwrap());
    let id = run.id();
    assert!(matches!(
        within("the remote cancel", run).await,
        Err(TaskError::Cancelled)
    ));
    let info = other.run_info(id).await.unwrap().unwrap();
    assert_eq!(info.status, RunStatus::Cancelled);
    assert!(info.cancel_requested);
    assert_eq!(worker.queue_stats("agents").unwrap().running, 0);
    worker.shutdown().await;
}

async fn a_run_is_polled_by_id_after_a_restart(db: TestDb) {
    let def = research();
    let id = {
        let submitter = TaskRunner::builder()
            .store(db.store.clone())
            .build()
            .unwrap();
        let run = submitter.submit(&def, req("restart")).await.unwrap();
        submitter.shutdown().await;
        run.id()
    };
    let store = db.reopen().await;
    let worker = TaskRunner::builder()
        .queue("agents", QueueConfig::new())
        .store(store.clone())
        .register(&def)
        .poll_interval(POLL)
        .build()
        .unwrap();
    let poller = TaskRunner::builder()
        .store(store)
        .poll_interval(POLL)
        .build()
        .unwrap();
    let id: taskrunner::RunId = id.to_string().parse().unwrap();
    let report: Report = within("the run by id", poller.run_handle(id).unwrap())
        .await
        .unwrap();
    assert_eq!(report.summary, "about restart");
    worker.shutdown().await;
}

async fn global_concurrency_holds_across_runners(db: TestDb) {
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (i, m) = (Arc::clone(&inside), Arc::clone(&most));
    let def = TaskDef::new("limited", move |_: TaskContext, _: u32| {
        let (i, m) = (Arc::clone(&i), Arc::clone(&m));
        async move {
            let now = i.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(150)).await;
            i.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, String>(())
        }
    })
    .queue("agents");
    let make = |store| {
        TaskRunner::builder()
            .queue(
                "agents",
                QueueConfig::new().concurrency(4).global_concurrency(3),
            )
            .store(store)
            .register(&def)
            .lease(LEASE)
            .poll_interval(Duration::from_millis(20))
            .build()
            .unwrap()
    };
    let a = make(db.store.clone());
    let b = make(db.reopen().await);
    let runs = a.submit_many(&def, 0..12).await.unwrap();
    for run in runs {
        within("a limited run", run).await.unwrap();
    }
    let most = most.load(Ordering::SeqCst);
    assert!(most <= 3, "{most} ran at once, over the global limit of 3");
    assert!(most >= 2, "the two runners never overlapped ({most})");
    a.shutdown().await;
    b.shutdown().await;
}

/// Builds a runner on its own runtime and thread, and "crashes" it by dropping the runtime:
/// nothing it claimed is released, and its heartbeats stop.
fn crashing_runner<F>(
    build: F,
) -> (
    std::thread::JoinHandle<()>,
    tokio::sync::oneshot::Sender<()>,
)
where
    F: FnOnce() -> TaskRunner + Send + 'static,
{
    let (crash, crashed) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let runner = build();
            let _ = crashed.await;
            std::mem::forget(runner);
        });
        rt.shutdown_background();
    });
    (thread, crash)
}

async fn an_expired_lease_is_recovered_and_counted(db: TestDb) {
    let started = Arc::new(AtomicUsize::new(0));
    let hang = blocker(Arc::clone(&started))
        .retry(RetryPolicy::fixed(Duration::from_millis(10)).max_retries(1));
    let (store, h) = (db.store.clone(), hang.clone());
    let (thread, crash) = crashing_runner(move || {
        TaskRunner::builder()
            .queue("agents", QueueConfig::new())
            .store(store)
            .register(&h)
            .lease(LEASE)
            .poll_interval(POLL)
            .build()
            .unwrap()
    });
    let submitter = TaskRunner::builder()
        .store(db.store.clone())
        .poll_interval(POLL)
        .build()
        .unwrap();
    let retried = submitter.submit(&hang, 1).await.unwrap();
    eventually(LIMIT, "the doomed run to start", || {
        let started = Arc::clone(&started);
        async move { started.load(Ordering::SeqCst) == 1 }
    })
    .await;
    crash.send(()).unwrap();
    thread.join().unwrap();

    // A second process, whose definition finishes (same name, same store).
    let finishing = TaskDef::new("blocker", |_: TaskContext, n: u32| async move {
        Ok::<_, String>(n * 10)
    })
    .queue("agents")
    .retry(RetryPolicy::fixed(Duration::from_millis(10)).max_retries(0));
    let rescuer = builder(&db).register(&finishing).build().unwrap();
    let id = retried.id();
    assert_eq!(within("the recovered run", retried).await.unwrap(), 10);
    let info = rescuer.run_info(id).await.unwrap().unwrap();
    assert_eq!((info.status, info.attempts), (RunStatus::Completed, 2));
    rescuer.shutdown().await;
}

/// Recovery is not a retry: a run without retries whose process was lost is claimed again
/// (a recovery counted, no retry used); only past `max_recoveries` does it fail "worker
/// lost" (tests/store_faults_crash.rs).
async fn a_lost_run_without_retries_is_recovered(db: TestDb) {
    let started = Arc::new(AtomicUsize::new(0));
    let hang = blocker(Arc::clone(&started));
    let (store, h) = (db.store.clone(), hang.clone());
    let (thread, crash) = crashing_runner(move || {
        TaskRunner::builder()
            .queue("agents", QueueConfig::new())
            .store(store)
            .register(&h)
            .lease(LEASE)
            .build()
            .unwrap()
    });
    let submitter = TaskRunner::builder()
        .store(db.store.clone())
        .poll_interval(POLL)
        .build()
        .unwrap();
    let run = submitter.submit(&hang, 1).await.unwrap();
    eventually(LIMIT, "the run to start", || {
        let started = Arc::clone(&started);
        async move { started.load(Ordering::SeqCst) == 1 }
    })
    .await;
    crash.send(()).unwrap();
    thread.join().unwrap();
    let id = run.id();
    let other = builder(&db).register(&hang).build().unwrap();
    eventually(LIMIT, "the lost run to start again", || {
        let started = Arc::clone(&started);
        async move { started.load(Ordering::SeqCst) == 2 }
    })
    .await;
    let info = other.run_info(id).await.unwrap().unwrap();
    assert_eq!((info.status, info.recoveries), (RunStatus::Running, 1));
    other.shutdown_now().await;
}

async fn a_stale_claim_cannot_overwrite_a_newer_one(db: TestDb) {
    let def = research().retry(RetryPolicy::fixed(Duration::from_millis(10)).max_retries(1));
    let submitter = TaskRunner::builder()
        .store(db.store.clone())
        .build()
        .unwrap();
    let run = submitter.submit(&def, req("fenced")).await.unwrap();
    let names = vec!["research".to_owned()];
    let store = &db.store;
    let old = store
        .claim(
            "agents",
            &names,
            10,
            "stale",
            Duration::from_millis(100),
            None,
        )
        .await
        .unwrap();
    assert_eq!(old.len(), 1);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(store.rescue().await.unwrap(), 1);
    let new = store
        .claim("agents", &names, 10, "fresh", Duration::from_secs(30), None)
        .await
        .unwrap();
    assert_eq!(new.len(), 1);
    assert!(new[0].token > old[0].token);
    assert_eq!(new[0].attempts, 2);
    let finish = |token, summary: &str| Finish {
        id: run.id(),
        token,
        ending: Ending::Completed,
        output: Some(serde_json::json!({ "summary": summary }).to_string()),
        error: None,
    };
    assert_eq!(
        store
            .finish(&[finish(old[0].token, "stale")])
            .await
            .unwrap(),
        [false]
    );
    assert_eq!(
        store
            .finish(&[finish(new[0].token, "fresh")])
            .await
            .unwrap(),
        [true]
    );
    // Nor after the newer claim finished.
    assert_eq!(
        store
            .finish(&[finish(old[0].token, "stale")])
            .await
            .unwrap(),
        [false]
    );
    let report: Report = within("the fenced run", run).await.unwrap();
    assert_eq!(report.summary, "fresh");
}

async fn finished_runs_are_pruned_in_batches(db: TestDb) {
    let def = research();
    let runner = builder(&db).register(&def).build().unwrap();
    for run in runner
        .submit_many(&def, (0..7).map(|i| req(&i.to_string())))
        .await
        .unwrap()
    {
        within("a run", run).await.unwrap();
    }
    let waiting = runner
        .submit_with(
            &def,
            req("later"),
            RunOptions::new().delay(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    let store = runner.store().unwrap();
    let by_count = Retention::new().max_finished(3).batch(2);
    assert_eq!(store.prune(&by_count).await.unwrap(), 4);
    assert_eq!(runner.list_runs(RunFilter::new()).await.unwrap().len(), 4);
    let by_age = Retention::new().max_age(Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(store.prune(&by_age).await.unwrap(), 3);
    let left = runner.list_runs(RunFilter::new()).await.unwrap();
    assert_eq!(left.len(), 1, "the unfinished run stays");
    assert_eq!(left[0].id, waiting.id());
    runner.shutdown_now().await;
}

async fn an_input_that_no_longer_deserializes_fails_the_run_only(db: TestDb) {
    // An older version of the definition took a string.
    let old = TaskDef::new("typed", |_: TaskContext, _: String| async {
        Ok::<u64, String>(0)
    })
    .queue("agents");
    let new = TaskDef::new("typed", |_: TaskContext, n: u64| async move {
        Ok::<u64, String>(n)
    })
    .queue("agents");
    let runner = builder(&db).register(&new).build().unwrap();
    let bad = runner
        .submit(&old, "not a number".to_owned())
        .await
        .unwrap();
    let id = bad.id();
    match within("the bad run", bad).await {
        Err(TaskError::Failed(message)) => {
            assert!(message.contains("no longer deserializes"), "{message}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    let info = runner.run_info(id).await.unwrap().unwrap();
    assert_eq!(info.status, RunStatus::Failed);
    // The worker goes on.
    assert_eq!(
        within("a good run", runner.submit(&new, 7).await.unwrap())
            .await
            .unwrap(),
        7
    );
    runner.shutdown().await;
}

async fn a_run_nobody_registered_stays_pending(db: TestDb) {
    let def = research();
    let orphan = TaskDef::new("orphan", |_: TaskContext, _: ()| async {
        Ok::<_, String>(())
    })
    .queue("agents");
    let runner = builder(&db).register(&def).build().unwrap();
    let run = runner.submit(&orphan, ()).await.unwrap();
    within(
        "a registered run",
        runner.submit(&def, req("x")).await.unwrap(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let info = runner.run_info(run.id()).await.unwrap().unwrap();
    assert_eq!((info.status, info.attempts), (RunStatus::Pending, 0));
    runner.shutdown().await;
}

async fn a_newer_schema_is_refused(db: TestDb) {
    db.execute("UPDATE taskrunner_schema SET version = 99")
        .await;
    let store = match &db.place {
        store_support::Place::Sqlite(path) => {
            taskrunner::store::SqliteStore::open(path).await.map(drop)
        }
        store_support::Place::Pg { url, .. } => {
            taskrunner::store::PgStore::connect(url).await.map(drop)
        }
    };
    match store {
        Err(e @ StoreError::SchemaTooNew { found: 99, .. }) => {
            assert!(e.to_string().contains("newer than this build knows"), "{e}")
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

async fn shutdown_now_hands_back_running_runs(db: TestDb) {
    let started = Arc::new(AtomicUsize::new(0));
    let hang = blocker(Arc::clone(&started));
    let runner = TaskRunner::builder()
        .queue("agents", QueueConfig::new().concurrency(2))
        .store(db.store.clone())
        .register(&hang)
        .lease(Duration::from_secs(30))
        .poll_interval(POLL)
        .build()
        .unwrap();
    let runs = runner.submit_many(&hang, 0..2).await.unwrap();
    eventually(LIMIT, "both runs to start", || {
        let started = Arc::clone(&started);
        async move { started.load(Ordering::SeqCst) == 2 }
    })
    .await;
    // shutdown_now hands the running ones back at once, not after the 30 s lease.
    within("shutdown_now", runner.shutdown_now()).await;
    for run in &runs {
        let info = run.info().await.unwrap().unwrap();
        assert_eq!(
            (info.status, info.attempts),
            (RunStatus::Pending, 0),
            "{info:?}"
        );
    }
    let finishing = TaskDef::new("blocker", |_: TaskContext, n: u32| async move {
        Ok::<_, String>(n)
    })
    .queue("agents");
    let next = builder(&db).register(&finishing).build().unwrap();
    for run in runs {
        within("a released run", run).await.unwrap();
    }
    next.shutdown().await;
}

async fn graceful_shutdown_hands_back_runs_claimed_ahead(db: TestDb) {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let (g, s) = (Arc::clone(&gate), Arc::clone(&started));
    let def = TaskDef::new("gated", move |_: TaskContext, n: u32| {
        let (g, s) = (Arc::clone(&g), Arc::clone(&s));
        async move {
            s.fetch_add(1, Ordering::SeqCst);
            drop(g.acquire().await.unwrap());
            Ok::<_, String>(n)
        }
    })
    .queue("agents");
    let runner = TaskRunner::builder()
        .queue("agents", QueueConfig::new().concurrency(1))
        .store(db.store.clone())
        .register(&def)
        .claim_ahead(3)
        .lease(Duration::from_secs(30))
        .poll_interval(POLL)
        .build()
        .unwrap();
    let runs = runner.submit_many(&def, 0..4).await.unwrap();
    let running = || async {
        runner
            .list_runs(RunFilter::new().status(RunStatus::Running))
            .await
            .unwrap()
            .len()
    };
    eventually(LIMIT, "one run started and three claimed ahead", || async {
        started.load(Ordering::SeqCst) == 1 && running().await == 4
    })
    .await;
    assert_eq!(
        runner.queue_stats("agents").unwrap().running,
        1,
        "local concurrency holds"
    );
    let shutdown = tokio::spawn(runner.shutdown());
    eventually(
        LIMIT,
        "the three unstarted runs to be handed back",
        || async {
            runner
                .list_runs(RunFilter::new().status(RunStatus::Pending))
                .await
                .unwrap()
                .len()
                == 3
        },
    )
    .await;
    for run in &runs {
        let info = run.info().await.unwrap().unwrap();
        if info.status == RunStatus::Pending {
            assert_eq!(info.attempts, 0, "a handed-back run used no attempt");
        }
    }
    gate.add_permits(10);
    within("the graceful shutdown", shutdown).await.unwrap();
    assert_eq!(started.load(Ordering::SeqCst), 1);
    let next = builder(&db).register(&def).build().unwrap();
    for (n, run) in runs.into_iter().enumerate() {
        assert_eq!(within("every run", run).await.unwrap(), n as u32);
    }
    next.shutdown().await;
}

async fn a_new_run_wakes_an_idle_worker_in_its_process(db: TestDb) {
    let def = research();
    // Polling every minute: only the in-process wake-up can start the run in time.
    let runner = builder(&db)
        .poll_interval(Duration::from_secs(60))
        .register(&def)
        .build()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await; // the claim loop is idle now
    let run = runner.submit(&def, req("wake")).await.unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), run).await;
    assert_eq!(report.expect("not woken").unwrap().summary, "about wake");
    runner.shutdown().await;
}

async fn the_runner_prunes_on_its_own(db: TestDb) {
    let def = research();
    let runner = builder(&db)
        .register(&def)
        .retention(
            Retention::new()
                .max_age(Duration::ZERO)
                .every(Duration::from_secs(1)),
        )
        .build()
        .unwrap();
    let run = runner.submit(&def, req("short-lived")).await.unwrap();
    let id = run.id();
    within("the run", run).await.unwrap();
    eventually(
        Duration::from_secs(10),
        "the finished run to be pruned",
        || async { runner.run_info(id).await.unwrap().is_none() },
    )
    .await;
    runner.shutdown().await;
}

// ===== instantiation for both backends =====

conformance!(
    submit_runs_and_stores_the_output,
    claims_by_priority_then_submission_order,
    equal_priorities_are_claimed_by_scheduled_time,
    a_panicking_run_fails_and_the_worker_goes_on,
    a_delayed_run_waits_its_delay,
    a_dedup_key_returns_the_unfinished_run,
    a_failing_run_is_retried_and_its_attempts_counted,
    a_run_past_its_timeout_fails_timed_out,
    a_pending_run_is_cancelled_and_never_runs,
    a_running_run_is_cancelled_wherever_it_runs,
    a_run_is_polled_by_id_after_a_restart,
    global_concurrency_holds_across_runners,
    an_expired_lease_is_recovered_and_counted,
    a_lost_run_without_retries_is_recovered,
    a_stale_claim_cannot_overwrite_a_newer_one,
    finished_runs_are_pruned_in_batches,
    an_input_that_no_longer_deserializes_fails_the_run_only,
    a_run_nobody_registered_stays_pending,
    a_newer_schema_is_refused,
    shutdown_now_hands_back_running_runs,
    graceful_shutdown_hands_back_runs_claimed_ahead,
    a_new_run_wakes_an_idle_worker_in_its_process,
    the_runner_prunes_on_its_own,
);

// ===== PostgreSQL only: notifications between processes =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notifies_other_processes_of_new_runs_and_cancels() {
    let Some(db) = TestDb::pg().await else { return };
    let started = Arc::new(AtomicUsize::new(0));
    let hang = blocker(Arc::clone(&started));
    let def = research();
    // Polls once a minute and heartbeats every 20 s: only NOTIFY can reach it in time.
    let worker = TaskRunner::builder()
        .queue("agents", QueueConfig::new().concurrency(4))
        .store(db.store.clone())
        .register(&def)
        .register(&hang)
        .lease(Duration::from_secs(60))
        .poll_interval(Duration::from_secs(60))
        .build()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await; // listening, and idle
    let other = TaskRunner::builder()
        .store(db.reopen().await)
        .poll_interval(POLL)
        .build()
        .unwrap();
    let run = other.submit(&def, req("notified")).await.unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), run).await;
    assert_eq!(
        report
            .expect("NOTIFY did not wake the worker")
            .unwrap()
            .summary,
        "about notified"
    );

    let run = other.submit(&hang, 1).await.unwrap();
    eventually(LIMIT, "the run to start", || {
        let started = Arc::clone(&started);
        async move { started.load(Ordering::SeqCst) == 1 }
    })
    .await;
    assert!(other.cancel_run(run.id()).await.unwrap());
    let cancelled = tokio::time::timeout(Duration::from_secs(10), run).await;
    assert!(matches!(
        cancelled.expect("NOTIFY did not stop the run"),
        Err(TaskError::Cancelled)
    ));
    assert_eq!(worker.queue_stats("agents").unwrap().running, 0);
    worker.shutdown().await;
}
