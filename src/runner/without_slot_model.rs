//! Random programs of tasks that wait without their slot, cancels and time, on the paused
//! clock: at no moment do more handlers work with a slot than the queue's limit, a queue
//! with a free slot has no task waiting for one, and every handle resolves.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use crate::{QueueConfig, Task, TaskContext, TaskHandle, TaskRunner, TaskStatus};

const LIMIT: usize = 2;

#[derive(Debug, Clone)]
enum Op {
    /// A task: works `before` s, waits `wait` s without its slot, works `after` s.
    Enqueue {
        before: u64,
        wait: u64,
        after: u64,
        priority: i32,
        timeout: bool,
    },
    Cancel(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3u64, 0..6u64, 0..3u64, -1..=1i32, any::<bool>())
            .prop_map(|(before, wait, after, priority, timeout)| Op::Enqueue { before, wait, after, priority, timeout }),
        1 => (0..32usize).prop_map(Op::Cancel),
        3 => (1..4u64).prop_map(Op::Advance),
    ]
}

/// Handlers working with a slot now, and the most at once.
#[derive(Default)]
struct Working {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Working {
    fn enter(self: &Arc<Self>) -> Busy {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        Busy(Arc::clone(self))
    }
}

struct Busy(Arc<Working>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn settle() {
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_micros(1)).await;
    }
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let runner = TaskRunner::builder()
        .queue("q", QueueConfig::new().concurrency(LIMIT))
        .build()
        .unwrap();
    let working = Arc::new(Working::default());
    let mut handles: Vec<TaskHandle<(), String>> = Vec::new();
    for op in ops {
        match op {
            Op::Enqueue {
                before,
                wait,
                after,
                priority,
                timeout,
            } => {
                let working = Arc::clone(&working);
                let mut task = Task::new("t", move |ctx: TaskContext| {
                    let working = Arc::clone(&working);
                    async move {
                        let busy = working.enter();
                        tokio::time::sleep(Duration::from_secs(before)).await;
                        drop(busy);
                        ctx.without_slot(tokio::time::sleep(Duration::from_secs(wait)))
                            .await;
                        let _busy = working.enter();
                        tokio::time::sleep(Duration::from_secs(after)).await;
                        Ok::<_, String>(())
                    }
                })
                .queue("q")
                .priority(priority);
                if timeout {
                    task = task.timeout(Duration::from_secs(4));
                }
                handles.push(runner.enqueue_task(task).unwrap());
            }
            Op::Cancel(n) => {
                if !handles.is_empty() {
                    let _ = handles[n % handles.len()].cancel();
                }
            }
            Op::Advance(s) => tokio::time::sleep(Duration::from_secs(s)).await,
        }
        settle().await;
        prop_assert!(
            working.max.load(Ordering::SeqCst) <= LIMIT,
            "more handlers at work than slots"
        );
        let stats = runner.queue_stats("q").unwrap();
        let tasks = runner.list_tasks();
        let running = tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Running)
            .count();
        prop_assert_eq!(stats.running, running, "{:?}", tasks);
        prop_assert!(running <= LIMIT);
        let pending = tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Pending)
            .count();
        prop_assert_eq!(stats.pending, pending);
        prop_assert!(
            running == LIMIT || pending == 0,
            "a free slot and {} waiting",
            pending
        );
    }
    let all = futures::future::join_all(handles);
    let results = tokio::time::timeout(Duration::from_secs(3600), all)
        .await
        .expect("every handle resolves");
    prop_assert!(results.iter().all(|r| r.is_ok()
        || r.as_ref().unwrap_err().is_cancelled()
        || r.as_ref().unwrap_err().kind() == "timed_out"));
    let stats = runner.queue_stats("q").unwrap();
    prop_assert_eq!((stats.running, stats.pending), (0, 0));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn waiting_without_a_slot_keeps_the_queue_sound(ops in prop::collection::vec(op(), 1..30)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(run(ops))?;
    }
}
