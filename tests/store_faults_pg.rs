//! The durable store under faults (issue 25) on PostgreSQL, through a TCP forwarder that
//! cuts a connection at a chosen moment (`store_support/proxy.rs`): a claim, a step write
//! or a step lookup whose connection drops. SQLite has no connection to lose.
#![cfg(all(feature = "sqlite", feature = "postgres", unix))]

mod store_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use store_support::faults::proxied;
use store_support::proxy::{Cut, Proxy};
use store_support::TestDb;
use taskrunner::store::{PgStore, RunId};
use taskrunner::{QueueConfig, RunStatus, TaskContext, TaskDef, TaskRunner};

/// A definition without a retry policy whose one step counts its side effect.
fn stepper(
    effects: &Arc<AtomicUsize>,
) -> TaskDef<impl Fn(TaskContext, u32) -> futures::future::BoxFuture<'static, Result<u32, String>>>
{
    let effects = Arc::clone(effects);
    TaskDef::new("stepper", move |ctx: TaskContext, n: u32| {
        let effects = Arc::clone(&effects);
        Box::pin(async move {
            let v: u32 = ctx
                .step("effect", || async {
                    effects.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, String>(n + 1)
                })
                .await?;
            Ok(v)
        }) as futures::future::BoxFuture<'static, Result<u32, String>>
    })
    .queue("work")
}

async fn worker(
    via: &str,
    def: &TaskDef<
        impl Fn(TaskContext, u32) -> futures::future::BoxFuture<'static, Result<u32, String>>
            + Send
            + Sync
            + 'static,
    >,
) -> TaskRunner {
    TaskRunner::builder()
        .queue("work", QueueConfig::new().concurrency(4))
        .store(PgStore::connect(via).await.unwrap())
        .register(def)
        .lease(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap()
}

/// One run (input 1) of `stepper` through a proxy that cuts the connection sending
/// `marker` at `cut`: it completes with 2 after one cut. Returns what to look at after:
/// the database, the proxy, the runner, the run and how many times its step ran.
async fn one_run_through_a_cut(
    marker: &str,
    cut: Cut,
) -> Option<(TestDb, Proxy, TaskRunner, RunId, usize)> {
    let (db, proxy, via) = proxied().await?;
    let effects = Arc::new(AtomicUsize::new(0));
    let def = stepper(&effects);
    proxy.arm(marker, cut);
    let runner = worker(&via, &def).await;
    let run = runner.submit(&def, 1).await.unwrap();
    let id = run.id();
    let out = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .unwrap();
    assert_eq!(proxy.cuts(), 1);
    assert_eq!(out.unwrap(), 2);
    Some((db, proxy, runner, id, effects.load(Ordering::SeqCst)))
}

/// 4: the connection of a step lookup drops: the lookup is retried, the run (no retry
/// policy) completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_step_lookup_is_retried() {
    let Some((db, _proxy, runner, _, effects)) =
        one_run_through_a_cut("SELECT output FROM taskrunner_steps", Cut::Before).await
    else {
        return;
    };
    assert_eq!(effects, 1);
    runner.shutdown().await;
    drop(db);
}

/// 3: a step write commits and its answer is lost: the retry finds its own row and the
/// run goes on (it failed `LeaseLost` before), the step's side effect done once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_write_whose_answer_is_lost_succeeds() {
    let Some((db, _proxy, runner, id, effects)) =
        one_run_through_a_cut("INSERT INTO taskrunner_steps", Cut::AfterCommit).await
    else {
        return;
    };
    assert_eq!(effects, 1);
    let info = runner.run_info(id).await.unwrap().unwrap();
    assert_eq!((info.status, info.attempts), (RunStatus::Completed, 1));
    runner.shutdown().await;
    drop(db);
}

/// 2: a claim commits and its answer is lost: the claimed runs are not left `running`
/// under a live worker that never started them; they are handed back and run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_answer_is_lost_is_handed_back() {
    let Some((db, proxy, via)) = proxied().await else {
        return;
    };
    let effects = Arc::new(AtomicUsize::new(0));
    let def = stepper(&effects);
    let submitter = TaskRunner::builder()
        .store(db.store.clone())
        .build()
        .unwrap();
    let runs = submitter.submit_many(&def, 0..3u32).await.unwrap();
    // The worker's first claim takes the three runs; its answer never arrives.
    // The claim statement (src/store/postgres/claim.rs, `CLAIM`) begins with this CTE.
    proxy.arm("WITH ready AS", Cut::AfterCommit);
    let runner = worker(&via, &def).await;
    for (n, run) in runs.into_iter().enumerate() {
        let out = tokio::time::timeout(Duration::from_secs(15), run)
            .await
            .expect("a run whose claim's answer was lost never ran");
        assert_eq!(out.unwrap(), n as u32 + 1);
    }
    assert_eq!(proxy.cuts(), 1);
    assert_eq!(effects.load(Ordering::SeqCst), 3);
    runner.shutdown().await;
    submitter.shutdown().await;
    drop(db);
}

/// Everything logged in this test binary (warnings and up), for tests that check what a
/// process says.
fn logged() -> &'static std::sync::Mutex<Vec<u8>> {
    static LOG: std::sync::OnceLock<&'static std::sync::Mutex<Vec<u8>>> =
        std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log: &'static std::sync::Mutex<Vec<u8>> =
            Box::leak(Box::new(std::sync::Mutex::new(Vec::new())));
        struct Sink(&'static std::sync::Mutex<Vec<u8>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let _ = tracing::subscriber::set_global_default(
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::WARN)
                .with_ansi(false)
                .with_writer(move || Sink(log))
                .finish(),
        );
        log
    })
}

/// 3 (and the minor false warning): a run's end commits and its answer is lost: the
/// writer's retry finds its own write, so the end counts as stored (handed to this
/// process's handles), and neither the writer nor the heartbeat (which no longer sees the
/// run `running`) reports a lost lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_end_whose_answer_is_lost_is_not_a_lost_lease() {
    let log = logged();
    let Some((db, _proxy, runner, id, _)) =
        one_run_through_a_cut("error_kind = f.kind, finished_at", Cut::AfterCommit).await
    else {
        return;
    };
    let info = runner.run_info(id).await.unwrap().unwrap();
    assert_eq!((info.status, info.attempts), (RunStatus::Completed, 1));
    runner.shutdown().await;
    let said = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    let lost: Vec<_> = said
        .lines()
        .filter(|l| l.contains(&format!("run={id}")))
        .filter(|l| l.contains("lease was lost") || l.contains("lease lost"))
        .collect();
    assert!(lost.is_empty(), "a stored end was reported lost: {lost:?}");
    drop(db);
}
