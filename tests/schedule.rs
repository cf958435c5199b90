//! Schedules on tokio's paused clock: timetables, max runs, start and end, pause, resume,
//! stop, trigger, failures, bad input.

mod schedule_util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use schedule_util::{ms, secs, Log};
use taskrunner::{
    Schedule, ScheduleError, ScheduleStatus, Task, TaskContext, TaskRunner, TaskStatus,
};

fn sleep(d: Duration) -> tokio::time::Sleep {
    tokio::time::sleep(d)
}

#[tokio::test(start_paused = true)]
async fn every_fires_at_a_fixed_rate_over_a_long_span() {
    let runner = TaskRunner::new();
    let log = Log::new();
    let s = runner
        .schedule("tick", Schedule::every(secs(60)), log.runs(ms(0)))
        .unwrap();
    sleep(secs(10 * 3600 + 30)).await;
    assert_eq!(log.count(), 600);
    let starts = log.starts_ms();
    assert!(starts
        .iter()
        .enumerate()
        .all(|(k, t)| *t == (k as u64 + 1) * 60_000));
    let info = s.info();
    assert_eq!((info.runs, info.failures, info.skipped), (600, 0, 0));
    assert_eq!(info.status, ScheduleStatus::Active);
}

#[tokio::test(start_paused = true)]
async fn slow_runs_do_not_shift_later_fires() {
    let runner = TaskRunner::new();
    let log = Log::new();
    runner
        .schedule("slow", Schedule::every(secs(1)), log.runs(ms(900)))
        .unwrap();
    sleep(ms(20_500)).await;
    let expected: Vec<u64> = (1..=20).map(|k| k * 1000).collect();
    assert_eq!(log.starts_ms(), expected);
}

#[tokio::test(start_paused = true)]
async fn immediately_fires_at_creation_too() {
    let runner = TaskRunner::new();
    let log = Log::new();
    runner
        .schedule(
            "now",
            Schedule::every(secs(5)).immediately(),
            log.runs(ms(0)),
        )
        .unwrap();
    sleep(ms(10_500)).await;
    assert_eq!(log.starts_ms(), [0, 5000, 10_000]);
}

/// The next multiple of `step` after `SystemTime::now()`, plus one step.
fn boundary(step: u64) -> SystemTime {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    UNIX_EPOCH + secs((now / step + 2) * step)
}

