//! The durable store under faults (issue 25): each way a run was stalled, re-run or failed
//! that should not be, one repro each, on both backends where it applies. The faults that
//! need a connection cut at a chosen moment are in `store_faults_pg.rs`.
#![cfg(all(feature = "sqlite", feature = "postgres", unix))]

#[macro_use]
mod store_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use store_support::faults::{self, raw};
use store_support::{eventually, TestDb};
use taskrunner::store::{Ending, Finish, StepWrite, Store};
use taskrunner::{QueueConfig, RetryPolicy, RunStatus, TaskContext, TaskDef, TaskRunner};

fn builder(store: Store) -> taskrunner::TaskRunnerBuilder {
    TaskRunner::builder()
        .queue("work", QueueConfig::new().concurrency(8))
        .store(store)
        .poll_interval(Duration::from_millis(50))
}

async fn status_of(runner: &TaskRunner, id: taskrunner::RunId) -> taskrunner::RunInfo {
    runner.run_info(id).await.unwrap().unwrap()
}

// ===== 5: lease loss ends the attempt here =====

/// A step's fenced write finds the run claimed by someone else (its token moved on): the
/// attempt ends in this process, and the definition's retry policy never runs the handler
/// (and the step's side effect) again.
async fn lease_loss_is_not_retried(db: TestDb) {
    let calls = Arc::new(AtomicUsize::new(0));
    let locator = db.locator();
    let def = TaskDef::new("lossy", {
        let calls = Arc::clone(&calls);
        move |ctx: TaskContext, _: u32| {
            let calls = Arc::clone(&calls);
            let locator = locator.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let v: u32 = ctx
                    .step("effect", || async {
                        // Another process claims the run meanwhile.
                        raw(
                            &locator,
                            "UPDATE taskrunner_runs SET claim_token = claim_token + 1",
                        )
                        .await;
                        Ok::<_, String>(1)
                    })
                    .await?;
                Ok::<u32, String>(v)
            }
        }
    })
    .queue("work")
    .retry(RetryPolicy::fixed(Duration::from_millis(10)).max_retries(3));
    let runner = builder(db.store.clone())
        .register(&def)
        .lease(Duration::from_secs(30))
        .build()
        .unwrap();
    let run = runner.submit(&def, 1).await.unwrap();
    eventually(Duration::from_secs(10), "the handler to run", || async {
        calls.load(Ordering::SeqCst) >= 1
    })
    .await;
    // Retries are 10 ms apart: a second of quiet is many times what three would take.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the handler ran again after its lease was lost"
    );
    let info = status_of(&runner, run.id()).await;
    assert_eq!(
        info.status,
        RunStatus::Running,
        "a lost claim wrote the run's end: {info:?}"
    );
    runner.shutdown().await;
}

// ===== 1: a NUL byte in one run's error =====

/// One run's error holds a NUL byte (PostgreSQL refuses it in text): its end is stored
/// (the byte replaced), and the ends of the runs batched with it are stored promptly.
async fn nul_in_one_error_blocks_no_end(db: TestDb) {
    let def = TaskDef::new("mixed", |_: TaskContext, n: u32| async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if n == 0 {
            Err(format!("bad\0byte from {n}"))
        } else {
            Ok(n)
        }
    })
    .queue("work");
    let runner = builder(db.store.clone()).register(&def).build().unwrap();
    let runs = runner.submit_many(&def, 0..24u32).await.unwrap();
    let ids: Vec<_> = runs.iter().map(|r| r.id()).collect();
    let started = std::time::Instant::now();
    eventually(
        Duration::from_secs(10),
        "every run's end stored",
        || async {
            let mut all = true;
            for id in &ids {
                all &= status_of(&runner, *id).await.status != RunStatus::Running
                    && status_of(&runner, *id).await.status != RunStatus::Pending;
            }
            all
        },
    )
    .await;
    eprintln!("24 ends stored in {:?}", started.elapsed());
    let bad = status_of(&runner, ids[0]).await;
    assert_eq!(bad.status, RunStatus::Failed);
    let error = bad.error.unwrap();
    assert!(
        error.starts_with("bad") && error.contains("byte from 0"),
        "{error}"
    );
    assert!(!error.contains('\0'));
    for id in &ids[1..] {
        assert_eq!(status_of(&runner, *id).await.status, RunStatus::Completed);
    }
    runner.shutdown().await;
}

// ===== 3: idempotent writes =====

