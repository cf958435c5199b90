//! Global budgets on a store, in one process (issue 22, points 1 and 3): an estimate over the
//! whole budget is refused at submit (or failed by the claim, when the submitter did not
//! know the budget) and holds nothing back; a charge above its estimate holds the next
//! claims back until the window has absorbed it; `RunInfo` shows the estimate and the
//! charge. Both backends.
#![cfg(all(feature = "sqlite", feature = "postgres", unix))]

#[macro_use]
mod store_support;

use std::time::{Duration, UNIX_EPOCH};

use store_support::TestDb;
use taskrunner::store::RunInfo;
use taskrunner::store::{RunOptions, StoreError};
use taskrunner::{
    Budget, QueueConfig, RetryPolicy, RunFilter, RunStatus, TaskContext, TaskDef, TaskRunner,
};

const UNITS: u64 = 100;
const WINDOW: Duration = Duration::from_secs(1);

/// Charges its input (unless 0) and returns it.
fn call() -> TaskDef<
    impl Fn(TaskContext, u64) -> futures::future::BoxFuture<'static, Result<u64, String>> + Clone,
> {
    TaskDef::new("call", |ctx: TaskContext, charge: u64| {
        Box::pin(async move {
            if charge > 0 {
                ctx.charge(charge);
            }
            Ok(charge)
        }) as futures::future::BoxFuture<'static, Result<u64, String>>
    })
    .queue("llm")
}

/// Its first attempt charges 30 and fails; its second charges 40.
fn flaky() -> TaskDef<
    impl Fn(TaskContext, u64) -> futures::future::BoxFuture<'static, Result<u64, String>> + Clone,
> {
    TaskDef::new("flaky", |ctx: TaskContext, _: u64| {
        Box::pin(async move {
            if ctx.attempt() == 1 {
                ctx.charge(30);
                return Err("the provider timed out".to_owned());
            }
            ctx.charge(40);
            Ok(40_u64)
        }) as futures::future::BoxFuture<'static, Result<u64, String>>
    })
    .queue("llm")
    .retry(RetryPolicy::fixed(Duration::from_millis(10)).max_retries(1))
}

/// Pauses its queue for 1 s (the provider said 429).
fn pauser() -> TaskDef<
    impl Fn(TaskContext, u64) -> futures::future::BoxFuture<'static, Result<u64, String>> + Clone,
> {
    TaskDef::new("pauser", |ctx: TaskContext, _: u64| {
        Box::pin(async move {
            ctx.pause_queue_for(Duration::from_secs(1));
            Ok(0_u64)
        }) as futures::future::BoxFuture<'static, Result<u64, String>>
    })
    .queue("llm")
}

fn runner(db: &TestDb, budget: bool, register: bool) -> TaskRunner {
    let mut queue = QueueConfig::new().concurrency(4);
    if budget {
        queue = queue.global_budget(Budget::new(UNITS, WINDOW));
    }
    let builder = TaskRunner::builder()
        .queue("llm", queue)
        .store(db.store.clone())
        .poll_interval(Duration::from_millis(20));
    match register {
        true => builder
            .register(&call())
            .register(&flaky())
            .build()
            .unwrap(),
        false => builder.build().unwrap(),
    }
}

