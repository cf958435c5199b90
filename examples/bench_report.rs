//! The headline benchmarks in one table: medians of interleaved rounds, and ratios to the
//! bare-tokio baselines measured in the same process.
//!
//! Run with `cargo run --release --example bench_report` (about a minute). `ROUNDS=9` for
//! more rounds, `QUICK=1` for smaller sizes, `ONLY=text` for the cases whose name contains
//! `text` (and their baselines).
//!
//! Cases (all on a multi-thread runtime with 2 workers unless named otherwise):
//! - burst: enqueue N no-op tasks, then await them all. Baselines: `tokio::spawn` each
//!   (`spawn_all`), and `tokio::spawn` each behind a `Semaphore(3)` (`semaphore_3`, the loop
//!   a user would write instead; it has no priorities).
//! - round trip: one task in flight at a time (enqueue, run, await), against
//!   `tokio::spawn(..).await`.
//! - queues: the same burst spread over 1,000 queues, against one queue.
//! - round trip, current thread: the same on a current-thread runtime, where no OS thread
//!   is woken (the fair comparison with Node's event loop).
//! - enqueue-to-start latency percentiles under a burst, against the semaphore loop.
//! - memory: heap bytes per queued, not-yet-started task, counted exactly by this binary's
//!   allocator, handle included, at 100k queued (`MEMORY_TASKS=n` for another backlog).
//! - flow: the burst on one queue with 1,000 concurrency keys (`key_concurrency(1)`), and
//!   under a rate limit that never binds (the cost of its bookkeeping), against the same
//!   queue without them.
//! - budget: the burst under a `Budget` that never binds (every task `cost(1)`), with and
//!   without each handler calling `ctx.charge(1)`, against the plain queue (target: at most
//!   10% slower).
//! - groups: the burst (equal priorities, c=3) with every task in one task group, uncapped
//!   and capped at 3, against no group; and the time of `cancel()` on a group of 10k
//!   waiting tasks (its ns/task is the cost a cancelled task).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskrunner::{QueueConfig, Task, TaskContext, TaskRunner};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

// ===== a counting allocator, switched on only while memory is measured =====

#[path = "../benches/common/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static ALLOCATOR: counting_alloc::Counting<false> = counting_alloc::Counting;

// ===== workloads =====

// The same workloads as the criterion benches.
#[path = "../benches/common/mod.rs"]
mod common;

#[path = "support/groups_bench.rs"]
mod groups;

#[path = "support/budget_bench.rs"]
mod budget;

use common::Work;

type Noop = Result<u64, std::convert::Infallible>;

fn noop(i: u64) -> Task<impl Fn(TaskContext) -> std::future::Ready<Noop> + Send + Sync> {
    Task::new("noop", move |_: TaskContext| {
        std::future::ready(Ok(black_box(i)))
    })
}

/// Enqueue-to-start latency of every task in a burst of `n` on concurrency 3, in ns: the
/// runner, and the same tasks spawned behind a `Semaphore(3)`. Returns sorted samples.
fn start_latencies(rt: &Runtime, n: u64) -> (Vec<u64>, Vec<u64>) {
    let runner_samples = rt.block_on(async {
        let runner = TaskRunner::new();
        let samples = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n as usize)));
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let enqueued = Instant::now();
                let samples = Arc::clone(&samples);
                let task = Task::new("probe", move |_: TaskContext| {
                    let waited = enqueued.elapsed().as_nanos() as u64;
                    samples.lock().unwrap().push(waited);
                    std::future::ready(Ok::<_, std::convert::Infallible>(()))
                });
                runner.enqueue_task(task).unwrap()
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
        let mut samples = std::mem::take(&mut *samples.lock().unwrap());
        samples.sort_unstable();
        samples
    });
    let semaphore_samples = rt.block_on(async {
        let semaphore = Arc::new(Semaphore::new(3));
        let samples = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n as usize)));
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let enqueued = Instant::now();
                let (semaphore, samples) = (Arc::clone(&semaphore), Arc::clone(&samples));
                tokio::spawn(async move {
                    let _permit = semaphore.acquire().await.unwrap();
                    samples
                        .lock()
                        .unwrap()
                        .push(enqueued.elapsed().as_nanos() as u64);
                })
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
        let mut samples = std::mem::take(&mut *samples.lock().unwrap());
        samples.sort_unstable();
        samples
    });
    (runner_samples, semaphore_samples)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index] as f64 / 1e3
}

