//! Run streams in one process, on both backends: stored emits at the run's next offsets,
//! status changes in the log, readers that replay, tail, resume by offset with no gap and
//! no duplicate, and end after the terminal status; emits before a wait stored while it
//! waits; live events; the size limit; pruning;
//! emits of ordinary tasks on the event stream.
#![cfg(all(feature = "sqlite", feature = "postgres"))]

#[macro_use]
mod store_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use store_support::TestDb;
use taskrunner::store::Retention;
use taskrunner::{
    EventKind, RetryPolicy, RunEvent, RunEventKind, RunStatus, StoreError, Task, TaskContext,
    TaskDef, TaskRunner,
};

fn builder(db: &TestDb) -> taskrunner::TaskRunnerBuilder {
    TaskRunner::builder()
        .store(db.store.clone())
        .poll_interval(Duration::from_millis(50))
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Every event of a stream, to its end.
async fn all(events: taskrunner::RunEvents) -> Vec<RunEvent> {
    within("the stream to end", events.map(|e| e.unwrap()).collect()).await
}

/// The stored emitted values (as u64) of `events`.
fn emitted(events: &[RunEvent]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            RunEventKind::Emitted {
                value, live: false, ..
            } => value.as_u64(),
            _ => None,
        })
        .collect()
}

/// Stored events have consecutive offsets from `from`, and the last is the terminal status.
fn check_log(events: &[RunEvent], from: u64) {
    let stored: Vec<u64> = events
        .iter()
        .filter(|e| !matches!(e.kind, RunEventKind::Emitted { live: true, .. }))
        .map(|e| e.offset)
        .collect();
    let expected: Vec<u64> = (from..from + stored.len() as u64).collect();
    assert_eq!(stored, expected, "offsets with a gap or a duplicate");
    assert!(
        events.last().is_some_and(RunEvent::is_terminal),
        "the stream did not end on the terminal status: {:?}",
        events.last()
    );
}

/// Emits 0..n, a live token every 100 (the first once `gate` is open) and a pause.
fn counter_def(
    n: u64,
    gate: Arc<AtomicBool>,
) -> TaskDef<
    impl Fn(TaskContext, u64) -> futures::future::BoxFuture<'static, Result<u64, String>> + Clone,
> {
    TaskDef::new("counter", move |ctx: TaskContext, pause_ms: u64| {
        let gate = Arc::clone(&gate);
        Box::pin(async move {
            for i in 0..n {
                ctx.emit("n", &i).await?;
                if i % 100 == 99 {
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                    while !gate.load(Ordering::SeqCst) && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    ctx.emit_live("token", &format!("t{i}"));
                    tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                }
            }
            Ok(n)
        }) as futures::future::BoxFuture<'static, Result<u64, String>>
    })
}

