//! A run's page shows each failed attempt's error by attempt (from the `retry` events of its
//! log), on SQLite and PostgreSQL; HTML in an error is escaped. The JSON API has the same.
#![cfg(all(feature = "dashboard", feature = "sqlite", feature = "postgres"))]

#[macro_use]
mod store_support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use store_support::TestDb;
use taskrunner::dashboard::{router, Dashboard};
use taskrunner::{RetryPolicy, RunStatus, TaskContext, TaskDef, TaskRunner};
use tower::ServiceExt as _;

const LIMIT: Duration = Duration::from_secs(30);

async fn get(app: &axum::Router, path: &str) -> (StatusCode, String) {
    let request = Request::builder().uri(path).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn each_failed_attempt_shows_its_error(db: TestDb) {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let flaky = TaskDef::new("flaky", move |_: TaskContext, n: u32| {
        let seen = Arc::clone(&seen);
        async move {
            match seen.fetch_add(1, Ordering::SeqCst) {
                0 => Err("first: <script>alert('x')</script>".to_owned()),
                1 => Err("second: the model timed out".to_owned()),
                _ => Ok::<_, String>(n + 1),
            }
        }
    })
    .retry(RetryPolicy::fixed(Duration::from_millis(10)).max_retries(3));
    let runner = TaskRunner::builder()
        .store(db.store.clone())
        .poll_interval(Duration::from_millis(50))
        .register(&flaky)
        .build()
        .unwrap();
    let handle = runner.submit(&flaky, 1).await.unwrap();
    let id = handle.id();
    let out = tokio::time::timeout(LIMIT, handle)
        .await
        .expect("the run ended")
        .unwrap();
    assert_eq!(out, 2);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let info = runner.run_info(id).await.unwrap().unwrap();
    assert_eq!(info.status, RunStatus::Completed);

    let app = router(runner.clone(), Dashboard::new());
    let (status, page) = get(&app, &format!("/runs/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("attempt 1: first: &lt;script&gt;alert('x')&lt;/script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(
        page.contains("attempt 2: second: the model timed out"),
        "{page}"
    );

    let (status, body) = get(&app, &format!("/api/runs/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let history = json["history"]
        .as_array()
        .unwrap_or_else(|| panic!("no history: {body}"));
    let errors: Vec<(u64, &str)> = history
        .iter()
        .filter_map(|e| Some((e["attempt"].as_u64()?, e["error"].as_str()?)))
        .collect();
    assert_eq!(
        errors,
        vec![
            (2, "first: <script>alert('x')</script>"),
            (3, "second: the model timed out"),
        ],
        "{body}"
    );
    runner.shutdown().await;
}

conformance!(each_failed_attempt_shows_its_error);
