//! The schedules page: in-process and durable schedules; pause, resume and trigger.

use axum::response::Html;
use maud::html;

use super::layout::{action, layout, live, opt, status};
use crate::dashboard::failure::PageFailure;
use crate::dashboard::filter::encode;
use axum::extract::State;

use crate::dashboard::{view, AppState};

pub(crate) async fn schedules(State(app): State<AppState>) -> Result<Html<String>, PageFailure> {
    let schedules = view::schedules(&app).await?;
    let body = html! {
        h1 { "Schedules" }
        @if schedules.is_empty() { p.muted { "No schedules." } }
        table {
            thead { tr {
                th { "Name" } th { "Kind" } th { "Status" } th.num { "Runs" } th.num { "Failures" }
                th.num { "Skipped" } th { "Last run (UTC)" } th { "Next run (UTC)" } th { "Last error" } th { "Actions" }
            } }
            tbody { @for s in &schedules {
                @let url = format!("api/schedules/{}/{}", s.kind, encode(&s.name));
                tr {
                    td { b { (s.name) } } td.muted { (s.kind) } td { (status(&s.status)) }
                    td.num { (s.runs) } td.num { (s.failures) } td.num { (s.skipped) }
                    td { (opt(s.last_run_at.as_deref())) } td { (opt(s.next_run_at.as_deref())) }
                    td.err { (opt(s.last_error.as_deref())) }
                    td { div.actions {
                        @if s.status == "active" { (action(&format!("{url}/pause"), "Pause", "", None)) }
                        @if s.status == "paused" { (action(&format!("{url}/resume"), "Resume", "", None)) }
                        (action(&format!("{url}/trigger"), "Run now", "", None))
                    } }
                }
            } }
        }
    };
    Ok(layout(Some("./"), "Schedules", live("schedules", body)))
}
