//! The SIGKILL loop (issue 25), in the slow suite (`--ignored`; `.ci/run` runs it after the
//! soak): 4 worker processes (this test binary, re-invoked) share 1,000 durable runs, and
//! one of them is SIGKILLed every 300 ms for 20 s (and started again). Side effects are
//! counted in an append-only file. Every run completes, once; no step runs again once it
//! was stored. Both backends.
#![cfg(all(feature = "sqlite", feature = "postgres", unix))]

mod store_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use store_support::faults::{self, append, entries, kill};
use store_support::TestDb;
use taskrunner::{RunFilter, RunStatus, TaskContext, TaskDef, TaskRunner};

const RUNS: u32 = 1_000;
const WORKERS: usize = 4;

/// One step with a side effect (`step <n>` when it runs, `stored <n>` once stored), then
/// 400 ms of work.
fn work(
    log: Option<PathBuf>,
) -> TaskDef<impl Fn(TaskContext, u32) -> futures::future::BoxFuture<'static, Result<u32, String>>>
{
    TaskDef::new("killed", move |ctx: TaskContext, n: u32| {
        let log = log.clone();
        Box::pin(async move {
            let effect = || {
                let log = log.clone();
                async move {
                    if let Some(log) = &log {
                        append(log, &format!("step {n}"));
                    }
                    Ok::<_, String>(n * 3)
                }
            };
            let v: u32 = ctx.step("effect", effect).await?;
            if let Some(log) = &log {
                append(log, &format!("stored {n}"));
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
            Ok(v)
        }) as futures::future::BoxFuture<'static, Result<u32, String>>
    })
    .queue("work")
    .max_recoveries(1_000)
}

/// The child: runs the definition until it is killed. A no-op unless re-invoked by a test.
#[test]
fn kill_child() {
    let Some(log) = faults::child_log() else {
        return;
    };
    let def = work(Some(log));
    faults::serve(
        16,
        Duration::from_millis(600),
        Duration::from_secs(300),
        |b| b.register(&def),
    );
}

fn spawn(db: &TestDb, log: &Path) -> Child {
    faults::spawn("kill_child", db, log, &[])
}

async fn kill_loop(db: TestDb) {
    let log = faults::log_path("taskrunner_kill_log");
    let def = work(None);
    let submitter = TaskRunner::builder()
        .store(db.store.clone())
        .poll_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let runs = submitter.submit_many(&def, 0..RUNS).await.unwrap();
    let ids: Vec<_> = runs.iter().map(|r| r.id()).collect();
    drop(runs);
    let mut children: Vec<Child> = (0..WORKERS).map(|_| spawn(&db, &log)).collect();
    let completed = || async {
        submitter
            .list_runs(
                RunFilter::new()
                    .name("killed")
                    .status(RunStatus::Completed)
                    .limit(RUNS * 2),
            )
            .await
            .unwrap()
            .len()
    };
    let started = Instant::now();
    let mut kills = 0;
    while started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let victim = &mut children[kills % WORKERS];
        kill(victim); // SIGKILL
        *victim = spawn(&db, &log);
        kills += 1;
    }
    let at_last_kill = completed().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while completed().await < RUNS as usize {
        assert!(
            Instant::now() < deadline,
            "only {} of {RUNS} runs completed",
            completed().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    children.iter_mut().for_each(kill);
    // Every run completed once, with its output.
    let mut recoveries = 0;
    for (n, id) in ids.iter().enumerate() {
        let info = submitter.run_info(*id).await.unwrap().unwrap();
        assert_eq!(info.status, RunStatus::Completed, "run {n}: {info:?}");
        assert_eq!(info.output, Some(serde_json::json!(n as u32 * 3)));
        recoveries += info.recoveries;
    }
    // No step ran again once it was stored.
    let mut stored_at: HashMap<u32, usize> = HashMap::new();
    let mut step_runs: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, (word, n)) in entries(&log).into_iter().enumerate() {
        match word.as_str() {
            "stored" => {
                stored_at.entry(n).or_insert(i);
            }
            "step" => step_runs.entry(n).or_default().push(i),
            _ => {}
        }
    }
    for n in 0..RUNS {
        let first_stored = stored_at.get(&n).copied().unwrap_or(usize::MAX);
        let runs = step_runs.get(&n).map_or(&[][..], Vec::as_slice);
        assert!(!runs.is_empty(), "run {n}'s step never ran");
        assert!(
            runs.iter().all(|&i| i < first_stored),
            "run {n}'s step ran again after it was stored (lines {runs:?}, stored at {first_stored})"
        );
    }
    eprintln!(
        "kill loop: {kills} kills in {:?}, {at_last_kill} of {RUNS} runs completed by the last \
         kill, {recoveries} recoveries, {} step executions for {RUNS} steps",
        started.elapsed(),
        step_runs.values().map(Vec::len).sum::<usize>()
    );
    submitter.shutdown().await;
    let _ = std::fs::remove_file(log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: 20 s of SIGKILLs; run with --ignored (.ci/run does)"]
async fn sqlite_survives_a_sigkill_loop() {
    kill_loop(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: 20 s of SIGKILLs; run with --ignored (.ci/run does)"]
async fn postgres_survives_a_sigkill_loop() {
    let Some(db) = TestDb::pg().await else { return };
    kill_loop(db).await;
}
