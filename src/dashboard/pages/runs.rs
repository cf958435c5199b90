//! The runs page (filters, newest first, keyset pages) and one run's page (input, output,
//! error, steps; cancel and retry).

use axum::extract::{Path, Query};
use axum::http::Uri;
use axum::response::Html;
use maud::{html, Markup};

use super::layout::{action, capped, layout, live, millis, opt, status};
use super::root_of;
use crate::dashboard::failure::PageFailure;
use crate::dashboard::filter::RunsQuery;
use crate::dashboard::view::{self, Run};
use axum::extract::State;

use crate::dashboard::AppState;

const STATUSES: [&str; 6] = [
    "pending",
    "delayed",
    "running",
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

fn detail(r: &Run) -> Markup {
    let finished = matches!(r.status.as_str(), "completed" | "failed" | "cancelled");
    html! {
        h1 { "Run " (r.id) " · " (r.name) " " (status(&r.status)) }
        div.actions {
            @if !finished {
                (action(&format!("{}/cancel", api(r)), "Cancel", "danger", Some(&format!("Cancel run {}?", r.id))))
            }
            @if matches!(r.status.as_str(), "failed" | "cancelled") {
                (action(&format!("{}/retry", api(r)), "Retry", "primary", None))
            }
            @if r.cancel_requested && !finished { span.muted { "cancel requested: its process stops it within a heartbeat" } }
        }
        h2 { "Record" }
        dl.kv {
            dt { "Queue" } dd { (r.queue) }
            dt { "Priority" } dd { (r.priority) }
            dt { "Attempts" } dd { (r.attempts) " of " (r.max_attempts) }
            dt { "Recoveries" } dd { (r.recoveries) span.muted { " (claims lost with their process, not counted as attempts)" } }
            dt { "Created" } dd { (r.created_at) }
            dt { "Scheduled" } dd { (r.scheduled_at) }
            dt { "Started" } dd { (opt(r.started_at.as_deref())) }
            dt { "Finished" } dd { (opt(r.finished_at.as_deref())) }
            dt { "Took" } dd { (millis(r.duration_ms)) }
            dt { "Call id" } dd { (opt(r.call_id.as_deref())) }
            dt { "Dedup key" } dd { (opt(r.dedup_key.as_deref())) }
        }
        @if let Some(error) = &r.error {
            h2 { "Error (last attempt)" }
            pre.err #error { (error) }
        }
        h2 { "Input" }
        pre #input { (pretty(&r.input)) }
        @if let Some(output) = &r.output {
            h2 { "Output" }
            pre #output { (serde_json::to_string_pretty(output).unwrap_or_default()) }
        }
        h2 { "Steps" }
        @if r.steps.is_empty() { p.muted { "No durable steps." } } @else {
            table {
                thead { tr { th { "Step" } th { "Status" } th.num { "Runs" } th { "Started" } th.num { "Took" } th { "Output or error" } } }
                tbody { @for s in &r.steps {
                    tr {
                        td { (s.name) @if s.index > 0 { " #" (s.index) } }
                        td { (status(&s.status)) } td.num { (s.attempts) }
                        td { (s.started_at) } td.num { (millis(Some(s.duration_ms))) }
                        td {
                            @if let Some(e) = &s.error { span.err { (e) } }
                            @else if let Some(o) = &s.output { code { (view::truncate(&o.to_string(), 200)) } }
                        }
                    }
                } }
            }
        }
    }
}

/// The run's API path, relative to its page (`runs/{id}`).
fn api(r: &Run) -> String {
    format!("../api/runs/{}", r.id)
}

fn pretty(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| json.to_owned())
}

pub(crate) async fn run(
    State(app): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Html<String>, PageFailure> {
    let r = view::run(&app, &id).await?;
    let root = root_of(&uri);
    let body = html! {
        p { a href={ (root) "runs" } { "« Runs" } }
        (detail(&r))
    };
    Ok(layout(
        Some(&root),
        &format!("Run {}", r.id),
        live(&r.id.to_string(), body),
    ))
}
