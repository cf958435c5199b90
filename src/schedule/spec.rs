//! [`Schedule`]: when a recurring task fires, as a pure function of time.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::cron;
use super::ScheduleError;

/// When a recurring task fires: a fixed interval or a cron expression, and the options that
/// shape its runs. Hand it to [`TaskRunner::schedule`](crate::TaskRunner::schedule).
///
/// Its timetable is a pure function of time: [`first_fire`](Self::first_fire),
/// [`next_fire`](Self::next_fire) and [`upcoming`](Self::upcoming) answer "when would it
/// fire" without a runner, for checking an expression or driving a schedule kept elsewhere.
///
/// - [`every(d)`](Self::every): fixed rate, at `origin + k·d` (`origin` is when the
///   schedule was created), the first at `origin + d`, or at `origin` with
///   [`immediately`](Self::immediately). A slow run never shifts later fires (no drift).
/// - [`cron(expr)`](Self::cron): at each occurrence of a 5-field
///   (`minute hour day-of-month month day-of-week`) or 6-field (seconds first) expression,
///   evaluated by [`croner`](https://docs.rs/croner), in UTC unless
///   [`timezone`](Self::timezone) names another. Each next fire is computed from the
///   previous one, so an occurrence never fires twice, across daylight-saving changes too.
///
/// # Example
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use taskrunner::{Overlap, Schedule};
///
/// # fn main() -> Result<(), taskrunner::ScheduleError> {
/// let nightly = Schedule::cron("30 2 * * *")?.timezone("Europe/Paris")?;
/// let next_three = nightly.upcoming(SystemTime::now(), 3);
/// assert_eq!(next_three.len(), 3);
///
/// let monitor = Schedule::every(Duration::from_secs(300))
///     .overlap(Overlap::Skip)
///     .jitter(Duration::from_secs(5))
///     .max_runs(100);
/// let origin = SystemTime::UNIX_EPOCH;
/// assert_eq!(monitor.first_fire(origin), Some(origin + Duration::from_secs(300)));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[must_use = "a schedule does nothing until given to TaskRunner::schedule"]
pub struct Schedule {
    timetable: Timetable,
    zone: Option<(String, TimeZone)>,
    pub(crate) overlap: Overlap,
    pub(crate) jitter: Duration,
    pub(crate) max_runs: Option<u64>,
    immediately: bool,
    start: Option<SystemTime>,
    end: Option<SystemTime>,
}

#[derive(Clone)]
enum Timetable {
    Every(Duration),
    Cron {
        expression: String,
        cron: Box<croner::Cron>,
    },
}

/// What a fire does when the schedule's previous run has not finished.
///
/// The names follow Temporal's schedule overlap policies.
///
/// ```
/// use std::time::Duration;
/// use taskrunner::{Overlap, Schedule};
///
/// let sync = Schedule::every(Duration::from_secs(60)).overlap(Overlap::BufferOne);
/// # drop(sync);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Overlap {
    /// Skip the fire and count it in [`ScheduleInfo::skipped`](crate::ScheduleInfo::skipped).
    /// The default.
    #[default]
    Skip,
    /// Keep one fire waiting, run it as soon as the previous run ends; further fires while
    /// one waits are skipped (and counted).
    BufferOne,
    /// Cancel the unfinished run, then start the new one.
    CancelPrevious,
    /// Start the new run alongside the unfinished one.
    Allow,
}

// ===== impl Schedule =====

impl Schedule {
    /// Fires every `interval`, at a fixed rate from the schedule's creation. A zero interval
    /// is rejected by [`TaskRunner::schedule`](crate::TaskRunner::schedule).
    pub fn every(interval: Duration) -> Schedule {
        Schedule::with(Timetable::Every(interval))
    }

    /// Fires at each occurrence of a cron `expression`: 5 fields
    /// (`minute hour day-of-month month day-of-week`), or 6 with seconds first; `L`, `W`,
    /// `#` and nicknames such as `@daily` work as in `croner`.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::InvalidCron`], naming the expression and the field at fault.
    pub fn cron(expression: &str) -> Result<Schedule, ScheduleError> {
        let cron = cron::parse(expression)?;
        Ok(Schedule::with(Timetable::Cron {
            expression: expression.to_owned(),
            cron: Box::new(cron),
        }))
    }

