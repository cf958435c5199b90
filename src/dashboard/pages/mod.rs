//! The dashboard's pages, rendered on the server: overview, runs, one run, schedules, tasks;
//! the layout they share and the one script they load.

mod layout;
mod overview;
mod run;
mod runs;
mod schedules;
mod tasks;

use axum::http::{header, Uri};
use axum::response::{IntoResponse, Response};

pub(crate) use layout::layout;
pub(crate) use overview::overview;
pub(crate) use run::run;
pub(crate) use runs::runs;
pub(crate) use schedules::schedules;
pub(crate) use tasks::{task, tasks};

use super::failure::Failure;

/// htmx 2, minified (BSD Zero Clause License), served from the binary.
const HTMX: &[u8] = include_bytes!("../assets/htmx.min.js");

pub(crate) async fn htmx() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        HTMX,
    )
        .into_response()
}

pub(crate) async fn not_found(uri: Uri) -> Response {
    let api = uri.path().starts_with("/api/");
    Failure::NotFound(format!("nothing at `{}` in this dashboard", uri.path())).respond(api)
}

/// The relative path from a page at `uri` (as the dashboard's router sees it) to the
/// dashboard's root: `./` for `/` and `/runs`, `../` for `/runs/7`.
pub(crate) fn root_of(uri: &Uri) -> String {
    let depth = uri.path().trim_matches('/').split('/').count();
    if depth <= 1 {
        "./".to_owned()
    } else {
        "../".repeat(depth - 1)
    }
}
