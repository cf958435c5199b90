//! How fast the dashboard answers on a large store: fills a SQLite store with 1,000,000
//! finished runs (one SQL statement, straight into the table), then times every page and API
//! call through the router, 20 requests each, and prints the median and the slowest.
//!
//! ```sh
//! cargo run --release --example dashboard_bench --features dashboard            # 1,000,000 runs
//! RUNS=100000 cargo run --release --example dashboard_bench --features dashboard
//! ```
//!
//! The store is kept in the temp dir between runs (`taskrunner-dashboard-bench-N.db`).

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use sqlx::Connection as _;
use taskrunner::dashboard::{router, Dashboard};
use taskrunner::store::{Retention, SqliteStore};
use taskrunner::TaskRunner;
use tower::ServiceExt as _;

const NAMES: [&str; 5] = ["research", "summarize", "search", "crawl", "email"];

async fn fill(path: &std::path::Path, runs: i64) -> Result<(), Box<dyn std::error::Error>> {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
    let have: i64 = sqlx::query_scalar("SELECT count(*) FROM taskrunner_runs")
        .fetch_one(&mut conn)
        .await?;
    if have >= runs {
        return Ok(());
    }
    let started = Instant::now();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    // Submitted 50 ms apart, ending now; every 10th failed, every 50th cancelled, the rest
    // completed; five names over three queues.
    let sql = format!(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {runs}) \
         INSERT INTO taskrunner_runs (name, queue, status, input, output, error, error_kind, \
           attempts, max_attempts, scheduled_at, created_at, started_at, finished_at) \
         SELECT \
           CASE i % 5 WHEN 0 THEN '{}' WHEN 1 THEN '{}' WHEN 2 THEN '{}' WHEN 3 THEN '{}' ELSE '{}' END, \
           CASE i % 3 WHEN 0 THEN 'llm' WHEN 1 THEN 'tools' ELSE 'mail' END, \
           CASE WHEN i % 50 = 0 THEN 'cancelled' WHEN i % 10 = 0 THEN 'failed' ELSE 'completed' END, \
           '{{\"topic\":\"topic-' || i || '\",\"depth\":' || (i % 7) || '}}', \
           CASE WHEN i % 10 <> 0 THEN '{{\"summary\":\"ok\"}}' END, \
           CASE WHEN i % 10 = 0 THEN 'HTTP 503 from the search API' END, \
           CASE WHEN i % 10 = 0 THEN 'failed' END, \
           1, 3, \
           {now} - ({runs} - i) * 50, {now} - ({runs} - i) * 50, \
           {now} - ({runs} - i) * 50 + 5, {now} - ({runs} - i) * 50 + 40 + i % 200 \
         FROM c",
        NAMES[0], NAMES[1], NAMES[2], NAMES[3], NAMES[4]
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await?;
    sqlx::raw_sql("ANALYZE").execute(&mut conn).await?;
    conn.close().await?;
    eprintln!("filled {runs} runs in {:.1?}", started.elapsed());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: i64 = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1_000_000);
    let path = std::env::temp_dir().join(format!("taskrunner-dashboard-bench-{runs}.db"));
    let store = SqliteStore::open(&path).await?; // creates and migrates it
    fill(&path, runs).await?;
    let forever = Duration::from_secs(100 * 365 * 24 * 3600);
    let runner = TaskRunner::builder()
        .store(store)
        .retention(
            Retention::new()
                .max_age(forever)
                .max_finished(u64::MAX)
                .every(forever),
        )
        .build()?;
    let app = router(runner.clone(), Dashboard::new());
    let deep = runs / 2;
    let middle_day = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(runs * 50 / 1000 / 2);
    let paths = [
        "/".to_owned(),
        "/api/queues".to_owned(),
        "/runs".to_owned(),
        "/api/runs".to_owned(),
        "/runs?status=failed".to_owned(),
        "/runs?status=cancelled&name=crawl".to_owned(),
        "/runs?name=research".to_owned(),
        "/runs?queue=mail".to_owned(),
        format!("/runs?before={deep}"),
        format!("/runs?status=failed&before={deep}"),
        "/runs?q=topic-99999".to_owned(),
        "/runs?q=no-such-text".to_owned(),
        format!("/runs?from={}", middle_day.strftime("%Y-%m-%dT%H:%M:%SZ")),
        format!("/runs?to={}", middle_day.strftime("%Y-%m-%dT%H:%M:%SZ")),
        format!("/runs/{deep}"),
        format!("/api/runs/{deep}"),
        "/schedules".to_owned(),
        "/tasks".to_owned(),
    ];
    println!("{runs} finished runs in {}", path.display());
    println!("{:<48} {:>10} {:>10}", "page", "median", "slowest");
    let mut worst = Duration::ZERO;
    for path in &paths {
        let mut times = Vec::new();
        for _ in 0..20 {
            let started = Instant::now();
            let response = app
                .clone()
                .oneshot(Request::get(path.as_str()).body(Body::empty())?)
                .await?;
            let status = response.status();
            let _ = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
            times.push(started.elapsed());
            assert!(status.is_success(), "{path}: {status}");
        }
        times.sort();
        worst = worst.max(times[times.len() - 1]);
        println!(
            "{path:<48} {:>10.1?} {:>10.1?}",
            times[times.len() / 2],
            times[times.len() - 1]
        );
    }
    println!("slowest of all: {worst:.1?}");
    runner.shutdown().await;
    Ok(())
}
