//! What a fire does when the previous run is unfinished (`Overlap`), and fires coalesced
//! while the process was busy.

mod schedule_util;

use schedule_util::{ms, secs, Log};
use taskrunner::{Overlap, Schedule, TaskRunner, TaskStatus};

#[tokio::test(start_paused = true)]
async fn skip_is_the_default_and_counts_the_skipped_fires() {
    let runner = TaskRunner::new();
    let log = Log::new();
    let s = runner
        .schedule("skip", Schedule::every(secs(1)), log.runs(ms(2500)))
        .unwrap();
    tokio::time::sleep(ms(7500)).await;
    // Runs at 1 s (to 3.5 s), 4 s (to 6.5 s), 7 s; fires at 2, 3, 5 and 6 s skipped.
    assert_eq!(log.starts_ms(), [1000, 4000, 7000]);
    let info = s.info();
    assert_eq!((info.runs, info.skipped), (3, 4));
}

#[tokio::test(start_paused = true)]
async fn skip_keeps_the_timetable_after_slow_runs() {
    let runner = TaskRunner::new();
    let log = Log::new();
    runner
        .schedule(
            "slow",
            Schedule::every(secs(1)).overlap(Overlap::Skip),
            log.runs(ms(1500)),
        )
        .unwrap();
    tokio::time::sleep(ms(10_500)).await;
    // No drift: every run starts on the grid, every other fire skipped.
    assert_eq!(log.starts_ms(), [1000, 3000, 5000, 7000, 9000]);
}

#[tokio::test(start_paused = true)]
async fn buffer_one_runs_one_waiting_fire_when_the_run_ends() {
    let runner = TaskRunner::new();
    let log = Log::new();
    let s = runner
        .schedule(
            "buffer",
            Schedule::every(secs(1)).overlap(Overlap::BufferOne),
            log.runs(ms(2400)),
        )
        .unwrap();
    tokio::time::sleep(ms(6500)).await;
    // 1 s runs to 3.4 s; the 2 s fire waits and runs at 3.4 s (to 5.8 s); 3 s is skipped
    // (one already waits); 4 s waits and runs at 5.8 s; 5 s is skipped; 6 s waits.
    assert_eq!(log.starts_ms(), [1000, 3400, 5800]);
    let info = s.info();
    assert_eq!((info.runs, info.skipped), (3, 2));
}

#[tokio::test(start_paused = true)]
async fn cancel_previous_cancels_the_unfinished_run() {
    let runner = TaskRunner::new();
    let log = Log::new();
    let s = runner
        .schedule(
            "latest",
            Schedule::every(secs(1)).overlap(Overlap::CancelPrevious),
            log.runs(secs(3600)),
        )
        .unwrap();
    tokio::time::sleep(ms(3500)).await;
    assert_eq!(log.starts_ms(), [1000, 2000, 3000]);
    let runs: Vec<_> = runner
        .list_tasks()
        .into_iter()
        .filter(|t| t.schedule.as_deref() == Some("latest"))
        .map(|t| t.status)
        .collect();
    assert_eq!(
        runs,
        [
            TaskStatus::Cancelled,
            TaskStatus::Cancelled,
            TaskStatus::Running
        ]
    );
    let info = s.info();
    assert_eq!((info.runs, info.skipped, info.failures), (3, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn allow_runs_alongside_the_unfinished_run() {
    let runner = TaskRunner::new();
    let log = Log::new();
    let s = runner
        .schedule(
            "parallel",
            Schedule::every(secs(1)).overlap(Overlap::Allow),
            log.runs(ms(2500)),
        )
        .unwrap();
    tokio::time::sleep(ms(3400)).await;
    assert_eq!(log.starts_ms(), [1000, 2000, 3000]);
    // All three run at once.
    assert_eq!(runner.queue_stats("main").unwrap().running, 3);
    assert_eq!(s.info().skipped, 0);
}

#[tokio::test(start_paused = true)]
async fn fires_missed_while_the_process_was_busy_are_coalesced_into_one() {
    let runner = TaskRunner::new();
    let log = Log::new();
    let s = runner
        .schedule("busy", Schedule::every(secs(1)), log.runs(ms(0)))
        .unwrap();
    // The clock jumps 10.5 s at once, as when the process was stalled: fires at 1..=10 s
    // all fell due; one run stands for them.
    tokio::time::advance(ms(10_500)).await;
    tokio::time::sleep(ms(1)).await;
    assert_eq!(log.count(), 1);
    // Then the timetable goes on, on its grid.
    tokio::time::sleep(ms(1000)).await;
    assert_eq!(log.starts_ms(), [10_500, 11_000]);
    let info = s.info();
    assert_eq!((info.runs, info.skipped), (2, 0));
}