/// Heap bytes per queued, not-yet-started task, and per task parked on a semaphore.
fn memory_per_task(rt: &Runtime, n: u64) -> (f64, f64) {
    let runner_bytes = rt.block_on(async {
        let runner = TaskRunner::builder()
            .queue("one", QueueConfig::new().concurrency(1))
            .build()
            .unwrap();
        let gate = Arc::new(Semaphore::new(0));
        let g = Arc::clone(&gate);
        let blocker = runner
            .enqueue_task(
                Task::new("blocker", move |_: TaskContext| {
                    let g = Arc::clone(&g);
                    async move {
                        drop(g.acquire().await.unwrap());
                        Ok::<u64, std::convert::Infallible>(0)
                    }
                })
                .queue("one"),
            )
            .unwrap();
        let mut handles = Vec::with_capacity(n as usize);
        counting_alloc::set_counting(true);
        let before = counting_alloc::live();
        for i in 0..n {
            handles.push(runner.enqueue_task(noop(i).queue("one")).unwrap());
        }
        let after = counting_alloc::live();
        counting_alloc::set_counting(false);
        let heap = (after - before) as f64 / n as f64;
        let handle = std::mem::size_of_val(&handles[0]) as f64;
        gate.add_permits(1);
        blocker.await.unwrap();
        for handle in handles {
            handle.await.unwrap();
        }
        heap + handle
    });
    let semaphore_bytes = rt.block_on(async {
        let semaphore = Arc::new(Semaphore::new(0));
        let mut handles = Vec::with_capacity(n as usize);
        counting_alloc::set_counting(true);
        let before = counting_alloc::live();
        for i in 0..n {
            let semaphore = Arc::clone(&semaphore);
            handles.push(tokio::spawn(async move {
                let _permit = semaphore.acquire().await.unwrap();
                black_box(i)
            }));
        }
        // Let every task park on the semaphore.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let after = counting_alloc::live();
        counting_alloc::set_counting(false);
        let per = (after - before) as f64 / n as f64 + std::mem::size_of_val(&handles[0]) as f64;
        semaphore.add_permits(n as usize);
        for handle in handles {
            handle.await.unwrap();
        }
        per
    });
    (runner_bytes, semaphore_bytes)
}

// ===== the report =====

struct Case {
    name: String,
    /// Index of the case this one is compared with, if any.
    baseline: Option<usize>,
    tasks: u64,
    run: Box<dyn Fn(&Runtime) -> Duration>,
    samples: Vec<Duration>,
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn main() {
    let quick = std::env::var("QUICK").is_ok();
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // For the round trips without OS thread wake-ups (comparable to Node's event loop).
    let current = Arc::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    );
    let scale = |n: u64| if quick { n / 10 } else { n };

    let mut cases: Vec<Case> = Vec::new();
    let mut add = |name: &str,
                   baseline: Option<usize>,
                   tasks: u64,
                   run: Box<dyn Fn(&Runtime) -> Duration>| {
        cases.push(Case {
            name: name.to_owned(),
            baseline,
            tasks,
            run,
            samples: Vec::new(),
        });
        cases.len() - 1
    };

