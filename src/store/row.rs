//! Reading a run's row into a [`RunInfo`], the same for both backends.

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::types::{to_time, Outcome, RunId, RunInfo, RunStatus, WaitingFor};

/// The columns [`info`] reads, as a literal for `concat!`.
macro_rules! info_columns {
    () => {
        "id, name, queue, priority, status, attempts, max_attempts, call_id, dedup_key, \
         created_at, scheduled_at, started_at, finished_at, error, output, cancel_requested, \
         recoveries, input, parent_id, wait_kind, wait_signal, wait_children, cost, charged"
    };
}
pub(crate) use info_columns;

pub(crate) fn info<'r, R>(row: &'r R, now: i64) -> Result<RunInfo, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    i32: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let status: String = row.try_get("status")?;
    let scheduled_at: i64 = row.try_get("scheduled_at")?;
    let output: Option<String> = row.try_get("output")?;
    let wait_kind: Option<String> = row.try_get("wait_kind")?;
    let status = RunStatus::from_db(&status, scheduled_at, now, wait_kind.is_some());
    let waiting_for = match (status, wait_kind.as_deref()) {
        (RunStatus::Waiting, Some("signal")) => Some(WaitingFor::Signal {
            name: row
                .try_get::<Option<String>, _>("wait_signal")?
                .unwrap_or_default(),
            deadline: to_time(scheduled_at),
        }),
        (RunStatus::Waiting, Some("sleep")) => Some(WaitingFor::Sleep {
            until: to_time(scheduled_at),
        }),
        (RunStatus::Waiting, Some(_)) => Some(WaitingFor::Children {
            left: row.try_get::<i32, _>("wait_children")?.max(0) as u32,
        }),
        _ => None,
    };
    Ok(RunInfo {
        id: RunId::from_i64(row.try_get("id")?),
        name: row.try_get("name")?,
        queue: row.try_get("queue")?,
        priority: row.try_get("priority")?,
        status,
        attempts: row.try_get::<i32, _>("attempts")?.max(0) as u32,
        max_attempts: row.try_get::<i32, _>("max_attempts")?.max(0) as u32,
        recoveries: row.try_get::<i32, _>("recoveries")?.max(0) as u32,
        call_id: row.try_get("call_id")?,
        dedup_key: row.try_get("dedup_key")?,
        created_at: to_time(row.try_get("created_at")?),
        scheduled_at: to_time(scheduled_at),
        started_at: row.try_get::<Option<i64>, _>("started_at")?.map(to_time),
        finished_at: row.try_get::<Option<i64>, _>("finished_at")?.map(to_time),
        error: row.try_get("error")?,
        output: output.and_then(|text| serde_json::from_str(&text).ok()),
        cancel_requested: row.try_get("cancel_requested")?,
        input: row.try_get("input")?,
        steps: Vec::new(),
        waiting_for,
        parent: row
            .try_get::<Option<i64>, _>("parent_id")?
            .map(RunId::from_i64),
        cost: units(row.try_get("cost")?),
        charged: units(row.try_get("charged")?),
    })
}

/// A stored count of budget units (never negative) as the `u64` the API shows.
fn units(stored: Option<i64>) -> Option<u64> {
    stored.map(|units| u64::try_from(units).unwrap_or(0))
}

pub(crate) fn outcome<'r, R>(row: &'r R) -> Result<Outcome, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(Outcome {
        status: row.try_get("status")?,
        output: row.try_get("output")?,
        error: row.try_get("error")?,
        error_kind: row.try_get("error_kind")?,
    })
}
