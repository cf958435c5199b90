//! `POST api/runs/{id}/signal`: sends a signal to a durable run ([`TaskRunner::signal`]), as
//! an approval button or a script does. The body is a form (`name`, and `value` as JSON
//! text: what the page's form sends) or JSON (`{"name": "approve", "value": {"ok": true}}`).
//! Answers like every action; a malformed value is a `400`, an unknown run a `404`, a run
//! that has ended a `409`.
//!
//! [`TaskRunner::signal`]: crate::TaskRunner::signal

use axum::body::Bytes;
use axum::extract::{FromRequest as _, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use axum::Form;
use serde::Deserialize;

use super::access::Who;
use super::actions::done;
use super::failure::{ApiFailure, Failure};
use super::AppState;
use crate::store::RunId;
use crate::SignalError;

/// A signal in a JSON body.
#[derive(Debug, Deserialize)]
struct JsonSignal {
    name: String,
    #[serde(default)]
    value: serde_json::Value,
}

/// A signal in a form: the value is JSON text.
#[derive(Debug, Deserialize)]
struct FormSignal {
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: String,
}

impl From<SignalError> for Failure {
    fn from(e: SignalError) -> Self {
        let message = e.to_string();
        match e {
            SignalError::UnknownRun { .. } | SignalError::NoStore { .. } => {
                Failure::NotFound(message)
            }
            SignalError::RunFinished { .. } => Failure::Refused(StatusCode::CONFLICT, message),
            SignalError::Serialize { .. } => Failure::BadRequest(message),
            _ => Failure::Refused(StatusCode::SERVICE_UNAVAILABLE, message),
        }
    }
}

fn bad(message: String) -> ApiFailure {
    ApiFailure(Failure::BadRequest(message))
}

/// The signal's name and value from a JSON or form body.
async fn parse(request: Request) -> Result<(String, serde_json::Value), ApiFailure> {
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let (name, value) = if json {
        let body = Bytes::from_request(request, &())
            .await
            .map_err(|e| bad(format!("the body could not be read: {e}")))?;
        let s: JsonSignal = serde_json::from_slice(&body).map_err(|e| {
            bad(format!(
                "the body is not a signal: {e}; send {{\"name\": \"approve\", \"value\": <JSON>}}"
            ))
        })?;
        (s.name, s.value)
    } else {
        let Form(form) = Form::<FormSignal>::from_request(request, &())
            .await
            .map_err(|e| bad(format!("the form is not a signal: {e}")))?;
        let text = form.value.trim();
        let value = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(text).map_err(|e| {
                bad(format!(
                    "the signal's value is not JSON: {e}; write JSON, e.g. {{\"ok\": true}}, \"text\" or 42"
                ))
            })?
        };
        (form.name, value)
    };
    let name = name.trim().to_owned();
    if name.is_empty() {
        return Err(bad(
            "a signal needs a name: the name the run waits for (`wait_for_signal(name, ..)`)"
                .into(),
        ));
    }
    Ok((name, value))
}

pub(crate) async fn signal(
    State(app): State<AppState>,
    Extension(who): Extension<Who>,
    headers: HeaderMap,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ApiFailure> {
    let id: RunId = id
        .parse()
        .map_err(|e: crate::store::ParseRunIdError| Failure::NotFound(e.to_string()))?;
    let (name, value) = parse(request).await?;
    app.runner.signal(id, &name, &value).await?;
    let action = format!("signal_run({name})");
    Ok(done(&who, &headers, &action, &id.to_string(), true))
}
