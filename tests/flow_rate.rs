//! `QueueConfig::rate_limit`: a strict sliding window. At most `n` starts (retries included)
//! in any window of length `per`; bursts up to `n`; waiting tasks keep priority order, hold
//! no slot, and are started by a timer at the exact instant the window allows.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::settle;
use taskrunner::{
    ConfigError, QueueConfig, RateLimit, RetryPolicy, Task, TaskContext, TaskRunner, WaitReason,
};
use tokio::time::Instant;

type Log = Arc<Mutex<Vec<(String, Duration)>>>;

/// A task that logs `label` and its start offset from `t0`, then takes `work`.
fn logged(
    label: &str,
    log: &Log,
    t0: Instant,
    work: Duration,
) -> Task<
    impl Fn(TaskContext) -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync,
> {
    let (label, log) = (label.to_owned(), Arc::clone(log));
    Task::new(label.clone(), move |_: TaskContext| {
        log.lock().unwrap().push((label.clone(), t0.elapsed()));
        Box::pin(async move {
            tokio::time::sleep(work).await;
            Ok(())
        }) as futures::future::BoxFuture<'static, Result<(), String>>
    })
    .queue("api")
}

fn limited(concurrency: usize, n: u32, per: Duration) -> TaskRunner {
    TaskRunner::builder()
        .queue(
            "api",
            QueueConfig::new()
                .concurrency(concurrency)
                .rate_limit(RateLimit::new(n, per)),
        )
        .build()
        .unwrap()
}

