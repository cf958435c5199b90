//! Durable waits (`wait_for_signal`, `sleep`) in the conformance style: every test runs
//! against SQLite and PostgreSQL (skipped without `TASKRUNNER_PG_URL`).
#![cfg(all(feature = "sqlite", feature = "postgres"))]

#[macro_use]
mod store_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use store_support::{eventually, TestDb};
use taskrunner::store::WaitStep;
use taskrunner::{
    QueueConfig, RetryPolicy, RunFilter, RunStatus, SignalError, StepError, TaskContext, TaskDef,
    TaskRunner, WaitingFor,
};

const LEASE: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(50);
const LIMIT: Duration = Duration::from_secs(30);
const DAY: Duration = Duration::from_secs(86_400);

fn builder(db: &TestDb, concurrency: usize) -> taskrunner::TaskRunnerBuilder {
    TaskRunner::builder()
        .queue("agents", QueueConfig::new().concurrency(concurrency))
        .store(db.store.clone())
        .lease(LEASE)
        .poll_interval(POLL)
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A run that plans (a counted step), then waits for `approve`, and says what it got.
type Answer = BoxFuture<'static, Result<String, String>>;

fn approval(
    plans: Arc<AtomicUsize>,
    timeout: Duration,
) -> TaskDef<impl Fn(TaskContext, String) -> Answer + Send + Sync + 'static> {
    TaskDef::new("approval", move |ctx: TaskContext, to: String| -> Answer {
        let plans = Arc::clone(&plans);
        Box::pin(async move {
            let plan: String = ctx
                .step("plan", || async {
                    plans.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, String>(format!("email {to}"))
                })
                .await?;
            let ok: Option<bool> = ctx.wait_for_signal("approve", timeout).await?;
            Ok(format!("{plan}: {ok:?}"))
        })
    })
    .queue("agents")
}

async fn status_of(runner: &TaskRunner, id: taskrunner::RunId) -> RunStatus {
    runner.run_info(id).await.unwrap().unwrap().status
}

// ===== the suite =====

/// A signal sent before any process ran the run is kept, and the wait takes it.
async fn a_signal_sent_before_the_wait_is_kept(db: TestDb) {
    let plans = Arc::new(AtomicUsize::new(0));
    let def = approval(Arc::clone(&plans), DAY);
    let submitter = TaskRunner::builder()
        .store(db.store.clone())
        .build()
        .unwrap();
    let run = submitter.submit(&def, "ana".to_owned()).await.unwrap();
    submitter.signal(run.id(), "approve", &true).await.unwrap();
    let worker = builder(&db, 2).register(&def).build().unwrap();
    assert_eq!(
        within("the run", run).await.unwrap(),
        "email ana: Some(true)"
    );
    assert_eq!(plans.load(Ordering::SeqCst), 1);
    worker.shutdown().await;
}

/// Two signals of one name are taken in the order sent, each once; a third wait times out.
async fn two_signals_are_consumed_in_order(db: TestDb) {
    let def = TaskDef::new("collect", |ctx: TaskContext, _: ()| async move {
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(
                ctx.wait_for_signal::<u32>("n", Duration::from_millis(300))
                    .await?,
            );
        }
        Ok::<_, String>(got)
    })
    .queue("agents");
    let submitter = TaskRunner::builder()
        .store(db.store.clone())
        .build()
        .unwrap();
    let run = submitter.submit(&def, ()).await.unwrap();
    submitter.signal(run.id(), "n", &1_u32).await.unwrap();
    submitter.signal(run.id(), "n", &2_u32).await.unwrap();
    submitter.signal(run.id(), "other", &9_u32).await.unwrap();
    let worker = builder(&db, 2).register(&def).build().unwrap();
    assert_eq!(
        within("the run", run).await.unwrap(),
        vec![Some(1), Some(2), None]
    );
    worker.shutdown().await;
}

