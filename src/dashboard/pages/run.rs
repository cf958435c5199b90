//! One run's page: its record (polled), then a form to send it a signal and its event
//! stream, live over server-sent events (outside the polled part, so neither a typed value
//! nor the appended events are lost to a poll).

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Html;
use maud::{html, Markup, PreEscaped};

use super::layout::{action, layout, live, millis, opt, status};
use super::root_of;
use crate::dashboard::failure::PageFailure;
use crate::dashboard::view::{self, EventView, Run, CHILDREN_SHOWN};
use crate::dashboard::AppState;

/// Appends the run's events as they come (`EventSource`: it resumes by `Last-Event-ID` after
/// a disconnect), keeps the last 2,000 rows, and stops after the terminal event. Text only
/// (`textContent`): an event's value is never read as HTML.
const EVENTS_SCRIPT: &str = r#"
(function () {
  var box = document.getElementById('events');
  if (!box || !window.EventSource || box.dataset.ended === 'true') return;
  var body = box.querySelector('tbody'), state = document.getElementById('events-state');
  var source = new EventSource(box.dataset.url + '?from=' + box.dataset.from);
  source.onmessage = function (m) {
    var e; try { e = JSON.parse(m.data); } catch (_) { return; }
    var row = document.createElement('tr');
    [e.live ? 'live' : String(e.offset), e.at, e.kind + (e.topic ? ' · ' + e.topic : ''), e.text]
      .forEach(function (text, i) {
        var cell = document.createElement('td');
        if (i === 3) { var code = document.createElement('code'); code.textContent = text; cell.appendChild(code); }
        else { cell.textContent = text; }
        row.appendChild(cell);
      });
    body.appendChild(row);
    while (body.rows.length > 2000) body.deleteRow(0);
    if (state) state.textContent = e.terminal ? 'the run has ended: no more events' : 'live';
    if (e.terminal) { source.close(); box.dataset.ended = 'true'; }
  };
  source.addEventListener('error', function (m) {
    if (state && m.data) state.textContent = 'a read failed (retrying): ' + m.data;
  });
})();
"#;

fn finished(r: &Run) -> bool {
    matches!(r.status.as_str(), "completed" | "failed" | "cancelled")
}

fn record(r: &Run, root: &str) -> Markup {
    html! {
        h1 { "Run " (r.id) " · " (r.name) " " (status(&r.status)) }
        div.actions {
            @if !finished(r) {
                (action(&format!("{}/cancel", api(r)), "Cancel", "danger", Some(&format!("Cancel run {}?", r.id))))
            }
            @if matches!(r.status.as_str(), "failed" | "cancelled") {
                (action(&format!("{}/retry", api(r)), "Retry", "primary", None))
            }
            @if r.cancel_requested && !finished(r) { span.muted { "cancel requested: its process stops it within a heartbeat" } }
        }
        h2 { "Record" }
        dl.kv {
            dt { "Queue" } dd { (r.queue) }
            dt { "Priority" } dd { (r.priority) }
            dt { "Attempts" } dd { (r.attempts) " of " (r.max_attempts) }
            dt { "Recoveries" } dd #recoveries { (r.recoveries) span.muted { " (claims lost with their process, not counted as attempts)" } }
            dt { "Waiting for" } dd #waiting-for { (opt(r.waiting_for.as_ref().map(|w| w.describe()))) }
            dt { "Parent" } dd {
                @if let Some(p) = r.parent { a href={ (root) "runs/" (p) } { "run " (p) } } @else { (opt(None::<&str>)) }
            }
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
        (steps(r))
        (attempts(r))
        (children(r, root))
    }
}

fn steps(r: &Run) -> Markup {
    html! {
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

/// Attempts as the event log recorded them: claims, new attempts, waits, ends.
fn attempts(r: &Run) -> Markup {
    let history = r.detail.as_ref().map_or(&[][..], |d| &d.history[..]);
    html! {
        h2 { "Attempts and status changes" }
        p.muted { "From the run's event log. Each failed attempt shows here as the next one starting, with its error; the last attempt's error is above." }
        @if history.is_empty() { p.muted { "None recorded." } } @else {
            table #history {
                thead { tr { th.num { "Offset" } th { "At (UTC)" } th { "What" } } }
                tbody { @for e in history {
                    tr { td.num { (e.offset) } td { (e.at) } td {
                        @if let Some(s) = &e.status { "status " (status(s)) } @else { (e.text) }
                    } }
                } }
            }
        }
    }
}

fn children(r: &Run, root: &str) -> Markup {
    let Some(d) = &r.detail else { return html! {} };
    html! {
        h2 { "Children" }
        @if d.children.is_empty() { p.muted { "No child runs." } } @else {
            table #children {
                thead { tr { th.num { "Id" } th { "Name" } th { "Status" } th { "Created (UTC)" } th { "Finished" } } }
                tbody { @for c in &d.children {
                    tr {
                        td.num { a href={ (root) "runs/" (c.id) } { (c.id) } }
                        td { (c.name) } td { (status(&c.status)) } td { (c.created_at) }
                        td { (opt(c.finished_at.as_deref())) }
                    }
                } }
            }
            @if d.more_children {
                p { a href={ (root) "runs?parent=" (r.id) } { "More than " (CHILDREN_SHOWN) ": all children »" } }
            }
        }
    }
}

fn signal_form(r: &Run) -> Markup {
    let waits_for = match &r.waiting_for {
        Some(view::Waiting::Signal { name, .. }) => name.as_str(),
        _ => "",
    };
    html! {
        section #signal {
            h2 { "Send a signal" }
            form.filters hx-post={ (api(r)) "/signal" } hx-swap="none" {
                label { "Name" input name="name" value=(waits_for) size="16" required; }
                label { "Value (JSON)" input name="value" value="true" size="40" placeholder=r#"{"ok": true}"#; }
                button.primary type="submit" { "Send" }
            }
        }
    }
}

fn event_row(e: &EventView) -> Markup {
    html! {
        tr {
            td { @if e.live { "live" } @else { (e.offset) } }
            td { (e.at) }
            td { (e.kind) @if let Some(t) = &e.topic { " · " (t) } }
            td { code { (e.text) } }
        }
    }
}

fn events(r: &Run) -> Markup {
    let Some(d) = &r.detail else { return html! {} };
    let ended = finished(r) && d.events.last().is_some_and(|e| e.terminal);
    html! {
        h2 { "Events" }
        p.muted #events-state {
            @if ended { "the run has ended: no more events" } @else { "live" }
        }
        table #events data-url={ (api(r)) "/events" } data-from=(d.events_next) data-ended=(ended) {
            thead { tr { th { "Offset" } th { "At (UTC)" } th { "Kind" } th { "Value" } } }
            tbody { @for e in &d.events { (event_row(e)) } }
        }
        script { (PreEscaped(EVENTS_SCRIPT)) }
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
        (record(&r, &root))
    };
    let page = html! {
        (live(&r.id.to_string(), body))
        @if !finished(&r) { (signal_form(&r)) }
        (events(&r))
    };
    Ok(layout(Some(&root), &format!("Run {}", r.id), page))
}