#[tokio::test(start_paused = true)]
async fn cron_fires_on_the_paused_clock() {
    let runner = TaskRunner::new();
    let log = Log::new();
    let start = boundary(10);
    let s = runner
        .schedule(
            "every_10s",
            Schedule::cron("*/10 * * * * *").unwrap().start_at(start),
            log.runs(ms(0)),
        )
        .unwrap();
    let until_start = start.duration_since(SystemTime::now()).unwrap();
    sleep(until_start + secs(95)).await;
    assert_eq!(log.count(), 10);
    let info = s.info();
    assert_eq!(info.last_run_at, Some(start + secs(90)));
    assert_eq!(info.next_run_at, Some(start + secs(100)));
    let starts = log.starts_ms();
    assert!(
        starts.windows(2).all(|w| w[1] - w[0] == 10_000),
        "{starts:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_daily_cron_fires_once_a_day_for_a_month() {
    let runner = TaskRunner::new();
    let log = Log::new();
    let s = runner
        .schedule(
            "nightly",
            Schedule::cron("0 3 * * *").unwrap(),
            log.runs(ms(0)),
        )
        .unwrap();
    sleep(secs(30 * 86_400)).await;
    assert_eq!(log.count(), 30);
    let last = s.info().last_run_at.unwrap();
    assert_eq!(
        last.duration_since(UNIX_EPOCH).unwrap().as_secs() % 86_400,
        3 * 3600
    );
}

#[tokio::test(start_paused = true)]
async fn max_runs_stops_the_schedule() {
    let runner = TaskRunner::new();
    let log = Log::new();
    let s = runner
        .schedule(
            "three",
            Schedule::every(secs(1)).max_runs(3),
            log.runs(ms(0)),
        )
        .unwrap();
    assert_eq!(s.upcoming(10).len(), 3);
    sleep(secs(10)).await;
    assert_eq!(log.starts_ms(), [1000, 2000, 3000]);
    let info = s.info();
    assert_eq!(
        (info.runs, info.status, info.next_run_at),
        (3, ScheduleStatus::Stopped, None)
    );
}

#[tokio::test(start_paused = true)]
async fn start_and_end_times_bound_the_runs() {
    let runner = TaskRunner::new();
    let log = Log::new();
    let now = SystemTime::now();
    let s = runner
        .schedule(
            "window",
            Schedule::every(secs(4))
                .start_at(now + secs(10))
                .end_at(now + secs(30)),
            log.runs(ms(0)),
        )
        .unwrap();
    sleep(secs(60)).await;
    assert_eq!(log.starts_ms(), [12_000, 16_000, 20_000, 24_000, 28_000]);
    assert_eq!(s.info().status, ScheduleStatus::Stopped);
}

#[tokio::test(start_paused = true)]
async fn pause_skips_the_fires_it_covers_and_resume_goes_on_from_now() {
    let runner = TaskRunner::new();
    let log = Log::new();
    let s = runner
        .schedule("p", Schedule::every(secs(1)), log.runs(ms(0)))
        .unwrap();
    sleep(ms(3500)).await;
    // By name, from anywhere that has the runner.
    assert!(runner.schedule_handle("p").unwrap().pause());
    assert!(!s.pause(), "already paused");
    assert_eq!(s.info().status, ScheduleStatus::Paused);
    assert_eq!(s.info().next_run_at, None);
    sleep(secs(10)).await;
    assert_eq!(log.count(), 3, "nothing fires while paused");
    assert!(runner.schedule_handle("p").unwrap().resume());
    sleep(ms(2000)).await;
    // Fires missed while paused are not run: the next is the grid's 14 s, then 15 s.
    assert_eq!(log.starts_ms(), [1000, 2000, 3000, 14_000, 15_000]);
    assert_eq!(s.info().skipped, 0);
}

#[tokio::test(start_paused = true)]
async fn stop_during_a_run_lets_the_run_finish_and_fires_no_more() {
    let runner = TaskRunner::new();
    let log = Log::new();
    let s = runner
        .schedule("long", Schedule::every(secs(1)), log.runs(secs(5)))
        .unwrap();
    sleep(ms(1500)).await;
    let run = s.info().last_task.unwrap();
    assert_eq!(runner.get_status(run).unwrap().status, TaskStatus::Running);
    assert!(runner.schedule_handle("long").unwrap().stop());
    assert!(!s.stop());
    sleep(secs(20)).await;
    assert_eq!(
        runner.get_status(run).unwrap().status,
        TaskStatus::Completed
    );
    assert_eq!(log.count(), 1);
    assert_eq!(s.info().status, ScheduleStatus::Stopped);
    assert!(matches!(s.trigger(), Err(ScheduleError::Stopped(name)) if name == "long"));
    // A stopped schedule's name can be taken again.
    runner
        .schedule("long", Schedule::every(secs(1)), log.runs(ms(0)))
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn trigger_runs_now_outside_the_timetable() {
    let runner = TaskRunner::new();
    let log = Log::new();
    let s = runner
        .schedule("t", Schedule::every(secs(60)).max_runs(1), log.runs(ms(0)))
        .unwrap();
    let first = s.trigger().unwrap();
    s.pause();
    let second = runner.schedule_handle("t").unwrap().trigger().unwrap();
    assert_ne!(first, second);
    tokio::task::yield_now().await;
    assert_eq!(log.starts_ms(), [0, 0]);
    let task = runner.get_status(second).unwrap();
    assert_eq!(task.schedule.as_deref(), Some("t"));
    s.resume();
    sleep(secs(200)).await;
    // Triggered runs do not count against max_runs: the timetable's one run still happened.
    assert_eq!(log.starts_ms(), [0, 0, 60_000]);
    let info = s.info();
    assert_eq!((info.runs, info.status), (3, ScheduleStatus::Stopped));
}

#[tokio::test(start_paused = true)]
async fn failed_timed_out_and_panicked_runs_count_as_failures() {
    let runner = TaskRunner::new();
    let log = Log::new();
    let s = runner
        .schedule(
            "flaky",
            Schedule::every(secs(1)),
            log.runs_with(ms(0), |n| match n % 2 {
                0 => Err(format!("run {n} failed")),
                _ => Ok(()),
            }),
        )
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let odd = runner
        .schedule("odd", Schedule::every(secs(1)), move || {
            let n = c.fetch_add(1, Ordering::SeqCst);
            Task::new("odd", move |_: TaskContext| async move {
                match n {
                    0 => std::future::pending::<()>().await,
                    1 => panic!("run panicked"),
                    _ => {}
                }
                Ok::<_, String>(())
            })
            .timeout(ms(500))
        })
        .unwrap();
    sleep(ms(4500)).await;
    let info = s.info();
    assert_eq!((info.runs, info.failures), (4, 2));
    assert_eq!(
        info.last_error.as_deref(),
        Some("task failed: run 4 failed")
    );
    let info = odd.info();
    assert_eq!((info.runs, info.failures), (4, 2));
    assert_eq!(
        info.last_error.as_deref(),
        Some("task panicked: run panicked")
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_make_task_fails_that_fire_and_the_schedule_goes_on() {
    let runner = TaskRunner::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let s = runner
        .schedule("p", Schedule::every(secs(1)), move || {
            if c.fetch_add(1, Ordering::SeqCst) == 1 {
                panic!("no config");
            }
            Task::new("ok", |_: TaskContext| async { Ok::<_, String>(()) })
        })
        .unwrap();
    sleep(ms(3500)).await;
    let info = s.info();
    assert_eq!(
        (info.runs, info.failures, info.status),
        (3, 1, ScheduleStatus::Active)
    );
    assert_eq!(
        info.last_error.as_deref(),
        Some("make_task panicked: no config")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let next = s.trigger();
    assert!(next.is_ok(), "{next:?}");
}

#[tokio::test(start_paused = true)]
async fn bad_input_is_a_schedule_error_naming_it() {
    let runner = TaskRunner::new();
    let log = Log::new();
    let now = SystemTime::now();
    let err = |name: &str, s: Schedule| runner.schedule(name, s, log.runs(ms(0))).unwrap_err();
    assert_eq!(
        err("zero", Schedule::every(Duration::ZERO)),
        ScheduleError::ZeroInterval {
            name: "zero".into()
        }
    );
    assert_eq!(
        err("never", Schedule::every(secs(1)).max_runs(0)),
        ScheduleError::ZeroMaxRuns {
            name: "never".into()
        }
    );
    let backwards = Schedule::every(secs(1))
        .start_at(now + secs(10))
        .end_at(now);
    assert_eq!(
        err("backwards", backwards),
        ScheduleError::EndBeforeStart {
            name: "backwards".into()
        }
    );
    assert_eq!(err("", Schedule::every(secs(1))), ScheduleError::EmptyName);
    assert_eq!(
        err("feb30", Schedule::cron("0 0 30 2 *").unwrap()),
        ScheduleError::NeverFires {
            name: "feb30".into()
        }
    );
    assert_eq!(
        err("over", Schedule::every(secs(1)).end_at(now - secs(1))),
        ScheduleError::NeverFires {
            name: "over".into()
        }
    );
    runner
        .schedule("dup", Schedule::every(secs(1)), log.runs(ms(0)))
        .unwrap();
    let dup = err("dup", Schedule::every(secs(5)));
    assert_eq!(dup, ScheduleError::Duplicate("dup".into()));
    assert!(dup.to_string().contains("`dup`"), "{dup}");
    for e in [
        err("zero", Schedule::every(Duration::ZERO)),
        err("never", Schedule::every(secs(1)).max_runs(0)),
    ] {
        assert!(e.to_string().contains("zero") || e.to_string().contains("never"));
    }
    assert_eq!(runner.schedules().len(), 1);
    // A run whose task names an unknown queue: the fire fails, the schedule goes on.
    let s = runner
        .schedule("lost", Schedule::every(secs(1)), || {
            Task::new("x", |_: TaskContext| async { Ok::<_, String>(()) }).queue("nowhere")
        })
        .unwrap();
    assert!(matches!(s.trigger(), Err(ScheduleError::Enqueue { .. })));
    sleep(ms(2500)).await;
    let info = s.info();
    assert_eq!((info.failures, info.status), (3, ScheduleStatus::Active));
    assert!(info.last_error.unwrap().contains("nowhere"));
}
