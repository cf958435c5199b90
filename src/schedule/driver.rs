//! One schedule's state and the timer loop that fires it.

use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::launch::{Launch, LaunchError, RunEnd};
use super::{Overlap, Schedule, ScheduleError, ScheduleInfo, ScheduleStatus};
use crate::runner::Shared;
use crate::sync::lock_std;
use crate::{EnqueueError, EventKind, TaskId, TaskRunner};

/// One schedule: its timetable, its counters, and what its timer loop waits on.
pub(crate) struct Entry {
    pub(crate) name: Arc<str>,
    schedule: Schedule,
    /// The wall time and tokio instant at creation: the schedule's clock maps one to the
    /// other, so that tokio's paused clock drives wall-clock timetables too.
    origin: SystemTime,
    anchor: Instant,
    launch: Launch,
    /// Weak: a schedule (or its handle) does not keep its runner alive.
    shared: Weak<Shared>,
    state: Mutex<State>,
    /// Wakes the timer loop: a pause, resume, stop, or a run that ended.
    wake: Notify,
}

struct State {
    status: ScheduleStatus,
    runs: u64,
    failures: u64,
    skipped: u64,
    /// Runs started by the timetable, counted against `max_runs`.
    timetable_runs: u64,
    last_run_at: Option<SystemTime>,
    last_error: Option<String>,
    last_task: Option<TaskId>,
    /// The next nominal fire time; `None` once the timetable has ended.
    next: Option<SystemTime>,
    /// Runs started and not yet ended.
    running: Vec<TaskId>,
    /// A fire waiting for the running one to end ([`Overlap::BufferOne`]), by nominal time.
    buffered: Option<SystemTime>,
}

enum Step {
    Exit,
    Wait,
    Launch(SystemTime),
    Sleep(SystemTime, Instant),
}

// ===== impl Entry =====

impl Entry {
    pub(crate) fn new(
        name: Arc<str>,
        schedule: Schedule,
        launch: Launch,
        shared: &Arc<Shared>,
    ) -> Entry {
        let origin = SystemTime::now();
        let next = schedule.first_fire(origin);
        Entry {
            name,
            schedule,
            origin,
            anchor: Instant::now(),
            launch,
            shared: Arc::downgrade(shared),
            state: Mutex::new(State {
                status: ScheduleStatus::Active,
                runs: 0,
                failures: 0,
                skipped: 0,
                timetable_runs: 0,
                last_run_at: None,
                last_error: None,
                last_task: None,
                next,
                running: Vec::new(),
                buffered: None,
            }),
            wake: Notify::new(),
        }
    }

    /// Wall time on the schedule's clock.
    fn now(&self) -> SystemTime {
        self.origin + self.anchor.elapsed()
    }

    fn instant_of(&self, at: SystemTime) -> Instant {
        self.anchor + at.duration_since(self.origin).unwrap_or_default()
    }

    fn due(&self, nominal: SystemTime) -> SystemTime {
        nominal + self.schedule.jitter_for(&self.name, nominal)
    }

    fn emit(&self, state: &State, task: Option<TaskId>, kind: EventKind) {
        let task = task.or(state.last_task);
        if let Some(shared) = self.shared.upgrade() {
            shared
                .observers()
                .events
                .emit_schedule(&self.name, task, self.now(), || kind);
        }
    }

    pub(crate) fn status(&self) -> ScheduleStatus {
        lock_std(&self.state).status
    }

    pub(crate) fn info(&self) -> ScheduleInfo {
        let state = lock_std(&self.state);
        let active = state.status == ScheduleStatus::Active;
        ScheduleInfo {
            name: self.name.to_string(),
            status: state.status,
            runs: state.runs,
            failures: state.failures,
            skipped: state.skipped,
            last_run_at: state.last_run_at,
            next_run_at: state.next.filter(|_| active).map(|n| self.due(n)),
            last_error: state.last_error.clone(),
            last_task: state.last_task,
        }
    }

