//! Durable steps (`TaskContext::step`) in the conformance style: every test runs against
//! SQLite (a file in a temp dir) and PostgreSQL (a fresh database through
//! `TASKRUNNER_PG_URL`; skipped without it).
#![cfg(all(feature = "sqlite", feature = "postgres"))]

#[macro_use]
mod store_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use store_support::TestDb;
use taskrunner::store::{StepStatus, StepWrite};
use taskrunner::{
    QueueConfig, RetryPolicy, RunStatus, Task, TaskContext, TaskDef, TaskError, TaskRunner,
};

const LEASE: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(100);
const LIMIT: Duration = Duration::from_secs(20);

fn builder(db: &TestDb) -> taskrunner::TaskRunnerBuilder {
    TaskRunner::builder()
        .queue("agents", QueueConfig::new().concurrency(4))
        .store(db.store.clone())
        .lease(LEASE)
        .poll_interval(POLL)
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

// ===== the suite =====

/// plan → search ×2 (one name, in a loop) → summarise, which fails twice: the run's third
/// attempt gets plan and both searches from the store.
async fn steps_that_succeeded_are_not_run_again_on_retry(db: TestDb) {
    let (plans, searches, summaries) = (counter(), counter(), counter());
    let (p, s, m) = (
        Arc::clone(&plans),
        Arc::clone(&searches),
        Arc::clone(&summaries),
    );
    let agent = TaskDef::new("agent", move |ctx: TaskContext, topic: String| {
        let (p, s, m) = (Arc::clone(&p), Arc::clone(&s), Arc::clone(&m));
        async move {
            let plan: Vec<String> = ctx
                .step("plan", || async {
                    p.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, String>(vec![format!("{topic} history"), format!("{topic} today")])
                })
                .await?;
            let mut found = Vec::new();
            for query in plan {
                let s = Arc::clone(&s);
                let hit: String = ctx
                    .step("search", || async move {
                        s.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, String>(format!("results for {query}"))
                    })
                    .await?;
                found.push(hit);
            }
            ctx.step("summarise", || async {
                let n = m.fetch_add(1, Ordering::SeqCst) + 1;
                if n <= 2 {
                    Err(format!("model overloaded (call {n})"))
                } else {
                    Ok(found.join("; "))
                }
            })
            .await
        }
    })
    .queue("agents")
    .retry(RetryPolicy::fixed(Duration::from_millis(10)).max_retries(2));
    let runner = builder(&db).register(&agent).build().unwrap();
    let run = runner.submit(&agent, "rust".to_owned()).await.unwrap();
    let id = run.id();
    assert_eq!(
        within("the agent run", run).await.unwrap(),
        "results for rust history; results for rust today"
    );
    assert_eq!(plans.load(Ordering::SeqCst), 1, "plan ran once");
    assert_eq!(searches.load(Ordering::SeqCst), 2, "each search ran once");
    assert_eq!(summaries.load(Ordering::SeqCst), 3, "summarise ran 3 times");

    // run_info shows the steps: name, index, status, attempts, times, output.
    let info = runner.run_info(id).await.unwrap().unwrap();
    assert_eq!((info.status, info.attempts), (RunStatus::Completed, 3));
    let steps: Vec<_> = info
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.index, s.status, s.attempts))
        .collect();
    assert_eq!(
        steps,
        [
            ("plan", 0, StepStatus::Completed, 1),
            ("search", 0, StepStatus::Completed, 1),
            ("search", 1, StepStatus::Completed, 1),
            ("summarise", 0, StepStatus::Completed, 3),
        ]
    );
    assert_eq!(
        info.steps[1].output,
        Some(serde_json::json!("results for rust history"))
    );
    for step in &info.steps {
        assert!(step.finished_at >= step.started_at, "{step:?}");
        assert_eq!(step.error, None);
    }
    runner.shutdown().await;
}

