//! An adversarial second read of `QueueConfig::budget` and `key_budget`: the corners the
//! first tests do not reach (groups, cancels and priority moves of a waiting head, many
//! keys, stale contexts, charges twice, shutdown, pause, timeouts, panics, overflow, every
//! enqueue path). On tokio's paused clock: every instant below is exact.

mod budget_support;
mod common;

use std::sync::Arc;
use std::time::Duration;

use budget_support::{call, runner, secs, Log, PER};
use common::settle;
use taskrunner::{
    Budget, ConfigError, EnqueueError, QueueConfig, RetryPolicy, Task, TaskContext, TaskError,
    TaskRunner, TaskStatus, WaitReason,
};
use tokio::time::Instant;

type Res = Result<(), Box<dyn std::error::Error>>;

/// When `label` started (its first attempt), if it did.
fn start_of(log: &Log, label: &str) -> Option<Duration> {
    let log = log.lock().unwrap();
    log.iter().find(|(l, _)| l == label).map(|(_, at)| *at)
}

fn used(runner: &TaskRunner) -> u64 {
    runner.queue_stats("llm").unwrap().budget_used.unwrap()
}

// ===== order: the head's reservation, and what may bypass it =====

#[tokio::test(start_paused = true)]
async fn a_group_held_task_at_the_head_of_its_key_lets_no_task_behind_it_skip_the_budget() -> Res {
    let runner = runner(
        QueueConfig::new()
            .concurrency(8)
            .key_concurrency(8)
            .budget(Budget::new(100, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    let group = runner.group().concurrency(1);
    // The group's one place is taken for 30 s (no estimate: it reserves nothing).
    let g0 = group.enqueue_task(call("g0", &log, t0, secs(30), None))?;
    let big = runner.enqueue_task(call("big", &log, t0, secs(1), None).cost(90))?;
    settle().await;
    assert_eq!(used(&runner), 90);
    runner.pause_queue("llm")?;
    // Key k: first a group member (it fits: no estimate, but its group is full), then a
    // task of 50 that does not fit next to big's 90 until big's 90 leaves, at 10 s.
    let g1 = group.enqueue_task(call("g1", &log, t0, secs(1), None).concurrency_key("k"))?;
    let over = runner.enqueue_task(
        call("over", &log, t0, secs(1), None)
            .cost(50)
            .concurrency_key("k"),
    )?;
    runner.resume_queue("llm")?;
    settle().await;
    assert!(
        used(&runner) <= 100,
        "{} charged in a window of a budget of 100 (nothing charged over its estimate)",
        used(&runner)
    );
    assert_eq!(
        over.status(),
        TaskStatus::Pending,
        "50 does not fit next to 90"
    );
    over.await?;
    big.await?;
    g0.await?;
    g1.await?;
    assert_eq!(start_of(&log, "over"), Some(PER));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_large_waiting_head_lets_the_small_tasks_behind_it_start_at_once() -> Res {
    let runner = runner(
        QueueConfig::new()
            .concurrency(8)
            .budget(Budget::new(100, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    let first = runner.enqueue_task(call("first", &log, t0, secs(30), None).cost(50))?;
    let big = runner.enqueue_task(call("big", &log, t0, secs(1), None).cost(100))?;
    let small = runner.enqueue_task(call("small", &log, t0, secs(1), None).cost(10))?;
    tokio::time::sleep(secs(1)).await;
    assert_eq!(small.status(), TaskStatus::Pending, "behind the large head");
    assert!(big.cancel());
    settle().await;
    assert_eq!(
        start_of(&log, "small"),
        Some(secs(1)),
        "the head that held the window is gone: 10 fits next to 50 now"
    );
    small.await?;
    first.await?;
    assert!(matches!(big.await, Err(TaskError::Cancelled)));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn raising_a_small_task_above_the_large_waiting_head_lets_it_start_at_once() -> Res {
    let runner = runner(
        QueueConfig::new()
            .concurrency(8)
            .budget(Budget::new(100, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    let first = runner.enqueue_task(call("first", &log, t0, secs(30), None).cost(50))?;
    let big = runner.enqueue_task(call("big", &log, t0, secs(1), None).cost(100))?;
    let small = runner.enqueue_task(call("small", &log, t0, secs(1), None).cost(10))?;
    tokio::time::sleep(secs(1)).await;
    assert!(runner.set_priority(small.id(), 5));
    settle().await;
    assert_eq!(
        start_of(&log, "small"),
        Some(secs(1)),
        "ahead of the large head now, and it fits: as if it had been enqueued so"
    );
    small.await?;
    first.await?;
    big.await?;
    assert_eq!(
        start_of(&log, "big"),
        Some(secs(11)),
        "after first's and small's"
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_small_keyed_task_behind_a_large_unkeyed_head_waits_and_one_above_it_goes() -> Res {
    let runner = runner(
        QueueConfig::new()
            .concurrency(8)
            .key_concurrency(2)
            .budget(Budget::new(100, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    let first = runner.enqueue_task(call("first", &log, t0, secs(1), None).cost(50))?;
    let big = runner.enqueue_task(call("big", &log, t0, secs(1), None).cost(100))?;
    let low = runner.enqueue_task(
        call("low", &log, t0, secs(1), None)
            .cost(10)
            .concurrency_key("k")
            .priority(-1),
    )?;
    let high = runner.enqueue_task(
        call("high", &log, t0, secs(1), None)
            .cost(10)
            .concurrency_key("k")
            .priority(1),
    )?;
    for h in [first, big, low, high] {
        h.await?;
    }
    assert_eq!(start_of(&log, "high"), Some(secs(0)));
    assert_eq!(
        start_of(&log, "big"),
        Some(PER),
        "first's 50 and high's 10 left"
    );
    assert_eq!(
        start_of(&log, "low"),
        Some(2 * PER),
        "behind big, by priority"
    );
    Ok(())
}

// ===== the ledgers =====

#[tokio::test(start_paused = true)]
async fn a_late_charge_of_a_task_whose_key_ledger_was_swept_corrects_no_other_task() -> Res {
    let runner = runner(
        QueueConfig::new()
            .concurrency(200)
            .key_budget(Budget::new(100, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    // a runs 15 s, then charges 0: after its start has left its window.
    let a = runner.enqueue_task(
        call("a", &log, t0, secs(15), Some(0))
            .cost(100)
            .concurrency_key("k"),
    )?;
    tokio::time::sleep(secs(11)).await;
    // 63 other keys: 64 key ledgers, so the empty ones (k's) are swept.
    let crowd: Vec<_> = (0..63)
        .map(|i| {
            runner.enqueue_task(
                call(&format!("x{i}"), &log, t0, secs(1), None)
                    .cost(1)
                    .concurrency_key(format!("x{i}")),
            )
        })
        .collect::<Result<_, _>>()?;
    tokio::time::sleep(secs(1)).await;
    // b reserves 100 of k's budget at 12 s and charges nothing: its estimate stands.
    let b = runner.enqueue_task(
        call("b", &log, t0, secs(20), None)
            .cost(100)
            .concurrency_key("k"),
    )?;
    tokio::time::sleep(secs(4)).await;
    // a has charged 0 (at 15 s), for itself only. c waits for b's 100 to leave, at 22 s.
    let c = runner.enqueue_task(
        call("c", &log, t0, secs(1), None)
            .cost(100)
            .concurrency_key("k"),
    )?;
    settle().await;
    assert_eq!(
        c.status(),
        TaskStatus::Pending,
        "b's 100 is in k's window: a's late charge must not replace it"
    );
    c.await?;
    assert_eq!(start_of(&log, "c"), Some(secs(22)));
    a.await?;
    b.await?;
    for h in crowd {
        h.await?;
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_context_kept_from_an_earlier_attempt_does_not_charge_the_next_attempt() -> Res {
    let runner = runner(
        QueueConfig::new()
            .concurrency(8)
            .budget(Budget::new(200, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    // Attempt 1 leaves a clone of its context behind that charges 0 at 5 s, and fails;
    // attempt 2 starts at 1 s, reserves 100 and runs 20 s without charging.
    let flaky = Task::new("flaky", |ctx: TaskContext| async move {
        if ctx.attempt() == 1 {
            let stale = ctx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(secs(5)).await;
                stale.charge(0);
            });
            return Err("429".to_owned());
        }
        tokio::time::sleep(secs(20)).await;
        Ok(())
    })
    .queue("llm")
    .cost(100)
    .retry(RetryPolicy::fixed(secs(1)));
    let flaky = runner.enqueue_task(flaky)?;
    tokio::time::sleep(secs(6)).await;
    let info = flaky.info();
    assert_eq!((info.status, info.attempts), (TaskStatus::Running, 2));
    assert_eq!(
        used(&runner),
        200,
        "attempt 1's 100 and attempt 2's 100: attempt 1's stale charge of 0 came after it ended"
    );
    let c = runner.enqueue_task(call("c", &log, t0, secs(1), None).cost(100))?;
    settle().await;
    assert_eq!(c.status(), TaskStatus::Pending);
    flaky.await?;
    c.await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_second_larger_charge_overshoots_by_at_most_its_rise_over_the_least_charged() -> Res {
    let runner = runner(
        QueueConfig::new()
            .concurrency(8)
            .budget(Budget::new(100, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    let twice = Task::new("twice", |ctx: TaskContext| async move {
        ctx.charge(10);
        tokio::time::sleep(secs(1)).await;
        ctx.charge(90); // still within its estimate of 90
        Ok::<_, String>(())
    })
    .queue("llm")
    .cost(90);
    let twice = runner.enqueue_task(twice)?;
    let next = runner.enqueue_task(call("next", &log, t0, secs(1), None).cost(80))?;
    twice.await?;
    next.await?;
    // `twice` first charged 10 (so `next`'s 80 fitted), then 90: the documented overshoot
    // is its rise over the least it had charged, 80, so the window holds at most 180.
    assert_eq!(used(&runner), 170, "90 charged by twice and 80 by next");
    assert!(
        used(&runner) <= 100 + (90 - 10),
        "over the documented overshoot"
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_charge_over_the_estimate_also_holds_back_tasks_without_an_estimate() -> Res {
    let runner = runner(
        QueueConfig::new()
            .concurrency(8)
            .budget(Budget::new(100, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    let a = runner.enqueue_task(call("a", &log, t0, secs(1), Some(150)).cost(50))?;
    a.await?;
    assert_eq!(used(&runner), 150, "the overshoot counts in full");
    // Without an estimate it reserves 0, but the window is over: it waits for a's 150 to
    // leave (the next starts absorb the overshoot).
    let free = runner.enqueue_task(call("free", &log, t0, secs(1), None))?;
    free.await?;
    assert_eq!(start_of(&log, "free"), Some(PER));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn charges_of_zero_of_the_maximum_and_without_any_budget_never_panic() -> Res {
    let runner = TaskRunner::builder()
        .queue(
            "llm",
            QueueConfig::new()
                .concurrency(8)
                .budget(Budget::new(u64::MAX, PER)),
        )
        .queue(
            "keyed",
            QueueConfig::new().key_budget(Budget::new(100, PER)),
        )
        .queue("plain", QueueConfig::new().concurrency(2))
        .build()?;
    let (log, t0) = (Log::default(), Instant::now());
    // Twice the maximum: the queue's ledger counts it past u64 without overflow.
    let max1 =
        runner.enqueue_task(call("max1", &log, t0, secs(1), Some(u64::MAX)).cost(u64::MAX))?;
    let max2 = runner.enqueue_task(call("max2", &log, t0, secs(1), Some(u64::MAX)))?;
    let zero = runner.enqueue_task(call("zero", &log, t0, secs(1), Some(0)).cost(0))?;
    let (max1_id, zero_id) = (max1.id(), zero.id());
    max1.await?;
    max2.await?;
    zero.await?;
    assert_eq!(used(&runner), u64::MAX, "shown saturated");
    assert!(runner.get_status(max1_id).unwrap().charged >= Some(u64::MAX - 1));
    assert_eq!(runner.get_status(zero_id).unwrap().charged, Some(0));
    // A key charged the maximum, then a keyed task with no estimate waits for it to leave.
    let k1 = runner.enqueue_task(
        call("k1", &log, t0, secs(1), Some(u64::MAX))
            .queue("keyed")
            .concurrency_key("k"),
    )?;
    k1.await?;
    let k2 = runner.enqueue_task(
        call("k2", &log, t0, secs(1), None)
            .queue("keyed")
            .concurrency_key("k"),
    )?;
    k2.await?;
    assert_eq!(start_of(&log, "k2"), Some(secs(1) + PER));
    // No budget at all: a charge does nothing, and nothing is shown.
    let plain = Task::new("plain", |ctx: TaskContext| async move {
        ctx.charge(500);
        ctx.charge(0);
        Ok::<_, String>(())
    })
    .queue("plain")
    .cost(7);
    let plain = runner.enqueue_task(plain)?;
    let id = plain.id();
    plain.await?;
    let info = runner.get_status(id).unwrap();
    assert_eq!((info.cost, info.charged), (Some(7), None));
    assert_eq!(runner.queue_stats("plain").unwrap().budget_used, None);
    Ok(())
}

// ===== liveness: the timer, pause, shutdown =====

#[tokio::test(start_paused = true)]
async fn the_timer_alone_starts_a_waiting_task_when_the_window_frees() -> Res {
    let runner = runner(
        QueueConfig::new()
            .concurrency(8)
            .budget(Budget::new(100, PER))
            .key_budget(Budget::new(50, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    // Both still run when the window frees: no end of an attempt wakes the queue.
    let hog = runner.enqueue_task(call("hog", &log, t0, secs(60), None).cost(60))?;
    let keyed = runner.enqueue_task(
        call("keyed", &log, t0, secs(60), None)
            .cost(40)
            .concurrency_key("k"),
    )?;
    tokio::time::sleep(secs(3)).await;
    let next = runner.enqueue_task(call("next", &log, t0, secs(1), None).cost(100).priority(1))?;
    let next_k = runner.enqueue_task(
        call("next_k", &log, t0, secs(1), None)
            .cost(20)
            .concurrency_key("k"),
    )?;
    next.await?;
    next_k.await?;
    assert_eq!(start_of(&log, "next"), Some(PER));
    // k's 40 left at 10 s: next_k fits its key then, but not the queue (next took 100)
    // until 20 s.
    assert_eq!(start_of(&log, "next_k"), Some(2 * PER));
    hog.cancel();
    keyed.cancel();
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_retry_whose_backoff_ends_in_a_full_window_waits_for_it() -> Res {
    let runner = runner(
        QueueConfig::new()
            .concurrency(8)
            .budget(Budget::new(100, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    let starts = Arc::clone(&log);
    let flaky = Task::new("flaky", move |ctx: TaskContext| {
        starts
            .lock()
            .unwrap()
            .push((format!("flaky{}", ctx.attempt()), t0.elapsed()));
        async move {
            if ctx.attempt() == 1 {
                Err("429".to_owned())
            } else {
                Ok(())
            }
        }
    })
    .queue("llm")
    .cost(50)
    .retry(RetryPolicy::fixed(secs(1)));
    let flaky = runner.enqueue_task(flaky)?;
    settle().await;
    // 50 of flaky's first attempt, and 50 more: the retry at 1 s finds no room.
    let filler = runner.enqueue_task(call("filler", &log, t0, secs(1), None).cost(50))?;
    flaky.await?;
    filler.await?;
    assert_eq!(start_of(&log, "flaky2"), Some(PER), "attempt 1's 50 left");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_paused_queue_starts_nothing_when_the_window_frees_and_resume_starts_it() -> Res {
    let runner = runner(
        QueueConfig::new()
            .concurrency(8)
            .budget(Budget::new(100, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    let first = runner.enqueue_task(call("first", &log, t0, secs(1), None).cost(100))?;
    let second = runner.enqueue_task(call("second", &log, t0, secs(1), None).cost(100))?;
    settle().await;
    runner.pause_queue("llm")?;
    tokio::time::sleep(secs(15)).await;
    assert_eq!(second.status(), TaskStatus::Pending, "paused");
    assert_eq!(
        runner.get_status(second.id()).unwrap().waiting_for,
        Some(WaitReason::Paused)
    );
    let at = t0.elapsed();
    runner.resume_queue("llm")?;
    settle().await;
    assert_eq!(start_of(&log, "second"), Some(at));
    first.await?;
    second.await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_graceful_shutdown_waits_for_the_tasks_waiting_for_budget_and_runs_them() -> Res {
    let runner = runner(
        QueueConfig::new()
            .concurrency(8)
            .budget(Budget::new(100, PER))
            .key_budget(Budget::new(50, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    let handles: Vec<_> = [
        ("a", 100, None),
        ("b", 100, None),
        ("c", 50, Some("k")),
        ("d", 50, Some("k")),
    ]
    .into_iter()
    .map(|(label, cost, key)| {
        let task = call(label, &log, t0, secs(1), None).cost(cost);
        runner.enqueue_task(match key {
            Some(key) => task.concurrency_key(key),
            None => task,
        })
    })
    .collect::<Result<_, _>>()?;
    runner.shutdown().await;
    for h in handles {
        h.await?;
    }
    let mut starts: Vec<_> = log.lock().unwrap().iter().map(|(_, at)| *at).collect();
    starts.sort();
    // Each of b, c and d needs a window of its own (the queue's, or k's).
    assert_eq!(
        starts,
        vec![secs(0), PER, 2 * PER, 3 * PER],
        "every waiting task ran"
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn shutdown_now_cancels_the_tasks_waiting_for_budget_charging_them_nothing() -> Res {
    let runner = runner(
        QueueConfig::new()
            .concurrency(8)
            .budget(Budget::new(100, PER))
            .key_budget(Budget::new(50, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    let a = runner.enqueue_task(
        call("a", &log, t0, secs(60), None)
            .cost(50)
            .concurrency_key("k"),
    )?;
    let b = runner.enqueue_task(
        call("b", &log, t0, secs(1), None)
            .cost(50)
            .concurrency_key("k"),
    )?;
    let c = runner.enqueue_task(call("c", &log, t0, secs(1), None).cost(100))?;
    let (b_id, c_id) = (b.id(), c.id());
    settle().await;
    tokio::time::timeout(secs(1), runner.shutdown_now()).await?;
    for h in [a, b, c] {
        assert!(matches!(h.await, Err(TaskError::Shutdown)));
    }
    for id in [b_id, c_id] {
        assert_eq!(runner.get_status(id).unwrap().charged, None);
    }
    assert_eq!(used(&runner), 50, "only a started");
    Ok(())
}

// ===== cancel, timeout, panic =====

#[tokio::test(start_paused = true)]
async fn timeouts_and_panics_keep_what_the_attempt_reserved_or_charged() -> Res {
    let runner = runner(
        QueueConfig::new()
            .concurrency(8)
            .budget(Budget::new(1_000, PER)),
    );
    // Times out twice (each attempt reserves 100 again), then gives up.
    let slow = Task::new("slow", |_: TaskContext| async {
        tokio::time::sleep(secs(60)).await;
        Ok::<_, String>(())
    })
    .queue("llm")
    .cost(100)
    .timeout(secs(1))
    .retry(RetryPolicy::fixed(secs(1)).max_retries(1));
    let slow = runner.enqueue_task(slow)?;
    let slow_id = slow.id();
    assert!(slow.await.is_err());
    let info = runner.get_status(slow_id).unwrap();
    assert_eq!((info.attempts, info.charged), (2, Some(200)));
    // Charges 300 and panics: the charge stays.
    let boom = Task::new("boom", |ctx: TaskContext| async move {
        ctx.charge(300);
        if ctx.attempt() > 0 {
            panic!("the provider's reply did not parse");
        }
        Ok::<_, String>(())
    })
    .queue("llm")
    .cost(100);
    let boom = runner.enqueue_task(boom)?;
    let boom_id = boom.id();
    assert!(boom.await.is_err());
    assert_eq!(runner.get_status(boom_id).unwrap().charged, Some(300));
    assert_eq!(used(&runner), 500);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_task_cancelled_while_waiting_for_its_keys_budget_charges_nothing_and_frees_its_key(
) -> Res {
    let runner = runner(
        QueueConfig::new()
            .concurrency(8)
            .key_budget(Budget::new(100, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    let a = runner.enqueue_task(
        call("a", &log, t0, secs(1), None)
            .cost(60)
            .concurrency_key("k"),
    )?;
    let big = runner.enqueue_task(
        call("big", &log, t0, secs(1), None)
            .cost(100)
            .concurrency_key("k"),
    )?;
    let small = runner.enqueue_task(
        call("small", &log, t0, secs(1), None)
            .cost(40)
            .concurrency_key("k"),
    )?;
    tokio::time::sleep(secs(2)).await;
    assert_eq!(
        runner.get_status(big.id()).unwrap().waiting_for,
        Some(WaitReason::Budget)
    );
    let big_id = big.id();
    assert!(big.cancel());
    settle().await;
    assert_eq!(runner.get_status(big_id).unwrap().charged, None);
    assert_eq!(
        start_of(&log, "small"),
        Some(secs(2)),
        "k's best task is now small, and 40 fits next to a's 60"
    );
    a.await?;
    small.await?;
    Ok(())
}

// ===== bad input =====

#[tokio::test(start_paused = true)]
async fn an_estimate_over_the_budget_is_refused_by_every_enqueue_path() -> Res {
    let runner = runner(
        QueueConfig::new()
            .max_pending(4)
            .budget(Budget::new(100, PER))
            .key_budget(Budget::new(10, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    let rejected = runner
        .try_enqueue_task(call("over", &log, t0, secs(1), None).cost(101))
        .map(drop)
        .expect_err("refused");
    let task = rejected.into_task();
    // The task comes back whole: with a smaller estimate it runs.
    runner.enqueue_task(task.cost(100))?.await?;
    let err = runner
        .enqueue_task_wait(
            call("over", &log, t0, secs(1), None)
                .cost(11)
                .concurrency_key("k"),
        )
        .await
        .map(drop)
        .expect_err("refused");
    assert!(
        matches!(
            err,
            EnqueueError::OverBudget {
                cost: 11,
                units: 10,
                ..
            }
        ),
        "{err:?}"
    );
    let group = runner.group();
    let err = group
        .enqueue_task(call("over", &log, t0, secs(1), None).cost(u64::MAX))
        .map(drop)
        .expect_err("refused");
    assert!(err.to_string().contains("`llm`"), "names the queue: {err}");
    assert_eq!(runner.queue_stats("llm").unwrap().pending, 0);
    // Nothing refused took a place under max_pending: four wait behind a hog.
    runner.pause_queue("llm")?;
    let waiting: Vec<_> = (0..4)
        .map(|i| runner.enqueue_task(call(&format!("w{i}"), &log, t0, secs(1), None).cost(1)))
        .collect::<Result<_, _>>()?;
    runner.resume_queue("llm")?;
    for h in waiting {
        h.await?;
    }
    Ok(())
}

#[test]
fn zero_and_oversized_budgets_are_refused_by_build_with_the_setting_named() {
    for (config, setting) in [
        (
            QueueConfig::new().key_budget(Budget::new(0, PER)),
            "key_budget",
        ),
        (
            QueueConfig::new().budget(Budget::new(1, Duration::ZERO)),
            "budget",
        ),
        (
            QueueConfig::new().budget(Budget::new(1, Duration::MAX)),
            "budget",
        ),
        (
            QueueConfig::new()
                .budget(Budget::new(100, PER))
                .key_budget(Budget::new(0, Duration::ZERO)),
            "key_budget",
        ),
    ] {
        let err = TaskRunner::builder()
            .queue("llm", config)
            .build()
            .map(drop)
            .expect_err("refused");
        assert!(
            matches!(&err, ConfigError::InvalidSetting { setting: s, .. } if *s == setting),
            "{err:?}"
        );
        assert!(err.to_string().contains(setting), "{err}");
    }
}

// ===== budgets next to the other flow controls =====

/// The largest sum of `costs` (by label) started in any window of `per`, from the log.
fn max_window(log: &Log, costs: &[(&str, u64)], per: Duration) -> u64 {
    let log = log.lock().unwrap().clone();
    let cost = |label: &str| costs.iter().find(|(l, _)| *l == label).map_or(0, |c| c.1);
    log.iter()
        .map(|(_, s)| {
            let inside = log.iter().filter(|(_, at)| at >= s && *at < *s + per);
            inside.map(|(label, _)| cost(label)).sum::<u64>()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn under_aging_a_large_task_reaches_the_head_and_starts_when_the_window_empties() -> Res {
    let runner = runner(
        QueueConfig::new()
            .concurrency(8)
            .aging(secs(1))
            .budget(Budget::new(100, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    let mut handles = vec![runner.enqueue_task(call("first", &log, t0, secs(1), None).cost(50))?];
    handles.push(runner.enqueue_task(call("big", &log, t0, secs(1), None).cost(100))?);
    let mut costs = vec![("first", 50), ("big", 100)];
    // Smaller tasks of a higher priority keep coming: aging lifts big above them.
    let labels: Vec<String> = (0..15).map(|i| format!("s{i}")).collect();
    for label in &labels {
        handles
            .push(runner.enqueue_task(call(label, &log, t0, secs(1), None).cost(10).priority(2))?);
        costs.push((label, 10));
        tokio::time::sleep(secs(2)).await;
    }
    for h in handles {
        h.await?;
    }
    let big = start_of(&log, "big").unwrap();
    assert!(big <= 2 * PER, "big waited {big:?}");
    assert!(max_window(&log, &costs, PER) <= 100);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_delayed_task_that_becomes_due_in_a_full_window_starts_when_it_frees() -> Res {
    let runner = runner(
        QueueConfig::new()
            .concurrency(8)
            .budget(Budget::new(100, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    let first = runner.enqueue_task(call("first", &log, t0, secs(1), None).cost(60))?;
    let later = runner.enqueue_task(
        call("later", &log, t0, secs(1), None)
            .cost(60)
            .delay(secs(3)),
    )?;
    first.await?;
    later.await?;
    assert_eq!(start_of(&log, "later"), Some(PER));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_and_a_budget_both_hold() -> Res {
    let runner = runner(
        QueueConfig::new()
            .concurrency(8)
            .rate_limit(taskrunner::RateLimit::new(1, secs(1)))
            .budget(Budget::new(100, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    let handles: Vec<_> = (0..5)
        .map(|i| runner.enqueue_task(call(&format!("t{i}"), &log, t0, secs(1), None).cost(30)))
        .collect::<Result<_, _>>()?;
    for h in handles {
        h.await?;
    }
    let starts: Vec<_> = log.lock().unwrap().iter().map(|(_, at)| *at).collect();
    // One a second by the rate, and the fourth 30 waits for the first to leave the budget.
    assert_eq!(starts, vec![secs(0), secs(1), secs(2), secs(10), secs(11)]);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_charge_that_frees_room_during_a_hold_starts_nothing_until_the_hold_ends() -> Res {
    let runner = runner(
        QueueConfig::new()
            .concurrency(8)
            .budget(Budget::new(100, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    let first = Task::new("first", |ctx: TaskContext| async move {
        ctx.pause_queue_for(secs(5)); // a 429
        ctx.charge(10);
        Ok::<_, String>(())
    })
    .queue("llm")
    .cost(100);
    let first = runner.enqueue_task(first)?;
    let second = runner.enqueue_task(call("second", &log, t0, secs(1), None).cost(50))?;
    first.await?;
    settle().await;
    assert_eq!(
        second.status(),
        TaskStatus::Pending,
        "held, though 50 fits now"
    );
    second.await?;
    assert_eq!(start_of(&log, "second"), Some(secs(5)));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn shutdown_now_starts_no_task_behind_a_cancelled_large_head() -> Res {
    let runner = runner(
        QueueConfig::new()
            .concurrency(8)
            .budget(Budget::new(100, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    let first = runner.enqueue_task(call("first", &log, t0, secs(60), None).cost(50))?;
    let big = runner.enqueue_task(call("big", &log, t0, secs(1), None).cost(100))?;
    let smalls: Vec<_> = (0..4)
        .map(|i| runner.enqueue_task(call(&format!("s{i}"), &log, t0, secs(1), None).cost(10)))
        .collect::<Result<_, _>>()?;
    let ids: Vec<_> = smalls.iter().map(|h| h.id()).collect();
    settle().await;
    tokio::time::timeout(secs(1), runner.shutdown_now()).await?;
    for h in smalls.into_iter().chain([first, big]) {
        assert!(matches!(h.await, Err(TaskError::Shutdown)));
    }
    assert_eq!(log.lock().unwrap().len(), 1, "only first ran: {log:?}");
    for id in ids {
        assert_eq!(
            runner.get_status(id).unwrap().charged,
            None,
            "never started"
        );
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_group_starts_none_of_its_members_behind_its_large_head() -> Res {
    let runner = runner(
        QueueConfig::new()
            .concurrency(8)
            .budget(Budget::new(100, PER)),
    );
    let (log, t0) = (Log::default(), Instant::now());
    let first = runner.enqueue_task(call("first", &log, t0, secs(60), None).cost(50))?;
    let group = runner.group();
    let big = group.enqueue_task(call("big", &log, t0, secs(1), None).cost(100))?;
    let smalls: Vec<_> = (0..4)
        .map(|i| group.enqueue_task(call(&format!("s{i}"), &log, t0, secs(1), None).cost(10)))
        .collect::<Result<_, _>>()?;
    let ids: Vec<_> = smalls.iter().map(|h| h.id()).collect();
    settle().await;
    assert_eq!(group.cancel(), 5);
    for h in smalls.into_iter().chain([big]) {
        assert!(matches!(h.await, Err(TaskError::Cancelled)));
    }
    assert_eq!(log.lock().unwrap().len(), 1, "only first ran: {log:?}");
    for id in ids {
        assert_eq!(
            runner.get_status(id).unwrap().charged,
            None,
            "never started"
        );
    }
    first.cancel();
    Ok(())
}
