//! A runner with a SQLite store and a few runs in every state, for the dashboard's tests:
//! completed, failed (with HTML in its error), one with HTML in its input, one running until
//! cancelled, and an in-process schedule and task.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::time::Duration;

use taskrunner::store::SqliteStore;
use taskrunner::{QueueConfig, RunId, RunStatus, Schedule, Task, TaskContext, TaskDef, TaskRunner};

pub const SCRIPT: &str = "<script>alert('x')</script>";

pub struct Fixture {
    pub runner: TaskRunner,
    pub dir: PathBuf,
    pub completed: RunId,
    pub failed: RunId,
    pub html_input: RunId,
    pub running: RunId,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits (polling, at most 20 s) until run `id` has `status`.
pub async fn wait_status(runner: &TaskRunner, id: RunId, status: RunStatus) {
    for _ in 0..1000 {
        if runner.run_info(id).await.unwrap().map(|r| r.status) == Some(status) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("run {id} never became {status:?}");
}

pub async fn fixture() -> Fixture {
    let dir = std::env::temp_dir().join(format!(
        "taskrunner_dash_{}_{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::open(dir.join("runs.db")).await.unwrap();
    let research = TaskDef::new(
        "research",
        |_: TaskContext, input: serde_json::Value| async move {
            match input.get("fail").and_then(|f| f.as_str()) {
                Some(why) => Err(why.to_owned()),
                None => Ok(serde_json::json!({ "summary": "done", "echo": input })),
            }
        },
    )
    .queue("agents");
    let wait = TaskDef::new("wait_for_approval", |_: TaskContext, _: ()| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok::<_, String>(())
    })
    .queue("agents");
    let runner = TaskRunner::builder()
        .queue("agents", QueueConfig::new().concurrency(4))
        .store(store)
        .poll_interval(Duration::from_millis(100))
        .lease(Duration::from_secs(1))
        .register(&research)
        .register(&wait)
        .build()
        .unwrap();
    let completed = runner
        .submit(&research, serde_json::json!({ "topic": "tokio" }))
        .await
        .unwrap();
    let failed = runner
        .submit(&research, serde_json::json!({ "fail": SCRIPT }))
        .await
        .unwrap();
    let html_input = runner
        .submit(&research, serde_json::json!({ "topic": SCRIPT }))
        .await
        .unwrap();
    let running = runner.submit(&wait, ()).await.unwrap();
    let ids = (completed.id(), failed.id(), html_input.id(), running.id());
    wait_status(&runner, ids.0, RunStatus::Completed).await;
    wait_status(&runner, ids.1, RunStatus::Failed).await;
    wait_status(&runner, ids.2, RunStatus::Completed).await;
    wait_status(&runner, ids.3, RunStatus::Running).await;
    runner
        .schedule_run(
            "digest",
            Schedule::every(Duration::from_secs(3600)),
            &research,
            serde_json::json!({ "topic": "digest" }),
        )
        .await
        .unwrap();
    runner
        .schedule(
            "nightly",
            Schedule::every(Duration::from_secs(3600)),
            || Task::new("report", |_: TaskContext| async { Ok::<_, String>(()) }),
        )
        .unwrap();
    let _local = runner
        .enqueue_task(Task::new("local_job", |_: TaskContext| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, String>(())
        }))
        .unwrap();
    Fixture {
        runner,
        dir,
        completed: ids.0,
        failed: ids.1,
        html_input: ids.2,
        running: ids.3,
    }
}