/// A write retried after its answer was lost finds its own committed row: a step write and
/// a run's end, written twice by the same claim, both report written the second time.
async fn writes_are_idempotent(db: TestDb) {
    let def = TaskDef::new("twice", |_: TaskContext, n: u32| async move {
        Ok::<_, String>(n)
    })
    .queue("work");
    let submitter = builder(db.store.clone()).build().unwrap();
    let run = submitter.submit(&def, 7).await.unwrap();
    let claimed = db
        .store
        .claim(
            "work",
            &["twice".to_owned()],
            1,
            "me",
            Duration::from_secs(30),
            None,
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let token = claimed[0].token;
    let step = StepWrite {
        run: run.id(),
        token,
        name: "s",
        index: 0,
        output: Some("1"),
        error: None,
        elapsed_ms: 3,
    };
    assert!(db.store.save_step(&step).await.unwrap());
    assert!(
        db.store.save_step(&step).await.unwrap(),
        "a step write retried by its own claim was refused"
    );
    // Another claim's write of a completed step is refused.
    let other = StepWrite {
        token: token + 1,
        ..step.clone()
    };
    assert!(!db.store.save_step(&other).await.unwrap());
    let end = Finish {
        id: run.id(),
        token,
        ending: Ending::Completed,
        output: Some("7".into()),
        error: None,
    };
    assert_eq!(
        db.store.finish(std::slice::from_ref(&end)).await.unwrap(),
        vec![true]
    );
    assert_eq!(
        db.store.finish(std::slice::from_ref(&end)).await.unwrap(),
        vec![true],
        "a run's end retried by its own claim was refused"
    );
    // A stale claim's end is still refused.
    let stale = Finish {
        token: token - 1,
        ..end
    };
    assert_eq!(db.store.finish(&[stale]).await.unwrap(), vec![false]);
    assert_eq!(run.await.unwrap(), 7);
    submitter.shutdown().await;
}

// ===== 8: heartbeat starvation =====

/// Handlers block both threads of their runtime for 2.5 s with a 1 s lease: the heartbeat
/// runs elsewhere, so the leases hold and another process (here: another runner) never
/// takes the runs. Every run completes on its first attempt.
async fn blocking_handlers_do_not_starve_the_heartbeat(db: TestDb) {
    let def = TaskDef::new("blocky", |_: TaskContext, n: u32| async move {
        std::thread::sleep(Duration::from_millis(2500));
        Ok::<_, String>(n)
    })
    .queue("work");
    let idle = TaskDef::new("idle", |_: TaskContext, n: u32| async move {
        Ok::<_, String>(n)
    })
    .queue("work");
    // The rescuer: a live process of the same store with a heartbeat of its own.
    let rescuer = builder(db.reopen().await)
        .register(&idle)
        .lease(Duration::from_secs(1))
        .build()
        .unwrap();
    let runs = rescuer.submit_many(&def, 0..4u32).await.unwrap();
    let ids: Vec<_> = runs.iter().map(|r| r.id()).collect();
    // The blocked process: its own runtime of two threads, on a thread of its own.
    let store = db.reopen().await;
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let blocked = std::thread::spawn(move || {
        faults::runtime().block_on(async move {
            let runner = TaskRunner::builder()
                .queue("work", QueueConfig::new().concurrency(2))
                .store(store)
                .register(&def)
                .lease(Duration::from_secs(1))
                .poll_interval(Duration::from_millis(50))
                .build()
                .unwrap();
            tokio::task::spawn_blocking(move || stop_rx.recv())
                .await
                .unwrap()
                .ok();
            runner.shutdown().await;
        });
    });
    eventually(Duration::from_secs(40), "the four runs to end", || async {
        let mut done = true;
        for id in &ids {
            done &= !matches!(
                status_of(&rescuer, *id).await.status,
                RunStatus::Pending | RunStatus::Running
            );
        }
        done
    })
    .await;
    for id in &ids {
        let info = status_of(&rescuer, *id).await;
        assert_eq!(
            (info.status, info.attempts),
            (RunStatus::Completed, 1),
            "{info:?}"
        );
    }
    stop_tx.send(()).unwrap();
    blocked.join().unwrap();
    rescuer.shutdown().await;
}

// ===== 7: a read-only SQLite file =====

const READ_ONLY_ENV: &str = "TASKRUNNER_FAULTS_READ_ONLY_DB";

/// Opens the file `READ_ONLY_ENV` names and checks it is refused with a clear error: run
/// in a child process as user `nobody` when the test runs as root (root may write any
/// file), else in-process. A no-op unless told a path.
#[test]
fn read_only_child() {
    let Ok(path) = std::env::var(READ_ONLY_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(check_read_only_refused(std::path::Path::new(&path)));
}

async fn check_read_only_refused(path: &std::path::Path) {
    match taskrunner::store::SqliteStore::open(path).await {
        Ok(_) => panic!("a read-only SQLite file was accepted at open"),
        Err(e) => {
            let message = e.to_string();
            assert!(
                matches!(e, taskrunner::store::StoreError::ReadOnly { .. }),
                "{message}"
            );
            assert!(message.contains("read-only"), "{message}");
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
    }
}

#[tokio::test]
async fn a_read_only_sqlite_file_is_refused_at_open() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(store_support::unique("taskrunner_ro"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = dir.join("runs.db");
    let store: Store = taskrunner::store::SqliteStore::open(&path)
        .await
        .unwrap()
        .into();
    store.close().await;
    for side in ["runs.db-wal", "runs.db-shm"] {
        let _ = std::fs::remove_file(dir.join(side));
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    // SAFETY-free check of the user: root's writes ignore the mode bits.
    let root = std::fs::metadata("/proc/self").map(|m| {
        use std::os::unix::fs::MetadataExt as _;
        m.uid() == 0
    });
    if root.unwrap_or(false) {
        use std::os::unix::process::CommandExt as _;
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "read_only_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(READ_ONLY_ENV, &path)
            .uid(65534)
            .gid(65534)
            .status()
            .unwrap();
        assert!(status.success(), "the child (user nobody) saw: {status}");
    } else {
        check_read_only_refused(&path).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

conformance!(
    lease_loss_is_not_retried,
    nul_in_one_error_blocks_no_end,
    writes_are_idempotent,
    blocking_handlers_do_not_starve_the_heartbeat,
);
