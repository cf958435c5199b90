//! [`Dashboard`]: who may see and act, and [`Access`], what the hook answers; the guard that
//! applies it to every request.

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::failure::Failure;
use super::App;

/// What a request may do, as [`Dashboard::access`]'s hook answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// See everything and act (cancel, retry, pause, resume, trigger, concurrency).
    All,
    /// See everything; an action gets `405 Method Not Allowed`.
    ReadOnly,
    /// Nothing: every request gets `403 Forbidden`.
    Forbidden,
}

type AccessFn = dyn Fn(&Parts) -> Access + Send + Sync;
type WhoFn = dyn Fn(&Parts) -> String + Send + Sync;

/// The dashboard's settings, for [`router`](super::router).
///
/// # Default
///
/// Every request has [`Access::All`] (put the router behind your own authentication, or
/// give it an [`access`](Self::access) hook), and an action's `who` is the request's
/// `x-forwarded-user` header if any, else `anonymous`.
///
/// ```
/// use taskrunner::dashboard::{Access, Dashboard};
///
/// let dashboard = Dashboard::new()
///     .access(|parts| if parts.headers.contains_key("x-admin") { Access::All } else { Access::ReadOnly })
///     .who(|parts| parts.headers.get("x-user").and_then(|v| v.to_str().ok()).unwrap_or("?").to_owned());
/// # drop(dashboard);
/// ```
#[derive(Clone)]
pub struct Dashboard {
    access: Arc<AccessFn>,
    who: Arc<WhoFn>,
}

impl fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dashboard").finish_non_exhaustive()
    }
}

impl Default for Dashboard {
    fn default() -> Self {
        Dashboard {
            access: Arc::new(|_| Access::All),
            who: Arc::new(|parts| {
                parts
                    .headers
                    .get("x-forwarded-user")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("anonymous")
                    .to_owned()
            }),
        }
    }
}

// ===== impl Dashboard =====

impl Dashboard {
    /// The defaults: everyone may do everything.
    pub fn new() -> Self {
        Dashboard::default()
    }

    /// Decides, for each request (its method, path, headers and extensions, such as your
    /// authentication's), what it may do.
    pub fn access(mut self, access: impl Fn(&Parts) -> Access + Send + Sync + 'static) -> Self {
        self.access = Arc::new(access);
        self
    }

    /// Names the user behind a request, for the `tracing` event of each action.
    pub fn who(mut self, who: impl Fn(&Parts) -> String + Send + Sync + 'static) -> Self {
        self.who = Arc::new(who);
        self
    }

    pub(crate) fn who_of(&self, parts: &Parts) -> String {
        (self.who)(parts)
    }
}

/// Who made an action, put in the request's extensions by [`guard`].
#[derive(Debug, Clone)]
pub(crate) struct Who(pub(crate) String);

/// Applies the access hook: `403` when forbidden, `405` for a read-only action, `403` for an
/// action without the header a cross-site form cannot send.
pub(crate) async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let access = (app.dashboard.access)(&parts);
    let api = parts.uri.path().starts_with("/api/");
    let write = !matches!(parts.method, Method::GET | Method::HEAD);
    let refuse = |status: StatusCode, message: &str| {
        Failure::Refused(status, message.to_owned()).respond(api)
    };
    match access {
        Access::Forbidden => {
            return refuse(StatusCode::FORBIDDEN, "you may not see this dashboard")
        }
        Access::ReadOnly if write => {
            return refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "this dashboard is read-only for you: actions are not allowed",
            )
        }
        _ => {}
    }
    if write
        && !parts.headers.contains_key("hx-request")
        && !parts.headers.contains_key("x-requested-with")
    {
        return refuse(
            StatusCode::FORBIDDEN,
            "an action needs an `HX-Request` or `X-Requested-With` header",
        );
    }
    let who = Who(app.dashboard.who_of(&parts));
    parts.extensions.insert(who);
    next.run(Request::from_parts(parts, body))
        .await
        .into_response()
}
