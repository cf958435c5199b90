//! Bad input to the durable store: a clear error, never a panic, never a touched file, never
//! a password in a message.
#![cfg(all(feature = "sqlite", feature = "postgres"))]

mod store_support;

use taskrunner::store::{PgStore, SqliteStore};
use taskrunner::{ConfigError, QueueConfig, RunId, StoreError, TaskContext, TaskDef, TaskRunner};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "taskrunner_{name}_{}_{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_and_left_untouched() {
    let dir = temp_dir("notadb");
    let path = dir.join("notes.txt");
    let text = b"these are my notes, not a database\n".repeat(200);
    std::fs::write(&path, &text).unwrap();
    let error = SqliteStore::open(&path).await.unwrap_err();
    assert!(
        matches!(error, StoreError::NotADatabase { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("notes.txt") && message.contains("not a SQLite database"),
        "{message}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), text, "the file was modified");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        ["notes.txt"],
        "no -wal or -shm file was created beside it"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_path_is_never_read_as_a_url() {
    let dir = temp_dir("path");
    // Characters a URL parser would treat as options are part of the file's name.
    let path = dir.join("runs.db?mode=memory");
    let store = SqliteStore::open(&path).await.unwrap();
    assert!(path.exists());
    assert_eq!(store.path(), path);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_bad_url_is_refused_without_its_password() {
    let error = PgStore::connect("postgres://app:hunter2@127.0.0.1:notaport/app")
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::BadUrl { .. }), "{error:?}");
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains("hunter2"), "password leaked: {text}");
        assert!(text.contains("app:***@127.0.0.1"), "{text}");
    }
    let error = PgStore::connect("mysql://nope").await.unwrap_err();
    assert!(matches!(error, StoreError::BadUrl { .. }), "{error:?}");
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error_without_the_password() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let error = PgStore::connect("postgres://app:hunter2@127.0.0.1:1/app?password=hunter2")
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Connect { .. }), "{error:?}");
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains("hunter2"), "password leaked: {text}");
        assert!(
            text.contains("cannot connect") || text.contains("Connect"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_pg_store_never_shows_its_password() {
    let Some(db) = store_support::TestDb::pg().await else {
        return;
    };
    let store_support::Place::Pg { url, .. } = &db.place else {
        unreachable!()
    };
    // The dev server trusts loopback logins, so any password is accepted, and must not show.
    let with_password = url.replacen("://postgres@", "://postgres:hunter2@", 1);
    let store = PgStore::connect(&with_password).await.unwrap();
    let shown = format!("{store:?}");
    assert!(
        !shown.contains("hunter2") && shown.contains("postgres:***@"),
        "{shown}"
    );
}

#[tokio::test]
async fn builder_mistakes_are_config_errors() {
    let def = TaskDef::new("d", |_: TaskContext, _: ()| async { Ok::<_, String>(()) }).queue("q");
    let error = TaskRunner::builder()
        .queue("q", QueueConfig::new())
        .register(&def)
        .build()
        .unwrap_err();
    assert_eq!(error, ConfigError::RegisterWithoutStore("d".into()));

    let dir = temp_dir("config");
    let store = SqliteStore::open(dir.join("runs.db")).await.unwrap();
    let error = TaskRunner::builder()
        .store(store.clone())
        .register(&def)
        .build()
        .unwrap_err();
    assert_eq!(error, ConfigError::UnknownQueue("q".into()));
    let error = TaskRunner::builder()
        .queue("q", QueueConfig::new())
        .store(store.clone())
        .register(&def)
        .register(&def)
        .build()
        .unwrap_err();
    assert_eq!(error, ConfigError::DuplicateRegistration("d".into()));
    let error = TaskRunner::builder()
        .queue("q", QueueConfig::new().global_concurrency(0))
        .store(store)
        .build()
        .unwrap_err();
    assert_eq!(error, ConfigError::ZeroConcurrency { queue: "q".into() });
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_store_needs_a_runtime_to_build_in() {
    let dir = temp_dir("rt");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(SqliteStore::open(dir.join("runs.db"))).unwrap();
    let error = TaskRunner::builder().store(store).build().unwrap_err();
    assert_eq!(error, ConfigError::StoreNeedsRuntime);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn durable_calls_without_a_store_say_how_to_add_one() {
    let def = TaskDef::new("d", |_: TaskContext, _: ()| async { Ok::<_, String>(()) });
    let runner = TaskRunner::new();
    let error = runner.submit(&def, ()).await.unwrap_err();
    assert!(matches!(error, StoreError::NoStore));
    assert!(
        error.to_string().contains(".store(SqliteStore::open"),
        "{error}"
    );
    assert!(matches!(
        runner.run_info("1".parse().unwrap()).await,
        Err(StoreError::NoStore)
    ));
    assert!("0".parse::<RunId>().is_err());
    assert!("abc"
        .parse::<RunId>()
        .unwrap_err()
        .to_string()
        .contains("not a run id"));
}
