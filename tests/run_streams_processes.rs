//! Run streams across processes (this test binary, re-invoked as children), both backends:
//! readers in other processes tail a run's log from different offsets, each seeing every
//! event once in order; a run whose process is killed (SIGKILL) after 5 emits is recovered
//! by another process and emits from offset 5 on, and a reader that was following it ends
//! after the terminal status that the other process stored.
#![cfg(all(feature = "sqlite", feature = "postgres", unix))]

#[macro_use]
mod store_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt as _;
use store_support::{open_locator, TestDb};
use taskrunner::{
    QueueConfig, RetryPolicy, RunEvent, RunEventKind, RunStatus, TaskContext, TaskDef, TaskRunner,
};

const READER_ENV: &str = "TASKRUNNER_STREAM_READER";
const EMITTER_ENV: &str = "TASKRUNNER_STREAM_EMITTER";

/// One line a stored or live event, as a child reader writes it: `offset kind value`.
fn line(event: &RunEvent) -> String {
    match &event.kind {
        RunEventKind::Emitted { value, live, .. } => {
            format!(
                "{} {} {value}",
                event.offset,
                if *live { "live" } else { "emit" }
            )
        }
        other => format!("{} status {other:?}", event.offset),
    }
}

/// The child reader: `<locator> <run id> <from> <out file>`; writes `<out>.ready` after its
/// first event, each event a line to `<out>`, and returns at the stream's end.
#[test]
fn reader_child() {
    let Ok(args) = std::env::var(READER_ENV) else {
        return;
    };
    let args: Vec<&str> = args.split('\t').collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let runner = TaskRunner::builder()
            .store(open_locator(args[0]).await)
            .build()
            .unwrap();
        let mut events = runner
            .run_events(args[1].parse().unwrap())
            .from(args[2].parse().unwrap());
        let mut out = String::new();
        while let Some(event) = events.next().await {
            let event = event.unwrap();
            if out.is_empty() {
                std::fs::write(format!("{}.ready", args[3]), "").unwrap();
            }
            out.push_str(&line(&event));
            out.push('\n');
        }
        std::fs::write(args[3], out).unwrap();
    });
}

