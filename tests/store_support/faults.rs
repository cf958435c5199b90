//! What the fault tests share: worker processes to kill (this test binary, re-invoked to run
//! one `#[test]` entry point that does nothing unless its environment names a store), a log
//! file of side effects they append to, and a fresh PostgreSQL database behind a proxy that
//! cuts connections (`proxy.rs`).
#![allow(dead_code, unreachable_pub)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use taskrunner::{QueueConfig, RunHandle, TaskRunner, TaskRunnerBuilder};

use super::proxy::{target_of, Proxy};
use super::{open_locator, unique, Place, TestDb};

/// The store a child opens (a [`TestDb::locator`]).
const STORE_ENV: &str = "TASKRUNNER_TEST_CHILD_STORE";
/// The side-effect log a child appends to.
const LOG_ENV: &str = "TASKRUNNER_TEST_CHILD_LOG";

/// A fresh log file's path in the temp dir (not created).
pub fn log_path(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(unique(prefix))
}

/// Appends `line` to `log`.
pub fn append(log: &Path, line: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    file.write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// The `<word> <n>` lines of `log`, in order (none if it does not exist yet).
pub fn entries(log: &Path) -> Vec<(String, u32)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(word, n)| (word.to_owned(), n.parse().unwrap()))
        .collect()
}

/// Starts this test binary again, running only `#[test] entry`, on store `db` with log
/// `log` and the extra variables `env`; its output is discarded.
pub fn spawn(entry: &str, db: &TestDb, log: &Path, env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([entry, "--exact", "--nocapture", "--test-threads=1"])
        .env(STORE_ENV, db.locator())
        .env(LOG_ENV, log)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    command.spawn().unwrap()
}

/// SIGKILLs `child` and reaps it.
pub fn kill(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// In an entry point: the log it was given, if this process is a child [`spawn`] started
/// (`None` in the ordinary run of the tests: the entry point then does nothing).
pub fn child_log() -> Option<PathBuf> {
    std::env::var(STORE_ENV).ok()?;
    std::env::var(LOG_ENV).ok().map(PathBuf::from)
}

/// The runtime of a process of its own (a child, or a thread that plays one): two worker
/// threads.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// In a child: serves queue `work` (`concurrency` slots, `lease`, polling every 50 ms) with
/// the definitions `register` adds, on the store it was given, until killed (or `max`).
pub fn serve(
    concurrency: usize,
    lease: Duration,
    max: Duration,
    register: impl FnOnce(TaskRunnerBuilder) -> TaskRunnerBuilder,
) {
    let locator = std::env::var(STORE_ENV).expect("a child has a store");
    runtime().block_on(async move {
        let builder = taskrunner::TaskRunner::builder()
            .queue("work", QueueConfig::new().concurrency(concurrency))
            .store(open_locator(&locator).await)
            .lease(lease)
            .poll_interval(Duration::from_millis(50));
        let _runner = register(builder).build().unwrap();
        tokio::time::sleep(max).await;
    });
}

/// Runs `sql` on the store a [`TestDb::locator`] names, from outside the runner (another
/// process's write, as far as the runner can tell); on SQLite it waits up to 10 s for the
/// file's lock.
pub async fn raw(locator: &str, sql: &str) {
    use sqlx::Connection as _;
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match locator.strip_prefix("sqlite:") {
        Some(path) => {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .busy_timeout(Duration::from_secs(10));
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        }
        None => {
            let mut conn = sqlx::PgConnection::connect(locator).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        }
    }
}

/// A runner on `db` that runs nothing: it submits and reads, polling every 50 ms.
pub fn submitter(db: &TestDb) -> TaskRunner {
    TaskRunner::builder()
        .store(db.store.clone())
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap()
}

/// Awaits each of `runs` (within 30 s), in order: their outputs.
pub async fn outputs<T>(runs: Vec<RunHandle<T>>) -> Vec<T>
where
    T: serde::de::DeserializeOwned + Send + 'static,
{
    let mut out = Vec::with_capacity(runs.len());
    for (n, run) in runs.into_iter().enumerate() {
        let result = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("a run never finished");
        out.push(result.unwrap_or_else(|e| panic!("run {n} failed: {e}")));
    }
    out
}

/// A fresh PostgreSQL database, a proxy in front of it, and the URL through the proxy;
/// `None` without `TASKRUNNER_PG_URL`.
pub async fn proxied() -> Option<(TestDb, Proxy, String)> {
    let db = TestDb::pg().await?;
    let Place::Pg { url, .. } = &db.place else {
        unreachable!()
    };
    let proxy = Proxy::start(target_of(url)).await;
    let via = proxy.url(url);
    Some((db, proxy, via))
}