/// While it waits the run is `Waiting`, holding no slot and no lease, its attempt given back;
/// a signal resumes it (steps replayed, not run again) and the resume counts no attempt.
async fn a_waiting_run_holds_nothing_and_resumes_on_a_signal(db: TestDb) {
    let plans = Arc::new(AtomicUsize::new(0));
    let def = approval(Arc::clone(&plans), DAY);
    let runner = builder(&db, 1).register(&def).build().unwrap();
    let run = runner.submit(&def, "bo".to_owned()).await.unwrap();
    let id = run.id();
    eventually(LIMIT, "the run to wait", || async {
        status_of(&runner, id).await == RunStatus::Waiting
    })
    .await;
    let info = runner.run_info(id).await.unwrap().unwrap();
    match &info.waiting_for {
        Some(WaitingFor::Signal { name, deadline }) => {
            assert_eq!(name, "approve");
            let left = deadline.duration_since(SystemTime::now()).unwrap();
            assert!(
                left > DAY - Duration::from_secs(600),
                "deadline {left:?} away"
            );
        }
        other => panic!("waiting for {other:?}"),
    }
    // The attempt that waits is given back: the resume counts it again, once.
    assert_eq!(info.attempts, 0);
    let waiting = runner
        .list_runs(RunFilter::new().status(RunStatus::Waiting))
        .await
        .unwrap();
    assert_eq!(waiting.iter().map(|r| r.id).collect::<Vec<_>>(), vec![id]);
    eventually(LIMIT, "the slot to be free", || async {
        runner.queue_stats("agents").unwrap().running == 0
    })
    .await;
    runner.signal(id, "approve", &false).await.unwrap();
    assert_eq!(
        within("the run", run).await.unwrap(),
        "email bo: Some(false)"
    );
    let info = runner.run_info(id).await.unwrap().unwrap();
    assert_eq!((info.status, info.attempts), (RunStatus::Completed, 1));
    assert_eq!(info.waiting_for, None);
    assert_eq!(plans.load(Ordering::SeqCst), 1, "the plan step ran again");
    runner.shutdown().await;
}

/// The deadline is stored at the first wait: with no process running until after it, the
/// restarted worker ends the wait at once (`None`), not a whole timeout later.
async fn a_timeout_ends_at_the_stored_deadline_across_a_restart(db: TestDb) {
    let plans = Arc::new(AtomicUsize::new(0));
    let timeout = Duration::from_secs(2);
    let def = approval(Arc::clone(&plans), timeout);
    let first = builder(&db, 1).register(&def).build().unwrap();
    let id = first.submit(&def, "cy".to_owned()).await.unwrap().id();
    eventually(LIMIT, "the run to wait", || async {
        status_of(&first, id).await == RunStatus::Waiting
    })
    .await;
    first.shutdown().await;
    let Some(WaitingFor::Signal { deadline, .. }) =
        first.run_info(id).await.unwrap().unwrap().waiting_for
    else {
        panic!("not waiting for the signal")
    };
    // Nothing runs until the deadline has passed.
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(100)).await;
    let second = builder(&db, 1).register(&def).build().unwrap();
    let run = second.run_handle::<String>(id).unwrap();
    assert_eq!(within("the run", run).await.unwrap(), "email cy: None");
    let info = second.run_info(id).await.unwrap().unwrap();
    let finished = info.finished_at.unwrap();
    assert!(
        finished < deadline + timeout - Duration::from_millis(100),
        "the wait ended {:?} after its stored deadline: a new deadline was taken",
        finished.duration_since(deadline).unwrap_or_default()
    );
    assert_eq!(plans.load(Ordering::SeqCst), 1);
    second.shutdown().await;
}

/// `ctx.sleep` stores its wake time; the run is `Waiting` for it and resumes after it.
async fn a_durable_sleep_waits_holding_nothing(db: TestDb) {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&runs);
    let def = TaskDef::new("nap", move |ctx: TaskContext, _: ()| {
        let r = Arc::clone(&r);
        async move {
            r.fetch_add(1, Ordering::SeqCst);
            let before = SystemTime::now();
            ctx.sleep(Duration::from_millis(600)).await?;
            Ok::<_, String>(before)
        }
    })
    .queue("agents");
    let runner = builder(&db, 1).register(&def).build().unwrap();
    let started = SystemTime::now();
    let run = runner.submit(&def, ()).await.unwrap();
    let id = run.id();
    eventually(LIMIT, "the run to sleep", || async {
        status_of(&runner, id).await == RunStatus::Waiting
    })
    .await;
    let info = runner.run_info(id).await.unwrap().unwrap();
    assert!(matches!(info.waiting_for, Some(WaitingFor::Sleep { .. })));
    within("the run", run).await.unwrap();
    assert!(SystemTime::now().duration_since(started).unwrap() >= Duration::from_millis(600));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "the handler runs again after the wake"
    );
    runner.shutdown().await;
}

