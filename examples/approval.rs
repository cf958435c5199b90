//! An agent run that asks a human before it sends an email, and waits for the answer without
//! holding a worker, across a crash.
//!
//! The run plans and searches (durable steps), then waits for the signal `approve_email`.
//! While it waits, its worker process is killed with SIGKILL. A second process sends the
//! approval with `runner.signal`; a restarted worker resumes the run from the store: plan and
//! search are not repeated, and the email is sent once.
//!
//! Run with `cargo run --example approval` (a few seconds, no network). The program starts
//! the worker and approver processes itself (it re-invokes its own binary).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use taskrunner::store::SqliteStore;
use taskrunner::{QueueConfig, RunId, RunStatus, TaskContext, TaskDef, TaskRunner};

#[derive(Debug, Serialize, Deserialize)]
struct Approval {
    ok: bool,
    by: String,
}

type Agent =
    TaskDef<fn(TaskContext, String) -> futures::future::BoxFuture<'static, Result<String, String>>>;

/// The agent: plan, search, ask for approval (waiting up to a day), send.
fn agent() -> Agent {
    fn handler(
        ctx: TaskContext,
        to: String,
    ) -> futures::future::BoxFuture<'static, Result<String, String>> {
        Box::pin(async move {
            let plan: String = ctx
                .step("plan", || async {
                    say("plan: draft a follow-up email");
                    Ok::<_, String>(format!("follow up with {to}"))
                })
                .await?;
            let facts: Vec<String> = ctx
                .step("search", || async {
                    say("search: look up the last meeting's notes");
                    Ok::<_, String>(vec!["met on Tuesday".into(), "wants a quote".into()])
                })
                .await?;
            say("waiting for approval to send (the run holds no worker now)");
            let answer: Option<Approval> = ctx
                .wait_for_signal("approve_email", Duration::from_secs(86_400))
                .await?;
            match answer {
                Some(Approval { ok: true, by }) => {
                    ctx.step("send_email", || async {
                        say(&format!("send_email: sent to {to}, approved by {by}"));
                        Ok::<_, String>(format!("{plan}: sent ({})", facts.join(", ")))
                    })
                    .await
                }
                Some(Approval { ok: false, by }) => Ok(format!("{plan}: rejected by {by}")),
                None => Ok(format!("{plan}: nobody answered within a day")),
            }
        })
    }
    TaskDef::new("follow_up", handler as fn(_, _) -> _).queue("agents")
}

/// Prints a line tagged with this process's id, and appends it to the shared log.
fn say(line: &str) {
    let line = format!("[pid {}] {line}", std::process::id());
    println!("{line}");
    if let Ok(log) = std::env::var("APPROVAL_LOG") {
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(file, "{line}");
        }
    }
}

async fn open(db: &Path) -> Result<SqliteStore, Box<dyn std::error::Error>> {
    Ok(SqliteStore::open(db).await?)
}

/// `approval worker DB`: runs the agent's runs until killed.
async fn worker(db: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let def = agent();
    let _runner = TaskRunner::builder()
        .queue("agents", QueueConfig::new().concurrency(1))
        .store(open(db).await?)
        .register(&def)
        .poll_interval(Duration::from_millis(50))
        .build()?;
    say("worker: started");
    std::future::pending::<()>().await;
    Ok(())
}

/// `approval approve DB ID`: a human says yes, from another process.
async fn approve(db: &Path, id: RunId) -> Result<(), Box<dyn std::error::Error>> {
    let runner = TaskRunner::builder().store(open(db).await?).build()?;
    let approval = Approval {
        ok: true,
        by: "dana".into(),
    };
    runner.signal(id, "approve_email", &approval).await?;
    say(&format!("approver: approved run {id}"));
    Ok(())
}

fn spawn(args: &[&str], log: &Path) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .args(args)
        .env("APPROVAL_LOG", log)
        .spawn()
}

async fn wait_for(
    runner: &TaskRunner,
    id: RunId,
    status: RunStatus,
) -> Result<(), Box<dyn std::error::Error>> {
    for _ in 0..600 {
        if runner
            .run_info(id)
            .await?
            .is_some_and(|i| i.status == status)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("run {id} did not become {status:?} within 30 s").into())
}

/// The whole story, driving the other processes.
async fn main_process() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("taskrunner-approval-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (db, log): (PathBuf, PathBuf) = (dir.join("runs.db"), dir.join("steps.log"));
    let db_arg = db.to_str().ok_or("temp dir is not UTF-8")?.to_owned();
    std::env::set_var("APPROVAL_LOG", &log);

    let runner = TaskRunner::builder()
        .store(open(&db).await?)
        .poll_interval(Duration::from_millis(50))
        .build()?;
    let run = runner
        .submit(&agent(), "sam@example.com".to_owned())
        .await?;
    let id = run.id();
    say(&format!("main: submitted run {id}"));

    let mut first = spawn(&["worker", &db_arg], &log)?;
    wait_for(&runner, id, RunStatus::Waiting).await?;
    let info = runner.run_info(id).await?.ok_or("run vanished")?;
    say(&format!(
        "main: run {id} is {:?}, waiting for {:?}",
        info.status, info.waiting_for
    ));
    first.kill()?; // SIGKILL on Unix: no shutdown, no goodbye
    first.wait()?;
    say("main: killed the worker while the run waited");

    let status = spawn(&["approve", &db_arg, &id.to_string()], &log)?.wait()?;
    if !status.success() {
        return Err("the approver failed".into());
    }
    let mut second = spawn(&["worker", &db_arg], &log)?;
    let result = tokio::time::timeout(Duration::from_secs(30), run).await;
    second.kill()?;
    second.wait()?;
    let output = result.map_err(|_| "the run did not finish within 30 s")??;
    say(&format!("main: run {id} finished: {output}"));

    let lines = std::fs::read_to_string(&log)?;
    let count = |what: &str| lines.lines().filter(|l| l.contains(what)).count();
    say(&format!(
        "main: plan ran {}x, search {}x, send_email {}x",
        count("] plan:"),
        count("] search:"),
        count("] send_email:")
    ));
    let info = runner.run_info(id).await?.ok_or("run vanished")?;
    say(&format!(
        "main: attempts used: {} (waiting costs none)",
        info.attempts
    ));
    assert_eq!(
        (count("] plan:"), count("] search:"), count("] send_email:")),
        (1, 1, 1)
    );
    runner.shutdown().await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["worker", db] => worker(Path::new(db)).await,
        ["approve", db, id] => approve(Path::new(db), id.parse()?).await,
        _ => main_process().await,
    }
}
