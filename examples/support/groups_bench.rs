//! The task-group cases of `bench_report`: a burst in one group against none, and the
//! cancel of a group of waiting tasks.

use std::hint::black_box;
use std::time::{Duration, Instant};

use taskrunner::{QueueConfig, Task, TaskContext, TaskRunner};
use tokio::runtime::Runtime;

/// Enqueues `n` no-op tasks on one queue of concurrency `concurrency` (all in one group,
/// capped at `cap` if given, when `grouped`), then awaits them all.
pub fn burst(
    rt: &Runtime,
    n: u64,
    concurrency: usize,
    grouped: bool,
    cap: Option<usize>,
) -> Duration {
    rt.block_on(async {
        let runner = TaskRunner::builder()
            .queue("q", QueueConfig::new().concurrency(concurrency))
            .build()
            .unwrap();
        let group = match cap {
            Some(cap) => runner.group().concurrency(cap),
            None => runner.group(),
        };
        let start = Instant::now();
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let task = Task::new("noop", move |_: TaskContext| {
                    std::future::ready(Ok::<_, std::convert::Infallible>(black_box(i)))
                })
                .queue("q");
                if grouped {
                    group.enqueue_task(task).unwrap()
                } else {
                    runner.enqueue_task(task).unwrap()
                }
            })
            .collect();
        for handle in handles {
            black_box(handle.await.unwrap());
        }
        start.elapsed()
    })
}

/// The time `cancel()` takes on a group of `n` tasks waiting behind a running one (its
/// handles kept, as a caller would).
pub fn cancel_waiting(rt: &Runtime, n: u64) -> Duration {
    rt.block_on(async {
        let runner = TaskRunner::builder()
            .queue("q", QueueConfig::new().concurrency(1))
            .build()
            .unwrap();
        let blocker = runner
            .enqueue_task(
                Task::new("blocker", |_: TaskContext| {
                    std::future::pending::<Result<(), String>>()
                })
                .queue("q"),
            )
            .unwrap();
        let group = runner.group();
        let handles: Vec<_> = (0..n)
            .map(|_| {
                group
                    .enqueue_task(
                        Task::new("waiting", |_: TaskContext| {
                            std::future::ready(Ok::<_, String>(()))
                        })
                        .queue("q"),
                    )
                    .unwrap()
            })
            .collect();
        let start = Instant::now();
        let ended = group.cancel();
        let elapsed = start.elapsed();
        assert_eq!(ended as u64, n);
        blocker.cancel();
        drop(handles);
        elapsed
    })
}