/// A step whose every run failed shows as failed, with its message, and nothing stored.
async fn run_info_shows_a_failed_step(db: TestDb) {
    let agent = TaskDef::new("agent", |ctx: TaskContext, _: u32| async move {
        let a: u32 = ctx.step("fetch", || async { Ok::<_, String>(7) }).await?;
        let b: u32 = ctx
            .step("send", || async { Err::<u32, _>("SMTP 421".to_owned()) })
            .await?;
        Ok::<_, String>(a + b)
    })
    .queue("agents");
    let runner = builder(&db).register(&agent).build().unwrap();
    let run = runner.submit(&agent, 1).await.unwrap();
    let id = run.id();
    match within("the failing run", run).await {
        Err(TaskError::Failed(message)) => assert_eq!(message, "SMTP 421"),
        other => panic!("expected the step's error, got {other:?}"),
    }
    let info = runner.run_info(id).await.unwrap().unwrap();
    assert_eq!(info.steps.len(), 2);
    assert_eq!(
        (info.steps[0].name.as_str(), info.steps[0].status),
        ("fetch", StepStatus::Completed)
    );
    let send = &info.steps[1];
    assert_eq!(
        (send.name.as_str(), send.index, send.status),
        ("send", 0, StepStatus::Failed)
    );
    assert_eq!(send.error.as_deref(), Some("SMTP 421"));
    assert_eq!(send.output, None);
    assert_eq!(
        db.store.load_step(id, "send", 0).await.unwrap(),
        None,
        "a failed step stores no output"
    );
    runner.shutdown().await;
}

/// Steps run one after another within one millisecond are listed in the order they ran, not
/// by name (their start times tie: the ordering by `started_at, name` listed `extract`
/// before `fetch` in CI). Names chosen in reverse alphabetical order; a retry's rewrite of a
/// failed step keeps its place.
async fn steps_are_listed_in_the_order_they_ran(db: TestDb) {
    let tries = counter();
    let t = Arc::clone(&tries);
    let agent = TaskDef::new("agent", move |ctx: TaskContext, _: u32| {
        let t = Arc::clone(&t);
        async move {
            for name in ["zeta", "omega", "kappa", "delta", "alpha"] {
                ctx.step(name, || async { Ok::<_, String>(1u32) }).await?;
            }
            ctx.step("beta", || async {
                if t.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err("flaky".to_owned());
                }
                Ok::<_, String>(2u32)
            })
            .await?;
            ctx.step("aardvark", || async { Ok::<_, String>(3u32) })
                .await
        }
    })
    .queue("agents")
    .retry(RetryPolicy::fixed(Duration::from_millis(10)).max_retries(1));
    let runner = builder(&db).register(&agent).build().unwrap();
    let run = runner.submit(&agent, 1).await.unwrap();
    let id = run.id();
    assert_eq!(within("the run", run).await.unwrap(), 3);
    let info = runner.run_info(id).await.unwrap().unwrap();
    let names: Vec<_> = info.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["zeta", "omega", "kappa", "delta", "alpha", "beta", "aardvark"]
    );
    assert_eq!(
        info.steps[5].attempts, 2,
        "beta failed once, then completed"
    );
    runner.shutdown().await;
}

/// A worker whose claim was taken over cannot store a step, before or after the newer claim
/// stored its own.
async fn a_stale_worker_cannot_write_a_step(db: TestDb) {
    let agent = TaskDef::new("agent", |_: TaskContext, _: u32| async move {
        Ok::<_, String>(0)
    })
    .queue("agents")
    .retry(RetryPolicy::fixed(Duration::from_millis(10)).max_retries(2));
    let submitter = TaskRunner::builder()
        .store(db.store.clone())
        .build()
        .unwrap();
    let run = submitter.submit(&agent, 1).await.unwrap();
    let id = run.id();
    let names = vec!["agent".to_owned()];
    let store = &db.store;
    let old = store
        .claim(
            "agents",
            &names,
            1,
            "stale",
            Duration::from_millis(100),
            None,
        )
        .await
        .unwrap();
    assert_eq!(old.len(), 1);
    let step = |token, output| StepWrite {
        run: id,
        token,
        name: "search",
        index: 0,
        output: Some(output),
        error: None,
        elapsed_ms: 1,
    };
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(store.rescue().await.unwrap(), 1);
    // The lease expired and the run went back: the old claim may not write.
    assert!(!store
        .save_step(&step(old[0].token, "\"stale\""))
        .await
        .unwrap());
    let new = store
        .claim("agents", &names, 1, "fresh", Duration::from_secs(30), None)
        .await
        .unwrap();
    assert_eq!(new.len(), 1);
    assert!(new[0].token > old[0].token);
    assert!(!store
        .save_step(&step(old[0].token, "\"stale\""))
        .await
        .unwrap());
    assert!(store
        .save_step(&step(new[0].token, "\"fresh\""))
        .await
        .unwrap());
    assert!(!store
        .save_step(&step(old[0].token, "\"stale\""))
        .await
        .unwrap());
    assert_eq!(
        store.load_step(id, "search", 0).await.unwrap().as_deref(),
        Some("\"fresh\"")
    );
    let info = submitter.run_info(id).await.unwrap().unwrap();
    assert_eq!(info.steps.len(), 1);
    assert_eq!(info.steps[0].output, Some(serde_json::json!("fresh")));
}

