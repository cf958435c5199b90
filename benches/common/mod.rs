//! Workloads shared by the criterion benches: the runner and its bare-tokio baselines, each
//! timing "enqueue N no-op (or yield-once) tasks, then await them all".
#![allow(dead_code)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskrunner::{QueueConfig, Task, TaskContext, TaskRunner};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

pub fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A pseudo-random priority in -8..8.
pub fn priority(i: u64) -> i32 {
    ((i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 59) as i32) - 8
}

/// The handler's work: nothing, or one yield to the scheduler.
#[derive(Clone, Copy)]
pub enum Work {
    Noop,
    YieldOnce,
}

async fn work(kind: Work, i: u64) -> u64 {
    if let Work::YieldOnce = kind {
        tokio::task::yield_now().await;
    }
    black_box(i)
}

pub fn spawn_all(rt: &Runtime, n: u64, kind: Work) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..n).map(|i| tokio::spawn(work(kind, i))).collect();
        for handle in handles {
            black_box(handle.await.unwrap());
        }
        start.elapsed()
    })
}

pub fn semaphore(rt: &Runtime, n: u64, permits: usize, kind: Work) -> Duration {
    rt.block_on(async {
        let semaphore = Arc::new(Semaphore::new(permits));
        let start = Instant::now();
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let semaphore = Arc::clone(&semaphore);
                tokio::spawn(async move {
                    let _permit = semaphore.acquire().await.unwrap();
                    work(kind, i).await
                })
            })
            .collect();
        for handle in handles {
            black_box(handle.await.unwrap());
        }
        start.elapsed()
    })
}

/// The runner: `queues` queues of `concurrency` each, tasks spread round-robin.
pub fn runner(
    rt: &Runtime,
    n: u64,
    concurrency: usize,
    queues: usize,
    random_priorities: bool,
    kind: Work,
) -> Duration {
    rt.block_on(async {
        let names: Vec<&'static str> = (0..queues)
            .map(|q| &*Box::leak(format!("q{q}").into_boxed_str()))
            .collect();
        let mut builder = TaskRunner::builder();
        for name in &names {
            builder = builder.queue(*name, QueueConfig::new().concurrency(concurrency));
        }
        let runner = builder.build().unwrap();
        let start = Instant::now();
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let task = Task::new("noop", move |_: TaskContext| async move {
                    Ok::<_, std::convert::Infallible>(work(kind, i).await)
                })
                .queue(names[i as usize % queues])
                .priority(if random_priorities { priority(i) } else { 0 });
                runner.enqueue_task(task).unwrap()
            })
            .collect();
        for handle in handles {
            black_box(handle.await.unwrap());
        }
        start.elapsed()
    })
}

/// One queue of `concurrency` with flow control: tasks spread round-robin over `keys`
/// concurrency keys (with `key_concurrency(1)`) if given, under `rate` if given; equal
/// priorities.
pub fn runner_flow(
    rt: &Runtime,
    n: u64,
    concurrency: usize,
    keys: Option<u64>,
    rate: Option<taskrunner::RateLimit>,
) -> Duration {
    rt.block_on(async {
        let mut config = QueueConfig::new().concurrency(concurrency);
        if keys.is_some() {
            config = config.key_concurrency(1);
        }
        if let Some(rate) = rate {
            config = config.rate_limit(rate);
        }
        let runner = TaskRunner::builder().queue("q", config).build().unwrap();
        let names: Vec<Arc<str>> = (0..keys.unwrap_or(0))
            .map(|k| Arc::from(format!("key{k}")))
            .collect();
        let start = Instant::now();
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let task = Task::new("noop", move |_: TaskContext| async move {
                    Ok::<_, std::convert::Infallible>(black_box(i))
                })
                .queue("q");
                let task = match keys {
                    Some(k) => task.concurrency_key(Arc::clone(&names[(i % k) as usize])),
                    None => task,
                };
                runner.enqueue_task(task).unwrap()
            })
            .collect();
        for handle in handles {
            black_box(handle.await.unwrap());
        }
        start.elapsed()
    })
}

/// `n` round trips with one task in flight: enqueue, run, await.
pub fn round_trip_runner(rt: &Runtime, n: u64) -> Duration {
    rt.block_on(async {
        let runner = TaskRunner::new();
        let start = Instant::now();
        for i in 0..n {
            let task = Task::new("noop", move |_: TaskContext| async move {
                Ok::<_, std::convert::Infallible>(black_box(i))
            });
            black_box(runner.enqueue_task(task).unwrap().await.unwrap());
        }
        start.elapsed()
    })
}

pub fn round_trip_spawn(rt: &Runtime, n: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..n {
            black_box(tokio::spawn(async move { black_box(i) }).await.unwrap());
        }
        start.elapsed()
    })
}
