//! [`Failure`]: why a request got no page or answer, as a page (HTML) or `{"error": ...}`
//! (JSON): an unknown run, a malformed filter, a store that cannot be read.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use maud::html;

use super::pages::layout;
use crate::store::StoreError;

/// Why a request failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// No such run, task or schedule.
    NotFound(String),
    /// A malformed filter or action.
    BadRequest(String),
    /// The runner has no store, or the store could not be read or written.
    Store(StoreError),
    /// Refused by the access hook or the action guard.
    Refused(StatusCode, String),
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NoStore => Failure::NotFound(
                "this runner has no durable store: give it one with `TaskRunner::builder().store(..)`"
                    .into(),
            ),
            other => Failure::Store(other),
        }
    }
}

impl Failure {
    fn status(&self) -> StatusCode {
        match self {
            Failure::NotFound(_) => StatusCode::NOT_FOUND,
            Failure::BadRequest(_) => StatusCode::BAD_REQUEST,
            Failure::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Refused(status, _) => *status,
        }
    }

    fn message(&self) -> String {
        match self {
            Failure::NotFound(m) | Failure::BadRequest(m) | Failure::Refused(_, m) => m.clone(),
            Failure::Store(e) => format!(
                "the durable store could not be read or written: {e}. \
                 Check that the database is up and reachable; this page works again once it is."
            ),
        }
    }

    /// The failure as JSON (`api`) or as a page.
    pub(crate) fn respond(self, api: bool) -> Response {
        let status = self.status();
        let message = self.message();
        if api {
            return (status, Json(serde_json::json!({ "error": message }))).into_response();
        }
        let title = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::BAD_REQUEST => "Bad request",
            StatusCode::SERVICE_UNAVAILABLE => "Store unavailable",
            _ => "Not allowed",
        };
        let page = layout(
            None,
            title,
            html! {
                div.error-box role="alert" {
                    h2 { (title) }
                    p.message { (message) }
                    p { a href="javascript:history.back()" { "Back" } }
                }
            },
        );
        (status, page).into_response()
    }
}

/// A page handler's failure: answered as a page.
pub(crate) struct PageFailure(pub(crate) Failure);

impl IntoResponse for PageFailure {
    fn into_response(self) -> Response {
        self.0.respond(false)
    }
}

impl<E: Into<Failure>> From<E> for PageFailure {
    fn from(e: E) -> Self {
        PageFailure(e.into())
    }
}

/// An API handler's failure: answered as JSON.
pub(crate) struct ApiFailure(pub(crate) Failure);

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        self.0.respond(true)
    }
}

impl<E: Into<Failure>> From<E> for ApiFailure {
    fn from(e: E) -> Self {
        ApiFailure(e.into())
    }
}
