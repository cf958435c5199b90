//! Task groups: tagging, the cap across queues without head-of-line blocking, the atomic
//! cancel, cancel on drop, and the one-error-type conveniences around them.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{settle, Probe};
use taskrunner::{
    EnqueueError, EventKind, QueueConfig, Task, TaskContext, TaskError, TaskRunner, TaskStatus,
    WaitReason,
};

fn forever(
    name: &str,
) -> Task<
    impl Fn(TaskContext) -> futures::future::Pending<Result<(), String>> + Send + Sync + 'static,
> {
    Task::new(name, |_: TaskContext| futures::future::pending())
}

fn sleeper(
    probe: &Arc<Probe>,
    label: &str,
    ms: u64,
) -> Task<
    impl Fn(TaskContext) -> futures::future::BoxFuture<'static, Result<(), String>>
        + Send
        + Sync
        + 'static,
> {
    let probe = Arc::clone(probe);
    let label = label.to_owned();
    Task::new("sleeper", move |_: TaskContext| {
        let inside = probe.enter(label.clone());
        Box::pin(async move {
            let _inside = inside;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(())
        }) as futures::future::BoxFuture<'static, Result<(), String>>
    })
}

#[tokio::test(start_paused = true)]
async fn members_are_tagged_in_their_info_and_events() {
    let runner = TaskRunner::new();
    let mut events = runner.subscribe();
    let turn = runner.group();
    let h = turn
        .enqueue_task(Task::new("t", |_: TaskContext| async {
            Ok::<_, String>(())
        }))
        .unwrap();
    let id = h.id();
    h.await.unwrap();
    let loner = runner
        .enqueue_task(Task::new("u", |_: TaskContext| async {
            Ok::<_, String>(())
        }))
        .unwrap();
    let loner_id = loner.id();
    loner.await.unwrap();
    assert_eq!(runner.get_status(id).unwrap().group, Some(turn.id()));
    assert_eq!(runner.get_status(loner_id).unwrap().group, None);
    for _ in 0..6 {
        let event = events.recv().await.unwrap().unwrap();
        let expected = if event.id == id {
            Some(turn.id())
        } else {
            None
        };
        assert_eq!(event.group, expected, "{event:?}");
    }
    let listed: Vec<_> = turn.list().into_iter().map(|i| i.id).collect();
    assert_eq!(listed, [id]);
    assert_eq!(turn.stats().finished, 1);
}

