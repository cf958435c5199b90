//! A daily 02:30 job in `Europe/Paris`, driven by tokio's paused clock through the next
//! daylight-saving changes: it fires exactly once each local day.

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use taskrunner::{EventKind, Schedule, Task, TaskContext, TaskRunner};

#[tokio::test(start_paused = true)]
async fn a_daily_paris_job_fires_once_a_day_across_dst_changes() {
    let runner = TaskRunner::builder().event_capacity(8192).build().unwrap();
    let mut events = runner.subscribe();
    let s = runner
        .schedule(
            "nightly",
            Schedule::cron("30 2 * * *")
                .unwrap()
                .timezone("Europe/Paris")
                .unwrap(),
            || Task::new("digest", |_: TaskContext| async { Ok::<_, String>(()) }),
        )
        .unwrap();
    // 400 days from now cover at least one spring and one autumn change.
    let days = 400;
    tokio::time::sleep(Duration::from_secs(days * 86_400)).await;
    let info = s.info();
    runner.shutdown().await;
    drop(runner);

    let paris = TimeZone::get("Europe/Paris").unwrap();
    let mut fires = Vec::new();
    while let Some(Ok(event)) = events.recv().await {
        if let EventKind::ScheduleFired { nominal } = event.kind {
            fires.push(
                Timestamp::try_from(nominal)
                    .unwrap()
                    .to_zoned(paris.clone()),
            );
        }
    }
    assert!(
        fires.len() as u64 >= days - 1 && fires.len() as u64 <= days,
        "{}",
        fires.len()
    );
    assert_eq!(info.runs, fires.len() as u64);
    // One fire a local day, on consecutive days.
    for pair in fires.windows(2) {
        assert_eq!(
            pair[0].date().tomorrow().unwrap(),
            pair[1].date(),
            "{pair:?}"
        );
    }
    // Each at 02:30, except on the day 02:30 does not exist (croner runs it at 03:00).
    let offsets: std::collections::HashSet<_> = fires.iter().map(|z| z.offset()).collect();
    assert_eq!(offsets.len(), 2, "summer and winter time both crossed");
    for fire in &fires {
        let gap_day = fire.hour() == 3 && fire.minute() == 0;
        assert!((fire.hour(), fire.minute()) == (2, 30) || gap_day, "{fire}");
    }
    let gap_days = fires.iter().filter(|z| z.hour() == 3).count();
    assert!(
        (1..=2).contains(&gap_days),
        "one spring change a year: {gap_days}"
    );
}
