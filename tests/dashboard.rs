//! The dashboard's router, request by request (`tower::ServiceExt::oneshot`): every page and
//! API endpoint, every access level, escaping, and bad input (unknown ids, malformed
//! filters, a store that cannot be read).
#![cfg(all(feature = "dashboard", feature = "sqlite"))]

mod dashboard_support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use dashboard_support::{fixture, wait_status, SCRIPT};
use http_body_util::BodyExt as _;
use taskrunner::dashboard::{router, Access, Dashboard};
use taskrunner::RunStatus;
use tower::ServiceExt as _;

async fn send(
    app: &Router,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn get(app: &Router, path: &str) -> (StatusCode, String) {
    send(app, Method::GET, path, &[]).await
}

async fn post(app: &Router, path: &str) -> (StatusCode, String) {
    send(app, Method::POST, path, &[("hx-request", "true")]).await
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_and_escapes_html() {
    let f = fixture().await;
    let app = Router::new().nest("/tasks", router(f.runner.clone(), Dashboard::new()));

    // At the prefix, links go through its last segment, so they stay under it.
    let (status, page) = get(&app, "/tasks").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("agents") && page.contains("store"), "{page}");
    assert!(page.contains(r#"src="tasks/assets/htmx.min.js""#));
    assert!(page.contains(r#"href="tasks/runs""#));
    assert!(page.contains(r#"hx-post="tasks/api/queues/agents/pause""#));
    assert!(page.contains(r#"hx-trigger="every 2s [!document.hidden], refresh from:body""#));
    assert!(page.contains(r#"hx-sync="this:drop""#));
    assert!(page.contains("prefers-color-scheme: dark"));
    assert!(!page.contains("href=\"/"), "every link is relative: {page}");

    let (status, page) = get(&app, "/tasks/runs").await;
    assert_eq!(status, StatusCode::OK);
    for id in [f.completed, f.failed, f.html_input, f.running] {
        assert!(
            page.contains(&format!(r#"href="runs/{id}""#)),
            "run {id} listed"
        );
    }
    assert!(
        !page.contains(SCRIPT),
        "raw HTML from a run reached the page"
    );
    assert!(page.contains("&lt;script&gt;"), "escaped HTML shown");

    let (status, page) = get(&app, &format!("/tasks/runs/{}", f.failed)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains(SCRIPT));
    assert!(page.contains("&lt;script&gt;alert"), "the error, escaped");
    assert!(page.contains(&format!(r#"hx-post="../api/runs/{}/retry""#, f.failed)));
    assert!(page.contains(r#"src="../assets/htmx.min.js""#));

    let (_, page) = get(&app, &format!("/tasks/runs/{}", f.html_input)).await;
    assert!(
        !page.contains(SCRIPT) && page.contains("&lt;script&gt;"),
        "the input, escaped"
    );
    let (_, page) = get(&app, &format!("/tasks/runs/{}", f.running)).await;
    assert!(page.contains(&format!(r#"hx-post="../api/runs/{}/cancel""#, f.running)));

    let (status, page) = get(&app, "/tasks/schedules").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("nightly") && page.contains("api/schedules/local/nightly/pause"));
    let (status, page) = get(&app, "/tasks/tasks").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("local_job"));
    let task = json(&get(&app, "/tasks/api/tasks").await.1)
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "local_job")
        .unwrap()["id"]
        .clone();
    let (status, page) = get(&app, &format!("/tasks/tasks/{task}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("local_job"));

    let (status, script) = get(&app, "/tasks/assets/htmx.min.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(script.contains("htmx") && script.len() > 40_000);
    f.runner.shutdown_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_api_answers_what_the_pages_show() {
    let f = fixture().await;
    let app = router(f.runner.clone(), Dashboard::new());

    let queues = json(&get(&app, "/api/queues").await.1);
    let agents = queues
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "agents")
        .unwrap();
    assert_eq!(agents["local"]["limit"], 4);
    assert_eq!(agents["durable"]["running"], 1);
    assert_eq!(agents["durable"]["failed_last_hour"], 1);
    assert_eq!(agents["durable"]["completed_last_hour"], 2);

    let page = json(&get(&app, "/api/runs?status=failed").await.1);
    assert_eq!(page["count"], 1);
    assert_eq!(page["runs"][0]["id"], f.failed.as_i64());
    assert_eq!(page["runs"][0]["error"], SCRIPT);

    // Newest first, keyset pages of 2: the next page starts below the cursor.
    let first = json(&get(&app, "/api/runs?limit=2").await.1);
    let ids: Vec<i64> = first["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [f.running.as_i64(), f.html_input.as_i64()]);
    let next = first["next"].as_i64().unwrap();
    let second = json(
        &get(&app, &format!("/api/runs?limit=2&before={next}"))
            .await
            .1,
    );
    let ids: Vec<i64> = second["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [f.failed.as_i64(), f.completed.as_i64()]);

    let found = json(&get(&app, "/api/runs?q=tokio").await.1);
    assert_eq!(found["runs"].as_array().unwrap().len(), 1);
    assert_eq!(found["runs"][0]["id"], f.completed.as_i64());
    let named = json(
        &get(&app, "/api/runs?name=wait_for_approval&queue=agents")
            .await
            .1,
    );
    assert_eq!(named["runs"][0]["id"], f.running.as_i64());
    let future = json(&get(&app, "/api/runs?from=2999-01-01").await.1);
    assert_eq!(future["runs"].as_array().unwrap().len(), 0);
    let past = json(&get(&app, "/api/runs?to=2000-01-01T00:00:00Z").await.1);
    assert_eq!(past["runs"].as_array().unwrap().len(), 0);

    let run = json(&get(&app, &format!("/api/runs/{}", f.completed)).await.1);
    assert_eq!(run["status"], "completed");
    assert_eq!(run["output"]["summary"], "done");
    assert_eq!(run["input"], r#"{"topic":"tokio"}"#);

    let schedules = json(&get(&app, "/api/schedules").await.1);
    assert_eq!(schedules[0]["name"], "nightly");
    assert_eq!(schedules[0]["kind"], "local");
    assert_eq!(schedules[1]["name"], "digest", "{schedules}");
    assert_eq!(schedules[1]["kind"], "durable");
    let tasks = json(&get(&app, "/api/tasks").await.1);
    assert!(tasks
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "local_job"));
    f.runner.shutdown_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_cancel_retry_pause_and_trigger() {
    let f = fixture().await;
    let app = router(f.runner.clone(), Dashboard::new());

    let (status, body) = post(&app, &format!("/api/runs/{}/cancel", f.running)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(json(&body)["done"], true);
    wait_status(&f.runner, f.running, RunStatus::Cancelled).await;

    let (status, body) = post(&app, &format!("/api/runs/{}/retry", f.failed)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(json(&body)["done"], true);
    // It runs again under the same id and fails again: attempts go on.
    for _ in 0..1000 {
        let info = f.runner.run_info(f.failed).await.unwrap().unwrap();
        if info.status == RunStatus::Failed && info.attempts == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let info = f.runner.run_info(f.failed).await.unwrap().unwrap();
    assert_eq!((info.status, info.attempts), (RunStatus::Failed, 2));
    // A completed run is not retried.
    let (_, body) = post(&app, &format!("/api/runs/{}/retry", f.completed)).await;
    assert_eq!(json(&body)["done"], false);

    let (status, _) = post(&app, "/api/queues/agents/pause").await;
    assert_eq!(status, StatusCode::OK);
    assert!(f.runner.queue_stats("agents").unwrap().paused);
    let (status, _) = post(&app, "/api/queues/agents/resume").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!f.runner.queue_stats("agents").unwrap().paused);
    let (status, body) = post(&app, "/api/queues/agents/concurrency?limit=7").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(f.runner.queue_stats("agents").unwrap().limit, 7);

    let (status, _) = post(&app, "/api/schedules/local/nightly/pause").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        json(&get(&app, "/api/schedules").await.1)[0]["status"],
        "paused"
    );
    let (_, body) = post(&app, "/api/schedules/local/nightly/trigger").await;
    assert_eq!(json(&body)["done"], true);

    let task = f
        .runner
        .list_tasks()
        .into_iter()
        .find(|t| t.name == "local_job")
        .unwrap();
    let (status, body) = post(&app, &format!("/api/tasks/{}/cancel", task.id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["done"], true);

    // htmx asks the page to refresh its live part.
    let response = app
        .clone()
        .oneshot(
            Request::post("/api/queues/agents/pause")
                .header("hx-request", "true")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.headers()["hx-trigger"], "refresh");
    f.runner.shutdown_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_levels_are_enforced() {
    let f = fixture().await;
    let by_role = Dashboard::new().access(|parts| {
        match parts.headers.get("x-role").and_then(|v| v.to_str().ok()) {
            Some("admin") => Access::All,
            Some("viewer") => Access::ReadOnly,
            _ => Access::Forbidden,
        }
    });
    let app = router(f.runner.clone(), by_role);
    let cancel = format!("/api/runs/{}/cancel", f.running);
    for path in ["/", "/runs", "/api/runs", "/api/queues"] {
        let (status, _) = send(&app, Method::GET, path, &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path} without a role");
        let (status, _) = send(&app, Method::GET, path, &[("x-role", "viewer")]).await;
        assert_eq!(status, StatusCode::OK, "{path} for a viewer");
    }
    let (status, body) = send(
        &app,
        Method::POST,
        &cancel,
        &[("x-role", "viewer"), ("hx-request", "1")],
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(json(&body)["error"].as_str().unwrap().contains("read-only"));
    let (status, _) = send(&app, Method::POST, &cancel, &[("hx-request", "1")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        f.runner.run_info(f.running).await.unwrap().unwrap().status,
        RunStatus::Running,
        "a refused action did nothing"
    );
    // An action without htmx's header (a cross-site form) is refused even for an admin.
    let (status, _) = send(&app, Method::POST, &cancel, &[("x-role", "admin")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(
        &app,
        Method::POST,
        &cancel,
        &[("x-role", "admin"), ("x-requested-with", "cli")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    wait_status(&f.runner, f.running, RunStatus::Cancelled).await;
    f.runner.shutdown_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_answer() {
    let f = fixture().await;
    let app = router(f.runner.clone(), Dashboard::new());

    let (status, page) = get(&app, "/runs/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("no run 999999"), "{page}");
    let (status, page) = get(&app, "/runs/abc").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("not a run id"));
    let (status, body) = get(&app, "/api/runs/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(json(&body)["error"].as_str().unwrap().contains("no run"));
    let (status, _) = get(&app, "/tasks/12345678").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&app, "/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    for (query, word) in [
        ("status=sleeping", "unknown status `sleeping`"),
        ("before=xyz", "`before`"),
        ("limit=0", "`limit`"),
        ("limit=100000", "`limit`"),
        ("from=yesterday", "`from` is not a time"),
    ] {
        let (status, page) = get(&app, &format!("/runs?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(page.contains(word), "{query}: {page}");
        let (status, body) = get(&app, &format!("/api/runs?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(json(&body)["error"].as_str().unwrap().contains(word));
    }
    let (status, _) = post(&app, "/api/runs/1/explode").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(&app, "/api/queues/agents/concurrency?limit=none").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(&app, "/api/queues/nope/pause").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The store goes away: pages say so, nothing panics.
    f.runner.store().unwrap().close().await;
    for path in ["/", "/runs", &format!("/runs/{}", f.failed), "/schedules"] {
        let (status, page) = get(&app, path).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(page.contains("could not be read"), "{path}: {page}");
    }
    let (status, body) = get(&app, "/api/runs").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(json(&body)["error"]
        .as_str()
        .unwrap()
        .contains("database is up"));
    f.runner.shutdown_now().await;
}

/// A writer that keeps what the `tracing` subscriber writes.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn each_action_is_a_tracing_event_naming_who_did_what() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let f = fixture().await;
    let dashboard = Dashboard::new().who(|parts| {
        parts
            .headers
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?")
            .to_owned()
    });
    let app = router(f.runner.clone(), dashboard);
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/queues/agents/pause",
        &[("hx-request", "1"), ("x-user", "alice")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(
        &app,
        Method::POST,
        &format!("/api/runs/{}/retry", f.failed),
        &[("hx-request", "1"), ("x-user", "bob")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = |who: &str| {
        log.lines()
            .find(|l| l.contains("dashboard action") && l.contains(&format!("who={who}")))
            .map(str::to_owned)
    };
    let alice = line("alice").unwrap_or_else(|| panic!("no event for alice in:\n{log}"));
    assert!(
        alice.contains("action=\"pause_queue\"") && alice.contains("on=agents"),
        "{alice}"
    );
    let bob = line("bob").unwrap_or_else(|| panic!("no event for bob in:\n{log}"));
    assert!(
        bob.contains("retry_run") && bob.contains(&format!("on={}", f.failed)),
        "{bob}"
    );
    f.runner.shutdown_now().await;
}
