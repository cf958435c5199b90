//! Schedules (in-process and durable) and this runner's in-process tasks.

use serde::Serialize;

use super::{lower, time, truncate};
use crate::dashboard::failure::Failure;
use crate::dashboard::App;
use crate::{ScheduleInfo, TaskInfo};

/// A schedule, in-process (`local`) or durable.
#[derive(Debug, Serialize)]
pub(crate) struct Schedule {
    pub(crate) kind: &'static str,
    pub(crate) name: String,
    pub(crate) status: String,
    pub(crate) runs: u64,
    pub(crate) failures: u64,
    pub(crate) skipped: u64,
    pub(crate) last_run_at: Option<String>,
    pub(crate) next_run_at: Option<String>,
    pub(crate) last_error: Option<String>,
}

fn schedule(kind: &'static str, s: ScheduleInfo) -> Schedule {
    Schedule {
        kind,
        status: lower(s.status),
        runs: s.runs,
        failures: s.failures,
        skipped: s.skipped,
        last_run_at: s.last_run_at.map(time),
        next_run_at: s.next_run_at.map(time),
        last_error: s.last_error,
        name: s.name,
    }
}

pub(crate) async fn schedules(app: &App) -> Result<Vec<Schedule>, Failure> {
    let mut out: Vec<Schedule> = app
        .runner
        .schedules()
        .into_iter()
        .map(|s| schedule("local", s))
        .collect();
    if app.runner.store().is_some() {
        out.extend(
            app.runner
                .durable_schedules()
                .await?
                .into_iter()
                .map(|s| schedule("durable", s)),
        );
    }
    Ok(out)
}

/// An in-process task of this runner.
#[derive(Debug, Serialize)]
pub(crate) struct Task {
    pub(crate) id: u64,
    pub(crate) call_id: String,
    pub(crate) name: String,
    pub(crate) queue: String,
    pub(crate) priority: i32,
    pub(crate) status: String,
    pub(crate) attempts: u32,
    pub(crate) created_at: String,
    pub(crate) started_at: Option<String>,
    pub(crate) finished_at: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) progress: Option<(f32, String)>,
    pub(crate) waiting_for: Option<String>,
    pub(crate) schedule: Option<String>,
}

impl Task {
    pub(crate) fn of(t: TaskInfo) -> Task {
        Task {
            id: t.id.as_u64(),
            status: lower(t.status),
            created_at: time(t.created_at),
            started_at: t.started_at.map(time),
            finished_at: t.finished_at.map(time),
            progress: t.progress.map(|p| (p.percent, p.message)),
            waiting_for: t.waiting_for.map(|w| format!("{w:?}")),
            call_id: t.call_id,
            name: t.name,
            queue: t.queue,
            priority: t.priority,
            attempts: t.attempts,
            error: t.error,
            schedule: t.schedule,
        }
    }
}

/// The runner's in-process tasks, newest first, at most `limit`.
pub(crate) fn tasks(app: &App, limit: usize) -> Vec<Task> {
    let mut all = app.runner.list_tasks();
    all.sort_by_key(|t| std::cmp::Reverse(t.id.as_u64()));
    all.into_iter().take(limit).map(Task::of).collect()
}

pub(crate) fn task(app: &App, id: &str) -> Result<Task, Failure> {
    let wanted: u64 = id.trim().parse().map_err(|_| {
        Failure::NotFound(format!(
            "`{}` is not a task id: a task id is a whole number",
            truncate(id, 40)
        ))
    })?;
    app.runner
        .list_tasks()
        .into_iter()
        .find(|t| t.id.as_u64() == wanted)
        .map(Task::of)
        .ok_or_else(|| {
            Failure::NotFound(format!(
                "no task {wanted} in this runner (finished tasks are kept up to a cap)"
            ))
        })
}
