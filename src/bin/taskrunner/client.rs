//! The store, opened from `--db`, and the dashboard's JSON API called in process.

use axum::body::Body;
use axum::http::{Method, Request};
use taskrunner::dashboard::{router, Dashboard};
use taskrunner::store::{PgStore, Retention, SqliteStore, Store};
use taskrunner::TaskRunner;
use tower::ServiceExt as _;

/// `url` with its password (if any) replaced by `***`, for anything printed.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let Some(at) = rest.rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

/// Opens (and migrates) the store `--db` names.
pub(crate) async fn open(db: Option<&str>) -> Result<Store, String> {
    let db =
        db.ok_or("no store: give --db <sqlite path | postgres:// URL> or set TASKRUNNER_DB")?;
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        // PgStore's errors already hide the password.
        Ok(PgStore::connect(db)
            .await
            .map_err(|e| e.to_string())?
            .into())
    } else {
        let path = db.strip_prefix("sqlite:").unwrap_or(db);
        Ok(SqliteStore::open(path)
            .await
            .map_err(|e| e.to_string())?
            .into())
    }
}

/// A runner on `store` that runs nothing and never prunes on its own.
pub(crate) fn runner(store: Store) -> Result<TaskRunner, String> {
    let forever = std::time::Duration::from_secs(100 * 365 * 24 * 3600);
    TaskRunner::builder()
        .store(store)
        .retention(
            Retention::new()
                .max_age(forever)
                .max_finished(u64::MAX)
                .every(forever),
        )
        .build()
        .map_err(|e| e.to_string())
}

/// The dashboard's JSON API, called in process.
pub(crate) struct Api {
    app: axum::Router,
}

impl Api {
    pub(crate) fn new(runner: TaskRunner) -> Api {
        let who = std::env::var("USER").unwrap_or_else(|_| "cli".into());
        let dashboard = Dashboard::new().who(move |_| format!("{who} (cli)"));
        Api {
            app: router(runner, dashboard),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
    ) -> Result<serde_json::Value, String> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("x-requested-with", "taskrunner-cli");
        let body = match form {
            Some(pairs) => {
                request = request.header("content-type", "application/x-www-form-urlencoded");
                let encoded: Vec<String> = pairs
                    .iter()
                    .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                    .collect();
                Body::from(encoded.join("&"))
            }
            None => Body::empty(),
        };
        let request = request.body(body).map_err(|e| e.to_string())?;
        let response = self
            .app
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .map_err(|e| e.to_string())?;
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| format!("the dashboard API answered {status} with no JSON: {e}"))?;
        if status.is_success() {
            Ok(value)
        } else {
            Err(value["error"]
                .as_str()
                .map_or_else(|| format!("{status}"), str::to_owned))
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Result<serde_json::Value, String> {
        self.call(Method::GET, path, None).await
    }

    pub(crate) async fn post(&self, path: &str) -> Result<serde_json::Value, String> {
        self.call(Method::POST, path, None).await
    }

    /// `POST`s a form (`application/x-www-form-urlencoded`).
    pub(crate) async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<serde_json::Value, String> {
        self.call(Method::POST, path, Some(form)).await
    }
}

/// Percent-encodes a path segment or query value.
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
