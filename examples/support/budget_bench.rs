//! The burst under a [`Budget`](taskrunner::Budget) that never binds: the cost of its
//! bookkeeping (a reservation per start, a window of records), for `bench_report`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use taskrunner::{Budget, QueueConfig, Task, TaskContext, TaskRunner};
use tokio::runtime::Runtime;

/// Enqueues `n` no-op tasks of cost 1 on a queue of concurrency `concurrency`, with a budget
/// far above `n` per second if `budget` (and, with `charge`, each handler charges 1), then
/// awaits them.
pub fn burst(rt: &Runtime, n: u64, concurrency: usize, budget: bool, charge: bool) -> Duration {
    rt.block_on(async {
        let mut config = QueueConfig::new().concurrency(concurrency);
        if budget {
            config = config.budget(Budget::new(1 << 40, Duration::from_secs(1)));
        }
        let runner = TaskRunner::builder().queue("q", config).build().unwrap();
        let start = Instant::now();
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let task = Task::new("noop", move |ctx: TaskContext| async move {
                    if charge {
                        ctx.charge(1);
                    }
                    Ok::<_, std::convert::Infallible>(black_box(i))
                })
                .queue("q")
                .cost(1);
                runner.enqueue_task(task).unwrap()
            })
            .collect();
        for handle in handles {
            black_box(handle.await.unwrap());
        }
        start.elapsed()
    })
}