/// 1,000 emits, read by a reader from 0 started before the run, one from 250 that is dropped
/// at 600 and resumed, and one from 900 after the end: each sees every event once, in order.
async fn a_thousand_events_read_from_several_offsets(db: TestDb) {
    let gate = Arc::new(AtomicBool::new(false));
    let def = counter_def(1000, Arc::clone(&gate));
    let runner = builder(&db).register(&def).build().unwrap();
    let run = runner.submit(&def, 20).await.unwrap();
    let id = run.id();
    // A reader from 0, subscribed (it has its first event) before the first live token.
    let mut events = runner.run_events(id);
    let first = within("the first event", events.next())
        .await
        .unwrap()
        .unwrap();
    gate.store(true, Ordering::SeqCst);
    let from_zero = tokio::spawn(async move {
        let mut rest = all(events).await;
        rest.insert(0, first);
        rest
    });

    // A reader from 250, dropped once it has seen offset 600, resumed from there.
    let mut first = Vec::new();
    let mut events = runner.run_events(id).from(250);
    while let Some(event) = within("offset 600", events.next()).await {
        let event = event.unwrap();
        let stop =
            event.offset >= 600 && !matches!(event.kind, RunEventKind::Emitted { live: true, .. });
        first.push(event);
        if stop {
            break;
        }
    }
    drop(events);
    let resume = first.last().unwrap().next_offset();
    let mut second = all(runner.run_events(id).from(resume)).await;
    first.append(&mut second);
    check_log(&first, 250);

    assert_eq!(within("the run", run).await.unwrap(), 1000);
    let zero = from_zero.await.unwrap();
    check_log(&zero, 0);
    assert_eq!(emitted(&zero), (0..1000).collect::<Vec<_>>());
    assert_eq!(zero[0].kind, RunEventKind::Status(RunStatus::Running));
    assert_eq!(
        zero.last().unwrap().kind,
        RunEventKind::Status(RunStatus::Completed)
    );
    // Live tokens come in order, each after the stored emit before it.
    let tokens: Vec<(usize, &str)> = zero
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match &e.kind {
            RunEventKind::Emitted {
                value, live: true, ..
            } => Some((i, value.as_str().unwrap())),
            _ => None,
        })
        .collect();
    assert_eq!(tokens.len(), 10, "{tokens:?}");
    for (k, (i, token)) in tokens.iter().enumerate() {
        assert_eq!(*token, format!("t{}", k * 100 + 99));
        assert!(
            emitted(&zero[..*i]).len() >= k * 100 + 100,
            "token {token} came early"
        );
    }

    // After the end: the log replays from any offset and the stream ends.
    let late = all(runner.run_events(id).from(900)).await;
    check_log(&late, 900);
    assert_eq!(
        all(runner
            .run_events(id)
            .from(late.last().unwrap().next_offset()))
        .await,
        []
    );
    runner.shutdown().await;
}

/// A retried attempt does not store its emits again: the log holds each emit once, then
/// the retry's new ones, with the retry itself in between.
async fn a_retried_attempt_does_not_emit_twice(db: TestDb) {
    let def = TaskDef::new("flaky", |ctx: TaskContext, _: ()| async move {
        ctx.emit("plan", &"search").await?;
        ctx.emit("call", &ctx.attempt()).await?;
        if ctx.attempt() == 1 {
            return Err("HTTP 503".to_owned());
        }
        ctx.emit("answer", &"42").await?;
        Ok::<_, String>(())
    })
    .retry(RetryPolicy::fixed(Duration::from_millis(10)).max_retries(2));
    let runner = builder(&db).register(&def).build().unwrap();
    let run = runner.submit(&def, ()).await.unwrap();
    let id = run.id();
    within("the run", run).await.unwrap();
    let events = all(runner.run_events(id)).await;
    check_log(&events, 0);
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match &e.kind {
            RunEventKind::Emitted { topic, value, .. } => format!("{topic}={value}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "Status(Running)",
            "plan=\"search\"",
            "call=1",
            "Retrying { attempt: 2 }",
            "answer=\"42\"",
            "Status(Completed)"
        ]
    );
    runner.shutdown().await;
}

async fn an_oversized_value_is_refused(db: TestDb) {
    let def = TaskDef::new("big", |ctx: TaskContext, _: ()| async move {
        ctx.emit("page", &"x".repeat(300 * 1024)).await?;
        Ok::<_, String>(())
    });
    let runner = builder(&db).register(&def).build().unwrap();
    let run = runner.submit(&def, ()).await.unwrap();
    let id = run.id();
    let error = within("the run", run).await.unwrap_err().to_string();
    assert!(
        error.contains("emit `page`: the value is 307202 bytes of JSON, over the limit of 262144"),
        "{error}"
    );
    let events = all(runner.run_events(id)).await;
    assert_eq!(emitted(&events), Vec::<u64>::new());
    assert_eq!(
        events.last().unwrap().kind,
        RunEventKind::Status(RunStatus::Failed)
    );
    runner.shutdown().await;
}

