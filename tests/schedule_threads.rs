//! Schedules on the multi-thread runtime, controlled from several threads at once: every
//! run is accounted for, and shutdown leaves nothing running.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use taskrunner::{
    Overlap, QueueConfig, Schedule, ScheduleStatus, Task, TaskContext, TaskRunner, TaskStatus,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_control_loses_no_run() {
    let runner = TaskRunner::builder()
        .queue("main", QueueConfig::new().concurrency(4))
        .build()
        .unwrap();
    let started = Arc::new(AtomicU64::new(0));
    let s = {
        let started = Arc::clone(&started);
        runner
            .schedule(
                "busy",
                Schedule::every(Duration::from_millis(2)).overlap(Overlap::Allow),
                move || {
                    let started = Arc::clone(&started);
                    Task::new("run", move |_: TaskContext| {
                        started.fetch_add(1, Ordering::SeqCst);
                        async { Ok::<_, String>(()) }
                    })
                },
            )
            .unwrap()
    };
    let mut threads = Vec::new();
    for i in 0..3 {
        let s = s.clone();
        let runner = runner.clone();
        let rt = tokio::runtime::Handle::current();
        threads.push(std::thread::spawn(move || {
            let _guard = rt.enter();
            for n in 0..200 {
                match (i + n) % 4 {
                    0 => drop(s.pause()),
                    1 => drop(s.resume()),
                    2 => drop(s.trigger()),
                    _ => drop(runner.schedule_handle("busy").unwrap().info()),
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    s.resume();
    tokio::time::sleep(Duration::from_millis(20)).await;
    runner.shutdown().await;
    let info = s.info();
    assert_eq!(info.status, ScheduleStatus::Stopped);
    assert_eq!(info.failures, 0);
    let runs: Vec<_> = runner
        .list_tasks()
        .into_iter()
        .filter(|t| t.schedule.as_deref() == Some("busy"))
        .collect();
    assert!(
        runs.len() >= 150,
        "at least the triggers ran: {}",
        runs.len()
    );
    assert_eq!(runs.len() as u64, info.runs);
    assert_eq!(started.load(Ordering::SeqCst), info.runs);
    assert!(runs.iter().all(|t| t.status == TaskStatus::Completed));
}
