//! Random work on real threads: multi-thread runtimes of 1–3 workers, each dropped with tasks
//! in flight or after they finish, cancels from another thread, handlers whose futures or
//! captures panic when dropped, and context clones reporting progress from another thread
//! long after their handlers returned. `tests/model.rs` checks exact outcomes on a paused
//! clock; this checks what must hold whatever the interleaving:
//!
//! - every handle resolves, exactly once (its completion callback runs once);
//! - no slot leaks: every queue is empty and idle once its runtime is gone;
//! - every task has exactly one terminal event, and nothing after it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use taskrunner::{QueueConfig, RetryPolicy, Task, TaskContext, TaskId, TaskRunner};

/// Panics when dropped while armed.
struct Bomb(bool);

impl Drop for Bomb {
    fn drop(&mut self) {
        if self.0 {
            panic!("stress bomb");
        }
    }
}

fn quiet() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload().downcast_ref::<&str>();
            if payload != Some(&"stress bomb") && payload != Some(&"stress panic") {
                default(info);
            }
        }));
    });
}

type Contexts = Arc<Mutex<Vec<TaskContext>>>;

fn random_task(
    runner: &TaskRunner,
    rng: &mut fastrand::Rng,
    contexts: &Contexts,
    finished: &Arc<AtomicU32>,
) -> taskrunner::TaskHandle<u32, String> {
    let kind = rng.u8(0..10);
    let ms = rng.u64(0..4);
    let bomb = rng.bool();
    let capture = Arc::new(Bomb(rng.u8(0..5) == 0));
    let contexts = Arc::clone(contexts);
    let mut task = Task::new("stress", move |ctx: TaskContext| {
        let _keep = &capture;
        contexts.lock().unwrap().push(ctx.clone());
        async move {
            let mut armed = Bomb(bomb);
            match kind {
                // Hangs until cancelled, timed out or its runtime goes.
                0 | 1 => std::future::pending::<()>().await,
                _ => tokio::time::sleep(Duration::from_millis(ms)).await,
            }
            armed.0 = false;
            ctx.set_progress(100.0, "done");
            match kind {
                2 => panic!("stress panic"),
                3 | 4 if ctx.attempt() < 2 => Err(format!("attempt {}", ctx.attempt())),
                _ => Ok(ctx.attempt()),
            }
        }
    })
    .queue(if rng.bool() { "a" } else { "b" })
    .priority(rng.i32(-2..=2))
    .on_complete({
        let finished = Arc::clone(finished);
        move |_| {
            finished.fetch_add(1, Ordering::SeqCst);
        }
    })
    .on_error({
        let finished = Arc::clone(finished);
        move |_, _| {
            finished.fetch_add(1, Ordering::SeqCst);
        }
    });
    if rng.bool() {
        task = task.retry(RetryPolicy::fixed(Duration::from_millis(rng.u64(0..3))).max_retries(2));
    }
    if rng.u8(0..3) == 0 {
        task = task.timeout(Duration::from_millis(rng.u64(1..6)));
    }
    runner.enqueue_task(task).unwrap()
}

#[test]
fn random_work_across_dying_multi_thread_runtimes_loses_nothing() {
    quiet();
    let runner = TaskRunner::builder()
        .queue("a", QueueConfig::new().concurrency(2))
        .queue("b", QueueConfig::new().concurrency(1))
        .event_capacity(1 << 17)
        .build()
        .unwrap();
    let mut events = runner.subscribe();
    let contexts: Contexts = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    // Reports progress through every context ever handed out, over and over.
    let reporter = {
        let (contexts, stop) = (Arc::clone(&contexts), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let all = contexts.lock().unwrap().clone();
                for ctx in all {
                    ctx.set_progress(1.0, "late");
                }
                std::thread::yield_now();
            }
        })
    };
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut ids: Vec<TaskId> = Vec::new();
    for round in 0..8 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1 + round % 3)
            .enable_all()
            .build()
            .unwrap();
        let finished: Vec<Arc<AtomicU32>> = (0..120).map(|_| Arc::default()).collect();
        let handles: Vec<_> = rt.block_on(async {
            finished
                .iter()
                .map(|f| random_task(&runner, &mut rng, &contexts, f))
                .collect()
        });
        ids.extend(handles.iter().map(|h| h.id()));
        // Cancels from another thread while the runtime works.
        let to_cancel: Vec<TaskId> = ids.iter().copied().filter(|_| rng.u8(0..4) == 0).collect();
        let canceller = {
            let runner = runner.clone();
            std::thread::spawn(move || {
                for id in to_cancel {
                    runner.cancel(id);
                }
            })
        };
        let wait_all = round % 2 == 1;
        rt.block_on(async {
            if wait_all {
                // Hanging tasks end by cancel or timeout only: cancel the rest.
                tokio::time::sleep(Duration::from_millis(20)).await;
                for handle in &handles {
                    handle.cancel();
                }
                tokio::time::timeout(Duration::from_secs(20), runner.wait_idle())
                    .await
                    .expect("wait_idle hung: a task or a slot leaked");
            } else {
                tokio::time::sleep(Duration::from_millis(rng.u64(0..5))).await;
            }
        });
        canceller.join().unwrap();
        drop(rt);
        for (i, handle) in handles.into_iter().enumerate() {
            assert!(
                handle.now_or_never().is_some(),
                "round {round}: a handle did not resolve when its runtime went"
            );
            assert_eq!(
                finished[i].load(Ordering::SeqCst),
                1,
                "round {round}: callbacks ran once"
            );
        }
        for queue in ["a", "b"] {
            let stats = runner.queue_stats(queue).unwrap();
            assert_eq!(
                (stats.pending, stats.running, stats.retrying),
                (0, 0, 0),
                "round {round}, queue {queue}"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    reporter.join().unwrap();

    drop(runner);
    let mut terminal: HashMap<TaskId, Vec<bool>> = HashMap::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let all: Vec<_> = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), events.by_ref().collect::<Vec<_>>())
            .await
            .expect("the event stream did not end with the runner")
    });
    for event in all {
        let event = event.expect("no subscriber lag at this capacity");
        terminal
            .entry(event.id)
            .or_default()
            .push(event.kind.is_terminal());
    }
    for id in ids {
        let ends = terminal.remove(&id).unwrap_or_default();
        assert_eq!(
            ends.iter().filter(|t| **t).count(),
            1,
            "task {id}: one terminal event"
        );
        assert_eq!(ends.last(), Some(&true), "task {id}: nothing after its end");
    }
}
