//! A [`Schedule`] as JSON, so that a durable schedule can be kept in the store and rebuilt
//! by every process that fires it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{Overlap, Schedule, ScheduleError, Timetable};

/// Everything that decides when a schedule fires, in a form serde can store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    every_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timezone: Option<String>,
    #[serde(default)]
    immediately: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_runs: Option<u64>,
    #[serde(default)]
    jitter_ns: u64,
    overlap: String,
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Schedule {
    /// The schedule as stored.
    pub(crate) fn to_stored(&self) -> StoredSpec {
        let (every_ns, cron) = match &self.timetable {
            Timetable::Every(d) => (Some(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)), None),
            Timetable::Cron { expression, .. } => (None, Some(expression.clone())),
        };
        StoredSpec {
            every_ns,
            cron,
            timezone: self.zone.as_ref().map(|(name, _)| name.clone()),
            immediately: self.immediately,
            start_ms: self.start.map(ms),
            end_ms: self.end.map(ms),
            max_runs: self.max_runs,
            jitter_ns: u64::try_from(self.jitter.as_nanos()).unwrap_or(u64::MAX),
            overlap: match self.overlap {
                Overlap::Skip => "skip",
                Overlap::BufferOne => "buffer_one",
                Overlap::CancelPrevious => "cancel_previous",
                Overlap::Allow => "allow",
            }
            .to_owned(),
        }
    }

    /// The schedule a stored spec describes.
    ///
    /// # Errors
    ///
    /// A [`ScheduleError`] if the expression or time zone no longer parses in this build.
    pub(crate) fn from_stored(spec: &StoredSpec) -> Result<Schedule, ScheduleError> {
        let mut schedule = match (&spec.cron, spec.every_ns) {
            (Some(expression), _) => Schedule::cron(expression)?,
            (None, every) => Schedule::every(Duration::from_nanos(every.unwrap_or(0))),
        };
        if let Some(zone) = &spec.timezone {
            schedule = schedule.timezone(zone)?;
        }
        schedule.immediately = spec.immediately;
        schedule.start = spec.start_ms.map(|t| UNIX_EPOCH + Duration::from_millis(t));
        schedule.end = spec.end_ms.map(|t| UNIX_EPOCH + Duration::from_millis(t));
        schedule.max_runs = spec.max_runs;
        schedule.jitter = Duration::from_nanos(spec.jitter_ns);
        schedule.overlap = match spec.overlap.as_str() {
            "buffer_one" => Overlap::BufferOne,
            "cancel_previous" => Overlap::CancelPrevious,
            "allow" => Overlap::Allow,
            _ => Overlap::Skip,
        };
        Ok(schedule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_survives_the_round_trip() {
        let origin = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for schedule in [
            Schedule::every(Duration::from_millis(150))
                .immediately()
                .max_runs(4)
                .jitter(Duration::from_millis(20))
                .overlap(Overlap::Allow),
            Schedule::cron("30 2 * * *")
                .unwrap()
                .timezone("Europe/Paris")
                .unwrap()
                .end_at(origin + Duration::from_secs(86_400 * 30)),
        ] {
            let stored = schedule.to_stored();
            let json = serde_json::to_string(&stored).unwrap();
            let back = Schedule::from_stored(&serde_json::from_str(&json).unwrap()).unwrap();
            assert_eq!(back.to_stored(), stored);
            assert_eq!(back.upcoming(origin, 5), schedule.upcoming(origin, 5));
            assert_eq!(back.overlap, schedule.overlap);
        }
    }
}