    let n = scale(100_000);
    let spawn = add(
        "burst 100k: spawn_all",
        None,
        n,
        Box::new(move |rt| common::spawn_all(rt, n, Work::Noop)),
    );
    let sem = add(
        "burst 100k: semaphore_3",
        None,
        n,
        Box::new(move |rt| common::semaphore(rt, n, 3, Work::Noop)),
    );
    add(
        "burst 100k: runner c=3 random prio",
        Some(sem),
        n,
        Box::new(move |rt| common::runner(rt, n, 3, 1, true, Work::Noop)),
    );
    add(
        "burst 100k: runner c=3 equal prio",
        Some(sem),
        n,
        Box::new(move |rt| common::runner(rt, n, 3, 1, false, Work::Noop)),
    );
    let sem64 = add(
        "burst 100k: semaphore_64",
        None,
        n,
        Box::new(move |rt| common::semaphore(rt, n, 64, Work::Noop)),
    );
    add(
        "burst 100k: runner c=64 random prio",
        Some(sem64),
        n,
        Box::new(move |rt| common::runner(rt, n, 64, 1, true, Work::Noop)),
    );
    let _ = spawn;

    let small = scale(10_000);
    let big = scale(1_000_000);
    let r10k = add(
        "backlog 10k: runner c=3 random",
        None,
        small,
        Box::new(move |rt| common::runner(rt, small, 3, 1, true, Work::Noop)),
    );
    add(
        "backlog 1M: runner c=3 random (per task)",
        Some(r10k),
        big,
        Box::new(move |rt| common::runner(rt, big, 3, 1, true, Work::Noop)),
    );

    let one = add(
        "queues: 1 queue c=3",
        None,
        n,
        Box::new(move |rt| common::runner(rt, n, 3, 1, true, Work::Noop)),
    );
    add(
        "queues: 1,000 queues c=3",
        Some(one),
        n,
        Box::new(move |rt| common::runner(rt, n, 3, 1_000, true, Work::Noop)),
    );

    // Flow control, against the plain queue with equal priorities.
    let plain = add(
        "flow: plain queue c=3 equal prio",
        None,
        n,
        Box::new(move |rt| common::runner(rt, n, 3, 1, false, Work::Noop)),
    );
    add(
        "flow: 1,000 keys, key_concurrency 1, c=3",
        Some(plain),
        n,
        Box::new(move |rt| common::runner_flow(rt, n, 3, Some(1_000), None)),
    );
    add(
        "flow: rate limit 1M/s (not binding), c=3",
        Some(plain),
        n,
        Box::new(move |rt| {
            let rate = taskrunner::RateLimit::new(1_000_000, Duration::from_secs(1));
            common::runner_flow(rt, n, 3, None, Some(rate))
        }),
    );

    add(
        "budget: no budget, tasks with cost(1), c=3",
        Some(plain),
        n,
        Box::new(move |rt| budget::burst(rt, n, 3, false, false)),
    );
    add(
        "budget: 2^40 units/s (not binding), cost 1, c=3",
        Some(plain),
        n,
        Box::new(move |rt| budget::burst(rt, n, 3, true, false)),
    );
    add(
        "budget: the same, each handler charges 1",
        Some(plain),
        n,
        Box::new(move |rt| budget::burst(rt, n, 3, true, true)),
    );

    let ungrouped = add(
        "groups: no group, c=3 equal prio",
        None,
        n,
        Box::new(move |rt| groups::burst(rt, n, 3, false, None)),
    );
    add(
        "groups: all in one group, c=3",
        Some(ungrouped),
        n,
        Box::new(move |rt| groups::burst(rt, n, 3, true, None)),
    );
    add(
        "groups: all in one group capped at 3, c=3",
        Some(ungrouped),
        n,
        Box::new(move |rt| groups::burst(rt, n, 3, true, Some(3))),
    );
    let waiting = scale(10_000);
    add(
        "groups: cancel() of a group of 10k waiting",
        None,
        waiting,
        Box::new(move |rt| groups::cancel_waiting(rt, waiting)),
    );

