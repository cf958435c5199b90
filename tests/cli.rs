//! The `taskrunner` binary end to end, as a child process: on a SQLite file that a runner in
//! this process works on, and on PostgreSQL (through `TASKRUNNER_PG_URL`; skipped without
//! it). Tables and `-o json`, cancel (one and by filter), retry, signal, schedules, queues, prune,
//! migrate, `ui` with its one-time token, and a password that never shows.
#![cfg(all(feature = "cli", feature = "dashboard"))]

mod dashboard_support;
#[macro_use]
#[allow(unused_macros)]
mod store_support;

use std::io::{BufRead as _, Read as _, Write as _};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use dashboard_support::{fixture, wait_status};
use store_support::TestDb;
use taskrunner::{RunStatus, TaskContext, TaskDef, TaskRunner};

fn taskrunner(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_taskrunner"))
        .arg("--db")
        .arg(db)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not only JSON ({e}): {}", stdout(out)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_on_a_sqlite_file() {
    let f = fixture().await;
    let db = f.dir.join("runs.db");
    let db = db.to_str().unwrap();

    let out = taskrunner(db, &["runs", "list"]);
    assert!(out.status.success());
    let table = stdout(&out);
    assert!(table.starts_with("ID  NAME"), "{table}");
    assert!(table.contains("wait_for_approval") && table.contains("running"));

    let page = json(&taskrunner(
        db,
        &["runs", "list", "--status", "failed", "-o", "json"],
    ));
    assert_eq!(page["runs"][0]["id"], f.failed.as_i64());
    let page = json(&taskrunner(
        db,
        &["-o", "json", "runs", "list", "--input", "tokio"],
    ));
    assert_eq!(page["runs"].as_array().unwrap().len(), 1);
    let run = json(&taskrunner(
        db,
        &["runs", "show", &f.failed.to_string(), "-o", "json"],
    ));
    assert_eq!(run["error"], dashboard_support::SCRIPT);

    let out = taskrunner(db, &["runs", "show", "424242", "-o", "json"]);
    assert!(!out.status.success(), "an unknown run fails");
    assert!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("no run 424242")
    );
    let out = taskrunner(db, &["runs", "list", "--status", "nonsense"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown status"));

    // One cancel: the runner in this process sees it within a heartbeat.
    let out = taskrunner(db, &["runs", "cancel", &f.running.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_status(&f.runner, f.running, RunStatus::Cancelled).await;

    // Retry: the same id runs again here, its attempts going on.
    let done = json(&taskrunner(
        db,
        &["-o", "json", "runs", "retry", &f.failed.to_string()],
    ));
    assert_eq!(done["done"], true);
    for _ in 0..1000 {
        let info = f.runner.run_info(f.failed).await.unwrap().unwrap();
        if info.status == RunStatus::Failed && info.attempts == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        f.runner.run_info(f.failed).await.unwrap().unwrap().attempts,
        2
    );
    let out = taskrunner(db, &["runs", "retry", &f.completed.to_string()]);
    assert!(!out.status.success(), "a completed run is not retried");

    // Bulk cancel by filter: counted, refused without --yes off a terminal, then done.
    let wait = TaskDef::new("wait_for_approval", |_: TaskContext, _: ()| async {
        Ok::<_, String>(())
    })
    .queue("elsewhere");
    let other = TaskRunner::builder()
        .store(f.runner.store().unwrap().clone())
        .build()
        .unwrap();
    for _ in 0..3 {
        drop(other.submit(&wait, ()).await.unwrap()); // nobody runs queue `elsewhere`
    }
    let out = taskrunner(db, &["runs", "cancel", "--queue", "elsewhere"]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("3 unfinished runs match") && said.contains("--yes"),
        "{said}"
    );
    let done = json(&taskrunner(
        db,
        &[
            "runs",
            "cancel",
            "--queue",
            "elsewhere",
            "--yes",
            "-o",
            "json",
        ],
    ));
    assert_eq!(
        (done["matched"].as_i64(), done["cancelled"].as_i64()),
        (Some(3), Some(3))
    );
    let out = taskrunner(db, &["runs", "cancel"]);
    assert!(!out.status.success(), "a bulk cancel needs a filter");

    let schedules = json(&taskrunner(db, &["schedules", "list", "-o", "json"]));
    assert_eq!(schedules[0]["name"], "digest", "{schedules}");
    assert!(taskrunner(db, &["schedules", "pause", "digest"])
        .status
        .success());
    assert_eq!(
        json(&taskrunner(db, &["schedules", "list", "-o", "json"]))[0]["status"],
        "paused"
    );
    assert!(taskrunner(db, &["schedules", "resume", "digest"])
        .status
        .success());
    assert!(taskrunner(db, &["schedules", "trigger", "digest"])
        .status
        .success());
    assert!(!taskrunner(db, &["schedules", "pause", "nope"])
        .status
        .success());

    let queues = json(&taskrunner(db, &["queues", "-o", "json"]));
    assert!(queues
        .as_array()
        .unwrap()
        .iter()
        .any(|q| q["name"] == "agents"));
    let out = taskrunner(db, &["queues"]);
    assert!(stdout(&out).contains("agents"));
    assert_eq!(
        json(&taskrunner(db, &["migrate", "-o", "json"]))["migrated"],
        true
    );
    let pruned = json(&taskrunner(db, &["prune", "--max-age", "1d", "-o", "json"]));
    assert_eq!(pruned["pruned"], 0, "nothing is a day old");
    other.shutdown_now().await;
    f.runner.shutdown_now().await;
}

#[test]
fn a_password_in_the_url_never_shows() {
    let url = "postgres://app:hunter2secret@127.0.0.1:1/app";
    for args in [
        &["runs", "list"][..],
        &["-o", "json", "queues"],
        &["migrate"],
    ] {
        let out = taskrunner(url, args);
        assert!(!out.status.success());
        let all = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
        assert!(!all.contains("hunter2secret"), "{all}");
        assert!(all.contains("app:***@"), "{all}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_taskrunner"))
        .args(["runs", "list"])
        .env_remove("TASKRUNNER_DB")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TASKRUNNER_DB"));
}

/// One HTTP/1.1 exchange with 127.0.0.1:`port`: the status line and headers, and the body.
fn http(port: u16, path: &str, cookie: Option<&str>) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{cookie}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.to_owned(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_serves_the_dashboard_behind_a_one_time_token() {
    let f = fixture().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_taskrunner"))
        .args([
            "--db",
            f.dir.join("runs.db").to_str().unwrap(),
            "ui",
            "--port",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.contains("/?token="),
        "{url}"
    );
    let port: u16 = url["http://127.0.0.1:".len()..]
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let path = &url[url.find("/?").unwrap()..];

    let (head, _) = http(port, "/runs", None);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let (head, _) = http(port, path, None);
    assert!(head.starts_with("HTTP/1.1 303"), "{head}");
    let cookie = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie:")
                .then(|| l[11..].trim().to_owned())
        })
        .unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let (head, _) = http(port, path, None);
    assert!(
        head.starts_with("HTTP/1.1 401"),
        "the token works once: {head}"
    );
    let (head, body) = http(port, "/runs", Some(&cookie));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("wait_for_approval"));
    child.kill().unwrap();
    child.wait().unwrap();
    f.runner.shutdown_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_on_postgres() {
    let Some(db) = TestDb::pg().await else { return };
    let store_support::Place::Pg { url, .. } = &db.place else {
        unreachable!()
    };
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let flaky = TaskDef::new("flaky", move |_: TaskContext, _: ()| {
        let calls = std::sync::Arc::clone(&calls);
        async move {
            match calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => Err("first attempt fails".to_string()),
                n => Ok(n + 1),
            }
        }
    });
    let runner = TaskRunner::builder()
        .store(db.store.clone())
        .poll_interval(Duration::from_millis(100))
        .register(&flaky)
        .build()
        .unwrap();
    let run = runner.submit(&flaky, ()).await.unwrap();
    let id = run.id();
    assert!(run.await.is_err());
    let page = json(&taskrunner(
        url,
        &["runs", "list", "--status", "failed", "-o", "json"],
    ));
    assert_eq!(page["runs"][0]["id"], id.as_i64());
    let shown = json(&taskrunner(
        url,
        &["runs", "show", &id.to_string(), "-o", "json"],
    ));
    assert_eq!(shown["error"], "first attempt fails");
    assert!(taskrunner(url, &["runs", "retry", &id.to_string()])
        .status
        .success());
    assert_eq!(runner.run_handle::<u32>(id).unwrap().await.unwrap(), 2);
    let queues = json(&taskrunner(url, &["queues", "-o", "json"]));
    assert_eq!(queues[0]["durable"]["completed_last_hour"], 1);
    runner.shutdown().await;
}

/// `runs signal` on `db` (the CLI's `--db`), to a run a runner on `store` in this process
/// works on: a malformed value, a sent signal the run takes, then a finished and an unknown
/// run, each failing with its reason.
async fn signal_end_to_end(db: &str, store: taskrunner::store::Store) {
    let approval = TaskDef::new("cli_approval", |ctx: TaskContext, _: ()| async move {
        let ok: Option<serde_json::Value> = ctx
            .wait_for_signal("approve", Duration::from_secs(3600))
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(ok)
    });
    let runner = TaskRunner::builder()
        .store(store)
        .poll_interval(Duration::from_millis(50))
        .register(&approval)
        .build()
        .unwrap();
    let run = runner.submit(&approval, ()).await.unwrap();
    let id = run.id().to_string();
    for _ in 0..1500 {
        let info = runner.run_info(run.id()).await.unwrap().unwrap();
        if info.waiting_for.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = taskrunner(
        db,
        &["runs", "signal", &id, "approve", "{oops", "-o", "json"],
    );
    assert!(!out.status.success(), "a malformed value fails");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("is not JSON"), "{said}");
    assert!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["error"].is_string());
    let done = json(&taskrunner(
        db,
        &[
            "-o",
            "json",
            "runs",
            "signal",
            &id,
            "approve",
            r#"{"ok":true}"#,
        ],
    ));
    assert_eq!(done["done"], true, "{done}");
    assert_eq!(done["action"], "signal_run(approve)");
    let output = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the run resumes")
        .unwrap();
    assert_eq!(output, Some(serde_json::json!({ "ok": true })));
    let out = taskrunner(db, &["runs", "signal", &id, "approve", "true"]);
    assert!(!out.status.success(), "a finished run takes no signal");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("already ended (completed)"), "{said}");
    let out = taskrunner(db, &["runs", "signal", "987654", "approve"]);
    assert!(!out.status.success(), "an unknown run takes no signal");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such run"));
    runner.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_signal_on_a_sqlite_file() {
    let dir = std::env::temp_dir().join(format!(
        "taskrunner_cli_signal_{}_{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("runs.db");
    let store = taskrunner::store::SqliteStore::open(&path).await.unwrap();
    signal_end_to_end(path.to_str().unwrap(), store.into()).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_signal_on_postgres() {
    let Some(db) = TestDb::pg().await else { return };
    let store_support::Place::Pg { url, .. } = &db.place else {
        unreachable!()
    };
    signal_end_to_end(url, db.store.clone()).await;
}