    /// The next `n` due times (jitter included), fewer if the timetable or `max_runs` ends.
    pub(crate) fn upcoming(&self, n: usize) -> Vec<SystemTime> {
        let (mut next, left) = {
            let state = lock_std(&self.state);
            let next = match state.status {
                ScheduleStatus::Active => state.next,
                ScheduleStatus::Paused => self.schedule.next_fire(self.origin, self.now()),
                ScheduleStatus::Stopped => None,
            };
            let left = self
                .schedule
                .max_runs
                .map_or(u64::MAX, |max| max.saturating_sub(state.timetable_runs));
            (next, usize::try_from(left).unwrap_or(usize::MAX))
        };
        let mut times = Vec::new();
        while let Some(at) = next.filter(|_| times.len() < n.min(left)) {
            times.push(self.due(at));
            next = self.schedule.next_fire(self.origin, at);
        }
        times
    }

    pub(crate) fn pause(&self) -> bool {
        let mut state = lock_std(&self.state);
        if state.status != ScheduleStatus::Active {
            return false;
        }
        state.status = ScheduleStatus::Paused;
        state.buffered = None;
        self.emit(&state, None, EventKind::SchedulePaused);
        drop(state);
        self.wake.notify_one();
        true
    }

    pub(crate) fn resume(&self) -> bool {
        let mut state = lock_std(&self.state);
        if state.status != ScheduleStatus::Paused {
            return false;
        }
        state.status = ScheduleStatus::Active;
        // Fires due while paused are not run: the timetable goes on from now.
        let now = self.now();
        state.next = match state.next {
            Some(next) if next <= now => self.schedule.next_fire(self.origin, now),
            next => next,
        };
        self.emit(&state, None, EventKind::ScheduleResumed);
        drop(state);
        self.wake.notify_one();
        true
    }

    pub(crate) fn stop(&self) -> bool {
        let mut state = lock_std(&self.state);
        let stopped = self.stop_locked(&mut state);
        drop(state);
        self.wake.notify_one();
        stopped
    }

    fn stop_locked(&self, state: &mut State) -> bool {
        if state.status == ScheduleStatus::Stopped {
            return false;
        }
        state.status = ScheduleStatus::Stopped;
        state.buffered = None;
        self.emit(state, None, EventKind::ScheduleStopped);
        true
    }

    /// Starts one run now, outside the timetable.
    pub(crate) fn trigger(self: &Arc<Self>) -> Result<TaskId, ScheduleError> {
        let now = self.now();
        self.fire(now, now, false).map_err(|error| match error {
            LaunchError::Stopped => ScheduleError::Stopped(self.name.to_string()),
            LaunchError::Panicked(message) => ScheduleError::MakeTaskPanicked {
                name: self.name.to_string(),
                message,
            },
            LaunchError::Enqueue(source) => ScheduleError::Enqueue {
                name: self.name.to_string(),
                source,
            },
        })
    }

    /// Makes and enqueues one run due at `nominal` (started at `at`, its due time with
    /// jitter, or now), and records it. `by_timetable` counts it against `max_runs`, and
    /// runs only while the schedule is active (a trigger, unless it is stopped).
    ///
    /// `make_task` runs with no lock held; the status check, the enqueue and the record
    /// happen under the state's lock, so that once `stop` returns no fire is half done.
    fn fire(
        self: &Arc<Self>,
        nominal: SystemTime,
        at: SystemTime,
        by_timetable: bool,
    ) -> Result<TaskId, LaunchError> {
        let may_fire = |status| match status {
            ScheduleStatus::Active => true,
            ScheduleStatus::Paused => !by_timetable,
            ScheduleStatus::Stopped => false,
        };
        if !may_fire(self.status()) {
            return Err(LaunchError::Stopped);
        }
        let made = (self.launch)(&self.name);
        let Some(shared) = self.shared.upgrade() else {
            self.stop();
            return Err(LaunchError::Enqueue(EnqueueError::ShuttingDown));
        };
        let runner = TaskRunner::from_shared(shared);
        let mut state = lock_std(&self.state);
        // Checked again: a pause or stop may have come while `make_task` ran.
        if !may_fire(state.status) {
            return Err(LaunchError::Stopped);
        }
        let result = match made.and_then(|enqueue| enqueue(&runner).map_err(LaunchError::Enqueue)) {
            Err(LaunchError::Enqueue(EnqueueError::ShuttingDown)) => {
                self.stop_locked(&mut state);
                return Err(LaunchError::Enqueue(EnqueueError::ShuttingDown));
            }
            Err(error) => {
                state.failures += 1;
                state.last_error = Some(match &error {
                    LaunchError::Panicked(message) => format!("make_task panicked: {message}"),
                    LaunchError::Enqueue(source) => source.to_string(),
                    LaunchError::Stopped => "stopped".to_owned(),
                });
                Err(error)
            }
            Ok((id, ended)) => {
                state.last_task = Some(id);
                state.running.push(id);
                self.emit(&state, Some(id), EventKind::ScheduleFired { nominal });
                let entry = Arc::clone(self);
                runner.shared().spawn(async move {
                    let end = ended.await;
                    entry.run_ended(id, end);
                });
                Ok(id)
            }
        };
        state.runs += 1;
        state.last_run_at = Some(at);
        if by_timetable {
            state.timetable_runs += 1;
            if self
                .schedule
                .max_runs
                .is_some_and(|max| state.timetable_runs >= max)
            {
                self.stop_locked(&mut state);
            }
        }
        result
    }

