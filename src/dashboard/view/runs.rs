//! Pages of durable runs and one run, as the pages and the API show them.

use serde::Serialize;

use super::detail::{detail, Detail, Waiting};
use super::{lower, ms, time, truncate, INPUT_PREVIEW};
use crate::dashboard::failure::Failure;
use crate::dashboard::filter::{Parsed, SEARCH_WINDOW};
use crate::dashboard::App;
use crate::store::{RunFilter, RunId, RunInfo, StoreError, COUNT_CAP};

/// A durable run, its input cut in a list.
#[derive(Debug, Serialize)]
pub(crate) struct Run {
    pub(crate) id: RunId,
    pub(crate) name: String,
    pub(crate) queue: String,
    pub(crate) priority: i32,
    pub(crate) status: String,
    pub(crate) attempts: u32,
    pub(crate) max_attempts: u32,
    pub(crate) recoveries: u32,
    pub(crate) created_at: String,
    pub(crate) scheduled_at: String,
    pub(crate) started_at: Option<String>,
    pub(crate) finished_at: Option<String>,
    pub(crate) duration_ms: Option<u64>,
    pub(crate) input: String,
    pub(crate) output: Option<serde_json::Value>,
    pub(crate) error: Option<String>,
    pub(crate) cancel_requested: bool,
    pub(crate) call_id: Option<String>,
    pub(crate) dedup_key: Option<String>,
    pub(crate) steps: Vec<Step>,
    /// What it waits for, while waiting.
    pub(crate) waiting_for: Option<Waiting>,
    /// The run that spawned it.
    pub(crate) parent: Option<RunId>,
    /// One run's page only: children, history, events.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<Detail>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Step {
    pub(crate) name: String,
    pub(crate) index: u32,
    pub(crate) status: String,
    pub(crate) attempts: u32,
    pub(crate) started_at: String,
    pub(crate) finished_at: String,
    pub(crate) duration_ms: u64,
    pub(crate) output: Option<serde_json::Value>,
    pub(crate) error: Option<String>,
}

impl Run {
    pub(crate) fn of(info: RunInfo, full: bool) -> Run {
        let duration_ms = match (info.started_at, info.finished_at) {
            (Some(s), Some(f)) => f.duration_since(s).ok().map(ms),
            _ => None,
        };
        Run {
            id: info.id,
            status: lower(info.status),
            input: if full {
                info.input
            } else {
                truncate(&info.input, INPUT_PREVIEW)
            },
            error: match (full, info.error) {
                (false, Some(e)) => Some(truncate(&e, INPUT_PREVIEW)),
                (_, e) => e,
            },
            output: if full { info.output } else { None },
            created_at: time(info.created_at),
            scheduled_at: time(info.scheduled_at),
            started_at: info.started_at.map(time),
            finished_at: info.finished_at.map(time),
            duration_ms,
            steps: info
                .steps
                .into_iter()
                .map(|s| Step {
                    duration_ms: s.finished_at.duration_since(s.started_at).map_or(0, ms),
                    name: s.name,
                    index: s.index,
                    status: lower(s.status),
                    attempts: s.attempts,
                    started_at: time(s.started_at),
                    finished_at: time(s.finished_at),
                    output: s.output,
                    error: s.error,
                })
                .collect(),
            name: info.name,
            queue: info.queue,
            priority: info.priority,
            attempts: info.attempts,
            max_attempts: info.max_attempts,
            recoveries: info.recoveries,
            cancel_requested: info.cancel_requested,
            waiting_for: info.waiting_for.map(Waiting::of),
            parent: info.parent,
            detail: None,
            call_id: info.call_id,
            dedup_key: info.dedup_key,
        }
    }
}

/// A page of runs: newest first, the cursor of the next page, a capped count.
#[derive(Debug, Serialize)]
pub(crate) struct RunsPage {
    pub(crate) runs: Vec<Run>,
    /// Pass as `before` for the next page; `None` on the last.
    pub(crate) next: Option<RunId>,
    /// How many runs match (a filter without an input search), up to `count_cap`.
    pub(crate) count: Option<u64>,
    pub(crate) count_cap: u64,
    /// An input search read runs down to this id without filling the page: `next` goes on
    /// below it.
    pub(crate) searched_down_to: Option<RunId>,
}

pub(crate) async fn runs(app: &App, parsed: &Parsed) -> Result<RunsPage, Failure> {
    let store = app.runner.store().ok_or(StoreError::NoStore)?;
    let mut filter: RunFilter = parsed.filter.clone();
    let mut floor = None;
    if parsed.search {
        // An input search reads inputs: one window of ids a page, so a page costs the same
        // on a store of any size.
        let top = match parsed.before {
            Some(b) => b.as_i64(),
            None => match store.list_runs(&RunFilter::new().limit(1)).await?.first() {
                Some(newest) => newest.id.as_i64() + 1,
                None => 1,
            },
        };
        let bottom = (top - SEARCH_WINDOW).max(0);
        filter = filter.after(RunId::from_i64(bottom));
        floor = Some(bottom);
    }
    let infos = store.list_runs(&filter).await?;
    let full = infos.len() >= parsed.limit as usize;
    let next = match (full, floor) {
        (true, _) => infos.last().map(|r| r.id),
        (false, Some(bottom)) if bottom > 0 => Some(RunId::from_i64(bottom + 1)),
        _ => None,
    };
    let searched_down_to = match (full, floor) {
        (false, Some(bottom)) if bottom > 0 => Some(RunId::from_i64(bottom + 1)),
        _ => None,
    };
    let count = if parsed.search {
        None
    } else {
        let mut all = parsed.filter.clone();
        all.before = None;
        Some(store.count_runs(&all, COUNT_CAP).await?)
    };
    Ok(RunsPage {
        runs: infos.into_iter().map(|i| Run::of(i, false)).collect(),
        next,
        count,
        count_cap: COUNT_CAP,
        searched_down_to,
    })
}

pub(crate) async fn run(app: &App, id: &str) -> Result<Run, Failure> {
    let id: RunId = id
        .parse()
        .map_err(|e: crate::store::ParseRunIdError| Failure::NotFound(e.to_string()))?;
    match app.runner.run_info(id).await? {
        Some(info) => {
            let mut run = Run::of(info, true);
            run.detail = Some(detail(app, id).await?);
            Ok(run)
        }
        None => Err(Failure::NotFound(format!(
            "no run {id}: it never existed, or it was pruned"
        ))),
    }
}
