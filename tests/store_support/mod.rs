//! A fresh durable store per test: a SQLite file in its own temporary directory, or a
//! PostgreSQL database of its own (created through `TASKRUNNER_PG_URL`, dropped at the end).
#![allow(dead_code, unreachable_pub)]

pub mod faults;
pub mod proxy;

use std::path::PathBuf;
use std::time::Duration;

use sqlx::Connection as _;
use taskrunner::store::{PgStore, SqliteStore, Store};

/// Where the store lives.
pub enum Place {
    Sqlite(PathBuf),
    Pg {
        admin: String,
        url: String,
        name: String,
    },
}

pub struct TestDb {
    pub place: Place,
    pub store: Store,
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}_{:08x}", std::process::id(), fastrand::u32(..))
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = std::env::temp_dir().join(unique("taskrunner_test"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("runs.db");
        let store = SqliteStore::open(&path).await.unwrap().into();
        TestDb {
            place: Place::Sqlite(path),
            store,
        }
    }

    /// `None` (after saying how to run them) when `TASKRUNNER_PG_URL` is not set.
    pub async fn pg() -> Option<TestDb> {
        let Ok(admin) = std::env::var("TASKRUNNER_PG_URL") else {
            eprintln!(
                "skipped: set TASKRUNNER_PG_URL (e.g. postgres://postgres@127.0.0.1:54400/postgres) \
                 to run the PostgreSQL tests, or run `bash .ci/run`, which starts one"
            );
            return None;
        };
        let name = unique("tr");
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let url = with_database(&admin, &name);
        let store = PgStore::connect(&url).await.unwrap().into();
        Some(TestDb {
            place: Place::Pg { admin, url, name },
            store,
        })
    }

    /// Another store on the same database, as a restarted process would open.
    pub async fn reopen(&self) -> Store {
        match &self.place {
            Place::Sqlite(path) => SqliteStore::open(path).await.unwrap().into(),
            Place::Pg { url, .. } => PgStore::connect(url).await.unwrap().into(),
        }
    }

    /// Runs raw SQL against the database (test set-up only).
    pub async fn execute(&self, sql: &str) {
        match &self.place {
            Place::Sqlite(path) => {
                let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let mut conn = sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
            }
            Place::Pg { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
            }
        }
    }

    /// Settings for a child process to open the same store: `sqlite:<path>` or the PG URL.
    pub fn locator(&self) -> String {
        match &self.place {
            Place::Sqlite(path) => format!("sqlite:{}", path.display()),
            Place::Pg { url, .. } => url.clone(),
        }
    }
}

/// Opens the store a [`TestDb::locator`] names.
pub async fn open_locator(locator: &str) -> Store {
    match locator.strip_prefix("sqlite:") {
        Some(path) => SqliteStore::open(path).await.unwrap().into(),
        None => PgStore::connect(locator).await.unwrap().into(),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.place {
            Place::Sqlite(path) => {
                if let Some(dir) = path.parent() {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
            Place::Pg { admin, name, .. } => {
                let admin = admin.clone();
                let name = name.clone();
                // Dropped from inside a runtime: do it on a thread of its own.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async {
                        if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            )))
                            .execute(&mut conn)
                            .await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

/// `url` naming database `name` instead.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Polls `check` every 20 ms until it holds, failing the test after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Instantiates each named test `fn(TestDb)` twice: on SQLite in a temp dir and on a fresh
/// PostgreSQL database (skipped with a message without `TASKRUNNER_PG_URL`).
#[allow(unused_macros)]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::TestDb::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::TestDb::pg().await else { return };
                    super::$name(db).await;
                }
            )*
        }
    };
}