/// A submit whose estimate is over the whole global budget is refused with a message that
/// names the queue and what to do, and stores nothing; at the budget it is taken.
async fn an_estimate_over_the_budget_is_refused_at_submit(db: TestDb) {
    let runner = runner(&db, true, true);
    let def = call();
    let Err(err) = runner
        .submit_with(&def, 0, RunOptions::new().cost(UNITS + 1))
        .await
    else {
        panic!("an estimate over the whole budget is refused");
    };
    assert!(
        matches!(
            err,
            StoreError::OverBudget {
                cost: 101,
                units: 100,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    for part in ["`llm`", "101", "RunOptions::cost", "global_budget"] {
        assert!(message.contains(part), "{message}");
    }
    assert!(runner.list_runs(RunFilter::new()).await.unwrap().is_empty());
    let run = runner
        .submit_with(&def, 0, RunOptions::new().cost(UNITS))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .unwrap()
        .unwrap();
    runner.shutdown().await;
}

/// A run submitted over the budget by a process that did not declare it fails at its claim
/// with a message saying why, and the run behind it is not held back.
async fn an_estimate_over_the_budget_fails_at_the_claim(db: TestDb) {
    let submitter = runner(&db, false, false);
    let def = call();
    let over = submitter
        .submit_with(&def, 0, RunOptions::new().cost(UNITS * 5).priority(9))
        .await
        .unwrap();
    let behind = submitter
        .submit_with(&def, 7, RunOptions::new().cost(10))
        .await
        .unwrap();
    let (over_id, behind_id) = (over.id(), behind.id());
    let worker = runner(&db, true, true);
    let ran = tokio::time::timeout(Duration::from_secs(20), behind)
        .await
        .unwrap();
    assert_eq!(ran.unwrap(), 7);
    let failed = tokio::time::timeout(Duration::from_secs(20), over)
        .await
        .unwrap();
    let message = failed.unwrap_err().to_string();
    assert!(
        message.contains("global budget of queue `llm`"),
        "{message}"
    );
    let info = worker.run_info(over_id).await.unwrap().unwrap();
    assert_eq!(info.status, RunStatus::Failed);
    assert_eq!((info.attempts, info.charged), (0, None));
    let info = worker.run_info(behind_id).await.unwrap().unwrap();
    assert_eq!((info.cost, info.charged), (Some(10), Some(7)));
    worker.shutdown().await;
    submitter.shutdown().await;
}

/// A run estimated at 50 charges 150: the window is over, so the next run (estimated at
/// 10) is claimed only once the charge has aged out of it, a window after the first started.
async fn a_charge_over_the_estimate_holds_the_next_claims_back(db: TestDb) {
    let runner = runner(&db, true, true);
    let def = call();
    let first = runner
        .submit_with(&def, 150, RunOptions::new().cost(50))
        .await
        .unwrap();
    let first_id = first.id();
    tokio::time::timeout(Duration::from_secs(20), first)
        .await
        .unwrap()
        .unwrap();
    let next = runner
        .submit_with(&def, 0, RunOptions::new().cost(10))
        .await
        .unwrap();
    let next_id = next.id();
    tokio::time::timeout(Duration::from_secs(20), next)
        .await
        .unwrap()
        .unwrap();
    let first = runner.run_info(first_id).await.unwrap().unwrap();
    let next = runner.run_info(next_id).await.unwrap().unwrap();
    assert_eq!((first.cost, first.charged), (Some(50), Some(150)));
    assert_eq!(
        (next.cost, next.charged),
        (Some(10), Some(10)),
        "the estimate stands"
    );
    let start = |i: &taskrunner::store::RunInfo| {
        i.started_at
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    let gap = start(&next) - start(&first);
    assert!(
        gap >= WINDOW.as_millis(),
        "the next run started {gap} ms after the overshoot"
    );
    runner.shutdown().await;
}

/// Without a global budget, the estimate and the handler's charge are still shown; a run
/// that charges nothing shows no charge.
async fn run_info_shows_the_estimate_and_the_charge(db: TestDb) {
    let runner = runner(&db, false, true);
    let def = call();
    let charged = runner
        .submit_with(&def, 42, RunOptions::new().cost(30))
        .await
        .unwrap();
    let plain = runner.submit(&def, 0).await.unwrap();
    let (charged_id, plain_id) = (charged.id(), plain.id());
    tokio::time::timeout(Duration::from_secs(20), charged)
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), plain)
        .await
        .unwrap()
        .unwrap();
    let info = runner.run_info(charged_id).await.unwrap().unwrap();
    assert_eq!((info.cost, info.charged), (Some(30), Some(42)));
    let info = runner.run_info(plain_id).await.unwrap().unwrap();
    assert_eq!((info.cost, info.charged), (None, None));
    runner.shutdown().await;
}

/// A charge made just before a durable sleep is stored before the run parks: written after
/// the park, it found the run no longer running and was dropped (the window kept the
/// estimate). The run charges 42 in a step and sleeps; the replay after the sleep takes the
/// step's stored output and charges nothing more.
async fn a_charge_before_a_wait_is_kept(db: TestDb) {
    let runner = runner(&db, false, true);
    let def = TaskDef::new("nap", |ctx: TaskContext, _: u64| {
        Box::pin(async move {
            // The model call is a step: the replay after the sleep does not call it again.
            let c = ctx.clone();
            let _: u64 = ctx
                .step("call", move || async move {
                    c.charge(42);
                    Ok::<_, String>(42)
                })
                .await?;
            ctx.sleep(Duration::from_millis(50)).await?;
            Ok(0u64)
        }) as futures::future::BoxFuture<'static, Result<u64, String>>
    })
    .queue("llm");
    let runner = {
        runner.shutdown().await;
        TaskRunner::builder()
            .queue("llm", QueueConfig::new().concurrency(4))
            .store(db.store.clone())
            .poll_interval(Duration::from_millis(20))
            .register(&def)
            .build()
            .unwrap()
    };
    let run = runner
        .submit_with(&def, 0, RunOptions::new().cost(30))
        .await
        .unwrap();
    let id = run.id();
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .unwrap()
        .unwrap();
    let info = runner.run_info(id).await.unwrap().unwrap();
    assert_eq!((info.cost, info.charged), (Some(30), Some(42)));
    runner.shutdown().await;
}

fn start(info: &RunInfo) -> u128 {
    let started = info.started_at.expect("the run started");
    started.duration_since(UNIX_EPOCH).unwrap().as_millis()
}

/// Claim order is kept: with 80 of 100 charged, the next run (estimated at 50) does not
/// fit, and the smaller one behind it (10, which would) waits too; both go once the window
/// has let the 80 go.
async fn a_large_run_at_the_head_holds_smaller_ones_back(db: TestDb) {
    let submitter = runner(&db, true, false);
    let def = call();
    let mut ids = Vec::new();
    let mut handles = Vec::new();
    for (charge, cost, priority) in [(80, 80, 9), (50, 50, 5), (10, 10, 1)] {
        let options = RunOptions::new().cost(cost).priority(priority);
        let handle = submitter.submit_with(&def, charge, options).await.unwrap();
        ids.push(handle.id());
        handles.push(handle);
    }
    let worker = runner(&db, true, true);
    for handle in handles {
        tokio::time::timeout(Duration::from_secs(20), handle)
            .await
            .unwrap()
            .unwrap();
    }
    let mut infos = Vec::new();
    for id in ids {
        infos.push(worker.run_info(id).await.unwrap().unwrap());
    }
    let (large, big, small) = (start(&infos[0]), start(&infos[1]), start(&infos[2]));
    assert!(
        big >= large + WINDOW.as_millis(),
        "the 50 started {} ms after the 80",
        big - large
    );
    assert!(
        small >= big,
        "the 10 started {} ms before the 50 ahead of it",
        big - small
    );
    worker.shutdown().await;
    submitter.shutdown().await;
}

/// Each attempt of a run retried in the process that claimed it is charged: 30 (replacing
/// the estimate of 50), then 40. Both count in the window: a run estimated at 40 waits until
/// the first attempt's 30 has aged out.
async fn each_attempt_of_a_retried_run_is_charged(db: TestDb) {
    let runner = runner(&db, true, true);
    let flaky = runner
        .submit_with(&flaky(), 0, RunOptions::new().cost(50))
        .await
        .unwrap();
    let flaky_id = flaky.id();
    tokio::time::timeout(Duration::from_secs(20), flaky)
        .await
        .unwrap()
        .unwrap();
    let next = runner
        .submit_with(&call(), 0, RunOptions::new().cost(40))
        .await
        .unwrap();
    let next_id = next.id();
    tokio::time::timeout(Duration::from_secs(20), next)
        .await
        .unwrap()
        .unwrap();
    let flaky = runner.run_info(flaky_id).await.unwrap().unwrap();
    assert_eq!((flaky.attempts, flaky.charged), (2, Some(70)));
    let next = runner.run_info(next_id).await.unwrap().unwrap();
    let gap = start(&next) - start(&flaky);
    assert!(
        gap >= WINDOW.as_millis(),
        "the 40 started {gap} ms after 70 were charged"
    );
    runner.shutdown().await;
}

/// A worker that polls only every 30 s claims again as the stored pause ends, not a poll
/// later: its claim loop waits for the pause's end.
async fn a_paused_queue_is_claimed_again_when_its_pause_ends(db: TestDb) {
    let runner = TaskRunner::builder()
        .queue("llm", QueueConfig::new())
        .store(db.store.clone())
        .poll_interval(Duration::from_secs(30))
        .register(&call())
        .register(&pauser())
        .build()
        .unwrap();
    let paused = runner.submit(&pauser(), 0).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), paused)
        .await
        .unwrap()
        .unwrap();
    let until = db.store.queue_paused_until("llm").await.unwrap().unwrap();
    let until = until.duration_since(UNIX_EPOCH).unwrap().as_millis();
    let next = runner.submit(&call(), 5).await.unwrap();
    let next_id = next.id();
    tokio::time::timeout(Duration::from_secs(20), next)
        .await
        .unwrap()
        .unwrap();
    let started = start(&runner.run_info(next_id).await.unwrap().unwrap());
    assert!(
        started >= until,
        "claimed {} ms before the pause's end",
        until - started
    );
    assert!(
        started < until + 5_000,
        "claimed {} ms after the pause's end",
        started - until
    );
    runner.shutdown().await;
}

conformance!(
    a_paused_queue_is_claimed_again_when_its_pause_ends,
    a_large_run_at_the_head_holds_smaller_ones_back,
    each_attempt_of_a_retried_run_is_charged,
    an_estimate_over_the_budget_is_refused_at_submit,
    an_estimate_over_the_budget_fails_at_the_claim,
    a_charge_over_the_estimate_holds_the_next_claims_back,
    run_info_shows_the_estimate_and_the_charge,
    a_charge_before_a_wait_is_kept,
);
