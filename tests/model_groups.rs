//! Random programs of grouped enqueues, group cancels and dropped cancel-on-drop handles,
//! across two queues and group caps, run against the real runner on a paused clock.
//!
//! After every step, once the runner has settled:
//! - no queue runs more than its limit, and a queue with a free slot has no task waiting for
//!   a slot (a group at its cap holds up no one: its held members wait outside the order);
//! - no group runs more members than its cap (counted by the handlers themselves, so a
//!   handler's future still alive counts), and a member held at the cap means the group is
//!   at its cap;
//! - no member of a cancelled group starts an attempt after `cancel()` began: only those
//!   running at that moment ever had another attempt (none);
//! - a cancelled group refuses new tasks.
//!
//! At the end every kept handle resolves (once: it is a future, awaited once), every dropped
//! `cancel_on_drop` handle's task has ended, and the runner is idle.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use taskrunner::{
    CancelOnDropHandle, EnqueueError, QueueConfig, RetryPolicy, Task, TaskContext, TaskGroup,
    TaskId, TaskRunner, TaskStatus, WaitReason,
};

const QUEUES: [(&str, usize); 2] = [("a", 2), ("b", 3)];
const GROUPS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        group: Option<usize>,
        queue: usize,
        ms: u64,
        flaky: bool,
        priority: i32,
    },
    CancelGroup(usize),
    /// Drops the n-th kept handle (modulo their number): it cancels its task.
    DropHandle(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop::option::of(0..GROUPS), 0..QUEUES.len(), 1..40u64, any::<bool>(), -1..=1i32)
            .prop_map(|(group, queue, ms, flaky, priority)| Op::Enqueue { group, queue, ms, flaky, priority }),
        1 => (0..GROUPS).prop_map(Op::CancelGroup),
        1 => (0..64usize).prop_map(Op::DropHandle),
        3 => (1..30u64).prop_map(Op::Advance),
    ]
}

/// Counts a group's handlers alive at once, and the most.
#[derive(Default)]
struct Inside {
    now: AtomicUsize,
    max: AtomicUsize,
}

struct Leave(Arc<Inside>);

