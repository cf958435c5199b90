//! What user code and the runtime can do to the runner, and what holds anyway: panics while
//! a handler's future or captures are dropped, a runtime that shuts down with tasks in
//! flight or workers parked, a progress report racing the task's end, and the event stream
//! outliving the runner.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use taskrunner::{
    EnqueueError, EventKind, QueueConfig, RetryPolicy, Task, TaskContext, TaskError, TaskHandle,
    TaskRunner, TaskStatus,
};

/// Panics when dropped.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("panic on drop");
    }
}

/// Keeps the test output quiet about the panics these tests cause on purpose.
fn quiet_drop_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&"panic on drop") {
                default(info);
            }
        }));
    });
}

/// A handler whose future holds a `PanicOnDrop` and never ends.
fn hangs_and_panics_when_dropped(
    _: TaskContext,
) -> futures::future::BoxFuture<'static, Result<(), String>> {
    Box::pin(async {
        let _guard = PanicOnDrop;
        std::future::pending::<Result<(), String>>().await
    })
}

fn ok_handler(_: TaskContext) -> std::future::Ready<Result<u32, String>> {
    std::future::ready(Ok(7))
}

/// Awaits `handle`, failing the test instead of hanging if it never resolves.
async fn resolve<T: 'static, E: 'static>(handle: TaskHandle<T, E>) -> Result<T, TaskError<E>> {
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("the handle never resolved")
}

#[tokio::test(start_paused = true)]
async fn a_future_that_panics_when_dropped_on_cancel_still_ends_cancelled() {
    quiet_drop_panics();
    let runner = TaskRunner::new();
    let handle = runner
        .enqueue_task(Task::new("p", hangs_and_panics_when_dropped))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(handle.cancel());
    assert!(matches!(resolve(handle).await, Err(TaskError::Cancelled)));
    assert_eq!(runner.queue_stats("main").unwrap().running, 0);
    // The runner goes on.
    let after = runner.enqueue_task(Task::new("after", ok_handler)).unwrap();
    assert_eq!(resolve(after).await.unwrap(), 7);
    tokio::time::timeout(Duration::from_secs(10), runner.wait_idle())
        .await
        .expect("wait_idle hung");
}

#[tokio::test(start_paused = true)]
async fn a_future_that_panics_when_dropped_on_timeout_still_ends_timed_out() {
    quiet_drop_panics();
    let runner = TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let handle = runner
        .enqueue_task(
            Task::new("p", hangs_and_panics_when_dropped)
                .queue("one")
                .timeout(Duration::from_millis(20)),
        )
        .unwrap();
    let behind = runner
        .enqueue_task(Task::new("behind", ok_handler).queue("one"))
        .unwrap();
    assert!(matches!(resolve(handle).await, Err(TaskError::TimedOut)));
    assert_eq!(resolve(behind).await.unwrap(), 7);
    assert_eq!(runner.queue_stats("one").unwrap().running, 0);
}

#[tokio::test(start_paused = true)]
async fn a_handler_capture_that_panics_when_dropped_loses_neither_its_task_nor_the_next() {
    quiet_drop_panics();
    let runner = TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let capture = Arc::new(PanicOnDrop);
    let first = runner
        .enqueue_task(
            Task::new("captures", move |_: TaskContext| {
                let _keep = Arc::clone(&capture);
                async {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Ok::<_, String>(1)
                }
            })
            .queue("one"),
        )
        .unwrap();
    let second = runner
        .enqueue_task(Task::new("second", ok_handler).queue("one"))
        .unwrap();
    assert_eq!(resolve(first).await.unwrap(), 1);
    assert_eq!(resolve(second).await.unwrap(), 7);
    tokio::time::timeout(Duration::from_secs(10), runner.wait_idle())
        .await
        .expect("wait_idle hung");
    assert_eq!(runner.queue_stats("one").unwrap().running, 0);
}

#[tokio::test(start_paused = true)]
async fn a_detached_result_that_panics_when_dropped_is_contained() {
    quiet_drop_panics();
    let runner = TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = Arc::clone(&gate);
    let first = runner
        .enqueue_task(
            Task::new("result panics on drop", move |_: TaskContext| {
                let g = Arc::clone(&g);
                async move {
                    g.acquire().await.unwrap().forget();
                    Ok::<_, String>(PanicOnDrop)
                }
            })
            .queue("one"),
        )
        .unwrap();
    let second = runner
        .enqueue_task(Task::new("second", ok_handler).queue("one"))
        .unwrap();
    drop(first);
    gate.add_permits(1);
    assert_eq!(resolve(second).await.unwrap(), 7);
    assert_eq!(runner.queue_stats("one").unwrap().running, 0);
}