    fn with(timetable: Timetable) -> Schedule {
        Schedule {
            timetable,
            zone: None,
            overlap: Overlap::Skip,
            jitter: Duration::ZERO,
            max_runs: None,
            immediately: false,
            start: None,
            end: None,
        }
    }

    /// Evaluates a cron expression in this IANA time zone instead of UTC (an interval is
    /// not affected).
    ///
    /// # Errors
    ///
    /// [`ScheduleError::UnknownTimeZone`] for a name not in the time zone database.
    pub fn timezone(mut self, name: &str) -> Result<Schedule, ScheduleError> {
        let zone =
            TimeZone::get(name).map_err(|_| ScheduleError::UnknownTimeZone(name.to_owned()))?;
        self.zone = Some((name.to_owned(), zone));
        Ok(self)
    }

    /// Fires once at creation too, then by the timetable.
    pub fn immediately(mut self) -> Schedule {
        self.immediately = true;
        self
    }

    /// What a fire does while the previous run is unfinished (default [`Overlap::Skip`]).
    pub fn overlap(mut self, overlap: Overlap) -> Schedule {
        self.overlap = overlap;
        self
    }

    /// Delays each fire by up to `max`: an amount fixed by the schedule's name and the fire
    /// time ([`jitter_for`](Self::jitter_for)), so that many schedules due at the same moment
    /// spread out, and a given fire always gets the same delay.
    pub fn jitter(mut self, max: Duration) -> Schedule {
        self.jitter = max;
        self
    }

    /// Stops the schedule after `n` runs by its timetable (runs started by
    /// [`trigger`](crate::ScheduleHandle::trigger) and skipped fires do not count). Zero is
    /// rejected by [`TaskRunner::schedule`](crate::TaskRunner::schedule).
    pub fn max_runs(mut self, n: u64) -> Schedule {
        self.max_runs = Some(n);
        self
    }

    /// No fire before `start`: earlier fire times of the timetable are passed over.
    pub fn start_at(mut self, start: SystemTime) -> Schedule {
        self.start = Some(start);
        self
    }

    /// No fire after `end`; the schedule stops once its timetable passes it.
    pub fn end_at(mut self, end: SystemTime) -> Schedule {
        self.end = Some(end);
        self
    }

    /// Checks what the builder methods could not: a zero interval, `max_runs(0)`, an end
    /// before the start. `name` is put in the error.
    pub(crate) fn check(&self, name: &str) -> Result<(), ScheduleError> {
        let name = name.to_owned();
        match (&self.timetable, self.max_runs, self.start, self.end) {
            (Timetable::Every(d), ..) if d.is_zero() => Err(ScheduleError::ZeroInterval { name }),
            (_, Some(0), ..) => Err(ScheduleError::ZeroMaxRuns { name }),
            (_, _, Some(start), Some(end)) if end < start => {
                Err(ScheduleError::EndBeforeStart { name })
            }
            _ => Ok(()),
        }
    }

    /// The first fire time of this schedule if created at `origin`, before jitter. `None`
    /// if it never fires (its end time comes first).
    pub fn first_fire(&self, origin: SystemTime) -> Option<SystemTime> {
        if self.immediately && self.in_window(origin) {
            return Some(origin);
        }
        self.next_fire(origin, origin)
    }