impl Drop for Leave {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

struct World {
    runner: TaskRunner,
    groups: Vec<TaskGroup>,
    caps: Vec<Option<usize>>,
    inside: Vec<Arc<Inside>>,
    /// For each cancelled group: each member's attempts when its cancel began, and whether it
    /// was running then.
    frozen: HashMap<usize, Vec<(TaskId, u32, bool)>>,
    kept: Vec<CancelOnDropHandle<(), String>>,
    dropped: Vec<TaskId>,
}

async fn settle() {
    for _ in 0..4 {
        common::settle().await;
    }
}

fn check(world: &World) -> Result<(), TestCaseError> {
    let tasks = world.runner.list_tasks();
    for (queue, limit) in QUEUES {
        let mine: Vec<_> = tasks.iter().filter(|t| t.queue == queue).collect();
        let running = mine
            .iter()
            .filter(|t| t.status == TaskStatus::Running)
            .count();
        prop_assert!(
            running <= limit,
            "queue {queue}: {running} running, limit {limit}"
        );
        if running < limit {
            let stuck: Vec<_> = mine
                .iter()
                .filter(|t| {
                    t.status == TaskStatus::Pending && t.waiting_for != Some(WaitReason::GroupLimit)
                })
                .collect();
            prop_assert!(
                stuck.is_empty(),
                "queue {queue} has a free slot but {stuck:?} wait"
            );
        }
    }
    for (g, group) in world.groups.iter().enumerate() {
        let members = group.list();
        let running = members
            .iter()
            .filter(|t| t.status == TaskStatus::Running)
            .count();
        if let Some(cap) = world.caps[g] {
            prop_assert!(running <= cap, "group {g}: {running} running, cap {cap}");
            prop_assert!(
                world.inside[g].max.load(Ordering::SeqCst) <= cap,
                "group {g}: handlers over its cap"
            );
            let held = members
                .iter()
                .any(|t| t.waiting_for == Some(WaitReason::GroupLimit));
            prop_assert!(
                !held || running == cap,
                "group {g} holds members with {running} of {cap} running"
            );
        }
        if let Some(frozen) = world.frozen.get(&g) {
            for (id, attempts, _) in frozen {
                let now = world
                    .runner
                    .get_status(*id)
                    .map_or(*attempts, |t| t.attempts);
                prop_assert_eq!(
                    now,
                    *attempts,
                    "member {} of cancelled group {} started again",
                    id,
                    g
                );
            }
        }
    }
    Ok(())
}

async fn run_program(ops: Vec<Op>, caps: Vec<Option<usize>>) -> Result<(), TestCaseError> {
    let mut builder = TaskRunner::builder().retain_finished(100_000);
    for (name, limit) in QUEUES {
        builder = builder.queue(name, QueueConfig::new().concurrency(limit));
    }
    let runner = builder.build().unwrap();
    let groups = caps
        .iter()
        .map(|cap| match cap {
            Some(cap) => runner.group().concurrency(*cap),
            None => runner.group(),
        })
        .collect();
    let mut world = World {
        runner,
        groups,
        caps,
        inside: (0..GROUPS).map(|_| Arc::default()).collect(),
        frozen: HashMap::new(),
        kept: Vec::new(),
        dropped: Vec::new(),
    };
    for op in ops {
        match op {
            Op::Enqueue {
                group,
                queue,
                ms,
                flaky,
                priority,
            } => {
                let inside = group.map(|g| Arc::clone(&world.inside[g]));
                let task = Task::new("tool", move |ctx: TaskContext| {
                    let leave = inside.as_ref().map(|inside| {
                        let now = inside.now.fetch_add(1, Ordering::SeqCst) + 1;
                        inside.max.fetch_max(now, Ordering::SeqCst);
                        Leave(Arc::clone(inside))
                    });
                    async move {
                        let _leave = leave;
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        if flaky && ctx.attempt() == 1 {
                            Err("flaky".to_owned())
                        } else {
                            Ok(())
                        }
                    }
                })
                .queue(QUEUES[queue].0)
                .priority(priority)
                .retry(RetryPolicy::fixed(Duration::from_millis(5)).max_retries(1));
                let handle = match group {
                    Some(g) => match world.groups[g].enqueue_task(task) {
                        Ok(handle) => handle,
                        Err(refused) => {
                            prop_assert!(world.frozen.contains_key(&g), "refused: {refused}");
                            prop_assert_eq!(
                                refused,
                                EnqueueError::GroupCancelled {
                                    group: world.groups[g].id()
                                }
                            );
                            continue;
                        }
                    },
                    None => world.runner.enqueue_task(task).unwrap(),
                };
                prop_assert!(
                    group.is_none_or(|g| !world.frozen.contains_key(&g)),
                    "a cancelled group took a task"
                );
                world.kept.push(handle.cancel_on_drop());
            }
            Op::CancelGroup(g) => {
                let before: Vec<_> = world.groups[g]
                    .list()
                    .into_iter()
                    .map(|t| (t.id, t.attempts, t.status == TaskStatus::Running))
                    .collect();
                let live = before.len();
                let ended = world.groups[g].cancel();
                prop_assert!(ended <= live);
                world.frozen.entry(g).or_insert(before);
            }
            Op::DropHandle(n) => {
                if !world.kept.is_empty() {
                    let handle = world.kept.remove(n % world.kept.len());
                    world.dropped.push(handle.id());
                }
            }
            Op::Advance(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        }
        settle().await;
        check(&world)?;
    }
    let kept = std::mem::take(&mut world.kept);
    let resolved = tokio::time::timeout(Duration::from_secs(3600), futures::future::join_all(kept))
        .await
        .expect("every handle resolves");
    prop_assert!(resolved
        .iter()
        .all(|r| r.is_ok() || r.as_ref().unwrap_err().is_cancelled()));
    tokio::time::timeout(Duration::from_secs(3600), world.runner.wait_idle())
        .await
        .expect("idle");
    for id in &world.dropped {
        let status = world.runner.get_status(*id).unwrap().status;
        prop_assert!(
            status.is_terminal(),
            "dropped handle's task {id} is {status:?}"
        );
    }
    for g in &world.groups {
        prop_assert_eq!(g.stats().running + g.stats().pending, 0);
    }
    check(&world)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn groups_hold_their_caps_and_cancels_and_never_block_others(
        ops in prop::collection::vec(op(), 1..40),
        caps in prop::collection::vec(prop::option::of(1..=3usize), GROUPS),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(run_program(ops, caps))?;
    }
}
