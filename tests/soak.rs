//! A release-mode soak: 1,000,000 tasks on the multi-thread runtime with random failures,
//! retries, panics, timeouts, cancels and resizes. Every outcome is accounted for, no slot
//! leaks, and a counting allocator shows memory back at its starting level.
//!
//! Ignored by plain `cargo test` (it wants `--release`); CI runs it with
//! `cargo test --release --test soak -- --ignored`.

use std::time::Duration;

use taskrunner::{QueueConfig, RetryPolicy, Task, TaskContext, TaskError, TaskRunner};

#[path = "../benches/common/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static ALLOCATOR: counting_alloc::Counting<true> = counting_alloc::Counting;

const QUEUES: [(&str, usize); 4] = [("one", 1), ("few", 4), ("many", 16), ("wide", 64)];
const BATCH: u64 = 20_000;
/// Tasks after the warm-up; `SOAK_TASKS` overrides it.
fn total() -> u64 {
    std::env::var("SOAK_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    ok: u64,
    ok_after_retry: u64,
    failed: u64,
    panicked: u64,
    timed_out: u64,
    cancelled: u64,
}

/// What task `i` does, decided by a hash of `i`.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Ok,
    FailOnce,
    Fail,
    Panic,
    Timeout,
    Cancel,
}

fn kind(i: u64) -> Kind {
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    match h % 100 {
        0..=74 => Kind::Ok,
        75..=82 => Kind::FailOnce,
        83..=86 => Kind::Fail,
        87..=89 => Kind::Panic,
        90..=92 => Kind::Timeout,
        _ => Kind::Cancel,
    }
}

async fn run_batch(runner: &TaskRunner, start: u64, tally: &mut Tally) {
    let mut handles = Vec::with_capacity(BATCH as usize);
    for i in start..start + BATCH {
        let kind = kind(i);
        // Time-bound work goes to the wide queue, so the batch stays quick.
        let queue = match kind {
            Kind::Timeout | Kind::Cancel | Kind::FailOnce => "wide",
            _ => QUEUES[(i % 4) as usize].0,
        };
        let task = Task::new("soak", move |ctx: TaskContext| async move {
            match kind {
                Kind::Ok => {
                    if ctx.attempt().is_multiple_of(2) {
                        tokio::task::yield_now().await;
                    }
                    Ok(i)
                }
                Kind::FailOnce if ctx.attempt() == 1 => Err(format!("transient {i}")),
                Kind::FailOnce => Ok(i),
                Kind::Fail => Err(format!("permanent {i}")),
                Kind::Panic => panic!("soak panic"),
                Kind::Timeout => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok(i)
                }
                Kind::Cancel => std::future::pending().await,
            }
        })
        .queue(queue)
        .priority((i % 5) as i32);
        let task = match kind {
            Kind::FailOnce => task.retry(RetryPolicy::fixed(Duration::from_millis(1))),
            Kind::Timeout => task.timeout(Duration::from_millis(1)),
            _ => task,
        };
        handles.push((i, kind, runner.enqueue_task(task).expect("enqueue")));
    }
    for (_, kind, handle) in &handles {
        if *kind == Kind::Cancel {
            assert!(
                handle.cancel(),
                "an unfinished task can always be cancelled"
            );
        }
    }
    for (i, kind, handle) in handles {
        match (kind, handle.await) {
            (Kind::Ok, Ok(v)) => {
                assert_eq!(v, i);
                tally.ok += 1;
            }
            (Kind::FailOnce, Ok(v)) => {
                assert_eq!(v, i);
                tally.ok_after_retry += 1;
            }
            (Kind::Fail, Err(TaskError::Failed(e))) => {
                assert_eq!(e, format!("permanent {i}"));
                tally.failed += 1;
            }
            (Kind::Panic, Err(TaskError::Panicked(m))) => {
                assert_eq!(m, "soak panic");
                tally.panicked += 1;
            }
            (Kind::Timeout, Err(TaskError::TimedOut)) => tally.timed_out += 1,
            (Kind::Cancel, Err(TaskError::Cancelled)) => tally.cancelled += 1,
            (_, other) => panic!("task {i}: unexpected outcome {other:?}"),
        }
    }
}

fn expected(range: std::ops::Range<u64>) -> Tally {
    let mut t = Tally::default();
    for i in range {
        match kind(i) {
            Kind::Ok => t.ok += 1,
            Kind::FailOnce => t.ok_after_retry += 1,
            Kind::Fail => t.failed += 1,
            Kind::Panic => t.panicked += 1,
            Kind::Timeout => t.timed_out += 1,
            Kind::Cancel => t.cancelled += 1,
        }
    }
    t
}

fn assert_no_slot_held(runner: &TaskRunner) {
    for (name, _) in QUEUES {
        let stats = runner.queue_stats(name).unwrap();
        assert_eq!(
            (stats.pending, stats.running, stats.retrying),
            (0, 0, 0),
            "queue {name}"
        );
    }
}

#[test]
#[ignore = "a release-mode soak: cargo test --release --test soak -- --ignored"]
fn a_million_tasks_are_all_accounted_for_and_leave_no_memory_behind() {
    std::panic::set_hook(Box::new(|info| {
        if info.payload().downcast_ref::<&str>() != Some(&"soak panic") {
            eprintln!("{info}");
        }
    }));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut builder = TaskRunner::builder().retain_finished(1_000);
        for (name, limit) in QUEUES {
            builder = builder.queue(name, QueueConfig::new().concurrency(limit));
        }
        let runner = builder.build().unwrap();

        // Warm up: every structure reaches its working size.
        let mut warm = Tally::default();
        run_batch(&runner, 0, &mut warm).await;
        runner.wait_idle().await;
        let baseline = counting_alloc::live();

        let total = total();
        let began = std::time::Instant::now();
        let mut tally = Tally::default();
        let mut start = BATCH;
        while start < BATCH + total {
            run_batch(&runner, start, &mut tally).await;
            start += BATCH;
            // Resize as the run goes: both ways, on every queue.
            let round = start / BATCH;
            for (q, (name, limit)) in QUEUES.iter().enumerate() {
                let n = if (round + q as u64).is_multiple_of(3) {
                    limit * 2
                } else {
                    *limit
                };
                runner.set_concurrency(name, n).unwrap();
            }
        }
        runner.wait_idle().await;
        let elapsed = began.elapsed();

        assert_eq!(tally, expected(BATCH..BATCH + total));
        assert_no_slot_held(&runner);
        assert_eq!(
            runner.list_tasks().len(),
            1_000,
            "only the retained records"
        );
        let grown = counting_alloc::live() - baseline;
        println!(
            "soak: {total} tasks in {elapsed:?}; {tally:?}; heap {grown:+} bytes vs. baseline"
        );
        // A leak of one byte a task would show as 1 MB.
        assert!(grown < 256 * 1024, "heap grew by {grown} bytes");

        // Still works.
        for (name, _) in QUEUES {
            let handle = runner
                .enqueue_task(
                    Task::new("after", |_: TaskContext| async { Ok::<_, String>(1) }).queue(name),
                )
                .unwrap();
            assert_eq!(handle.await.unwrap(), 1);
        }
        runner.shutdown().await;
    });
}
