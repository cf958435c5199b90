//! The dashboard in a real browser: Debian's `chromium` driven headless through
//! `chromedriver` (WebDriver). It loads the dashboard of a runner at work, filters the runs,
//! opens a failed run (its `<script>` error shown as text), cancels a running run with the
//! button (and checks the store), sends a signal to a waiting run from its page's form (the
//! run completes with it, and the page appends its new events live), and saves screenshots
//! in light and dark mode under `target/` (`dashboard-light.png`, `dashboard-dark.png`,
//! `dashboard-run.png`, `dashboard-signal.png`).
//!
//! Without `chromium` and `chromedriver` it fails under CI (`CI=true`; `.ci/run` installs
//! them) and is skipped with a message elsewhere.
#![cfg(all(feature = "dashboard", feature = "sqlite"))]

mod dashboard_support;

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dashboard_support::{fixture, wait_status, SCRIPT};
use fantoccini::{Client, ClientBuilder, Locator};
use taskrunner::dashboard::{router, Dashboard};
use taskrunner::{RunStatus, TaskContext, TaskDef, TaskRunner};

const LIMIT: Duration = Duration::from_secs(30);

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .chain(names.iter().map(|n| Path::new("/usr/lib/chromium").join(n)))
        .find(|p| p.is_file())
}

/// A chromedriver child in a process group of its own, killed with the browsers it started
/// on drop (a test that fails leaves no browser behind).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn browser(driver_port: u16, chromium: &Path, dark: bool) -> Client {
    let mut args = vec![
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,900",
    ];
    if dark {
        args.push("--force-dark-mode");
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({ "args": args, "binary": chromium }),
    );
    let url = format!("http://127.0.0.1:{driver_port}");
    for _ in 0..100 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(client) => return client,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("chromedriver did not answer on {url}");
}

async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(name);
    std::fs::write(&path, png).unwrap();
    path
}

