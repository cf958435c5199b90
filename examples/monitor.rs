//! A monitor agent on a schedule (the OmniCoreAgent background-agent pattern): it checks the
//! system every few hundred milliseconds, is paused and resumed, has a failing run, and its
//! run metrics are printed. A slow report shows the overlap policy skipping fires, and a
//! cron schedule shows its next fire times in a time zone.
//!
//! Run with `cargo run --example monitor` (about 3 seconds).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use taskrunner::{EventKind, Overlap, Schedule, ScheduleHandle, Task, TaskContext, TaskRunner};

/// One check of the "system": the n-th check's load, and a disk probe that fails once.
async fn check(n: u32) -> Result<String, String> {
    tokio::time::sleep(Duration::from_millis(40)).await;
    if n == 4 {
        return Err("disk probe timed out on /dev/sda1".into());
    }
    let load = 0.4 + 0.1 * f64::from(n % 5);
    Ok(format!("check {n}: load {load:.2}, disk ok"))
}

fn print_metrics(schedule: &ScheduleHandle) {
    let info = schedule.info();
    let ago = |t: Option<SystemTime>| {
        t.map(|t| match t.duration_since(SystemTime::now()) {
            Ok(ahead) => format!("in {} ms", ahead.as_millis()),
            Err(e) => format!("{} ms ago", e.duration().as_millis()),
        })
        .unwrap_or_else(|| "-".into())
    };
    println!(
        "  [{}] {:?}: runs {}, failures {}, skipped {}, last run {}, next run {}, last error {:?}",
        info.name,
        info.status,
        info.runs,
        info.failures,
        info.skipped,
        ago(info.last_run_at),
        ago(info.next_run_at),
        info.last_error.as_deref().unwrap_or("-"),
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runner = TaskRunner::new();

    // Print what the schedules do, from the runner's event stream.
    let mut events = runner.subscribe();
    let printer = tokio::spawn(async move {
        while let Some(Ok(event)) = events.recv().await {
            match (&event.schedule, &event.kind) {
                (Some(name), EventKind::ScheduleFired { .. }) => {
                    println!("event: {name} fired (task {})", event.id)
                }
                (Some(name), EventKind::ScheduleSkipped { .. }) => {
                    println!("event: {name} skipped a fire: its last run is still going")
                }
                (Some(name), EventKind::SchedulePaused) => println!("event: {name} paused"),
                (Some(name), EventKind::ScheduleResumed) => println!("event: {name} resumed"),
                (Some(name), EventKind::ScheduleStopped) => println!("event: {name} stopped"),
                (Some(name), EventKind::Failed { error }) => {
                    println!("event: a run of {name} failed: {error}")
                }
                _ => {}
            }
        }
    });

    // The monitor agent: a check every 300 ms.
    let checks = Arc::new(AtomicU32::new(0));
    let monitor = runner.schedule(
        "system_monitor",
        Schedule::every(Duration::from_millis(300)).immediately(),
        move || {
            let n = checks.fetch_add(1, Ordering::SeqCst) + 1;
            Task::new("check", move |_: TaskContext| check(n)).notify()
        },
    )?;

    // A report that takes longer than its interval: fires that find it running are skipped.
    let report = runner.schedule(
        "slow_report",
        Schedule::every(Duration::from_millis(200)).overlap(Overlap::Skip),
        || {
            Task::new("report", |_: TaskContext| async {
                tokio::time::sleep(Duration::from_millis(450)).await;
                Ok::<_, String>("report written")
            })
        },
    )?;

    // A nightly job, to show a cron timetable in a time zone.
    let nightly = runner.schedule(
        "nightly_digest",
        Schedule::cron("30 2 * * *")?.timezone("Europe/Paris")?,
        || Task::new("digest", |_: TaskContext| async { Ok::<_, String>(()) }),
    )?;
    let paris = jiff::tz::TimeZone::get("Europe/Paris")?;
    for at in nightly.upcoming(3) {
        let at = jiff::Timestamp::try_from(at)?.to_zoned(paris.clone());
        println!("nightly_digest will fire at {at}");
    }

    tokio::time::sleep(Duration::from_millis(1000)).await;
    println!("after 1 s:");
    print_metrics(&monitor);
    print_metrics(&report);

    monitor.pause();
    tokio::time::sleep(Duration::from_millis(700)).await;
    println!("after 0.7 s paused (no checks ran):");
    print_metrics(&monitor);
    // By name, as another part of the program would.
    runner
        .schedule_handle("system_monitor")
        .expect("the monitor exists")
        .resume();
    let now = monitor.trigger()?;
    println!("triggered an extra check: task {now}");

    tokio::time::sleep(Duration::from_millis(1000)).await;
    report.stop();
    println!("notifications from the checks:");
    for note in runner.drain_notifications() {
        println!("  task {}: {}", note.id, note.summary);
    }

    // Shutdown stops every schedule first, then finishes the runs already started.
    runner.shutdown().await;
    println!("after shutdown:");
    for info in runner.schedules() {
        println!(
            "  {}: {:?}, runs {}, failures {}, skipped {}",
            info.name, info.status, info.runs, info.failures, info.skipped
        );
    }
    drop(runner);
    printer.await?;
    Ok(())
}
