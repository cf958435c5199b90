//! The overview: every queue, local and durable, with its counts, times and limit; pause,
//! resume and concurrency.

use axum::extract::OriginalUri;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::layout::{action, capped, layout, live, millis};
use crate::dashboard::failure::PageFailure;
use crate::dashboard::filter::encode;
use axum::extract::State;

use crate::dashboard::{view, AppState};

pub(crate) async fn overview(
    State(app): State<AppState>,
    OriginalUri(original): OriginalUri,
) -> Result<Response, PageFailure> {
    // Mounted at `/tasks`, this page is `/tasks` (links go through `tasks/`) or `/tasks/`.
    let path = original.path();
    let root = match path.rsplit('/').next() {
        Some(last) if !last.is_empty() => format!("{last}/"),
        _ => "./".to_owned(),
    };
    let queues = view::queues(&app).await?;
    let body = html! {
        h1 { "Queues" }
        @if queues.is_empty() { p.muted { "No queues yet." } }
        table {
            thead { tr {
                th { "Queue" } th { "Where" } th.num { "Pending" } th.num { "Delayed" }
                th.num { "Running" } th.num { "Retrying" } th.num { "Failed 1 h" }
                th.num { "Done 1 h" } th.num { "Wait p50 / p99" } th.num { "Run p50 / p99" }
                th.num { "Limit" } th { "Actions" }
            } }
            tbody {
                @for q in &queues {
                    @let name = encode(&q.name);
                    @if let Some(l) = &q.local {
                        tr {
                            td { b { (q.name) } @if l.paused { " " span class="st st-paused" { "paused" } } }
                            td.muted { "this process" }
                            td.num { (l.pending) } td.num { (l.delayed) } td.num { (l.running) }
                            td.num { (l.retrying) } td.num.muted { "–" } td.num.muted { "–" }
                            td.num { (millis(l.wait_p50_ms)) " / " (millis(l.wait_p99_ms)) }
                            td.num { (millis(l.run_p50_ms)) " / " (millis(l.run_p99_ms)) }
                            td.num { (l.limit) }
                            td { div.actions {
                                @if l.paused {
                                    (action(&format!("{root}api/queues/{name}/resume"), "Resume", "", None))
                                } @else {
                                    (action(&format!("{root}api/queues/{name}/pause"), "Pause", "", None))
                                }
                                form.actions hx-post={ (root) "api/queues/" (name) "/concurrency" } hx-swap="none" {
                                    input type="number" name="limit" min="1" value=(l.limit) style="width:5em" aria-label="concurrency";
                                    button { "Set" }
                                }
                            } }
                        }
                    }
                    @if let Some(d) = &q.durable {
                        tr {
                            td { b { (q.name) } }
                            td.muted { "store" }
                            td.num { (capped(d.pending, d.count_cap)) }
                            td.num { (capped(d.delayed, d.count_cap)) }
                            td.num { (capped(d.running, d.count_cap)) }
                            td.num.muted { "–" }
                            td.num { a href={ (root) "runs?status=failed&queue=" (name) } { (capped(d.failed_last_hour, d.count_cap)) } }
                            td.num { (capped(d.completed_last_hour, d.count_cap)) }
                            td.num { (millis(d.wait_p50_ms)) " / " (millis(d.wait_p99_ms)) }
                            td.num { (millis(d.run_p50_ms)) " / " (millis(d.run_p99_ms)) }
                            td.num.muted { "–" }
                            td { a href={ (root) "runs?queue=" (name) } { "Runs" } }
                        }
                    }
                }
            }
        }
        p.muted { "Durable counts read indexes and stop at " (crate::store::COUNT_CAP) "; times are of the latest completed runs." }
    };
    Ok(layout(Some(&root), "Queues", live(&root, body)).into_response())
}