/// A worker that parked as its runtime shut down must not be handed the next start: one
/// runner used from a sequence of multi-thread runtimes, as a server that recreates its
/// runtime would (a completion callback keeps the worker busy while the runtime goes).
#[test]
fn a_runner_outlives_a_sequence_of_multi_thread_runtimes() {
    let runner = TaskRunner::new();
    for round in 0..6 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let out = rt.block_on(async {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    runner
                        .enqueue_task(
                            Task::new("a", ok_handler)
                                .on_complete(|_| std::thread::sleep(Duration::from_millis(2))),
                        )
                        .unwrap()
                })
                .collect();
            let mut sum = 0;
            for handle in handles {
                sum += resolve(handle).await.unwrap();
            }
            sum
        });
        assert_eq!(out, 56, "round {round}");
        drop(rt);
    }
}

#[test]
fn enqueue_outside_any_runtime_after_the_runners_runtime_died_is_refused() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runner = {
        let _entered = rt.enter();
        TaskRunner::new()
    };
    drop(rt);
    let refused = runner.enqueue_task(Task::new("late", ok_handler));
    assert!(
        matches!(refused, Err(EnqueueError::NoRuntime)),
        "{refused:?}"
    );

    // A new runtime brings it back, and enqueue from outside then uses that one.
    let rt2 = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt2.block_on(async {
        let handle = runner.enqueue_task(Task::new("b", ok_handler)).unwrap();
        assert_eq!(resolve(handle).await.unwrap(), 7);
    });
    let outside = runner.enqueue_task(Task::new("c", ok_handler)).unwrap();
    assert_eq!(rt2.block_on(resolve(outside)).unwrap(), 7);
}

#[test]
fn no_progress_event_follows_the_terminal_event() {
    const TASKS: usize = 20000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let runner = TaskRunner::builder()
            .queue("main", QueueConfig::new().concurrency(4))
            .event_capacity(1 << 17)
            .build()
            .unwrap();
        let mut events = runner.subscribe();
        // Helper threads report progress through a context clone as the handler returns.
        let (send, receive) = std::sync::mpsc::channel::<(TaskContext, Arc<std::sync::Barrier>)>();
        let receive = Arc::new(std::sync::Mutex::new(receive));
        let helpers: Vec<_> = (0..4)
            .map(|_| {
                let receive = Arc::clone(&receive);
                std::thread::spawn(move || loop {
                    let next = receive.lock().unwrap().recv();
                    let Ok((ctx, barrier)) = next else { return };
                    barrier.wait();
                    ctx.set_progress(50.0, "late");
                })
            })
            .collect();
        let send = Arc::new(std::sync::Mutex::new(send));
        let mut handles = Vec::new();
        for _ in 0..TASKS {
            let send = Arc::clone(&send);
            handles.push(
                runner
                    .enqueue_task(Task::new("racy", move |ctx: TaskContext| {
                        let barrier = Arc::new(std::sync::Barrier::new(2));
                        send.lock()
                            .unwrap()
                            .send((ctx, Arc::clone(&barrier)))
                            .unwrap();
                        barrier.wait();
                        std::future::ready(Ok::<_, String>(()))
                    }))
                    .unwrap(),
            );
        }
        for handle in handles {
            resolve(handle).await.unwrap();
        }
        drop(send);
        for helper in helpers {
            helper.join().unwrap();
        }
        drop(runner);
        let mut ended = std::collections::HashSet::new();
        let mut late = 0;
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_secs(10), events.next()).await
        {
            let event = event.expect("no lag at this capacity");
            if ended.contains(&event.id) {
                late += 1;
            }
            if event.kind.is_terminal() {
                ended.insert(event.id);
            }
        }
        assert_eq!(ended.len(), TASKS);
        assert_eq!(late, 0, "events after a terminal event");
    });
}

