//! The runs page: filters, newest first, keyset pages.

use axum::extract::Query;
use axum::response::Html;
use maud::{html, Markup};

use super::layout::{capped, layout, live, millis, opt, status};
use crate::dashboard::failure::PageFailure;
use crate::dashboard::filter::RunsQuery;
use crate::dashboard::view;
use axum::extract::State;

use crate::dashboard::AppState;

const STATUSES: [&str; 7] = [
    "pending",
    "delayed",
    "running",
    "waiting",
    "completed",
    "failed",
    "cancelled",
];

fn filters(query: &RunsQuery) -> Markup {
    html! {
        form.filters method="get" action="runs" {
            label { "Status"
                select name="status" {
                    option value="" { "any" }
                    @for s in STATUSES {
                        option value=(s) selected[query.status == s] { (s) }
                    }
                }
            }
            label { "Queue" input name="queue" value=(query.queue) size="10"; }
            label { "Name" input name="name" value=(query.name) size="12"; }
            label { "Input contains" input name="q" value=(query.q) size="16" placeholder="text in the input JSON"; }
            label { "From (UTC)" input name="from" value=(query.from) size="16" placeholder="2026-12-03T14:00"; }
            label { "To (UTC)" input name="to" value=(query.to) size="16"; }
            button.primary type="submit" { "Filter" }
            a href="runs" { "Clear" }
        }
    }
}

pub(crate) async fn runs(
    State(app): State<AppState>,
    Query(query): Query<RunsQuery>,
) -> Result<Html<String>, PageFailure> {
    let parsed = query.parse()?;
    let page = view::runs(&app, &parsed).await?;
    let own = format!("runs?{}", query.with_before(parsed.before));
    let body = html! {
        h1 { "Runs" }
        (filters(&query))
        p.muted {
            @if let Some(n) = page.count { (capped(n, page.count_cap)) " matching · " }
            "newest first"
        }
        table #runs {
            thead { tr {
                th.num { "Id" } th { "Name" } th { "Queue" } th { "Status" } th.num { "Attempts" }
                th { "Created (UTC)" } th.num { "Took" } th { "Input" } th { "Error" }
            } }
            tbody {
                @for r in &page.runs {
                    tr {
                        td.num { a href={ "runs/" (r.id) } { (r.id) } }
                        td { (r.name) } td { (r.queue) } td { (status(&r.status)) }
                        td.num { (r.attempts) "/" (r.max_attempts) }
                        td { (r.created_at) } td.num { (millis(r.duration_ms)) }
                        td { code { (r.input) } }
                        td.err { (opt(r.error.as_deref())) }
                    }
                }
            }
        }
        @if page.runs.is_empty() { p.muted { "No runs match." } }
        div.pager {
            @if parsed.before.is_some() { a href={ "runs?" (query.with_before(None)) } { "« Newest" } }
            @if let Some(next) = page.next {
                @if let Some(down) = page.searched_down_to {
                    span.muted { "Searched the inputs of runs down to id " (down) "." }
                    a href={ "runs?" (query.with_before(Some(next))) } { "Search older runs »" }
                } @else {
                    a href={ "runs?" (query.with_before(Some(next))) } { "Older »" }
                }
            }
        }
    };
    Ok(layout(Some("./"), "Runs", live(&own, body)))
}