/// At most `n` starts in every half-open window [s, s + per) that begins at a start.
fn assert_window(starts: &[Duration], n: usize, per: Duration) {
    for (i, &s) in starts.iter().enumerate() {
        let inside = starts[i..].iter().filter(|&&t| t < s + per).count();
        assert!(
            inside <= n,
            "{inside} starts in [{s:?}, +{per:?}): {starts:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_n_then_each_start_waits_for_the_nth_before_it() {
    let runner = limited(10, 3, Duration::from_secs(1));
    let (log, t0) = (Log::default(), Instant::now());
    let handles: Vec<_> = (0..7)
        .map(|i| {
            runner
                .enqueue_task(logged(&i.to_string(), &log, t0, Duration::from_millis(10)))
                .unwrap()
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let starts: Vec<Duration> = log.lock().unwrap().iter().map(|e| e.1).collect();
    let secs = |s: u64| Duration::from_secs(s);
    assert_eq!(
        starts,
        [
            secs(0),
            secs(0),
            secs(0),
            secs(1),
            secs(1),
            secs(1),
            secs(2)
        ],
        "no needless wait, no start early"
    );
    assert_window(&starts, 3, secs(1));
}

#[tokio::test(start_paused = true)]
async fn the_window_slides_with_spread_out_starts() {
    let runner = limited(10, 2, Duration::from_secs(10));
    let (log, t0) = (Log::default(), Instant::now());
    let mut handles = Vec::new();
    // One at 0 s, one at 4 s, then three at 6 s: the third may start only at 10 s (when the
    // 0 s start leaves), the fourth at 14 s, the fifth at 20 s.
    handles.push(
        runner
            .enqueue_task(logged("a", &log, t0, Duration::ZERO))
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    handles.push(
        runner
            .enqueue_task(logged("b", &log, t0, Duration::ZERO))
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    for label in ["c", "d", "e"] {
        handles.push(
            runner
                .enqueue_task(logged(label, &log, t0, Duration::ZERO))
                .unwrap(),
        );
    }
    for h in handles {
        h.await.unwrap();
    }
    let starts: Vec<u64> = log.lock().unwrap().iter().map(|e| e.1.as_secs()).collect();
    assert_eq!(starts, [0, 4, 10, 14, 20]);
}

#[tokio::test(start_paused = true)]
async fn retries_count_against_the_limit() {
    let runner = limited(10, 2, Duration::from_secs(1));
    let t0 = Instant::now();
    let starts = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&starts);
    let flaky = runner
        .enqueue_task(
            Task::new("flaky", move |ctx: TaskContext| {
                s.lock().unwrap().push(t0.elapsed());
                async move {
                    if ctx.attempt() < 4 {
                        Err("again".to_owned())
                    } else {
                        Ok(())
                    }
                }
            })
            .queue("api")
            .retry(
                RetryPolicy::exponential(Duration::from_millis(100))
                    .factor(1.0)
                    .max_retries(5),
            ),
        )
        .unwrap();
    flaky.await.unwrap();
    let starts = starts.lock().unwrap().clone();
    let ms = |m: u64| Duration::from_millis(m);
    // Attempt 2 at 100 ms; attempt 3 would be at 200 ms but waits for the window (1 s after
    // attempt 1); attempt 4 at 1.1 s + 100 ms waits for 1 s after attempt 2.
    assert_eq!(starts, [ms(0), ms(100), ms(1000), ms(1100)]);
    assert_window(&starts, 2, ms(1000));
}

#[tokio::test(start_paused = true)]
async fn rate_limited_tasks_keep_priority_order_and_hold_no_slot() {
    let runner = limited(2, 1, Duration::from_secs(1));
    let (log, t0) = (Log::default(), Instant::now());
    let first = runner
        .enqueue_task(logged("first", &log, t0, Duration::ZERO))
        .unwrap();
    let mut handles = Vec::new();
    for (label, priority) in [("low", 0), ("mid", 1), ("high", 2)] {
        handles.push(
            runner
                .enqueue_task(logged(label, &log, t0, Duration::ZERO).priority(priority))
                .unwrap(),
        );
    }
    first.await.unwrap();
    settle().await;
    let stats = runner.queue_stats("api").unwrap();
    assert_eq!(
        (stats.running, stats.pending),
        (0, 3),
        "waiting holds no slot"
    );
    assert_eq!(stats.waiting_for, Some(WaitReason::RateLimited));
    let info = runner.get_status(handles[0].id()).unwrap();
    assert_eq!(info.waiting_for, Some(WaitReason::RateLimited));
    // Another queue is not held back.
    runner
        .enqueue_task(Task::new("free", |_: TaskContext| async {
            Ok::<_, String>(())
        }))
        .unwrap()
        .await
        .unwrap();
    for h in handles {
        h.await.unwrap();
    }
    let log = log.lock().unwrap().clone();
    let order: Vec<(&str, u64)> = log.iter().map(|(l, t)| (l.as_str(), t.as_secs())).collect();
    assert_eq!(order, [("first", 0), ("high", 1), ("mid", 2), ("low", 3)]);
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_a_thousand_never_exceeds_the_rate() {
    for concurrency in [4, 10] {
        let runner = limited(concurrency, 10, Duration::from_millis(100));
        let (log, t0) = (Log::default(), Instant::now());
        let handles: Vec<_> = (0..1000)
            .map(|i| {
                runner
                    .enqueue_task(
                        logged("t", &log, t0, Duration::from_millis(i % 7))
                            .priority((i % 3) as i32),
                    )
                    .unwrap()
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        let starts: Vec<Duration> = log.lock().unwrap().iter().map(|e| e.1).collect();
        assert_eq!(starts.len(), 1000);
        assert_window(&starts, 10, Duration::from_millis(100));
        if concurrency == 10 {
            // Slots never bind here, so no needless wait: 10 starts every 100 ms exactly.
            assert_eq!(*starts.last().unwrap(), Duration::from_millis(9_900));
        }
    }
}

#[test]
fn zero_or_absurd_rates_are_config_errors_naming_queue_and_setting() {
    for limit in [
        RateLimit::new(0, Duration::from_secs(1)),
        RateLimit::new(5, Duration::ZERO),
        RateLimit::new(taskrunner::MAX_RATE + 1, Duration::from_secs(1)),
    ] {
        let err = TaskRunner::builder()
            .queue("api", QueueConfig::new().rate_limit(limit))
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, ConfigError::InvalidSetting { queue, setting: "rate_limit", .. } if queue == "api"),
            "{err:?}"
        );
    }
}