/// A stored output read back as another type fails the run with a message saying so, and
/// does not run the step again; an output that does not serialize fails with a message too.
async fn a_changed_or_unserializable_step_type_is_a_clear_error(db: TestDb) {
    let calls = counter();
    let c = Arc::clone(&calls);
    let changed = TaskDef::new("changed", move |ctx: TaskContext, _: u32| {
        let c = Arc::clone(&c);
        async move {
            if ctx.attempt() == 1 {
                let n: u32 = ctx
                    .step("count", || async {
                        c.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, String>(3)
                    })
                    .await?;
                return Err(format!("fail after storing {n}"));
            }
            // As if the handler was redeployed with another output type for the step.
            let text: Vec<String> = ctx
                .step("count", || async {
                    c.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, String>(vec!["x".to_owned()])
                })
                .await?;
            Ok::<_, String>(text.len() as u32)
        }
    })
    .queue("agents")
    .retry(RetryPolicy::fixed(Duration::from_millis(10)).max_retries(1));
    let unserializable = TaskDef::new("unserializable", |ctx: TaskContext, _: u32| async move {
        let map: HashMap<(u32, u32), u32> = ctx
            .step("grid", || async {
                Ok::<_, String>(HashMap::from([((1, 2), 3)]))
            })
            .await?;
        Ok::<_, String>(map.len() as u32)
    })
    .queue("agents");
    let runner = builder(&db)
        .register(&changed)
        .register(&unserializable)
        .build()
        .unwrap();

    let run = runner.submit(&changed, 1).await.unwrap();
    match within("the changed run", run).await {
        Err(TaskError::Failed(message)) => {
            assert!(
                message.starts_with("step `count` #0: its stored output no longer deserializes as `alloc::vec::Vec<alloc::string::String>`"),
                "{message}"
            );
            assert!(
                message.contains("give the changed step a new name"),
                "{message}"
            );
        }
        other => panic!("expected a type error, got {other:?}"),
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the stored step did not run again"
    );

    let run = runner.submit(&unserializable, 1).await.unwrap();
    let id = run.id();
    match within("the unserializable run", run).await {
        Err(TaskError::Failed(message)) => assert!(
            message.starts_with("step `grid` #0: its output does not serialize to JSON"),
            "{message}"
        ),
        other => panic!("expected a serialization error, got {other:?}"),
    }
    assert_eq!(
        runner.run_info(id).await.unwrap().unwrap().status,
        RunStatus::Failed
    );
    runner.shutdown().await;
}

// ===== outside a durable run =====

/// In an ordinary task (no store), `step` just runs its closure: every attempt runs it.
#[tokio::test(start_paused = true)]
async fn outside_a_durable_run_a_step_just_runs() {
    let calls = counter();
    let c = Arc::clone(&calls);
    let runner = TaskRunner::new();
    let handle = runner
        .enqueue_task(
            Task::new("plain", move |ctx: TaskContext| {
                let c = Arc::clone(&c);
                async move {
                    let n: usize = ctx
                        .step("count", || async {
                            Ok::<_, String>(c.fetch_add(1, Ordering::SeqCst))
                        })
                        .await?;
                    if ctx.attempt() < 3 {
                        return Err(format!("attempt {}", ctx.attempt()));
                    }
                    Ok(n)
                }
            })
            .retry(RetryPolicy::fixed(Duration::from_millis(10)).max_retries(2)),
        )
        .unwrap();
    assert_eq!(handle.await.unwrap(), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

// ===== instantiation for both backends =====

conformance!(
    steps_that_succeeded_are_not_run_again_on_retry,
    run_info_shows_a_failed_step,
    steps_are_listed_in_the_order_they_ran,
    a_stale_worker_cannot_write_a_step,
    a_changed_or_unserializable_step_type_is_a_clear_error,
);