    /// The first fire time strictly after `after` of this schedule if created at `origin`,
    /// before jitter: the pure function that drives a schedule. `None` once past its end
    /// time. (`origin` matters only to [`every`](Self::every), whose fires are
    /// `origin + k·d`.)
    pub fn next_fire(&self, origin: SystemTime, after: SystemTime) -> Option<SystemTime> {
        let next = match &self.timetable {
            Timetable::Every(interval) => self.next_every(*interval, origin, after)?,
            Timetable::Cron { cron, .. } => self.next_cron(cron, after)?,
        };
        match self.end {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }

    /// The next `n` fire times (fewer if it ends) of this schedule if created at `origin`,
    /// before jitter; see also [`ScheduleHandle::upcoming`](crate::ScheduleHandle::upcoming).
    pub fn upcoming(&self, origin: SystemTime, n: usize) -> Vec<SystemTime> {
        let mut times = Vec::with_capacity(n.min(1024));
        let mut next = self.first_fire(origin);
        while let Some(at) = next.filter(|_| times.len() < n) {
            times.push(at);
            next = self.next_fire(origin, at);
        }
        times
    }

    /// The delay [`jitter`](Self::jitter) adds to the fire due at `nominal` of the schedule
    /// named `name`: in `[0, max)`, the same for the same name and time in every process.
    pub fn jitter_for(&self, name: &str, nominal: SystemTime) -> Duration {
        let max = self.jitter.as_nanos();
        if max == 0 {
            return Duration::ZERO;
        }
        let mut hash = fnv1a(name.as_bytes());
        hash = splitmix(hash ^ (nanos(nominal) as u64));
        hash = splitmix(hash ^ ((nanos(nominal) >> 64) as u64));
        let offset = u128::from(hash) % max;
        Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
    }

    fn in_window(&self, at: SystemTime) -> bool {
        self.start.is_none_or(|start| at >= start) && self.end.is_none_or(|end| at <= end)
    }

    /// `origin + k·interval`, the least such time after `after`, at or after the start time,
    /// with `k ≥ 1` (`k ≥ 0` with `immediately`).
    fn next_every(
        &self,
        interval: Duration,
        origin: SystemTime,
        after: SystemTime,
    ) -> Option<SystemTime> {
        let step = interval.as_nanos() as i128;
        if step == 0 {
            return None;
        }
        let origin_ns = nanos(origin);
        let past_after = (nanos(after) - origin_ns).div_euclid(step) + 1;
        let from_start = self
            .start
            .map_or(i128::MIN, |start| ceil_div(nanos(start) - origin_ns, step));
        let first = if self.immediately { 0 } else { 1 };
        let k = past_after.max(from_start).max(first);
        from_nanos(origin_ns.checked_add(k.checked_mul(step)?)?)
    }

    /// The next occurrence of `cron` after `after` (and at or after the start time), in the
    /// schedule's zone.
    fn next_cron(&self, cron: &croner::Cron, after: SystemTime) -> Option<SystemTime> {
        let zone = self.zone.as_ref().map_or(TimeZone::UTC, |(_, z)| z.clone());
        let (from, inclusive) = match self.start {
            Some(start) if start > after => (start, true),
            _ => (after, false),
        };
        let mut cursor = Timestamp::try_from(from).ok()?.to_zoned(zone);
        let mut inclusive = inclusive;
        // croner works in whole seconds: a sub-second bound can yield a time before it once.
        for _ in 0..3 {
            let next = cron.find_next_occurrence(&cursor, inclusive).ok()?;
            let at = SystemTime::from(next.timestamp());
            if at > after && self.start.is_none_or(|start| at >= start) {
                return Some(at);
            }
            cursor = next;
            inclusive = false;
        }
        None
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Schedule");
        match &self.timetable {
            Timetable::Every(interval) => s.field("every", interval),
            Timetable::Cron { expression, .. } => s.field("cron", expression),
        };
        s.field("timezone", &self.zone.as_ref().map(|(name, _)| name))
            .field("overlap", &self.overlap)
            .field("jitter", &self.jitter)
            .field("max_runs", &self.max_runs)
            .field("immediately", &self.immediately)
            .field("start", &self.start)
            .field("end", &self.end)
            .finish()
    }
}

/// Nanoseconds since the Unix epoch, negative before it.
pub(crate) fn nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

fn from_nanos(ns: i128) -> Option<SystemTime> {
    let magnitude = Duration::from_nanos(u64::try_from(ns.unsigned_abs() % 1_000_000_000).ok()?)
        + Duration::from_secs(u64::try_from(ns.unsigned_abs() / 1_000_000_000).ok()?);
    if ns >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    }
}

fn ceil_div(a: i128, b: i128) -> i128 {
    -((-a).div_euclid(b))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