#[tokio::test(start_paused = true)]
async fn the_cap_holds_across_queues_and_never_blocks_other_tasks() {
    let runner = TaskRunner::builder()
        .queue("a", QueueConfig::new().concurrency(3))
        .queue("b", QueueConfig::new().concurrency(3))
        .build()
        .unwrap();
    let probe = Probe::new();
    let turn = runner.group().concurrency(2);
    let mut handles = Vec::new();
    for i in 0..6 {
        let queue = if i % 2 == 0 { "a" } else { "b" };
        handles.push(
            turn.enqueue_task(sleeper(&probe, "member", 100).queue(queue))
                .unwrap(),
        );
    }
    settle().await;
    assert_eq!(turn.stats().running, 2);
    assert_eq!(turn.stats().pending, 4);
    let held = turn
        .list()
        .into_iter()
        .filter(|i| i.status == TaskStatus::Pending)
        .collect::<Vec<_>>();
    assert!(
        held.iter()
            .all(|i| i.waiting_for == Some(WaitReason::GroupLimit)),
        "{held:?}"
    );
    // Both queues still have free slots, and an ungrouped task and another group's take them
    // at once, behind the held members in enqueue order.
    let other = runner.enqueue_task(forever("other").queue("a")).unwrap();
    let second = runner.group();
    let theirs = second.enqueue_task(forever("theirs").queue("b")).unwrap();
    assert_eq!(
        (other.status(), theirs.status()),
        (TaskStatus::Running, TaskStatus::Running)
    );
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(probe.max(), 2, "never more than the cap at once");
    assert_eq!(probe.entered().len(), 6);
    other.cancel();
    second.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_held_member_keeps_its_place_and_a_raised_cap_starts_it() {
    let runner = TaskRunner::builder()
        .queue("q", QueueConfig::new().concurrency(4))
        .build()
        .unwrap();
    let turn = runner.group().concurrency(1);
    let first = turn.enqueue_task(forever("first").queue("q")).unwrap();
    let second = turn.enqueue_task(forever("second").queue("q")).unwrap();
    assert_eq!(
        (first.status(), second.status()),
        (TaskStatus::Running, TaskStatus::Pending)
    );
    assert_eq!(
        runner.queue_stats("q").unwrap().pending,
        1,
        "a held member counts as pending"
    );
    let turn = turn.concurrency(2);
    assert_eq!(second.status(), TaskStatus::Running);
    assert_eq!(turn.cancel(), 2);
    assert!(matches!(first.await, Err(TaskError::Cancelled)));
    assert!(matches!(second.await, Err(TaskError::Cancelled)));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_group_refuses_new_tasks_and_reports_how_many_it_ended() {
    let runner = TaskRunner::builder()
        .queue("q", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let turn = runner.group();
    let done = turn
        .enqueue_task(Task::new("done", |_: TaskContext| async { Ok::<_, String>(()) }).queue("q"))
        .unwrap();
    done.await.unwrap();
    let running = turn.enqueue_task(forever("running").queue("q")).unwrap();
    let waiting = turn.enqueue_task(forever("waiting").queue("q")).unwrap();
    assert_eq!(turn.cancel(), 2, "the finished one is not counted");
    assert!(turn.is_cancelled());
    assert_eq!(turn.cancel(), 0);
    let refused = turn.enqueue_task(forever("late").queue("q")).unwrap_err();
    assert_eq!(refused, EnqueueError::GroupCancelled { group: turn.id() });
    assert!(refused.to_string().contains("runner.group()"), "{refused}");
    let back = turn
        .try_enqueue_task(forever("late").queue("q"))
        .unwrap_err();
    assert_eq!(back.into_task().name(), "late");
    assert!(matches!(running.await, Err(TaskError::Cancelled)));
    assert!(matches!(waiting.await, Err(TaskError::Cancelled)));
    turn.wait_idle().await;
    assert_eq!(turn.stats().finished, 3);
}

/// The scenario: a group of three on a concurrency-1 queue, cancelled while one
/// runs: neither of the other two starts. On a multi-thread runtime, 1,000 times.
#[test]
fn cancelling_a_group_while_one_runs_starts_none_of_the_rest_1000_times() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let runner = TaskRunner::builder()
            .queue("q", QueueConfig::new().concurrency(1))
            .build()
            .unwrap();
        for round in 0..1_000 {
            let starts = Arc::new(AtomicUsize::new(0));
            let turn = runner.group();
            let handles: Vec<_> = (0..3)
                .map(|_| {
                    let starts = Arc::clone(&starts);
                    turn.enqueue_task(
                        Task::new("tool", move |_: TaskContext| {
                            starts.fetch_add(1, Ordering::SeqCst);
                            async {
                                // Yields, so a cancel can come at any poll.
                                loop {
                                    tokio::task::yield_now().await;
                                }
                                #[allow(unreachable_code)]
                                Ok::<(), String>(())
                            }
                        })
                        .queue("q"),
                    )
                    .unwrap()
                })
                .collect();
            while starts.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
            assert_eq!(turn.cancel(), 3, "round {round}");
            for h in handles {
                assert!(
                    matches!(h.await, Err(TaskError::Cancelled)),
                    "round {round}"
                );
            }
            assert_eq!(
                starts.load(Ordering::SeqCst),
                1,
                "round {round}: a member started after the cancel"
            );
        }
    });
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_clone_of_a_cancel_on_drop_group_cancels_what_is_left() {
    let runner = TaskRunner::new();
    let turn = runner.group().cancel_on_drop();
    let clone = turn.clone();
    let h = turn.enqueue_task(forever("slow")).unwrap();
    drop(turn);
    settle().await;
    assert_eq!(h.status(), TaskStatus::Running, "a clone is left");
    drop(clone);
    assert!(matches!(h.await, Err(TaskError::Cancelled)));

    let plain = runner.group();
    let h = plain
        .enqueue_task(Task::new("t", |_: TaskContext| async {
            Ok::<_, String>(7)
        }))
        .unwrap();
    drop(plain);
    assert_eq!(h.await.unwrap(), 7, "a plain group's drop cancels nothing");
}

#[tokio::test(start_paused = true)]
async fn a_cancel_on_drop_handle_cancels_its_task_unless_it_ended_or_was_detached() {
    let runner = TaskRunner::new();
    let h = runner.enqueue_task(forever("a")).unwrap().cancel_on_drop();
    let id = h.id();
    drop(h);
    assert_eq!(runner.get_status(id).unwrap().status, TaskStatus::Cancelled);

    let h = runner
        .enqueue_task(forever("b"))
        .unwrap()
        .cancel_on_drop()
        .detach();
    settle().await;
    assert_eq!(h.status(), TaskStatus::Running, "detached: not cancelled");
    assert!(h.cancel());

    let h = runner
        .enqueue_task(Task::new("c", |_: TaskContext| async {
            Ok::<_, String>(1)
        }))
        .unwrap()
        .cancel_on_drop();
    assert_eq!(h.await.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn run_resolves_like_the_handle_and_a_refusal_as_rejected() {
    let runner = TaskRunner::new();
    let ok = runner
        .run(Task::new("t", |_: TaskContext| async {
            Ok::<_, String>(5)
        }))
        .await;
    assert_eq!(ok.unwrap(), 5);
    let refused = runner.run(forever("x").queue("nope")).await.unwrap_err();
    assert!(matches!(
        refused,
        TaskError::Rejected(EnqueueError::UnknownQueue(_))
    ));
    assert_eq!(refused.kind(), "rejected");
    // Dropping the future cancels the task.
    let started = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&started);
    let fut = runner.run(Task::new("slow", move |_: TaskContext| {
        s.store(true, Ordering::SeqCst);
        futures::future::pending::<Result<(), String>>()
    }));
    settle().await;
    assert!(started.load(Ordering::SeqCst));
    drop(fut);
    settle().await;
    assert!(runner
        .list_tasks()
        .iter()
        .filter(|t| t.name == "slow")
        .all(|t| t.status == TaskStatus::Cancelled));
}

#[test]
fn every_task_error_has_a_stable_kind() {
    let kinds = [
        TaskError::Failed("x".to_owned()).kind(),
        TaskError::<String>::TimedOut.kind(),
        TaskError::<String>::Cancelled.kind(),
        TaskError::<String>::Panicked("p".into()).kind(),
        TaskError::<String>::Shutdown.kind(),
        TaskError::<String>::Rejected(EnqueueError::ShuttingDown).kind(),
    ];
    assert_eq!(
        kinds,
        [
            "failed",
            "timed_out",
            "cancelled",
            "panicked",
            "shutdown",
            "rejected"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn find_call_finds_given_and_generated_call_ids_while_records_are_kept() {
    let runner = TaskRunner::builder().retain_finished(2).build().unwrap();
    let t =
        |call: &str| Task::new("t", |_: TaskContext| async { Ok::<_, String>(()) }).call_id(call);
    let first = runner.enqueue_task(t("call_a")).unwrap();
    let first_id = first.id();
    first.await.unwrap();
    assert_eq!(runner.find_call("call_a").unwrap().id, first_id);
    // The same call id again: the later task wins.
    let again = runner.enqueue_task(t("call_a")).unwrap();
    assert_eq!(runner.find_call("call_a").unwrap().id, again.id());
    again.await.unwrap();
    let plain = runner
        .enqueue_task(Task::new("p", |_: TaskContext| async {
            Ok::<_, String>(())
        }))
        .unwrap();
    let call = plain.call_id().to_owned();
    plain.await.unwrap();
    assert_eq!(runner.find_call(&call).unwrap().name, "p");
    // Evicted (two are kept): gone from the index too.
    for _ in 0..3 {
        runner.enqueue_task(t("call_b")).unwrap().await.unwrap();
    }
    assert!(runner.find_call("call_a").is_none());
    assert!(runner.find_call(&call).is_none());
    assert!(runner.find_call("call_b").is_some());
    assert!(runner.find_call("call-notanumber").is_none());
}

/// After `cancel_and_wait` resolves, the handler's future has been dropped, every time, on a
/// multi-thread runtime.
#[test]
fn cancel_and_wait_resolves_after_the_future_is_dropped() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let runner = TaskRunner::new();
        for round in 0..200 {
            let dropped = Arc::new(AtomicBool::new(false));
            let started = Arc::new(AtomicBool::new(false));
            let (d, s) = (Arc::clone(&dropped), Arc::clone(&started));
            let h = runner
                .enqueue_task(Task::new("tool", move |_: TaskContext| {
                    let guard = DropFlag(Arc::clone(&d));
                    s.store(true, Ordering::SeqCst);
                    async move {
                        let _guard = guard;
                        loop {
                            tokio::task::yield_now().await;
                        }
                        #[allow(unreachable_code)]
                        Ok::<(), String>(())
                    }
                }))
                .unwrap();
            while !started.load(Ordering::SeqCst) {
                tokio::task::yield_now().await;
            }
            assert!(runner.cancel_and_wait(h.id()).await, "round {round}");
            assert!(
                dropped.load(Ordering::SeqCst),
                "round {round}: the future is still alive"
            );
            assert!(
                !runner.cancel_and_wait(h.id()).await,
                "nothing left to cancel"
            );
            assert!(matches!(h.await, Err(TaskError::Cancelled)));
        }
    });
}

struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn a_retrying_member_gives_its_place_back_during_its_backoff() {
    let runner = TaskRunner::new();
    let turn = runner.group().concurrency(1);
    let flaky = turn
        .enqueue_task(
            Task::new("flaky", |ctx: TaskContext| async move {
                if ctx.attempt() == 1 {
                    Err("503".to_owned())
                } else {
                    Ok(())
                }
            })
            .retry(taskrunner::RetryPolicy::fixed(Duration::from_secs(10))),
        )
        .unwrap();
    settle().await;
    assert_eq!(flaky.status(), TaskStatus::Retrying);
    let other = turn
        .enqueue_task(Task::new("other", |_: TaskContext| async {
            Ok::<_, String>(2)
        }))
        .unwrap();
    assert_eq!(
        other.status(),
        TaskStatus::Running,
        "the backoff holds no place"
    );
    assert_eq!(other.await.unwrap(), 2);
    flaky.await.unwrap();
    let mut events = runner.subscribe();
    drop(runner.enqueue_task(forever("x")).unwrap());
    assert_eq!(
        events.recv().await.unwrap().unwrap().kind,
        EventKind::Enqueued
    );
}