    let m = scale(100_000);
    let rt_spawn = add(
        "round trip: spawn + await",
        None,
        m,
        Box::new(move |rt| common::round_trip_spawn(rt, m)),
    );
    add(
        "round trip: runner enqueue + await",
        Some(rt_spawn),
        m,
        Box::new(move |rt| common::round_trip_runner(rt, m)),
    );
    let (c1, c2) = (Arc::clone(&current), Arc::clone(&current));
    let ct_spawn = add(
        "round trip, current thread: spawn + await",
        None,
        m,
        Box::new(move |_| common::round_trip_spawn(&c1, m)),
    );
    add(
        "round trip, current thread: runner enqueue + await",
        Some(ct_spawn),
        m,
        Box::new(move |_| common::round_trip_runner(&c2, m)),
    );

    // `ONLY=text` keeps the cases whose name contains it (for profiling one case), and their
    // baselines.
    if let Ok(only) = std::env::var("ONLY") {
        let mut keep: Vec<bool> = cases.iter().map(|c| c.name.contains(&only)).collect();
        for case in cases.iter().zip(keep.clone()).filter(|(_, k)| *k) {
            if let Some(base) = case.0.baseline {
                keep[base] = true;
            }
        }
        let mut new_index = Vec::with_capacity(cases.len());
        let mut next = 0;
        for &k in &keep {
            new_index.push(next);
            next += usize::from(k);
        }
        let mut index = 0;
        cases.retain(|_| {
            index += 1;
            keep[index - 1]
        });
        for case in cases.iter_mut() {
            case.baseline = case.baseline.map(|base| new_index[base]);
        }
    }

    // Interleaved rounds: every case once per round, so drift on a shared machine hits all.
    for round in 0..rounds {
        for case in cases.iter_mut() {
            let elapsed = (case.run)(&multi);
            case.samples.push(elapsed);
        }
        eprintln!("round {}/{rounds} done", round + 1);
    }

    println!("\nmedians of {rounds} interleaved rounds, multi-thread runtime, 2 workers\n");
    println!("| case | median | ns/task | tasks/s | vs. baseline |");
    println!("|---|---:|---:|---:|---|");
    for case in &cases {
        let med = median(&case.samples);
        let per_task = med.as_nanos() as f64 / case.tasks as f64;
        let rate = case.tasks as f64 / med.as_secs_f64();
        let ratio = match case.baseline {
            Some(b) => {
                let base = &cases[b];
                let base_per = median(&base.samples).as_nanos() as f64 / base.tasks as f64;
                // Throughput ratio: > 1 means faster than the baseline.
                format!(
                    "{:.2}× {}",
                    base_per / per_task,
                    base.name.split(": ").last().unwrap()
                )
            }
            None => "baseline".to_owned(),
        };
        println!(
            "| {} | {:.1} ms | {:.0} | {:.2} M/s | {} |",
            case.name,
            med.as_secs_f64() * 1e3,
            per_task,
            rate / 1e6,
            ratio
        );
    }

    if std::env::var("ONLY").is_ok_and(|only| !"memory latency".contains(&only)) {
        return;
    }

    let (runner_lat, semaphore_lat) = start_latencies(&multi, scale(100_000));
    println!(
        "\n| enqueue-to-start, burst of {}, concurrency 3 | p50 | p99 | max |",
        scale(100_000)
    );
    println!("|---|---:|---:|---:|");
    for (name, samples) in [("runner", &runner_lat), ("semaphore_3", &semaphore_lat)] {
        println!(
            "| {name} | {:.0} µs | {:.0} µs | {:.0} µs |",
            percentile(samples, 0.5),
            percentile(samples, 0.99),
            percentile(samples, 1.0)
        );
    }

    let memory_tasks = std::env::var("MEMORY_TASKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(scale(100_000));
    let (runner_bytes, semaphore_bytes) = memory_per_task(&multi, memory_tasks);
    println!("\n| memory per queued task (heap + handle), {memory_tasks} queued | bytes |");
    println!("|---|---:|");
    println!("| runner | {runner_bytes:.0} |");
    println!("| tokio task parked on a semaphore | {semaphore_bytes:.0} |");
}