/// Waits until `check` holds for the page's text.
async fn until_text(client: &Client, what: &str, check: impl Fn(&str) -> bool) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        // The page may be between two loads: read it again.
        let text = match client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if check(&text) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what} at {:?}: {text}",
            client.current_url().await.map(|u| u.to_string())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_real_browser() {
    let chromium = find_program(&["chromium", "chromium-browser"]);
    let chromedriver = find_program(&["chromedriver"]);
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromium and chromedriver are missing: .ci/run installs them (apt-get install chromium chromium-driver)"
        );
        eprintln!(
            "skipped: install chromium and chromium-driver (apt-get) to run the browser test"
        );
        return;
    };
    let f = fixture().await;
    let app = axum::Router::new().nest("/tasks", router(f.runner.clone(), Dashboard::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/tasks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let driver_port = free_port();
    let _driver = Driver(
        Command::new(&chromedriver)
            .arg(format!("--port={driver_port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // Light: the overview, then the runs filtered to the failed ones.
    let client = browser(driver_port, &chromium, false).await;
    client.goto(&base).await.unwrap();
    until_text(&client, "the queues", |t| {
        t.contains("agents") && t.contains("store")
    })
    .await;
    let dark: bool = client
        .execute(
            "return matchMedia('(prefers-color-scheme: dark)').matches",
            vec![],
        )
        .await
        .unwrap()
        .as_bool()
        .unwrap();
    assert!(!dark);
    client
        .find(Locator::LinkText("Runs"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_text(&client, "the runs", |t| t.contains("wait_for_approval")).await;
    client
        .find(Locator::Css("select[name=status]"))
        .await
        .unwrap()
        .select_by_value("failed")
        .await
        .unwrap();
    client
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_text(&client, "the failed runs only", |t| {
        t.contains("1 matching") && !t.contains("wait_for_approval")
    })
    .await;
    assert!(client
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains("status=failed"));
    let light = screenshot(&client, "dashboard-light.png").await;

    // The failed run: its error is shown as text, never run as a script.
    client
        .find(Locator::Css(&format!("a[href='runs/{}']", f.failed)))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_text(&client, "the failed run", |t| {
        t.contains("Error (last attempt)")
    })
    .await;
    let error = client
        .find(Locator::Css("#error"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(error, SCRIPT);
    assert!(client.get_alert_text().await.is_err(), "no script ran");
    screenshot(&client, "dashboard-run.png").await;

    // The running run: Cancel, confirm, and the store says cancelled; the page follows.
    client
        .goto(&format!("{base}/runs/{}", f.running))
        .await
        .unwrap();
    until_text(&client, "the running run", |t| t.contains("running")).await;
    client
        .find(Locator::Css("button.danger"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    for _ in 0..50 {
        if client.accept_alert().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_status(&f.runner, f.running, RunStatus::Cancelled).await;
    until_text(&client, "the page to show the cancel", |t| {
        t.contains("cancelled")
    })
    .await;

    // A run waiting for an approval: the page's form sends the signal, the run goes on, and
    // its events (the decision, the end) are appended live over server-sent events.
    let approval = TaskDef::new("approval", |ctx: TaskContext, to: String| async move {
        let fail = |e: &dyn std::fmt::Display| e.to_string();
        ctx.emit("plan", &format!("ask before mailing {to}"))
            .await
            .map_err(|e| fail(&e))?;
        let ok: Option<serde_json::Value> = ctx
            .wait_for_signal("approve", Duration::from_secs(3600))
            .await
            .map_err(|e| fail(&e))?;
        ctx.emit("decision", &ok).await.map_err(|e| fail(&e))?;
        Ok::<_, String>(ok)
    });
    let approver = TaskRunner::builder()
        .store(f.runner.store().unwrap().clone())
        .poll_interval(Duration::from_millis(50))
        .register(&approval)
        .build()
        .unwrap();
    let waiting = approver
        .submit(&approval, "ana@example.com".to_owned())
        .await
        .unwrap()
        .id();
    client
        .goto(&format!("{base}/runs/{waiting}"))
        .await
        .unwrap();
    until_text(&client, "the run to wait for its approval", |t| {
        t.contains("the signal `approve`") && t.contains("ask before mailing")
    })
    .await;
    // The form was rendered with the page (maybe before the run waited): name it.
    let name = client
        .find(Locator::Css("#signal input[name=name]"))
        .await
        .unwrap();
    name.clear().await.unwrap();
    name.send_keys("approve").await.unwrap();
    let value = client
        .find(Locator::Css("#signal input[name=value]"))
        .await
        .unwrap();
    value.clear().await.unwrap();
    value.send_keys(r#"{"ok": true}"#).await.unwrap();
    client
        .find(Locator::Css("#signal button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_text(&client, "the signal to be sent", |t| t.contains("Done.")).await;
    wait_status(&approver, waiting, RunStatus::Completed).await;
    let output = approver.run_info(waiting).await.unwrap().unwrap().output;
    assert_eq!(output, Some(serde_json::json!({ "ok": true })));
    until_text(&client, "the decision and the end, appended live", |t| {
        t.contains("emitted · decision") && t.contains("the run has ended")
    })
    .await;
    screenshot(&client, "dashboard-signal.png").await;
    client.close().await.unwrap();
    approver.shutdown_now().await;

    // Dark: the same runs page with the system in dark mode.
    let client = browser(driver_port, &chromium, true).await;
    client.goto(&format!("{base}/runs")).await.unwrap();
    until_text(&client, "the runs", |t| t.contains("wait_for_approval")).await;
    let (dark, background) = {
        let v = client
            .execute(
                "return [matchMedia('(prefers-color-scheme: dark)').matches, \
                 getComputedStyle(document.body).backgroundColor]",
                vec![],
            )
            .await
            .unwrap();
        (v[0].as_bool().unwrap(), v[1].as_str().unwrap().to_owned())
    };
    assert!(dark, "chromium was asked for dark mode");
    assert_eq!(background, "rgb(21, 23, 27)", "the dark palette");
    let dark = screenshot(&client, "dashboard-dark.png").await;
    client.close().await.unwrap();
    eprintln!("screenshots: {} {}", light.display(), dark.display());
    f.runner.shutdown_now().await;
}