#[tokio::test(start_paused = true)]
async fn the_event_stream_ends_when_the_runner_is_dropped_though_a_handle_lives() {
    let runner = TaskRunner::new();
    let mut events = runner.subscribe();
    let done = runner.enqueue_task(Task::new("a", ok_handler)).unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = Arc::clone(&gate);
    let waiting = runner
        .enqueue_task(Task::new("b", move |_: TaskContext| {
            let g = Arc::clone(&g);
            async move {
                g.acquire().await.unwrap().forget();
                Ok::<_, String>(8)
            }
        }))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    drop(runner);
    let seen: Vec<(u64, EventKind)> = tokio::time::timeout(
        Duration::from_secs(10),
        events
            .by_ref()
            .map(|e| {
                let e = e.unwrap();
                (e.id.as_u64(), e.kind)
            })
            .collect::<Vec<_>>(),
    )
    .await
    .expect("the event stream did not end with the runner");
    // What was sent before the runner went is still delivered.
    let (a, b) = (done.id().as_u64(), waiting.id().as_u64());
    assert_eq!(
        seen,
        [
            (a, EventKind::Enqueued),
            (b, EventKind::Enqueued),
            (a, EventKind::Started { attempt: 1 }),
            (a, EventKind::Completed),
            (b, EventKind::Started { attempt: 1 }),
        ]
    );
    // The tasks go on without the runner.
    gate.add_permits(1);
    assert_eq!(done.await.unwrap(), 7);
    assert_eq!(waiting.await.unwrap(), 8);
    assert!(events.next().await.is_none());
}

#[test]
fn a_timeout_or_retry_on_a_runtime_without_timers_is_refused_at_enqueue() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let runner = TaskRunner::new();
        let timed =
            runner.enqueue_task(Task::new("timed", ok_handler).timeout(Duration::from_secs(1)));
        match timed {
            Err(EnqueueError::TimersDisabled { task }) => assert_eq!(task, "timed"),
            other => panic!("expected TimersDisabled, got {other:?}"),
        }
        let retried = runner.enqueue_task(
            Task::new("retried", ok_handler).retry(RetryPolicy::fixed(Duration::from_millis(1))),
        );
        assert!(matches!(retried, Err(EnqueueError::TimersDisabled { .. })));
        let message = EnqueueError::TimersDisabled {
            task: "timed".into(),
        }
        .to_string();
        assert!(
            message.contains("`timed`") && message.contains("enable_time"),
            "{message}"
        );
        // Tasks without either still run there.
        let plain = runner.enqueue_task(Task::new("plain", ok_handler)).unwrap();
        assert_eq!(plain.await.unwrap(), 7);
        assert_eq!(runner.queue_stats("main").unwrap().running, 0);
    });
}

