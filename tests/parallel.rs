//! On the multi-thread runtime, with handlers really running in parallel, no queue ever
//! exceeds its limit, and every task is accounted for.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use taskrunner::{QueueConfig, Task, TaskContext, TaskRunner};

#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
    /// The most at once seen by tasks enqueued after the queue's limit was lowered.
    max_after_lowering: AtomicUsize,
}

/// The task after whose enqueue queue `five` is lowered to `LOWERED`.
const LOWER_AT: usize = 1_500;
const LOWERED: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_queue_exceeds_its_limit_under_parallel_load() {
    let limits = [("one", 1), ("two", 2), ("five", 5)];
    let mut builder = TaskRunner::builder();
    for (name, limit) in limits {
        builder = builder.queue(name, QueueConfig::new().concurrency(limit));
    }
    let runner = builder.build().unwrap();
    let gauges: Vec<Arc<Gauge>> = limits.iter().map(|_| Arc::default()).collect();

    let mut handles = Vec::new();
    for i in 0..3_000usize {
        let q = i % limits.len();
        let gauge = Arc::clone(&gauges[q]);
        let task = Task::new("work", move |_: TaskContext| {
            let gauge = Arc::clone(&gauge);
            async move {
                let now = gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
                gauge.max.fetch_max(now, Ordering::SeqCst);
                if i > LOWER_AT {
                    // Enqueued after the lowering, so admitted under the new limit: the
                    // tasks started above it (under the old one) must have drained first.
                    gauge.max_after_lowering.fetch_max(now, Ordering::SeqCst);
                }
                // Real work on the thread, then a yield, so tasks interleave across workers.
                std::hint::black_box((0..2_000u64).sum::<u64>());
                tokio::task::yield_now().await;
                gauge.now.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, String>(i)
            }
        })
        .queue(limits[q].0)
        .priority((i % 7) as i32);
        handles.push(runner.enqueue_task(task).unwrap());
        if i == LOWER_AT {
            runner.set_concurrency("five", LOWERED).unwrap();
        }
    }
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.await.unwrap(), i);
    }
    for ((name, limit), gauge) in limits.iter().zip(&gauges) {
        let max = gauge.max.load(Ordering::SeqCst);
        assert!(
            max <= *limit,
            "queue {name} ran {max} at once, limit {limit}"
        );
        let stats = runner.queue_stats(name).unwrap();
        assert_eq!((stats.pending, stats.running), (0, 0));
    }
    let five = &gauges[2];
    let after = five.max_after_lowering.load(Ordering::SeqCst);
    assert!(
        (1..=LOWERED).contains(&after),
        "queue five ran {after} at once after its limit was lowered to {LOWERED}"
    );
    assert_eq!(runner.queue_stats("five").unwrap().limit, LOWERED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_slots_run_two_handlers_at_the_same_time() {
    let runner = TaskRunner::builder()
        .queue("two", QueueConfig::new().concurrency(2))
        .build()
        .unwrap();
    // Each handler blocks its thread until it hears from the other: only true parallelism
    // lets both finish.
    let (tx_a, rx_a) = mpsc::channel::<()>();
    let (tx_b, rx_b) = mpsc::channel::<()>();
    let meet = |tx: mpsc::Sender<()>, rx: mpsc::Receiver<()>| {
        let pair = std::sync::Mutex::new(Some((tx, rx)));
        Task::new("meet", move |_: TaskContext| {
            let (tx, rx) = pair.lock().unwrap().take().unwrap();
            async move {
                tx.send(()).unwrap();
                Ok::<_, String>(rx.recv_timeout(Duration::from_secs(10)).is_ok())
            }
        })
        .queue("two")
    };
    let a = runner.enqueue_task(meet(tx_a, rx_b)).unwrap();
    let b = runner.enqueue_task(meet(tx_b, rx_a)).unwrap();
    assert!(a.await.unwrap(), "a never met b");
    assert!(b.await.unwrap(), "b never met a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_across_many_idle_queues_are_handed_to_parked_workers_safely() {
    // 200 queues of one slot, tasks round-robin: nearly every start lands in an idle queue,
    // so it goes to a parked worker or a fresh one, racing workers leaving the list.
    let names: Vec<String> = (0..200).map(|q| format!("q{q}")).collect();
    let mut builder = TaskRunner::builder();
    for name in &names {
        builder = builder.queue(name.clone(), QueueConfig::new().concurrency(1));
    }
    let runner = builder.build().unwrap();
    let gauges: Vec<Arc<Gauge>> = names.iter().map(|_| Arc::default()).collect();
    let mut handles = Vec::new();
    for i in 0..20_000usize {
        let q = i % names.len();
        let gauge = Arc::clone(&gauges[q]);
        let task = Task::new("hop", move |_: TaskContext| {
            let gauge = Arc::clone(&gauge);
            async move {
                let now = gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
                gauge.max.fetch_max(now, Ordering::SeqCst);
                if i % 3 == 0 {
                    tokio::task::yield_now().await;
                }
                gauge.now.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, String>(i)
            }
        })
        .queue(names[q].clone());
        handles.push(runner.enqueue_task(task).unwrap());
        if i % 97 == 0 {
            tokio::task::yield_now().await;
        }
    }
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.await.unwrap(), i);
    }
    for gauge in &gauges {
        assert_eq!(gauge.max.load(Ordering::SeqCst), 1);
    }
    runner.wait_idle().await;
}