fn spawn_reader(db: &TestDb, run: taskrunner::RunId, from: u64, out: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["reader_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(
            READER_ENV,
            format!("{}\t{run}\t{from}\t{}", db.locator(), out.display()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// 1,000 emits (a live token every 100), in two halves: the second starts once both child
/// readers have read their first event, so they tail it.
fn halves(
    ready: Vec<PathBuf>,
) -> TaskDef<
    impl Fn(TaskContext, ()) -> futures::future::BoxFuture<'static, Result<(), String>> + Clone,
> {
    TaskDef::new("halves", move |ctx: TaskContext, _: ()| {
        let ready = ready.clone();
        Box::pin(async move {
            for i in 0..1000u64 {
                if i == 500 {
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                    while !ready.iter().all(|p| p.exists())
                        && tokio::time::Instant::now() < deadline
                    {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                ctx.emit("n", &i).await?;
                if i % 100 == 99 {
                    ctx.emit_live("token", &i);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            Ok(())
        }) as futures::future::BoxFuture<'static, Result<(), String>>
    })
}

/// Checks a child's lines from offset `from`: stored offsets consecutive, the emitted values
/// in order, each once, ending on the terminal status; returns the live tokens seen.
fn check_lines(text: &str, from: u64, first_value: u64) -> Vec<u64> {
    let mut next = from;
    let mut value = first_value;
    let mut tokens = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for l in &lines {
        let mut parts = l.splitn(3, ' ');
        let (offset, kind, rest): (u64, &str, &str) = (
            parts.next().unwrap().parse().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        match kind {
            "live" => {
                assert_eq!(offset, next, "a live event not at the reader's place: {l}");
                tokens.push(rest.parse().unwrap());
            }
            "emit" => {
                assert_eq!(offset, next, "gap or duplicate at {l}");
                assert_eq!(rest.parse::<u64>().unwrap(), value, "{l}");
                value += 1;
                next += 1;
            }
            _ => {
                assert_eq!(offset, next, "gap or duplicate at {l}");
                next += 1;
            }
        }
    }
    assert_eq!(value, 1000, "not every emit was read");
    assert_eq!(
        lines.last().copied(),
        Some(format!("{} status Status(Completed)", next - 1).as_str())
    );
    tokens
}

async fn readers_in_other_processes(db: TestDb) {
    let dir = std::env::temp_dir().join(store_support::unique("taskrunner_stream_readers"));
    std::fs::create_dir_all(&dir).unwrap();
    let outs = [dir.join("from0"), dir.join("from400")];
    let ready: Vec<PathBuf> = outs
        .iter()
        .map(|o| PathBuf::from(format!("{}.ready", o.display())))
        .collect();
    let def = halves(ready);
    let runner = TaskRunner::builder()
        .store(db.store.clone())
        .register(&def)
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let run = runner.submit(&def, ()).await.unwrap();
    let id = run.id();
    // Offset 0 is the claim; emit n is at offset n + 1.
    let mut children = vec![
        spawn_reader(&db, id, 0, &outs[0]),
        spawn_reader(&db, id, 400, &outs[1]),
    ];
    // A third reader here, from 200.
    let here: Vec<RunEvent> = tokio::time::timeout(
        Duration::from_secs(60),
        runner
            .run_events(id)
            .from(200)
            .map(|e| e.unwrap())
            .collect(),
    )
    .await
    .expect("the reader here never ended");
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the run never ended")
        .unwrap();
    for child in &mut children {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "a child reader never ended"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let text: String = here.iter().map(|e| line(e) + "\n").collect();
    check_lines(&text, 200, 199);
    check_lines(&std::fs::read_to_string(&outs[0]).unwrap(), 0, 0);
    let tokens = check_lines(&std::fs::read_to_string(&outs[1]).unwrap(), 400, 399);
    if db.locator().starts_with("postgres") {
        // Live events reach other processes through NOTIFY (best effort: the second half's
        // tokens came after the child listened).
        assert!(
            !tokens.is_empty(),
            "no live token reached the other process"
        );
    } else {
        assert!(
            tokens.is_empty(),
            "live events do not leave a SQLite process"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Emits 0..10; in the child (`hang`), waits forever after emit 4, so the kill lands there.
fn five_then_hang(
    hang: bool,
) -> TaskDef<
    impl Fn(TaskContext, ()) -> futures::future::BoxFuture<'static, Result<(), String>> + Clone,
> {
    TaskDef::new("five", move |ctx: TaskContext, _: ()| {
        Box::pin(async move {
            for i in 0..10u64 {
                ctx.emit("n", &i).await?;
                if i == 4 && hang {
                    tokio::time::sleep(Duration::from_secs(120)).await;
                }
            }
            Ok(())
        }) as futures::future::BoxFuture<'static, Result<(), String>>
    })
    .queue("work")
    .retry(RetryPolicy::fixed(Duration::from_millis(10)).max_retries(2))
}

/// The child emitter: runs `five` until killed.
#[test]
fn emitter_child() {
    let Ok(locator) = std::env::var(EMITTER_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let def = five_then_hang(true);
        let _runner = TaskRunner::builder()
            .queue("work", QueueConfig::new())
            .store(open_locator(&locator).await)
            .register(&def)
            .lease(Duration::from_secs(1))
            .poll_interval(Duration::from_millis(50))
            .build()
            .unwrap();
        tokio::time::sleep(Duration::from_secs(120)).await;
    });
}

async fn a_killed_run_resumes_its_stream(db: TestDb) {
    let def = five_then_hang(false);
    let submitter = TaskRunner::builder()
        .store(db.store.clone())
        .build()
        .unwrap();
    let id = submitter.submit(&def, ()).await.unwrap().id();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "emitter_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(EMITTER_ENV, db.locator())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A reader follows the run from the start, across the crash.
    let follower = tokio::spawn({
        let events = submitter.run_events(id);
        async move {
            tokio::time::timeout(
                Duration::from_secs(60),
                events.map(|e| e.unwrap()).collect::<Vec<_>>(),
            )
            .await
            .expect("the follower never ended")
        }
    });
    let emitted = |events: &[RunEvent]| {
        events
            .iter()
            .filter_map(|e| match &e.kind {
                RunEventKind::Emitted { value, .. } => value.as_u64(),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    // Wait for the child's 5 emits, read as they come.
    let mut probe = submitter.run_events(id);
    let mut seen = 0;
    while seen < 5 {
        let event = tokio::time::timeout(Duration::from_secs(30), probe.next())
            .await
            .expect("the child's 5 emits never came")
            .unwrap()
            .unwrap();
        seen += emitted(std::slice::from_ref(&event)).len();
    }
    drop(probe);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let runner = TaskRunner::builder()
        .queue("work", QueueConfig::new())
        .store(db.reopen().await)
        .register(&def)
        .lease(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        runner.run_handle::<()>(id).unwrap(),
    )
    .await
    .expect("the run was never recovered")
    .unwrap();
    let events = follower.await.unwrap();
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match &e.kind {
            RunEventKind::Emitted { value, .. } => format!("{}:{value}", e.offset),
            other => format!("{}:{other:?}", e.offset),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "0:Status(Running)",
            "1:0",
            "2:1",
            "3:2",
            "4:3",
            "5:4",
            "6:Status(Pending)",
            "7:Status(Running)",
            "8:5",
            "9:6",
            "10:7",
            "11:8",
            "12:9",
            "13:Status(Completed)"
        ]
    );
    assert_eq!(
        runner.run_info(id).await.unwrap().unwrap().status,
        RunStatus::Completed
    );
    runner.shutdown().await;
}

conformance!(readers_in_other_processes, a_killed_run_resumes_its_stream);
