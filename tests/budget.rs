//! `QueueConfig::budget` and `key_budget`: a task starts when its `Task::cost` estimate fits
//! every budget that applies, reserves it at its start, and `TaskContext::charge` replaces
//! it with the actual at once. On tokio's paused clock: every instant below is exact.

mod budget_support;
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use budget_support::{call, runner, secs, Log, PER};
use common::settle;
use taskrunner::{
    Budget, ConfigError, EnqueueError, QueueConfig, RetryPolicy, Task, TaskContext, TaskRunner,
    TaskStatus, WaitReason,
};
use tokio::time::Instant;

fn starts(log: &Log) -> Vec<(String, Duration)> {
    log.lock().unwrap().clone()
}

#[tokio::test(start_paused = true)]
async fn a_task_waits_for_room_holding_no_slot_and_starts_when_the_window_frees(
) -> Result<(), Box<dyn std::error::Error>> {
    let runner = runner(
        QueueConfig::new()
            .concurrency(4)
            .budget(Budget::new(100, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    let a = runner.enqueue_task(call("a", &log, t0, secs(1), None).cost(70))?;
    let b = runner.enqueue_task(call("b", &log, t0, secs(1), None).cost(40))?;
    settle().await;
    let stats = runner.queue_stats("llm").unwrap();
    assert_eq!((stats.running, stats.pending), (1, 1), "b holds no slot");
    assert_eq!(stats.budget_used, Some(70));
    assert_eq!(stats.waiting_for_budget, 1);
    assert_eq!(stats.waiting_for, Some(WaitReason::Budget));
    assert_eq!(
        runner.get_status(b.id()).unwrap().waiting_for,
        Some(WaitReason::Budget)
    );
    a.await?;
    b.await?;
    assert_eq!(starts(&log), vec![("a".into(), secs(0)), ("b".into(), PER)]);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_smaller_charge_frees_room_at_once_and_a_larger_one_is_absorbed_by_the_next_starts(
) -> Result<(), Box<dyn std::error::Error>> {
    let runner = runner(
        QueueConfig::new()
            .concurrency(4)
            .budget(Budget::new(100, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    // a estimates 90, charges 20 after 1 s: b (60) starts then, not at 10 s.
    let a = runner.enqueue_task(call("a", &log, t0, secs(1), Some(20)).cost(90))?;
    // b charges 110 after 1 s: 130 in the window, 30 over (the documented overshoot).
    let b = runner.enqueue_task(call("b", &log, t0, secs(1), Some(110)).cost(60))?;
    let c = runner.enqueue_task(call("c", &log, t0, secs(1), None).cost(30))?;
    let b_id = b.id();
    a.await?;
    b.await?;
    assert_eq!(runner.queue_stats("llm").unwrap().budget_used, Some(130));
    c.await?;
    // c (30) did not fit next to a (20 once charged) and b (60 reserved) at 1 s, and after
    // b's overshoot waits until b's 110 (counted at 1 s) has left, at 11 s.
    assert_eq!(
        starts(&log),
        vec![
            ("a".into(), secs(0)),
            ("b".into(), secs(1)),
            ("c".into(), secs(11))
        ]
    );
    let info = runner.get_status(b_id).unwrap();
    assert_eq!((info.cost, info.charged), (Some(60), Some(110)));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_large_task_at_the_head_is_not_starved_by_smaller_ones_behind_it(
) -> Result<(), Box<dyn std::error::Error>> {
    let runner = runner(
        QueueConfig::new()
            .concurrency(8)
            .budget(Budget::new(100, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    let first = runner.enqueue_task(call("first", &log, t0, secs(1), None).cost(50))?;
    let big = runner.enqueue_task(call("big", &log, t0, secs(1), None).cost(100))?;
    // Small ones that would fit next to `first` wait behind `big`.
    let small: Vec<_> = (0..3)
        .map(|i| runner.enqueue_task(call(&format!("s{i}"), &log, t0, secs(1), None).cost(10)))
        .collect::<Result<_, _>>()?;
    first.await?;
    big.await?;
    for s in small {
        s.await?;
    }
    let log = starts(&log);
    assert_eq!(log[0], ("first".into(), secs(0)));
    assert_eq!(log[1], ("big".into(), PER));
    assert!(log[2..].iter().all(|(_, at)| *at == 2 * PER), "{log:?}");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_higher_priority_task_that_fits_goes_ahead_of_a_waiting_large_one(
) -> Result<(), Box<dyn std::error::Error>> {
    let runner = runner(
        QueueConfig::new()
            .concurrency(8)
            .budget(Budget::new(100, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    let first = runner.enqueue_task(call("first", &log, t0, secs(1), None).cost(50))?;
    let big = runner.enqueue_task(call("big", &log, t0, secs(1), None).cost(100))?;
    settle().await;
    let at = t0.elapsed();
    let urgent =
        runner.enqueue_task(call("urgent", &log, t0, secs(1), None).cost(10).priority(5))?;
    urgent.await?;
    first.await?;
    big.await?;
    // big waits for first's 50 and urgent's 10 to leave the window.
    assert_eq!(
        starts(&log),
        vec![
            ("first".into(), secs(0)),
            ("urgent".into(), at),
            ("big".into(), PER + at)
        ]
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_key_over_its_budget_holds_back_only_that_key() -> Result<(), Box<dyn std::error::Error>>
{
    let config = QueueConfig::new()
        .concurrency(8)
        .budget(Budget::new(1_000, PER))
        .key_budget(Budget::new(100, PER));
    let runner = runner(config);
    let (log, t0) = (Log::default(), Instant::now());
    let a1 = runner.enqueue_task(
        call("a1", &log, t0, secs(1), None)
            .cost(80)
            .concurrency_key("a"),
    )?;
    let a2 = runner.enqueue_task(
        call("a2", &log, t0, secs(1), None)
            .cost(80)
            .concurrency_key("a"),
    )?;
    let b1 = runner.enqueue_task(
        call("b1", &log, t0, secs(1), None)
            .cost(80)
            .concurrency_key("b"),
    )?;
    let free = runner.enqueue_task(call("free", &log, t0, secs(1), None).cost(80))?;
    settle().await;
    assert_eq!(
        runner.get_status(a2.id()).unwrap().waiting_for,
        Some(WaitReason::Budget)
    );
    assert_eq!(runner.queue_stats("llm").unwrap().waiting_for_budget, 1);
    for h in [a1, a2, b1, free] {
        h.await?;
    }
    let mut log = starts(&log);
    log.sort();
    assert_eq!(
        log,
        vec![
            ("a1".into(), secs(0)),
            ("a2".into(), PER),
            ("b1".into(), secs(0)),
            ("free".into(), secs(0))
        ]
    );
    assert_eq!(runner.queue_stats("llm").unwrap().budget_used, Some(80));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn every_budget_that_applies_must_fit() -> Result<(), Box<dyn std::error::Error>> {
    let config = QueueConfig::new()
        .concurrency(8)
        .budget(Budget::new(100, PER))
        .key_budget(Budget::new(100, PER));
    let runner = runner(config);
    let (log, t0) = (Log::default(), Instant::now());
    let a = runner.enqueue_task(
        call("a", &log, t0, secs(1), None)
            .cost(60)
            .concurrency_key("a"),
    )?;
    let b = runner.enqueue_task(
        call("b", &log, t0, secs(1), None)
            .cost(60)
            .concurrency_key("b"),
    )?;
    a.await?;
    b.await?;
    // b's key has room, the queue has not.
    assert_eq!(starts(&log), vec![("a".into(), secs(0)), ("b".into(), PER)]);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn retries_charge_again_and_a_cancel_keeps_what_was_reserved(
) -> Result<(), Box<dyn std::error::Error>> {
    let runner = runner(
        QueueConfig::new()
            .concurrency(4)
            .budget(Budget::new(1_000, PER)),
    );
    let attempts = Arc::new(Mutex::new(0));
    let seen = Arc::clone(&attempts);
    let flaky = Task::new("flaky", move |ctx: TaskContext| {
        *seen.lock().unwrap() += 1;
        async move {
            ctx.charge(30);
            if ctx.attempt() == 1 {
                Err("429".to_owned())
            } else {
                Ok(())
            }
        }
    })
    .queue("llm")
    .cost(100)
    .retry(RetryPolicy::fixed(secs(1)));
    let id = runner.enqueue_task(flaky)?.id();
    tokio::time::sleep(secs(2)).await;
    let info = runner.get_status(id).unwrap();
    assert_eq!(
        (info.status, info.attempts, info.charged),
        (TaskStatus::Completed, 2, Some(60))
    );
    assert_eq!(runner.queue_stats("llm").unwrap().budget_used, Some(60));

    // Cancelled while running: its reservation stays.
    let (log, t0) = (Log::default(), Instant::now());
    let hang = runner.enqueue_task(call("hang", &log, t0, secs(60), None).cost(200))?;
    settle().await;
    assert!(runner.cancel(hang.id()));
    settle().await;
    assert_eq!(runner.queue_stats("llm").unwrap().budget_used, Some(260));
    // Cancelled before it started: nothing reserved.
    runner.pause_queue("llm")?;
    let never = runner.enqueue_task(call("never", &log, t0, secs(1), None).cost(500))?;
    assert!(runner.cancel(never.id()));
    runner.resume_queue("llm")?;
    settle().await;
    assert_eq!(runner.queue_stats("llm").unwrap().budget_used, Some(260));
    assert_eq!(runner.get_status(never.id()).unwrap().charged, None);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn an_estimate_over_a_whole_budget_is_refused_at_enqueue(
) -> Result<(), Box<dyn std::error::Error>> {
    let config = QueueConfig::new()
        .budget(Budget::new(1_000, PER))
        .key_budget(Budget::new(100, PER));
    let runner = runner(config);
    let (log, t0) = (Log::default(), Instant::now());
    let err = runner
        .enqueue_task(call("huge", &log, t0, secs(1), None).cost(1_001))
        .unwrap_err();
    assert!(
        matches!(
            &err,
            EnqueueError::OverBudget {
                cost: 1_001,
                units: 1_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("lower its Task::cost"), "{err}");
    let err = runner
        .enqueue_task(
            call("keyed", &log, t0, secs(1), None)
                .cost(101)
                .concurrency_key("k"),
        )
        .unwrap_err();
    assert!(
        matches!(err, EnqueueError::OverBudget { units: 100, .. }),
        "{err:?}"
    );
    // Without a key the key budget does not apply.
    runner
        .enqueue_task(call("unkeyed", &log, t0, secs(1), None).cost(101))?
        .await?;
    Ok(())
}

#[test]
fn zero_units_and_a_zero_window_are_config_errors() {
    for (config, setting) in [
        (QueueConfig::new().budget(Budget::new(0, PER)), "budget"),
        (
            QueueConfig::new().key_budget(Budget::new(10, Duration::ZERO)),
            "key_budget",
        ),
        (
            QueueConfig::new().budget(Budget::new(10, secs(400 * 86_400))),
            "budget",
        ),
    ] {
        let err = TaskRunner::builder()
            .queue("llm", config)
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, ConfigError::InvalidSetting { setting: s, .. } if *s == setting),
            "{err:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_task_without_an_estimate_reserves_nothing_until_it_charges(
) -> Result<(), Box<dyn std::error::Error>> {
    let runner = runner(
        QueueConfig::new()
            .concurrency(4)
            .budget(Budget::new(100, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    let a = runner.enqueue_task(call("a", &log, t0, secs(1), Some(100)))?;
    let b = runner.enqueue_task(call("b", &log, t0, secs(1), None).cost(1))?;
    a.await?;
    b.await?;
    assert_eq!(
        starts(&log),
        vec![("a".into(), secs(0)), ("b".into(), secs(0))]
    );
    let c = runner.enqueue_task(call("c", &log, t0, secs(1), None).cost(1))?;
    c.await?;
    assert_eq!(
        starts(&log)[2],
        ("c".into(), PER),
        "a's 100 counted from its start"
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_waiting_large_task_lets_the_smaller_ones_behind_it_start_at_once(
) -> Result<(), Box<dyn std::error::Error>> {
    let runner = runner(
        QueueConfig::new()
            .concurrency(8)
            .budget(Budget::new(100, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    let first = runner.enqueue_task(call("first", &log, t0, secs(5), None).cost(50))?;
    let big = runner.enqueue_task(call("big", &log, t0, secs(1), None).cost(100))?;
    let small = runner.enqueue_task(call("small", &log, t0, secs(1), None).cost(10))?;
    settle().await;
    assert_eq!(runner.queue_stats("llm").unwrap().waiting_for_budget, 2);
    let at = t0.elapsed();
    assert!(runner.cancel(big.id()));
    settle().await;
    assert_eq!(
        starts(&log),
        vec![("first".into(), secs(0)), ("small".into(), at)]
    );
    first.await?;
    small.await?;
    Ok(())
}
