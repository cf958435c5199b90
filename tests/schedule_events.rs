//! Schedules seen from outside: events on the runner's stream, runs tagged with their
//! schedule, `schedules()`, `upcoming`, and shutdown.

mod schedule_util;

use std::time::SystemTime;

use schedule_util::{ms, secs, Log};
use taskrunner::{EventKind, Schedule, ScheduleInfo, ScheduleStatus, TaskRunner, TaskStatus};

#[tokio::test(start_paused = true)]
async fn schedule_events_go_on_the_runners_stream() {
    let runner = TaskRunner::new();
    let mut events = runner.subscribe();
    let log = Log::new();
    let s = runner
        .schedule("watch", Schedule::every(secs(1)), log.runs(ms(1500)))
        .unwrap();
    tokio::time::sleep(ms(2500)).await; // fired at 1 s, skipped at 2 s
    s.pause();
    s.resume();
    s.stop();
    tokio::time::sleep(secs(5)).await;
    runner.shutdown().await;
    drop(runner);

    let mut seen = Vec::new();
    while let Some(Ok(event)) = events.recv().await {
        seen.push(event);
    }
    let run = s.info().last_task.unwrap();
    let schedule_events: Vec<(EventKind, _)> = seen
        .iter()
        .filter(|e| matches!(e.name.as_str(), "watch"))
        .map(|e| (e.kind.clone(), e.id))
        .collect();
    let t0 = s.info().last_run_at.unwrap() - secs(1);
    assert_eq!(
        schedule_events,
        [
            (
                EventKind::ScheduleFired {
                    nominal: t0 + secs(1)
                },
                run
            ),
            (
                EventKind::ScheduleSkipped {
                    nominal: t0 + secs(2)
                },
                run
            ),
            (EventKind::SchedulePaused, run),
            (EventKind::ScheduleResumed, run),
            (EventKind::ScheduleStopped, run),
        ]
    );
    assert!(seen
        .iter()
        .filter(|e| e.name == "watch")
        .all(|e| e.schedule.as_deref() == Some("watch")));
    // The run's own events carry the schedule's name too.
    let run_events: Vec<EventKind> = seen
        .iter()
        .filter(|e| e.id == run && e.name == "run")
        .map(|e| {
            assert_eq!(e.schedule.as_deref(), Some("watch"));
            e.kind.clone()
        })
        .collect();
    assert_eq!(
        run_events,
        [
            EventKind::Enqueued,
            EventKind::Started { attempt: 1 },
            EventKind::Completed
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn every_run_is_an_ordinary_task_tagged_with_its_schedule() {
    let runner = TaskRunner::new();
    let log = Log::new();
    let s = runner
        .schedule("tagged", Schedule::every(secs(1)), log.runs(ms(0)))
        .unwrap();
    tokio::time::sleep(ms(3500)).await;
    let runs: Vec<_> = runner
        .list_tasks()
        .into_iter()
        .filter(|t| t.schedule.as_deref() == Some("tagged"))
        .collect();
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|t| t.status == TaskStatus::Completed));
    assert_eq!(runs.last().unwrap().id, s.info().last_task.unwrap());
    // A task not made by a schedule has no tag.
    let plain = runner
        .enqueue_task(taskrunner::Task::new(
            "plain",
            |_: taskrunner::TaskContext| async { Ok::<_, String>(()) },
        ))
        .unwrap();
    assert_eq!(plain.info().schedule, None);
    plain.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn schedules_lists_every_schedule_and_handles_are_found_by_name() {
    let runner = TaskRunner::new();
    let log = Log::new();
    runner
        .schedule("a", Schedule::every(secs(2)), log.runs(ms(0)))
        .unwrap();
    let b = runner
        .schedule("b", Schedule::cron("0 0 * * *").unwrap(), log.runs(ms(0)))
        .unwrap();
    b.pause();
    tokio::time::sleep(ms(4500)).await;
    let infos: Vec<ScheduleInfo> = runner.schedules();
    let summary: Vec<(&str, ScheduleStatus, u64)> = infos
        .iter()
        .map(|i| (i.name.as_str(), i.status, i.runs))
        .collect();
    assert_eq!(
        summary,
        [
            ("a", ScheduleStatus::Active, 2),
            ("b", ScheduleStatus::Paused, 0)
        ]
    );
    let a = &infos[0];
    assert_eq!(a.next_run_at, Some(a.last_run_at.unwrap() + secs(2)));
    assert_eq!(runner.schedule_handle("a").unwrap().name(), "a");
    assert!(runner.schedule_handle("missing").is_none());
}

#[tokio::test(start_paused = true)]
async fn upcoming_lists_the_next_fire_times() {
    let runner = TaskRunner::new();
    let log = Log::new();
    let s = runner
        .schedule("up", Schedule::every(secs(10)).max_runs(4), log.runs(ms(0)))
        .unwrap();
    let first = s.info().next_run_at.unwrap();
    assert_eq!(s.upcoming(3), [first, first + secs(10), first + secs(20)]);
    tokio::time::sleep(ms(25_000)).await;
    // Two runs left by max_runs.
    assert_eq!(s.upcoming(10), [first + secs(20), first + secs(30)]);
    let jittered = runner
        .schedule(
            "jittered",
            Schedule::every(secs(10)).jitter(secs(3)),
            log.runs(ms(0)),
        )
        .unwrap();
    let times = jittered.upcoming(20);
    assert_eq!(times.len(), 20);
    // The schedule's clock started a moment before `now` (real time passes while paused).
    let now = SystemTime::now();
    for (k, t) in times.iter().enumerate() {
        let nominal = now + secs(10 * (k as u64 + 1));
        let bounds = (nominal - ms(100))..(nominal + secs(3));
        assert!(bounds.contains(t), "fire {k} at {t:?}, not in {bounds:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn jittered_fires_happen_when_upcoming_said() {
    let runner = TaskRunner::new();
    let log = Log::new();
    let s = runner
        .schedule(
            "j",
            Schedule::every(secs(10)).jitter(secs(5)),
            log.runs(ms(0)),
        )
        .unwrap();
    let planned = s.upcoming(5);
    tokio::time::sleep(secs(60)).await;
    assert_eq!(log.count(), 5);
    assert_eq!(s.info().last_run_at, Some(planned[4]));
    let starts = log.starts_ms();
    for (k, start) in starts.iter().enumerate() {
        let nominal = (k as u64 + 1) * 10_000;
        assert!((nominal..nominal + 5001).contains(start), "{starts:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_every_schedule_then_finishes_runs_already_started() {
    let runner = TaskRunner::new();
    let log = Log::new();
    let s = runner
        .schedule("nightly", Schedule::every(secs(1)), log.runs(secs(3)))
        .unwrap();
    tokio::time::sleep(ms(1500)).await;
    let run = s.info().last_task.unwrap();
    let started = tokio::time::Instant::now();
    let shutdown = runner.shutdown();
    assert_eq!(s.info().status, ScheduleStatus::Stopped);
    shutdown.await;
    // The run started at 1 s ran to its end (4 s); nothing fired after.
    assert_eq!(started.elapsed(), ms(2500));
    assert_eq!(
        runner.get_status(run).unwrap().status,
        TaskStatus::Completed
    );
    assert_eq!(log.count(), 1);
    assert!(matches!(
        runner.schedule("late", Schedule::every(secs(1)), log.runs(ms(0))),
        Err(taskrunner::ScheduleError::ShuttingDown)
    ));
}

#[tokio::test(start_paused = true)]
async fn shutdown_now_stops_schedules_and_cancels_their_runs() {
    let runner = TaskRunner::new();
    let log = Log::new();
    let s = runner
        .schedule("hourly", Schedule::every(secs(1)), log.runs(secs(3600)))
        .unwrap();
    tokio::time::sleep(ms(1500)).await;
    let run = s.info().last_task.unwrap();
    runner.shutdown_now().await;
    assert_eq!(s.info().status, ScheduleStatus::Stopped);
    assert_eq!(
        runner.get_status(run).unwrap().status,
        TaskStatus::Cancelled
    );
    tokio::time::sleep(secs(10)).await;
    assert_eq!(log.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_schedule_does_not_keep_its_runner_alive() {
    let runner = TaskRunner::new();
    let mut events = runner.subscribe();
    let log = Log::new();
    let s = runner
        .schedule("orphan", Schedule::every(secs(1)), log.runs(ms(0)))
        .unwrap();
    tokio::time::sleep(ms(1500)).await;
    drop(runner);
    // With the runner gone, the event stream ends although the handle lives on...
    while let Some(Ok(_)) = events.recv().await {}
    // ...and the schedule stops at its next fire time, firing nothing more.
    tokio::time::sleep(secs(5)).await;
    assert_eq!(log.count(), 1);
    assert_eq!(s.info().status, ScheduleStatus::Stopped);
    assert!(s.trigger().is_err());
}