/// A run that is not in the store, or was pruned with its events, is an error, then the end.
async fn an_unknown_or_pruned_run_is_an_error(db: TestDb) {
    let def = counter_def(3, Arc::new(AtomicBool::new(true)));
    let runner = builder(&db).register(&def).build().unwrap();
    let run = runner.submit(&def, 0).await.unwrap();
    let id = run.id();
    within("the run", run).await.unwrap();
    assert_eq!(all(runner.run_events(id)).await.len(), 5);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let pruned = runner
        .store()
        .unwrap()
        .prune(&Retention::new().max_age(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    let mut events = runner.run_events(id);
    let first = within("the error", events.next()).await.unwrap();
    assert!(
        matches!(first, Err(StoreError::UnknownRun(r)) if r == id),
        "{first:?}"
    );
    assert!(within("the end", events.next()).await.is_none());
    runner.shutdown().await;
}

/// The emits before a wait are in the log while the run waits (a reader sees the plan
/// before anyone answers), and each once after it resumes.
async fn emits_before_a_wait_are_stored_while_it_waits(db: TestDb) {
    let def = TaskDef::new("approval", |ctx: TaskContext, _: ()| async move {
        ctx.emit("plan", &"mail ana").await?;
        let ok: Option<bool> = ctx
            .wait_for_signal("approve", Duration::from_secs(3600))
            .await?;
        ctx.emit("decision", &ok).await?;
        Ok::<_, String>(())
    });
    let runner = builder(&db).register(&def).build().unwrap();
    let run = runner.submit(&def, ()).await.unwrap();
    let id = run.id();
    let mut events = runner.run_events(id);
    within("the plan, before the signal", async {
        loop {
            let event = events.next().await.unwrap().unwrap();
            if matches!(&event.kind, RunEventKind::Emitted { topic, .. } if topic == "plan") {
                break;
            }
        }
    })
    .await;
    within("the run to wait", async {
        while runner
            .run_info(id)
            .await
            .unwrap()
            .unwrap()
            .waiting_for
            .is_none()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    runner.signal(id, "approve", &true).await.unwrap();
    within("the run", run).await.unwrap();
    let events = all(runner.run_events(id)).await;
    check_log(&events, 0);
    let topics: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.kind {
            RunEventKind::Emitted { topic, .. } => Some(topic.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(topics, ["plan", "decision"]);
    runner.shutdown().await;
}

conformance!(
    a_thousand_events_read_from_several_offsets,
    a_retried_attempt_does_not_emit_twice,
    an_oversized_value_is_refused,
    an_unknown_or_pruned_run_is_an_error,
    emits_before_a_wait_are_stored_while_it_waits,
);

/// In an ordinary task, emits go to the event stream; the size limit holds there too.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_ordinary_task_emits_on_the_event_stream() {
    let runner = TaskRunner::new();
    let mut events = runner.subscribe();
    let handle = runner
        .enqueue_task(Task::new("agent", |ctx: TaskContext| async move {
            ctx.emit("plan", &["a", "b"]).await?;
            ctx.emit_live("token", &"Hel");
            ctx.emit("big", &"x".repeat(300 * 1024)).await?;
            Ok::<_, String>(())
        }))
        .unwrap();
    let error = handle.await.unwrap_err().to_string();
    assert!(error.contains("over the limit"), "{error}");
    let mut emitted = Vec::new();
    while let Some(event) = events.recv().await {
        let event = event.unwrap();
        if let EventKind::Emitted { topic, value, live } = &event.kind {
            emitted.push((topic.clone(), value.to_string(), *live));
        }
        if event.kind.is_terminal() {
            break;
        }
    }
    assert_eq!(
        emitted,
        [
            ("plan".to_owned(), "[\"a\",\"b\"]".to_owned(), false),
            ("token".to_owned(), "\"Hel\"".to_owned(), true)
        ]
    );
}

/// Without a store, a stream says so and ends.
#[tokio::test]
async fn without_a_store_the_stream_says_so() {
    let runner = TaskRunner::new();
    let events: Vec<_> = runner.run_events("1".parse().unwrap()).collect().await;
    assert!(
        matches!(events[..], [Err(StoreError::NoStore)]),
        "{events:?}"
    );
}
