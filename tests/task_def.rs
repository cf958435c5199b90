//! Reusable task definitions: defaults, per-call overrides, retries with a fresh input.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use taskrunner::{QueueConfig, RetryPolicy, TaskContext, TaskDef, TaskError, TaskRunner};

#[derive(Clone, Debug, PartialEq)]
struct Query(String);

#[tokio::test(start_paused = true)]
async fn a_definition_supplies_defaults_that_a_call_can_override() {
    let runner = TaskRunner::builder()
        .queue("tools", QueueConfig::new().concurrency(1))
        .queue("slow", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let attempts = Arc::new(AtomicU32::new(0));
    let a = Arc::clone(&attempts);
    let def = TaskDef::new("search", move |ctx: TaskContext, query: Query| {
        a.fetch_add(1, Ordering::SeqCst);
        async move {
            if ctx.attempt() < 2 {
                return Err(format!("flaky for {}", query.0));
            }
            Ok((ctx.queue().to_owned(), ctx.priority(), query))
        }
    })
    .queue("tools")
    .priority(3)
    .retry(RetryPolicy::fixed(Duration::from_millis(10)));
    assert_eq!(def.name(), "search");

    let defaults = runner.enqueue_task(def.with(Query("a".into()))).unwrap();
    let info = runner.get_status(defaults.id()).unwrap();
    assert_eq!(
        (info.name.as_str(), info.queue.as_str(), info.priority),
        ("search", "tools", 3)
    );
    // Retried with the same input: the handler got a fresh copy each attempt.
    assert_eq!(
        defaults.await.unwrap(),
        ("tools".to_owned(), 3, Query("a".into()))
    );

    let overridden = runner
        .enqueue_task(
            def.with(Query("b".into()))
                .queue("slow")
                .priority(9)
                .call_id("call_b"),
        )
        .unwrap();
    assert_eq!(overridden.call_id(), "call_b");
    assert_eq!(
        overridden.await.unwrap(),
        ("slow".to_owned(), 9, Query("b".into()))
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn a_definition_timeout_applies_and_an_unknown_default_queue_is_an_error() {
    let runner = TaskRunner::new();
    let def = TaskDef::new("sleepy", |_: TaskContext, secs: u64| async move {
        tokio::time::sleep(Duration::from_secs(secs)).await;
        Ok::<_, String>(secs)
    })
    .timeout(Duration::from_secs(5));
    assert_eq!(runner.enqueue_task(def.with(1)).unwrap().await.unwrap(), 1);
    assert!(matches!(
        runner.enqueue_task(def.with(60)).unwrap().await,
        Err(TaskError::TimedOut)
    ));
    // A longer timeout for one call.
    let long = def.with(60).timeout(Duration::from_secs(120));
    assert_eq!(runner.enqueue_task(long).unwrap().await.unwrap(), 60);

    let elsewhere = def.clone().queue("gpu");
    assert!(runner.enqueue_task(elsewhere.with(1)).is_err());
}

#[tokio::test(start_paused = true)]
async fn each_call_of_a_definition_can_have_its_own_name() {
    let runner = TaskRunner::new();
    let mut events = runner.subscribe();
    let agent = TaskDef::new("agent", |ctx: TaskContext, role: &'static str| async move {
        Ok::<_, String>(format!("{}:{role}", ctx.name()))
    });
    let plain = agent.with("default");
    assert_eq!(plain.name(), "agent", "the getter still works");
    let handles: Vec<_> = ["planner", "coder", "tester"]
        .into_iter()
        .map(|role| {
            runner
                .enqueue_task(agent.with(role).named(format!("agent-{role}")).notify())
                .unwrap()
        })
        .collect();
    let plain = runner.enqueue_task(plain).unwrap();
    let mut outs = Vec::new();
    for handle in handles {
        let name = runner.get_status(handle.id()).unwrap().name;
        outs.push((name, handle.await.unwrap()));
    }
    assert_eq!(
        outs,
        [
            (
                "agent-planner".to_owned(),
                "agent-planner:planner".to_owned()
            ),
            ("agent-coder".to_owned(), "agent-coder:coder".to_owned()),
            ("agent-tester".to_owned(), "agent-tester:tester".to_owned()),
        ]
    );
    assert_eq!(plain.await.unwrap(), "agent:default");
    let names: Vec<String> = runner
        .drain_notifications()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["agent-planner", "agent-coder", "agent-tester"]);
    let first = futures::StreamExt::next(&mut events)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.name, "agent-planner");
}
