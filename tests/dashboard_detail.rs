//! One run's page and its endpoints, request by request (`tower::ServiceExt::oneshot`):
//! sending a signal (page form and JSON, every access level, bad input), what a run waits
//! for, its children, its attempts from the event log, and its event stream over
//! server-sent events (stored, live, resumed by `Last-Event-ID`, ended after the terminal
//! event); HTML in an emitted value or a signal is escaped.
#![cfg(all(feature = "dashboard", feature = "sqlite"))]

use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, Response, StatusCode};
use axum::Router;
use futures::future::BoxFuture;
use http_body_util::BodyExt as _;
use taskrunner::dashboard::{router, Access, Dashboard};
use taskrunner::store::SqliteStore;
use taskrunner::{QueueConfig, RunHandle, RunId, RunStatus, TaskContext, TaskDef, TaskRunner};
use tower::ServiceExt as _;

const SCRIPT: &str = "<script>alert('x')</script>";
const LIMIT: Duration = Duration::from_secs(30);

struct Fixture {
    runner: TaskRunner,
    dir: PathBuf,
    /// Emitted a plan with HTML in it, now waits for the signal `approve`.
    waiting: RunId,
    /// Spawned two children and waits for them (one of them waits for `approve`).
    parent: RunId,
    /// Completed.
    done: RunId,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

type Out<T> = BoxFuture<'static, Result<T, String>>;

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn waits(runner: &TaskRunner, id: RunId) {
    eventually(&format!("run {id} to wait"), async || {
        let info = runner.run_info(id).await.unwrap().unwrap();
        info.waiting_for.is_some()
    })
    .await;
}

async fn fixture() -> Fixture {
    let dir = std::env::temp_dir().join(format!(
        "taskrunner_dash_detail_{}_{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::open(dir.join("runs.db")).await.unwrap();
    let approval = TaskDef::new(
        "approval",
        |ctx: TaskContext, to: String| -> Out<serde_json::Value> {
            Box::pin(async move {
                ctx.emit("plan", &serde_json::json!({ "to": to, "note": SCRIPT }))
                    .await
                    .map_err(|e| e.to_string())?;
                let ok: Option<serde_json::Value> = ctx
                    .wait_for_signal("approve", Duration::from_secs(3600))
                    .await
                    .map_err(|e| e.to_string())?;
                ctx.emit("decision", &ok).await.map_err(|e| e.to_string())?;
                Ok(serde_json::json!({ "approved": ok }))
            })
        },
    )
    .queue("agents");
    let child = approval.clone();
    let team = TaskDef::new("team", move |ctx: TaskContext, n: u32| -> Out<u32> {
        let child = child.clone();
        Box::pin(async move {
            let mut handles: Vec<RunHandle<serde_json::Value>> = Vec::new();
            for i in 0..n {
                handles.push(
                    ctx.spawn(&child, format!("child-{i}"))
                        .await
                        .map_err(|e| e.to_string())?,
                );
            }
            let done = ctx.join_all(handles).await;
            Ok(u32::try_from(done.len()).unwrap_or(0))
        })
    })
    .queue("agents");
    let quick = TaskDef::new("quick", |_: TaskContext, n: u32| async move {
        Ok::<_, String>(n + 1)
    })
    .queue("agents");
    let runner = TaskRunner::builder()
        .queue("agents", QueueConfig::new().concurrency(4))
        .store(store)
        .poll_interval(Duration::from_millis(50))
        .lease(Duration::from_secs(2))
        .register(&approval)
        .register(&team)
        .register(&quick)
        .build()
        .unwrap();
    let waiting = runner
        .submit(&approval, "ana@example.com".to_owned())
        .await
        .unwrap()
        .id();
    let parent = runner.submit(&team, 2).await.unwrap().id();
    let done = runner.submit(&quick, 1).await.unwrap().id();
    waits(&runner, waiting).await;
    waits(&runner, parent).await;
    eventually("the quick run to complete", async || {
        runner.run_info(done).await.unwrap().unwrap().status == RunStatus::Completed
    })
    .await;
    Fixture {
        runner,
        dir,
        waiting,
        parent,
        done,
    }
}

async fn respond(
    app: &Router,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response<Body> {
    let mut request = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    app.clone()
        .oneshot(request.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap()
}

async fn send(
    app: &Router,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, String) {
    let response = respond(app, method, path, headers, body).await;
    let status = response.status();
    let body = tokio::time::timeout(LIMIT, response.into_body().collect())
        .await
        .expect("the body ended")
        .unwrap()
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn get(app: &Router, path: &str) -> (StatusCode, String) {
    send(app, Method::GET, path, &[], "").await
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
const JSON: (&str, &str) = ("content-type", "application/json");
const HX: (&str, &str) = ("hx-request", "true");

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The `data:` JSON of each server-sent event in `body`, with its `id` if any.
fn sse(body: &str) -> Vec<(Option<u64>, serde_json::Value)> {
    body.split("\n\n")
        .filter_map(|frame| {
            let mut id = None;
            let mut data = None;
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().parse().unwrap());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = Some(json(v.trim()));
                }
            }
            data.map(|d| (id, d))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_run_shows_what_it_waits_for_and_takes_a_signal_from_its_page() {
    let f = fixture().await;
    let app = router(f.runner.clone(), Dashboard::new());

    // The page: waiting for `approve`, the form filled in, the plan's HTML escaped.
    let (status, page) = get(&app, &format!("/runs/{}", f.waiting)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("the signal `approve`"), "{page}");
    assert!(page.contains(&format!(r#"hx-post="../api/runs/{}/signal""#, f.waiting)));
    assert!(page.contains(r#"name="name" value="approve""#), "{page}");
    assert!(
        !page.contains(SCRIPT),
        "an emitted value is escaped: {page}"
    );
    assert!(page.contains("&lt;script&gt;"), "{page}");
    assert!(page.contains(r#"id="events""#) && page.contains("EventSource"));
    // The same in JSON: what it waits for, its history, its stored events.
    let (status, body) = get(&app, &format!("/api/runs/{}", f.waiting)).await;
    assert_eq!(status, StatusCode::OK);
    let run = json(&body);
    assert_eq!(run["waiting_for"]["kind"], "signal", "{run}");
    assert_eq!(run["waiting_for"]["name"], "approve");
    assert_eq!(run["recoveries"], 0);
    let plan = run["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["topic"] == "plan")
        .unwrap_or_else(|| panic!("the plan was stored before the wait: {run}"));
    assert_eq!(plan["value"]["note"], SCRIPT);
    let history: Vec<&str> = run["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["status"].as_str())
        .collect();
    assert_eq!(history.first(), Some(&"running"), "{run}");
    assert!(
        run["events_next"].as_u64().unwrap() >= 2,
        "the log holds the claim and the plan: {run}"
    );

    // The page's form sends a form; HTML in the value is kept as data, not markup.
    let value = format!(r#"{{"ok": true, "why": "{}"}}"#, SCRIPT.replace('\'', ""));
    let form = format!("name=approve&value={}", urlencode(&value));
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("/api/runs/{}/signal", f.waiting),
        &[HX, FORM],
        &form,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(json(&body)["done"], true);
    eventually("the signalled run to complete", async || {
        f.runner.run_info(f.waiting).await.unwrap().unwrap().status == RunStatus::Completed
    })
    .await;
    let info = f.runner.run_info(f.waiting).await.unwrap().unwrap();
    assert_eq!(info.output.unwrap()["approved"]["ok"], true);
    let (_, page) = get(&app, &format!("/runs/{}", f.waiting)).await;
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(
        !page.contains(r#"id="signal""#),
        "no form on a finished run"
    );

    // A finished run takes no signal: 409 with the reason.
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("/api/runs/{}/signal", f.waiting),
        &[HX, JSON],
        r#"{"name": "approve", "value": true}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(json(&body)["error"]
        .as_str()
        .unwrap()
        .contains("already ended"));
    f.runner.shutdown_now().await;
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_access_levels_and_bad_input() {
    let f = fixture().await;
    let path = format!("/api/runs/{}/signal", f.waiting);
    let body = r#"{"name": "approve", "value": {"ok": false}}"#;
    // Read-only: 405; forbidden: 403 (JSON for the API); no htmx header: 403.
    let read_only = router(
        f.runner.clone(),
        Dashboard::new().access(|_| Access::ReadOnly),
    );
    let (status, answer) = send(&read_only, Method::POST, &path, &[HX, JSON], body).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(json(&answer)["error"]
        .as_str()
        .unwrap()
        .contains("read-only"));
    let forbidden = router(
        f.runner.clone(),
        Dashboard::new().access(|_| Access::Forbidden),
    );
    let (status, _) = send(&forbidden, Method::POST, &path, &[HX, JSON], body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, page) = get(&forbidden, &format!("/runs/{}", f.waiting)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    let (status, _) = get(&forbidden, &format!("/api/runs/{}/events", f.done)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A read-only user may watch the events.
    let (status, _) = get(&read_only, &format!("/api/runs/{}/events", f.done)).await;
    assert_eq!(status, StatusCode::OK);
    let app = router(f.runner.clone(), Dashboard::new());
    let (status, _) = send(&app, Method::POST, &path, &[JSON], body).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "an action needs the htmx header"
    );
    assert!(f
        .runner
        .run_info(f.waiting)
        .await
        .unwrap()
        .unwrap()
        .waiting_for
        .is_some());

    // Bad input: 400 with a message, 404 for an unknown run.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case; 4] = [
        (&[HX, FORM], "name=approve&value=%7Bnot%20json", "not JSON"),
        (
            &[HX, JSON],
            r#"{"name": "approve", "value": "#,
            "not a signal",
        ),
        (&[HX, FORM], "name=&value=true", "needs a name"),
        (&[HX, JSON], r#"{"value": true}"#, "not a signal"),
    ];
    for (headers, body, says) in cases {
        let (status, answer) = send(&app, Method::POST, &path, headers, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let error = json(&answer)["error"].as_str().unwrap().to_owned();
        assert!(error.contains(says), "{body}: {error}");
    }
    let (status, answer) = send(
        &app,
        Method::POST,
        "/api/runs/987654/signal",
        &[HX, JSON],
        r#"{"name": "approve"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(json(&answer)["error"]
        .as_str()
        .unwrap()
        .contains("no such run"));
    for path in ["/api/runs/987654/events", "/api/runs/nope/events"] {
        let (status, answer) = get(&app, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
        assert!(json(&answer)["error"].is_string());
    }
    let (status, page) = get(&app, "/runs/987654").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("no run 987654"), "{page}");
    let (status, answer) = get(&app, &format!("/api/runs/{}/events?from=x", f.done)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(json(&answer)["error"].as_str().unwrap().contains("`from`"));
    // Nothing above reached the run.
    assert!(f
        .runner
        .run_info(f.waiting)
        .await
        .unwrap()
        .unwrap()
        .waiting_for
        .is_some());
    f.runner.shutdown_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_replays_resumes_tails_and_ends() {
    let f = fixture().await;
    let app = router(f.runner.clone(), Dashboard::new());
    // A finished run: the whole log, ids = offsets, then the stream ends.
    let (status, body) = get(&app, &format!("/api/runs/{}/events", f.done)).await;
    assert_eq!(status, StatusCode::OK);
    let events = sse(&body);
    let ids: Vec<u64> = events.iter().filter_map(|(id, _)| *id).collect();
    assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>(), "{body}");
    let (_, last) = events.last().unwrap();
    assert_eq!(last["terminal"], true, "{body}");
    assert_eq!(last["status"], "completed");
    // Resumed after the first event: the rest, once each.
    let (_, resumed) = send(
        &app,
        Method::GET,
        &format!("/api/runs/{}/events", f.done),
        &[("last-event-id", "0")],
        "",
    )
    .await;
    let rest: Vec<u64> = sse(&resumed).iter().filter_map(|(id, _)| *id).collect();
    assert_eq!(rest, ids[1..].to_vec(), "{resumed}");

    // A waiting run: the stored events come at once, the rest when it goes on.
    let response = respond(
        &app,
        Method::GET,
        &format!("/api/runs/{}/events", f.waiting),
        &[],
        "",
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut body = response.into_body();
    let mut text = String::new();
    let read_until = async |body: &mut Body, text: &mut String, what: &str| {
        tokio::time::timeout(LIMIT, async {
            while !text.contains(what) {
                let frame = body.frame().await.expect("the stream ended early").unwrap();
                if let Ok(data) = frame.into_data() {
                    text.push_str(&String::from_utf8_lossy(&data));
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no `{what}` in: {text}"));
    };
    read_until(&mut body, &mut text, r#""topic":"plan""#).await;
    assert!(
        text.contains("<script>"),
        "JSON data carries the value as is"
    );
    f.runner
        .signal(f.waiting, "approve", &serde_json::json!("yes"))
        .await
        .unwrap();
    read_until(&mut body, &mut text, r#""terminal":true"#).await;
    let ended = tokio::time::timeout(LIMIT, async {
        loop {
            match body.frame().await {
                None => return true,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        text.push_str(&String::from_utf8_lossy(&data));
                    }
                }
                Some(Err(_)) => return false,
            }
        }
    })
    .await;
    assert_eq!(ended, Ok(true), "the stream ends after the terminal event");
    let events = sse(&text);
    let topics: Vec<&str> = events
        .iter()
        .filter_map(|(_, e)| e["topic"].as_str())
        .collect();
    assert_eq!(topics, ["plan", "decision"], "{text}");
    let ids: Vec<u64> = events.iter().filter_map(|(id, _)| *id).collect();
    assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>(), "{text}");
    f.runner.shutdown_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_lists_its_children_and_each_child_links_back() {
    let f = fixture().await;
    let app = router(f.runner.clone(), Dashboard::new());
    let (status, body) = get(&app, &format!("/api/runs/{}", f.parent)).await;
    assert_eq!(status, StatusCode::OK);
    let run = json(&body);
    assert_eq!(run["waiting_for"]["kind"], "children", "{run}");
    let children = run["children"].as_array().unwrap();
    assert_eq!(children.len(), 2, "{run}");
    assert_eq!(run["more_children"], false);
    let (_, page) = get(&app, &format!("/runs/{}", f.parent)).await;
    for child in children {
        let id = child["id"].as_i64().unwrap();
        assert!(
            page.contains(&format!(r#"href="../runs/{id}""#)),
            "child {id} linked: {page}"
        );
        let (_, child_page) = get(&app, &format!("/runs/{id}")).await;
        assert!(
            child_page.contains(&format!(r#"href="../runs/{}""#, f.parent)),
            "parent linked from child {id}"
        );
    }
    let (status, body) = get(&app, &format!("/api/runs?parent={}", f.parent)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(json(&body)["runs"].as_array().unwrap().len(), 2);
    let (status, body) = get(&app, "/api/runs?status=waiting").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let waiting: Vec<i64> = json(&body)["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect();
    assert!(
        waiting.contains(&f.parent.as_i64()) && waiting.contains(&f.waiting.as_i64()),
        "{body}"
    );
    assert!(!waiting.contains(&f.done.as_i64()));
    let (status, body) = get(&app, "/api/runs?parent=abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
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
async fn a_signal_is_a_tracing_event_naming_who_sent_what() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let f = fixture().await;
    let app = router(f.runner.clone(), Dashboard::new());
    let (status, body) = send(
        &app,
        Method::POST,
        &format!("/api/runs/{}/signal", f.waiting),
        &[
            ("x-requested-with", "test"),
            ("x-forwarded-user", "carol"),
            JSON,
        ],
        r#"{"name": "approve", "value": true}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("dashboard action") && l.contains("who=carol"))
        .unwrap_or_else(|| panic!("no event for carol in:\n{log}"));
    assert!(
        line.contains("signal_run(approve)") && line.contains(&format!("on={}", f.waiting)),
        "{line}"
    );
    f.runner.shutdown_now().await;
}