/// Tasks running, waiting and retrying when their runtime is dropped all resolve
/// `Shutdown`; the runner then works from a new runtime.
fn runtime_dropped_with_tasks_in_flight(multi: bool) {
    quiet_drop_panics();
    let runner = TaskRunner::builder()
        .queue("main", QueueConfig::new().concurrency(3))
        .build()
        .unwrap();
    let build = || {
        if multi {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        }
    };
    let dropped = Arc::new(AtomicUsize::new(0));
    let rt1 = build();
    let (hanging, retrying) = rt1.block_on(async {
        let hanging: Vec<_> = (0..10)
            .map(|i| {
                let dropped = Arc::clone(&dropped);
                runner
                    .enqueue_task(Task::new("hangs", move |_: TaskContext| {
                        let dropped = Arc::clone(&dropped);
                        async move {
                            struct Count(Arc<AtomicUsize>);
                            impl Drop for Count {
                                fn drop(&mut self) {
                                    self.0.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                            let _count = Count(dropped);
                            // One of them also panics as it is dropped.
                            let _bomb = if i == 0 { Some(PanicOnDrop) } else { None };
                            std::future::pending::<Result<(), String>>().await
                        }
                    }))
                    .unwrap()
            })
            .collect();
        let retrying = runner
            .enqueue_task(
                Task::new("retrying", |_: TaskContext| async {
                    Err::<(), _>("no".to_owned())
                })
                .retry(RetryPolicy::fixed(Duration::from_secs(3600)))
                .priority(100),
            )
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        (hanging, retrying)
    });
    let stats = runner.queue_stats("main").unwrap();
    assert_eq!((stats.running, stats.pending), (3, 8));
    drop(rt1);

    for handle in hanging {
        let result = handle
            .now_or_never()
            .expect("resolved when its runtime went away");
        assert!(matches!(result, Err(TaskError::Shutdown)), "{result:?}");
    }
    let result = retrying
        .now_or_never()
        .expect("resolved when its runtime went away");
    assert!(matches!(result, Err(TaskError::Shutdown)), "{result:?}");
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        3,
        "each started future was dropped"
    );
    let stats = runner.queue_stats("main").unwrap();
    assert_eq!((stats.running, stats.pending, stats.retrying), (0, 0, 0));
    assert!(runner
        .list_tasks()
        .iter()
        .all(|t| t.status == TaskStatus::Cancelled
            && t.error.as_deref() == Some("stopped by shutdown")));

    let rt2 = build();
    rt2.block_on(async {
        let handles: Vec<_> = (0..5)
            .map(|_| runner.enqueue_task(Task::new("again", ok_handler)).unwrap())
            .collect();
        for handle in handles {
            assert_eq!(resolve(handle).await.unwrap(), 7);
        }
        tokio::time::timeout(Duration::from_secs(10), runner.wait_idle())
            .await
            .expect("wait_idle hung");
    });
}

#[test]
fn a_current_thread_runtime_dropped_with_tasks_in_flight_resolves_every_handle() {
    runtime_dropped_with_tasks_in_flight(false);
}

#[test]
fn a_multi_thread_runtime_dropped_with_tasks_in_flight_resolves_every_handle() {
    runtime_dropped_with_tasks_in_flight(true);
}

#[tokio::test(start_paused = true)]
async fn a_retry_predicate_that_panics_when_dropped_loses_nothing() {
    quiet_drop_panics();
    // No finished record kept: the worker may hold a task's last reference.
    let runner = TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .retain_finished(0)
        .build()
        .unwrap();
    let bomb = Arc::new(PanicOnDrop);
    let first = runner
        .enqueue_task(
            Task::new("first", |_: TaskContext| async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok::<_, String>(1)
            })
            .queue("one")
            .retry(RetryPolicy::fixed(Duration::from_millis(1)))
            .retry_if(move |_: &String| {
                let _keep = &bomb;
                true
            }),
        )
        .unwrap();
    drop(first);
    let second = runner
        .enqueue_task(Task::new("second", ok_handler).queue("one"))
        .unwrap();
    assert_eq!(resolve(second).await.unwrap(), 7);
    tokio::time::timeout(Duration::from_secs(10), runner.wait_idle())
        .await
        .expect("wait_idle hung");
}

/// A task waiting out its start delay when its runtime shuts down ends `Shutdown`, as a task
/// in backoff does: its handle resolves and the runner goes idle (it used to hang, `Delayed`).
#[test]
fn a_delayed_task_whose_runtime_goes_away_ends_shutdown() {
    let current_thread = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let first = current_thread();
    let (runner, handle) = first.block_on(async {
        let runner = TaskRunner::new();
        let handle = runner
            .enqueue_task(
                Task::new("later", |_: TaskContext| async { Ok::<u32, String>(1) })
                    .delay(Duration::from_secs(3600)),
            )
            .unwrap();
        tokio::task::yield_now().await;
        assert_eq!(handle.status(), TaskStatus::Delayed);
        (runner, handle)
    });
    drop(first);
    let second = current_thread();
    let result =
        second.block_on(async { tokio::time::timeout(Duration::from_secs(5), handle).await });
    assert!(matches!(result, Ok(Err(TaskError::Shutdown))), "{result:?}");
    let idle = second
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), runner.wait_idle()).await });
    assert!(idle.is_ok(), "the runner goes idle");
    assert_eq!(runner.queue_stats("main").unwrap().delayed, 0);
}

/// A handler whose factory panics, and whose captures panic as they are dropped: the task
/// ends `Panicked` and the process lives (the captures are dropped where a panic is
/// contained, not while the factory's panic unwinds, which would abort).
#[tokio::test]
async fn a_panicking_handler_factory_whose_captures_panic_on_drop_ends_panicked() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("a capture panicked as it was dropped");
        }
    }
    let runner = TaskRunner::new();
    let bomb = Bomb;
    let handle = runner
        .enqueue_task(Task::new("factory", move |_: TaskContext| {
            let _captured = &bomb;
            if true {
                panic!("the factory panicked");
            }
            async { Ok::<_, String>(()) }
        }))
        .unwrap();
    assert!(matches!(handle.await, Err(TaskError::Panicked(_))));
    let next = runner.enqueue_task(Task::new("next", |_: TaskContext| async {
        Ok::<_, String>(2)
    }));
    assert_eq!(next.unwrap().await.unwrap(), 2, "the runner goes on");
}
