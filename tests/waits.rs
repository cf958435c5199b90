//! Waits in ordinary in-process tasks, on tokio's paused clock: `wait_for_signal` with
//! `signal_task`, `sleep`, `join` on task handles; and a model-based test of the mailbox.

use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::*;
use taskrunner::{QueueConfig, SignalError, StepError, Task, TaskContext, TaskError, TaskRunner};

#[tokio::test(start_paused = true)]
async fn a_signal_before_or_during_the_wait_is_taken_in_order() {
    let runner = TaskRunner::new();
    let task = runner
        .enqueue_task(Task::new("collect", |ctx: TaskContext| async move {
            let mut got = Vec::new();
            while let Some(n) = ctx
                .wait_for_signal::<u32>("n", Duration::from_secs(10))
                .await?
            {
                got.push(n);
            }
            Ok::<_, String>(got)
        }))
        .unwrap();
    runner.signal_task(task.id(), "n", 1_u32).unwrap(); // before the wait
    runner.signal_task(task.id(), "m", 9_u32).unwrap(); // another name: not taken
    tokio::time::sleep(Duration::from_secs(5)).await;
    runner.signal_task(task.id(), "n", 2_u32).unwrap(); // during it
    runner.signal_task(task.id(), "n", 3_u32).unwrap();
    let started = tokio::time::Instant::now();
    assert_eq!(task.await.unwrap(), vec![1, 2, 3]);
    // The last wait ended at its deadline, 10 s after it began.
    assert_eq!(started.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_value_of_another_type_is_a_clear_error() {
    let runner = TaskRunner::new();
    let task = runner
        .enqueue_task(Task::new("typed", |ctx: TaskContext| async move {
            ctx.wait_for_signal::<u32>("n", Duration::from_secs(10))
                .await
                .map_err(|e| e.to_string())
        }))
        .unwrap();
    runner.signal_task(task.id(), "n", "seven").unwrap();
    let err = match task.await {
        Err(TaskError::Failed(e)) => e,
        other => panic!("{other:?}"),
    };
    assert!(
        err.contains("signal `n`") && err.contains("u32") && err.contains("&str"),
        "{err}"
    );
    let _: fn(StepError) -> String = String::from;
}

#[tokio::test(start_paused = true)]
async fn a_signal_to_an_unknown_or_finished_task_is_an_error() {
    let runner = TaskRunner::new();
    let task = runner
        .enqueue_task(Task::new("quick", |_| async { Ok::<_, String>(()) }))
        .unwrap();
    let id = task.id();
    task.await.unwrap();
    assert!(matches!(
        runner.signal_task(id, "n", 1),
        Err(SignalError::TaskFinished { .. })
    ));
    let other = TaskRunner::new();
    let err = other.signal_task(id, "n", 1).unwrap_err();
    assert!(matches!(err, SignalError::UnknownTask { .. }), "{err}");
    assert!(err.to_string().contains(&id.to_string()), "{err}");
}

#[tokio::test(start_paused = true)]
async fn sleep_and_sleep_until_wait_on_the_clock() {
    let runner = TaskRunner::new();
    let started = tokio::time::Instant::now();
    let task = runner
        .enqueue_task(Task::new("nap", |ctx: TaskContext| async move {
            ctx.sleep(Duration::from_secs(3600)).await?;
            ctx.sleep_until(std::time::SystemTime::UNIX_EPOCH).await?; // past: at once
            Ok::<_, String>(())
        }))
        .unwrap();
    task.await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(3600));
}

#[tokio::test(start_paused = true)]
async fn join_and_join_all_give_the_children_results() {
    let runner = TaskRunner::builder()
        .queue("tools", QueueConfig::new().concurrency(2))
        .build()
        .unwrap();
    let inner = runner.clone();
    let parent = runner
        .enqueue_task(Task::new("parent", move |ctx: TaskContext| {
            let runner = inner.clone();
            async move {
                let child = |n: u32| {
                    runner
                        .enqueue_task(
                            Task::new("child", move |_| async move {
                                tokio::time::sleep(Duration::from_secs(u64::from(n))).await;
                                if n == 2 {
                                    Err(format!("child {n} failed"))
                                } else {
                                    Ok(n)
                                }
                            })
                            .queue("tools"),
                        )
                        .unwrap()
                };
                let one = ctx.join(child(1)).await;
                let all = ctx.join_all(vec![child(2), child(3)]).await;
                Ok::<_, String>((one, all))
            }
        }))
        .unwrap();
    let (one, all) = parent.await.unwrap();
    assert_eq!(one.unwrap(), 1);
    assert!(matches!(&all[0], Err(TaskError::Failed(e)) if e == "child 2 failed"));
    assert_eq!(*all[1].as_ref().unwrap(), 3);
}

/// A parent joining its child on its own full concurrency(1) queue gives its slot back while
/// it waits, so the child runs.
#[tokio::test(start_paused = true)]
async fn join_on_the_own_full_queue_does_not_deadlock() {
    let runner = TaskRunner::builder()
        .queue("main", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let inner = runner.clone();
    let parent = runner
        .enqueue_task(Task::new("parent", move |ctx: TaskContext| {
            let runner = inner.clone();
            async move {
                let child = runner
                    .enqueue_task(Task::new("child", |_| async { Ok::<_, String>(21) }))
                    .unwrap();
                Ok::<_, String>(ctx.join(child).await.unwrap() * 2)
            }
        }))
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(60), parent).await;
    assert_eq!(out.expect("deadlocked").unwrap(), 42);
}

// ===== model: the in-process mailbox =====

#[derive(Debug, Clone)]
enum Op {
    /// Send value `v` on name `k`.
    Send(u8, u32),
    /// The task waits once on name `k` (a short timeout).
    Wait(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..2_u8, any::<u32>()).prop_map(|(k, v)| Op::Send(k, v)),
        (0..2_u8).prop_map(Op::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the interleaving of sends and waits, each wait gets the oldest value of its
    /// name not yet taken (a FIFO per name), or `None` at its deadline when there is none.
    #[test]
    fn the_mailbox_is_a_fifo_per_name(ops in proptest::collection::vec(op(), 1..24)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async move {
            let runner = TaskRunner::new();
            let (cmd_tx, cmd_rx) = tokio::sync::mpsc::unbounded_channel::<u8>();
            let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel();
            let cmd_rx = std::sync::Arc::new(std::sync::Mutex::new(Some(cmd_rx)));
            let task = runner
                .enqueue_task(Task::new("model", move |ctx: TaskContext| {
                    let (cmd_rx, out_tx) = (cmd_rx.lock().unwrap().take(), out_tx.clone());
                    async move {
                        let mut cmd_rx = cmd_rx.ok_or("called twice")?;
                        while let Some(k) = cmd_rx.recv().await {
                            let got = ctx
                                .wait_for_signal::<u32>(&format!("k{k}"), Duration::from_secs(1))
                                .await?;
                            let _ = out_tx.send(got);
                        }
                        Ok::<_, String>(())
                    }
                }))
                .unwrap();
            let mut model: [VecDeque<u32>; 2] = Default::default();
            for op in ops {
                match op {
                    Op::Send(k, v) => {
                        runner.signal_task(task.id(), &format!("k{k}"), v).unwrap();
                        model[usize::from(k)].push_back(v);
                    }
                    Op::Wait(k) => {
                        cmd_tx.send(k).unwrap();
                        let got = out_rx.recv().await.unwrap();
                        assert_eq!(got, model[usize::from(k)].pop_front(), "wait on k{}", k);
                    }
                }
            }
            drop(cmd_tx);
            task.await.unwrap();
        });
    }
}
