//! `GET api/runs/{id}/events`: a run's event stream as server-sent events, from
//! [`TaskRunner::run_events`](crate::TaskRunner::run_events): the stored log, then what
//! comes, ending after the run's terminal event.
//!
//! Each event's `data` is one JSON object (`offset`, `at`, `kind`: `emitted` | `status` |
//! `retrying`, with `topic`, `value`, `live`, `status`, `attempt`, `terminal`, `text`); a
//! stored event's `id` is its offset, so a browser's `EventSource` that reconnects sends
//! `Last-Event-ID` and the stream resumes right after it, with no gap and no duplicate. A
//! live event (`emit_live`) has no offset of its own and no `id`. `?from=N` starts at offset
//! `N` (a `Last-Event-ID` wins). A read that fails is an `event: error` and the stream goes
//! on.

use std::convert::Infallible;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt as _};
use serde::Deserialize;

use super::failure::{ApiFailure, Failure};
use super::view::EventView;
use super::AppState;
use crate::store::{RunId, StoreError};
use crate::RunEvent;

#[derive(Debug, Deserialize)]
pub(crate) struct From {
    #[serde(default)]
    from: String,
}

/// The offset to start from: after `Last-Event-ID`, else `?from=`, else 0.
fn start(headers: &HeaderMap, query: &From) -> Result<u64, Failure> {
    if let Some(last) = headers.get("last-event-id") {
        let last = last
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok());
        return last.map(|n| n + 1).ok_or_else(|| {
            Failure::BadRequest("`Last-Event-ID` must be an event's offset (0, 1, 2, ...)".into())
        });
    }
    match query.from.trim() {
        "" => Ok(0),
        text => text.parse::<u64>().map_err(|_| {
            Failure::BadRequest(format!(
                "`from` must be an offset in the run's log (0, 1, 2, ...), not `{text}`"
            ))
        }),
    }
}

/// One run event as a server-sent event: JSON data, the offset as id (stored events).
pub(crate) fn sse_event(event: &RunEvent) -> Event {
    let view = EventView::of(event);
    let data = serde_json::to_string(&view).unwrap_or_default();
    let sse = Event::default().data(data);
    if view.live {
        sse
    } else {
        sse.id(event.offset.to_string())
    }
}

pub(crate) async fn events(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<From>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiFailure> {
    let id: RunId = id
        .parse()
        .map_err(|e: crate::store::ParseRunIdError| Failure::NotFound(e.to_string()))?;
    let from = start(&headers, &query)?;
    let store = app.runner.store().ok_or(StoreError::NoStore)?;
    if store.run_status(id).await?.is_none() {
        return Err(ApiFailure(Failure::NotFound(format!(
            "no run {id}: it never existed, or it was pruned"
        ))));
    }
    let stream = app.runner.run_events(id).from(from).map(|event| {
        Ok(match event {
            Ok(event) => sse_event(&event),
            Err(e) => Event::default().event("error").data(e.to_string()),
        })
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