    fn run_ended(&self, id: TaskId, end: RunEnd) {
        let mut state = lock_std(&self.state);
        state.running.retain(|running| *running != id);
        match end {
            RunEnd::Failed(error) => {
                state.failures += 1;
                state.last_error = Some(error);
            }
            RunEnd::Completed | RunEnd::Cancelled => {}
        }
        drop(state);
        self.wake.notify_one();
    }

    /// What the timer loop does next.
    fn step(&self) -> Step {
        let mut state = lock_std(&self.state);
        match state.status {
            ScheduleStatus::Stopped => return Step::Exit,
            ScheduleStatus::Paused => return Step::Wait,
            ScheduleStatus::Active => {}
        }
        if let Some(nominal) = state.buffered.filter(|_| state.running.is_empty()) {
            state.buffered = None;
            return Step::Launch(nominal);
        }
        match state.next {
            Some(nominal) => Step::Sleep(nominal, self.instant_of(self.due(nominal))),
            None if state.buffered.is_some() => Step::Wait,
            None => {
                self.stop_locked(&mut state);
                Step::Exit
            }
        }
    }

    /// The fire due at `nominal` is due now: the overlap policy decides what it does.
    fn on_due(self: &Arc<Self>, nominal: SystemTime) {
        let mut state = lock_std(&self.state);
        if state.status != ScheduleStatus::Active || state.next != Some(nominal) {
            return;
        }
        // Fires that fell due while the process was busy are coalesced into this one.
        let after = nominal.max(
            self.now()
                .checked_sub(self.schedule.jitter)
                .unwrap_or(nominal),
        );
        state.next = self.schedule.next_fire(self.origin, after);
        let mut cancel = Vec::new();
        if !state.running.is_empty() {
            match self.schedule.overlap {
                Overlap::Allow => {}
                Overlap::CancelPrevious => cancel = state.running.clone(),
                Overlap::BufferOne if state.buffered.is_none() => {
                    state.buffered = Some(nominal);
                    return;
                }
                Overlap::Skip | Overlap::BufferOne => {
                    state.skipped += 1;
                    self.emit(&state, None, EventKind::ScheduleSkipped { nominal });
                    return;
                }
            }
        }
        drop(state);
        if let Some(shared) = self.shared.upgrade() {
            let runner = TaskRunner::from_shared(shared);
            for id in cancel {
                runner.cancel(id);
            }
        }
        let _ = self.fire(nominal, self.due(nominal), true);
    }
}

/// The timer loop of one schedule: sleeps until its next fire, fires, and repeats until the
/// schedule stops or its runner is dropped.
pub(crate) async fn drive(entry: Arc<Entry>) {
    loop {
        match entry.step() {
            Step::Exit => return,
            Step::Wait => entry.wake.notified().await,
            Step::Launch(nominal) => {
                let _ = entry.fire(nominal, entry.now(), true);
            }
            Step::Sleep(nominal, due) => {
                tokio::select! {
                    () = tokio::time::sleep_until(due) => entry.on_due(nominal),
                    () = entry.wake.notified() => {}
                }
            }
        }
        if entry.shared.strong_count() == 0 {
            entry.stop();
            return;
        }
    }
}
