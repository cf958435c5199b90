//! What the pages show and the API answers, gathered once for both: queues, pages of runs,
//! one run, schedules and in-process tasks, as serializable records. Queues here; runs in
//! `runs`, schedules and tasks in `local`.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::failure::Failure;
use super::App;
use crate::store::COUNT_CAP;

mod detail;
mod local;
mod runs;

pub(crate) use detail::{EventView, Waiting, CHILDREN_SHOWN};

pub(crate) use local::{schedules, task, tasks, Schedule, Task};
pub(crate) use runs::{run, runs, Run, RunsPage};

/// The most characters of an input a list shows.
pub(crate) const INPUT_PREVIEW: usize = 120;

/// A time as RFC 3339 in UTC, to the millisecond.
pub(crate) fn time(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|ts| ts.round(jiff::Unit::Millisecond).unwrap_or(ts).to_string())
        .unwrap_or_default()
}

pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A status's lowercase name (`Debug` of a fieldless enum).
pub(crate) fn lower(value: impl std::fmt::Debug) -> String {
    let text = format!("{value:?}");
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// `text` cut to `max` characters, with an ellipsis if cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// One queue, local and durable.
#[derive(Debug, Serialize)]
pub(crate) struct Queue {
    pub(crate) name: String,
    pub(crate) local: Option<LocalQueue>,
    pub(crate) durable: Option<DurableQueue>,
}

#[derive(Debug, Serialize)]
pub(crate) struct LocalQueue {
    pub(crate) pending: usize,
    pub(crate) running: usize,
    pub(crate) retrying: usize,
    pub(crate) delayed: usize,
    pub(crate) limit: usize,
    pub(crate) paused: bool,
    pub(crate) waiting_for: Option<String>,
    pub(crate) wait_p50_ms: Option<u64>,
    pub(crate) wait_p99_ms: Option<u64>,
    pub(crate) run_p50_ms: Option<u64>,
    pub(crate) run_p99_ms: Option<u64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct DurableQueue {
    pub(crate) pending: u64,
    pub(crate) delayed: u64,
    pub(crate) running: u64,
    pub(crate) failed_last_hour: u64,
    pub(crate) completed_last_hour: u64,
    pub(crate) wait_p50_ms: Option<u64>,
    pub(crate) wait_p99_ms: Option<u64>,
    pub(crate) run_p50_ms: Option<u64>,
    pub(crate) run_p99_ms: Option<u64>,
    /// Counts stop here: a count equal to it means "this many or more".
    pub(crate) count_cap: u64,
}

/// Every queue of the runner and of its store, by name.
pub(crate) async fn queues(app: &App) -> Result<Vec<Queue>, Failure> {
    let mut out: Vec<Queue> = app
        .runner
        .queue_names()
        .into_iter()
        .filter_map(|name| {
            let s = app.runner.queue_stats(&name)?;
            Some(Queue {
                local: Some(LocalQueue {
                    pending: s.pending,
                    running: s.running,
                    retrying: s.retrying,
                    delayed: s.delayed,
                    limit: s.limit,
                    paused: s.paused,
                    waiting_for: s.waiting_for.map(|w| format!("{w:?}")),
                    wait_p50_ms: s.wait_time.map(|p| ms(p.p50)),
                    wait_p99_ms: s.wait_time.map(|p| ms(p.p99)),
                    run_p50_ms: s.run_time.map(|p| ms(p.p50)),
                    run_p99_ms: s.run_time.map(|p| ms(p.p99)),
                }),
                name,
                durable: None,
            })
        })
        .collect();
    if let Some(store) = app.runner.store() {
        for q in store.queue_overview().await? {
            let durable = DurableQueue {
                pending: q.pending,
                delayed: q.delayed,
                running: q.running,
                failed_last_hour: q.failed_last_hour,
                completed_last_hour: q.completed_last_hour,
                wait_p50_ms: q.wait.map(|w| ms(w.0)),
                wait_p99_ms: q.wait.map(|w| ms(w.1)),
                run_p50_ms: q.run.map(|r| ms(r.0)),
                run_p99_ms: q.run.map(|r| ms(r.1)),
                count_cap: COUNT_CAP,
            };
            match out.iter_mut().find(|o| o.name == q.queue) {
                Some(o) => o.durable = Some(durable),
                None => out.push(Queue {
                    name: q.queue,
                    local: None,
                    durable: Some(durable),
                }),
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
