//! The dashboard, mounted in your own axum app: a runner with a SQLite store and a few agents
//! at work (researching in steps, failing, waiting for an approval), served at
//! <http://127.0.0.1:8080/tasks>.
//!
//! ```sh
//! cargo run --example dashboard --features dashboard
//! ```
//!
//! Open the page, filter the runs, open a failed one and retry it, open a waiting one and
//! send it the signal `approve` (its events appear as they come), or cancel it.
//! Requests with the header `x-read-only: 1` get a read-only dashboard.

use std::time::Duration;

use taskrunner::dashboard::{Access, Dashboard};
use taskrunner::store::SqliteStore;
use taskrunner::{QueueConfig, RetryPolicy, Schedule, Task, TaskContext, TaskDef, TaskRunner};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join("taskrunner-dashboard-example.db");
    let store = SqliteStore::open(&path).await?;

    // Works in three steps, a second or two each.
    let research = TaskDef::new("research", |ctx: TaskContext, topic: String| async move {
        ctx.emit("topic", &topic).await.map_err(|e| e.to_string())?;
        let plan = ctx
            .step("plan", || async {
                tokio::time::sleep(Duration::from_millis(800)).await;
                Ok::<_, String>(vec![format!("{topic}: history"), format!("{topic}: today")])
            })
            .await
            .map_err(|e| e.to_string())?;
        ctx.emit("plan", &plan).await.map_err(|e| e.to_string())?;
        for query in &plan {
            ctx.step("search", || async {
                tokio::time::sleep(Duration::from_millis(1200)).await;
                Ok::<_, String>(format!("3 results for {query}"))
            })
            .await
            .map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(format!("a summary of {topic}"))
    })
    .queue("agents");
    // Fails every other time, after a retry.
    let flaky = TaskDef::new("call_api", |_: TaskContext, n: u32| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if n.is_multiple_of(2) {
            Err(format!("HTTP 503 from the model API (request {n})"))
        } else {
            Ok(n)
        }
    })
    .queue("tools")
    .retry(RetryPolicy::exponential(Duration::from_millis(200)).max_retries(1));
    // Waits for a person (holding no worker): send it the signal `approve` from its page
    // (value `true` or `false`), or cancel it.
    let approval = TaskDef::new(
        "wait_for_approval",
        |ctx: TaskContext, what: String| async move {
            let fail = |e: &dyn std::fmt::Display| e.to_string();
            ctx.emit("asked", &format!("may I {what}?"))
                .await
                .map_err(|e| fail(&e))?;
            let ok: Option<bool> = ctx
                .wait_for_signal("approve", Duration::from_secs(3600))
                .await
                .map_err(|e| fail(&e))?;
            ctx.emit("decision", &ok).await.map_err(|e| fail(&e))?;
            match ok {
                Some(true) => Ok(format!("approved: {what}")),
                Some(false) => Err(format!("refused: {what}")),
                None => Err(format!("nobody answered within the hour: {what}")),
            }
        },
    )
    .queue("agents");

    let runner = TaskRunner::builder()
        .queue("agents", QueueConfig::new().concurrency(3))
        .queue("tools", QueueConfig::new().concurrency(2))
        .store(store)
        .register(&research)
        .register(&flaky)
        .register(&approval)
        .build()?;
    runner
        .schedule_run(
            "digest",
            Schedule::every(Duration::from_secs(60)),
            &research,
            "the news".to_string(),
        )
        .await?;
    runner.schedule(
        "heartbeat",
        Schedule::every(Duration::from_secs(15)),
        || Task::new("ping", |_: TaskContext| async { Ok::<_, String>("pong") }),
    )?;
    drop(
        runner
            .submit(&approval, "deploy to production".to_string())
            .await?,
    );

    // New work every few seconds.
    let feeder = runner.clone();
    tokio::spawn(async move {
        let topics = ["tokio", "axum", "sqlite", "postgres", "htmx"];
        for n in 0u32.. {
            let topic = topics[n as usize % topics.len()].to_string();
            let _ = feeder.submit(&research, topic).await;
            let _ = feeder.submit(&flaky, n).await;
            if n.is_multiple_of(5) {
                let _ = feeder.submit(&approval, format!("release {n}")).await;
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    });

    let dashboard = Dashboard::new().access(|parts| {
        if parts.headers.contains_key("x-read-only") {
            Access::ReadOnly
        } else {
            Access::All
        }
    });
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async { axum::response::Redirect::to("/tasks") }),
        )
        .nest(
            "/tasks",
            taskrunner::dashboard::router(runner.clone(), dashboard),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    println!(
        "the dashboard: http://127.0.0.1:8080/tasks (store: {})",
        path.display()
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    runner.shutdown_now().await;
    Ok(())
}