/// 100 runs waiting on a concurrency(2) queue do not stop 50 others; then all 100 resume.
async fn waiting_runs_do_not_block_their_queue(db: TestDb) {
    let waiter = TaskDef::new("waiter", |ctx: TaskContext, n: u32| async move {
        let got: Option<u32> = ctx.wait_for_signal("go", DAY).await?;
        Ok::<_, String>(n + got.unwrap_or(1000))
    })
    .queue("agents");
    let quick = TaskDef::new("quick", |_: TaskContext, n: u32| async move {
        Ok::<_, String>(n)
    })
    .queue("agents");
    let runner = builder(&db, 2)
        .register(&waiter)
        .register(&quick)
        .build()
        .unwrap();
    let waiting = runner.submit_many(&waiter, 0..100).await.unwrap();
    let quick_runs = runner.submit_many(&quick, 0..50).await.unwrap();
    let done = within("the quick runs", futures::future::join_all(quick_runs)).await;
    assert_eq!(
        done.into_iter().map(Result::unwrap).sum::<u32>(),
        (0..50).sum::<u32>()
    );
    eventually(LIMIT, "100 runs waiting", || async {
        runner
            .list_runs(RunFilter::new().status(RunStatus::Waiting).limit(200))
            .await
            .unwrap()
            .len()
            == 100
    })
    .await;
    for run in &waiting {
        runner.signal(run.id(), "go", &1_u32).await.unwrap();
    }
    let done = within("the waiting runs", futures::future::join_all(waiting)).await;
    assert_eq!(
        done.into_iter().map(Result::unwrap).sum::<u32>(),
        (1..=100).sum::<u32>()
    );
    runner.shutdown().await;
}

/// A signal to a finished or unknown run is an error; a value of the wrong type is a clear
/// error in the run.
async fn bad_signals_are_clear_errors(db: TestDb) {
    let def = TaskDef::new("typed", |ctx: TaskContext, _: ()| async move {
        let n: Option<u32> = ctx.wait_for_signal("n", DAY).await?;
        Ok::<_, String>(n)
    })
    .queue("agents");
    let runner = builder(&db, 2).register(&def).build().unwrap();
    let run = runner.submit(&def, ()).await.unwrap();
    let id = run.id();
    runner.signal(id, "n", &"not a number").await.unwrap();
    let err = within("the run", run).await.unwrap_err().to_string();
    assert!(
        err.contains("signal `n` #0") && err.contains("u32"),
        "unclear error: {err}"
    );
    match runner.signal(id, "n", &1).await {
        Err(SignalError::RunFinished { status, .. }) => assert_eq!(status, "failed"),
        other => panic!("signal to a finished run: {other:?}"),
    }
    let unknown: taskrunner::RunId = "987654".parse().unwrap();
    let err = runner.signal(unknown, "n", &1).await.unwrap_err();
    assert!(matches!(err, SignalError::UnknownRun { .. }), "{err}");
    assert!(err.to_string().contains("987654"), "{err}");
    let _: fn(StepError) -> String = String::from;
    runner.shutdown().await;
}

/// A worker whose lease expired cannot consume a signal: it stays for the new claim.
async fn a_stale_worker_cannot_consume_a_signal(db: TestDb) {
    let def = TaskDef::new("agent", |_: TaskContext, _: ()| async move {
        Ok::<_, String>(())
    })
    .queue("agents")
    .retry(RetryPolicy::fixed(Duration::from_millis(10)).max_retries(2));
    let submitter = TaskRunner::builder()
        .store(db.store.clone())
        .build()
        .unwrap();
    let id = submitter.submit(&def, ()).await.unwrap().id();
    submitter.signal(id, "go", &7).await.unwrap();
    let store = &db.store;
    let names = vec!["agent".to_owned()];
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
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(store.rescue().await.unwrap(), 1);
    assert_eq!(
        store
            .wait_signal(id, old[0].token, "go", 0, 0)
            .await
            .unwrap(),
        WaitStep::Fenced
    );
    let new = store
        .claim("agents", &names, 1, "fresh", Duration::from_secs(30), None)
        .await
        .unwrap();
    assert_eq!(
        store
            .wait_signal(id, old[0].token, "go", 0, 0)
            .await
            .unwrap(),
        WaitStep::Fenced
    );
    assert_eq!(
        store
            .wait_signal(id, new[0].token, "go", 0, 0)
            .await
            .unwrap(),
        WaitStep::Ready(Some("7".into()))
    );
    // Replayed, not consumed twice; the next wait finds the mailbox empty.
    assert_eq!(
        store
            .wait_signal(id, new[0].token, "go", 0, 0)
            .await
            .unwrap(),
        WaitStep::Ready(Some("7".into()))
    );
    assert_eq!(
        store
            .wait_signal(id, new[0].token, "go", 1, 0)
            .await
            .unwrap(),
        WaitStep::Ready(None)
    );
}

conformance!(
    a_signal_sent_before_the_wait_is_kept,
    two_signals_are_consumed_in_order,
    a_waiting_run_holds_nothing_and_resumes_on_a_signal,
    a_timeout_ends_at_the_stored_deadline_across_a_restart,
    a_durable_sleep_waits_holding_nothing,
    waiting_runs_do_not_block_their_queue,
    bad_signals_are_clear_errors,
    a_stale_worker_cannot_consume_a_signal,
);
