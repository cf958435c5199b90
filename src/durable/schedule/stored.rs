//! A durable schedule's stored form: the [`Schedule`] rebuilt from its row, its fire times in
//! ms, and the [`ScheduleInfo`] its row reads as.

use std::time::SystemTime;

use crate::schedule::StoredSpec;
use crate::store::{duration_ms, to_time, ScheduleRow};
use crate::{Schedule, ScheduleError, ScheduleInfo, ScheduleStatus};

pub(super) fn rebuild(row: &ScheduleRow) -> Result<Schedule, ScheduleError> {
    let spec: StoredSpec =
        serde_json::from_str(&row.spec).map_err(|_| ScheduleError::NeverFires {
            name: row.name.clone(),
        })?;
    Schedule::from_stored(&spec)
}

/// The nominal time `at` and its due time (jitter added), in ms.
pub(super) fn fire_times(schedule: &Schedule, name: &str, at: SystemTime) -> (i64, i64) {
    let nominal = ms(at);
    let jitter = duration_ms(schedule.jitter_for(name, at));
    (nominal, nominal.saturating_add(jitter))
}

pub(super) fn ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, duration_ms)
}

pub(super) fn info(row: &ScheduleRow) -> ScheduleInfo {
    let status = match row.status.as_str() {
        "active" => ScheduleStatus::Active,
        "paused" => ScheduleStatus::Paused,
        _ => ScheduleStatus::Stopped,
    };
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    ScheduleInfo {
        name: row.name.clone(),
        status,
        runs: count(row.runs),
        failures: count(row.failures),
        skipped: count(row.skipped),
        last_run_at: row.last_fire_at.map(to_time),
        next_run_at: row
            .due_at
            .filter(|_| status == ScheduleStatus::Active)
            .map(to_time),
        last_error: row.last_error.clone(),
        last_task: None,
    }
}
