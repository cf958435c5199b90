//! What the dashboard asks of the store, on SQLite and PostgreSQL (conformance style):
//! `RunFilter`'s keyset cursor, input search and time bounds, capped counts, each queue's
//! overview, `retry_run` (same id, attempts go on) and a durable schedule's manual trigger.
#![cfg(all(feature = "sqlite", feature = "postgres"))]

#[macro_use]
mod store_support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use store_support::TestDb;
use taskrunner::{RunFilter, RunStatus, Schedule, TaskContext, TaskDef, TaskRunner};

const LIMIT: Duration = Duration::from_secs(20);

async fn filters_pages_and_counts(db: TestDb) {
    let echo = TaskDef::new("echo", |_: TaskContext, topic: String| async move {
        Ok::<_, String>(topic)
    })
    .queue("nobody");
    // Nobody runs queue `nobody`: every run stays pending.
    let runner = TaskRunner::builder()
        .store(db.store.clone())
        .build()
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            runner
                .submit(&echo, format!("topic-{i}"))
                .await
                .unwrap()
                .id(),
        );
    }
    let page = runner.list_runs(RunFilter::new().limit(4)).await.unwrap();
    let got: Vec<_> = page.iter().map(|r| r.id).collect();
    assert_eq!(got, ids[6..].iter().rev().copied().collect::<Vec<_>>());
    let next = runner
        .list_runs(RunFilter::new().limit(4).before(*got.last().unwrap()))
        .await
        .unwrap();
    assert_eq!(
        next.iter().map(|r| r.id).collect::<Vec<_>>(),
        ids[2..6].iter().rev().copied().collect::<Vec<_>>()
    );
    assert_eq!(
        runner
            .list_runs(RunFilter::new().after(ids[7]))
            .await
            .unwrap()
            .len(),
        2
    );

    let found = runner
        .list_runs(RunFilter::new().input_contains("topic-3"))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].id, found[0].input.as_str()),
        (ids[3], r#""topic-3""#)
    );
    assert!(
        runner
            .list_runs(RunFilter::new().input_contains("%"))
            .await
            .unwrap()
            .is_empty(),
        "no LIKE wildcards"
    );

    let hour = Duration::from_secs(3600);
    let now = SystemTime::now();
    assert_eq!(
        runner
            .list_runs(RunFilter::new().created_after(now - hour))
            .await
            .unwrap()
            .len(),
        10
    );
    assert!(runner
        .list_runs(RunFilter::new().created_after(now + hour))
        .await
        .unwrap()
        .is_empty());
    let before_now = runner
        .list_runs(RunFilter::new().created_before(now + hour).limit(4))
        .await
        .unwrap();
    assert_eq!(
        before_now.iter().map(|r| r.id).collect::<Vec<_>>(),
        ids[6..].iter().rev().copied().collect::<Vec<_>>(),
        "newest first below a time bound"
    );
    assert!(runner
        .list_runs(RunFilter::new().created_before(now - hour))
        .await
        .unwrap()
        .is_empty());

    let store = runner.store().unwrap();
    let pending = RunFilter::new().status(RunStatus::Pending);
    assert_eq!(store.count_runs(&pending, 100).await.unwrap(), 10);
    assert_eq!(
        store.count_runs(&pending, 4).await.unwrap(),
        4,
        "the count stops at its cap"
    );
    assert_eq!(
        store
            .count_runs(&RunFilter::new().status(RunStatus::Failed), 100)
            .await
            .unwrap(),
        0
    );

    let queues = store.queue_overview().await.unwrap();
    assert_eq!(queues.len(), 1);
    assert_eq!(
        (
            queues[0].queue.as_str(),
            queues[0].pending,
            queues[0].running
        ),
        ("nobody", 10, 0)
    );
    runner.shutdown().await;
}

async fn a_retried_run_runs_again_under_its_id(db: TestDb) {
    let calls = Arc::new(AtomicU32::new(0));
    let c = Arc::clone(&calls);
    let flaky = TaskDef::new("flaky", move |ctx: TaskContext, _: ()| {
        let c = Arc::clone(&c);
        async move {
            let first: u32 = ctx
                .step("first", || async {
                    Ok::<_, String>(c.fetch_add(1, Ordering::SeqCst) + 1)
                })
                .await
                .map_err(|e| e.to_string())?;
            if c.fetch_add(1, Ordering::SeqCst) < 2 {
                return Err("the second step fails the first time".to_string());
            }
            Ok(first)
        }
    });
    let runner = TaskRunner::builder()
        .store(db.store.clone())
        .poll_interval(Duration::from_millis(100))
        .register(&flaky)
        .build()
        .unwrap();
    let run = runner.submit(&flaky, ()).await.unwrap();
    let id = run.id();
    assert!(tokio::time::timeout(LIMIT, run).await.unwrap().is_err());
    assert_eq!(runner.run_info(id).await.unwrap().unwrap().attempts, 1);
    assert!(runner.retry_run(id).await.unwrap());
    let output: u32 = tokio::time::timeout(LIMIT, runner.run_handle(id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output, 1, "the completed step was not run again");
    let after = runner.run_info(id).await.unwrap().unwrap();
    assert_eq!((after.status, after.attempts), (RunStatus::Completed, 2));
    assert!(
        !runner.retry_run(id).await.unwrap(),
        "a completed run is not retried"
    );
    assert!(!runner.retry_run("999999".parse().unwrap()).await.unwrap());
    runner.shutdown().await;
}

async fn a_durable_schedule_is_triggered_now(db: TestDb) {
    let echo = TaskDef::new("echo", |_: TaskContext, topic: String| async move {
        Ok::<_, String>(topic)
    });
    let runner = TaskRunner::builder()
        .store(db.store.clone())
        .poll_interval(Duration::from_millis(100))
        .register(&echo)
        .build()
        .unwrap();
    let schedule = runner
        .schedule_run(
            "daily",
            Schedule::every(Duration::from_secs(86_400)),
            &echo,
            "news".to_string(),
        )
        .await
        .unwrap();
    let id = schedule.trigger().await.unwrap().expect("a run");
    let out: String = tokio::time::timeout(LIMIT, runner.run_handle(id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out, "news");
    assert_eq!(
        runner
            .durable_schedule("nope")
            .unwrap()
            .trigger()
            .await
            .unwrap(),
        None
    );
    runner.shutdown().await;
}

conformance!(
    filters_pages_and_counts,
    a_retried_run_runs_again_under_its_id,
    a_durable_schedule_is_triggered_now,
);
