//! A key's waiting tasks held back by a rate limit: released one start at a time, in order,
//! and never two of the key at once.

use std::sync::Arc;
use std::time::Duration;

use crate::config::RateLimit;
use crate::queue::test_job::{self, end, id_of, TestJob};
use crate::queue::{Queue, QueueConfig};
use crate::task::{Job, Phase};

#[tokio::test(start_paused = true)]
async fn a_rate_limited_key_starts_its_tasks_in_order_one_at_a_time() {
    let config = QueueConfig::new()
        .concurrency(3)
        .key_concurrency(1)
        .rate_limit(RateLimit::new(3, Duration::from_millis(100)));
    let queue = Arc::new(Queue::with_config(test_job::tag("q"), &config));
    let ms = |n| tokio::time::sleep(Duration::from_millis(n));
    // Three plain tasks fill the window, 2 ms apart, and end.
    let mut plain = Vec::new();
    for _ in 0..3 {
        plain.push(
            queue
                .admit_new(TestJob::new(&queue, 0))
                .expect("starts at once"),
        );
        ms(2).await;
    }
    ms(4).await;
    for job in &plain {
        assert!(end(&queue, &**job, Phase::Completed).2.is_none());
    }
    // Two tasks of one key wait for the window (t = 60 and t = 95).
    ms(50).await;
    let first = TestJob::with_key(&queue, 0, Some("k"));
    assert!(queue
        .admit_new(Arc::clone(&first) as Arc<dyn Job>)
        .is_none());
    ms(38).await;
    let second = TestJob::with_key(&queue, 0, Some("k"));
    assert!(queue
        .admit_new(Arc::clone(&second) as Arc<dyn Job>)
        .is_none());
    // The window frees one start at t = 100, 102 and 104.
    let mut started = Vec::new();
    for _ in 0..3 {
        ms(2).await;
        started.extend(queue.wake());
    }
    let ids: Vec<u64> = started.iter().map(id_of).collect();
    assert_eq!(
        ids,
        [first.header().id.as_u64()],
        "the first of the key, alone"
    );
    // Its end hands its slot (and the key) to the second.
    ms(10).await;
    let (_, _, next) = end(&queue, &*started[0], Phase::Completed);
    assert_eq!(next.as_ref().map(id_of), Some(second.header().id.as_u64()));
}

#[tokio::test(start_paused = true)]
async fn a_task_arriving_as_the_window_frees_waits_behind_its_key() {
    let config = QueueConfig::new()
        .concurrency(3)
        .key_concurrency(1)
        .rate_limit(RateLimit::new(1, Duration::from_millis(100)));
    let queue = Arc::new(Queue::with_config(test_job::tag("q"), &config));
    let plain = queue
        .admit_new(TestJob::new(&queue, 0))
        .expect("starts at once");
    assert!(end(&queue, &*plain, Phase::Completed).2.is_none());
    let first = TestJob::with_key(&queue, 0, Some("k"));
    assert!(queue
        .admit_new(Arc::clone(&first) as Arc<dyn Job>)
        .is_none());
    // The window frees at t = 100; before its timer wakes the queue, another task of the
    // key arrives. The older task starts, not the newcomer, and only one of the key runs.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = TestJob::with_key(&queue, 0, Some("k"));
    let started = queue.admit_new(Arc::clone(&second) as Arc<dyn Job>);
    assert_eq!(
        started.as_ref().map(id_of),
        Some(first.header().id.as_u64())
    );
    assert!(queue.wake().is_empty(), "the key is busy, the window full");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(queue.wake().is_empty(), "the key is still busy");
    let (_, _, next) = end(&queue, &*first, Phase::Completed);
    assert_eq!(next.as_ref().map(id_of), Some(second.header().id.as_u64()));
}
