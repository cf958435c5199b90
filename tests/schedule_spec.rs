//! `Schedule` as a pure function of time: fire times, time zones, DST, jitter, bad input.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use taskrunner::{Schedule, ScheduleError};

fn at(s: &str) -> SystemTime {
    SystemTime::from(Timestamp::from_str(s).unwrap())
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn every_fires_on_a_fixed_grid_from_its_origin() {
    let origin = at("2026-01-01T00:00:00.250Z");
    let every = Schedule::every(secs(10));
    assert_eq!(every.first_fire(origin), Some(origin + secs(10)));
    // From any point, the next grid point strictly after it.
    assert_eq!(
        every.next_fire(origin, origin + secs(10)),
        Some(origin + secs(20))
    );
    assert_eq!(
        every.next_fire(origin, origin + secs(37)),
        Some(origin + secs(40))
    );
    assert_eq!(
        every.upcoming(origin, 3),
        [origin + secs(10), origin + secs(20), origin + secs(30)]
    );
    let now = every.clone().immediately();
    assert_eq!(now.first_fire(origin), Some(origin));
    assert_eq!(now.upcoming(origin, 2), [origin, origin + secs(10)]);
}

#[test]
fn start_and_end_times_bound_the_timetable() {
    let origin = at("2026-01-01T00:00:00Z");
    let s = Schedule::every(secs(10))
        .start_at(origin + secs(25))
        .end_at(origin + secs(60));
    assert_eq!(
        s.upcoming(origin, 10),
        [
            origin + secs(30),
            origin + secs(40),
            origin + secs(50),
            origin + secs(60)
        ]
    );
    let cron = Schedule::cron("0 * * * *")
        .unwrap()
        .start_at(at("2026-01-01T05:00:00Z"))
        .end_at(at("2026-01-01T07:30:00Z"));
    assert_eq!(
        cron.upcoming(origin, 10),
        [
            at("2026-01-01T05:00:00Z"),
            at("2026-01-01T06:00:00Z"),
            at("2026-01-01T07:00:00Z")
        ]
    );
}

#[test]
fn cron_fires_in_utc_unless_given_a_zone() {
    let origin = at("2026-06-01T12:34:56.789Z");
    let utc = Schedule::cron("0 3 * * *").unwrap();
    assert_eq!(utc.first_fire(origin), Some(at("2026-06-02T03:00:00Z")));
    // Paris is UTC+2 in June.
    let paris = utc.clone().timezone("Europe/Paris").unwrap();
    assert_eq!(paris.first_fire(origin), Some(at("2026-06-02T01:00:00Z")));
    // Six fields: seconds first.
    let every_15s = Schedule::cron("*/15 * * * * *").unwrap();
    assert_eq!(
        every_15s.upcoming(origin, 3),
        [
            at("2026-06-01T12:35:00Z"),
            at("2026-06-01T12:35:15Z"),
            at("2026-06-01T12:35:30Z")
        ]
    );
    // A fire time exactly on an occurrence moves to the next one.
    let on = at("2026-06-01T12:35:15Z");
    assert_eq!(
        every_15s.next_fire(origin, on),
        Some(at("2026-06-01T12:35:30Z"))
    );
}

/// Every fire of a daily 02:30 Paris job from `from` to `to`, by the schedule and by croner.
fn paris_0230(from: &str, to: &str) -> (Vec<Zoned>, Vec<Zoned>) {
    let paris = TimeZone::get("Europe/Paris").unwrap();
    let schedule = Schedule::cron("30 2 * * *")
        .unwrap()
        .timezone("Europe/Paris")
        .unwrap();
    let start = at(from);
    let end = at(to);
    let ours: Vec<Zoned> = schedule
        .upcoming(start, 100)
        .into_iter()
        .take_while(|t| *t < end)
        .map(|t| Timestamp::try_from(t).unwrap().to_zoned(paris.clone()))
        .collect();
    let cron = croner::Cron::from_str("30 2 * * *").unwrap();
    let mut theirs = Vec::new();
    let mut cursor = Timestamp::try_from(start).unwrap().to_zoned(paris.clone());
    loop {
        cursor = cron.find_next_occurrence(&cursor, false).unwrap();
        if SystemTime::from(cursor.timestamp()) >= end {
            break;
        }
        theirs.push(cursor.clone());
    }
    (ours, theirs)
}

fn one_fire_a_day(fires: &[Zoned], first: Date, days: i32) {
    let dates: Vec<Date> = fires.iter().map(|z| z.date()).collect();
    let expected: Vec<Date> = (0..days)
        .map(|i| first.checked_add(jiff::Span::new().days(i)).unwrap())
        .collect();
    assert_eq!(dates, expected, "one fire each local day: {fires:?}");
}

#[test]
fn dst_spring_forward_fires_once_on_the_day_0230_does_not_exist() {
    // 2026-03-29: Paris clocks jump from 02:00 to 03:00.
    let (ours, theirs) = paris_0230("2026-03-26T00:00:00Z", "2026-04-02T00:00:00Z");
    assert_eq!(ours, theirs, "the fire-time function agrees with croner");
    one_fire_a_day(&ours, jiff::civil::date(2026, 3, 26), 7);
    // croner runs the job at 03:00, the first minute after the gap.
    let change_day = &ours[3];
    assert_eq!(change_day.date(), jiff::civil::date(2026, 3, 29));
    assert_eq!((change_day.hour(), change_day.minute()), (3, 0));
    for fire in ours.iter().filter(|z| z.date() != change_day.date()) {
        assert_eq!((fire.hour(), fire.minute()), (2, 30));
    }
}

#[test]
fn dst_fall_back_fires_once_on_the_day_0230_happens_twice() {
    // 2026-10-25: Paris clocks go back from 03:00 to 02:00, so 02:30 happens twice.
    let (ours, theirs) = paris_0230("2026-10-22T00:00:00Z", "2026-10-29T00:00:00Z");
    assert_eq!(ours, theirs, "the fire-time function agrees with croner");
    one_fire_a_day(&ours, jiff::civil::date(2026, 10, 22), 7);
    for fire in &ours {
        assert_eq!((fire.hour(), fire.minute()), (2, 30));
    }
    // The first 02:30 (summer time, +02:00) of the day it happens twice.
    assert_eq!(ours[3].date(), jiff::civil::date(2026, 10, 25));
    assert_eq!(ours[3].offset(), jiff::tz::offset(2));
}

#[test]
fn jitter_is_bounded_and_fixed_by_name_and_fire_time() {
    let s = Schedule::every(secs(60)).jitter(secs(5));
    let base = at("2026-01-01T00:00:00Z");
    let mut distinct = std::collections::HashSet::new();
    for k in 0..500 {
        let nominal = base + secs(60 * k);
        let delay = s.jitter_for("monitor", nominal);
        assert!(delay < secs(5), "{delay:?} out of bounds");
        assert_eq!(delay, s.jitter_for("monitor", nominal), "deterministic");
        distinct.insert(delay);
    }
    assert!(
        distinct.len() > 400,
        "delays spread out: {} distinct",
        distinct.len()
    );
    let t = base + secs(3600);
    let names: std::collections::HashSet<Duration> = (0..50)
        .map(|i| s.jitter_for(&format!("schedule-{i}"), t))
        .collect();
    assert!(names.len() > 40, "names spread out too");
    assert_eq!(
        Schedule::every(secs(60)).jitter_for("monitor", t),
        Duration::ZERO
    );
}

#[test]
fn an_invalid_cron_expression_names_the_expression_and_the_field() {
    let cases = [
        ("*/5 25 * * *", "hour"),
        ("61 * * * *", "minute"),
        ("0 0 32 * *", "day of month"),
        ("0 0 * 13 *", "month"),
        ("0 0 * * 9", "day of week"),
        ("70 0 0 * * *", "second"),
        ("0 0 * * MONDAY-ish", "day of week"),
        ("* * *", "expression"),
        ("* * * * * * *", "expression"),
    ];
    for (expression, field) in cases {
        match Schedule::cron(expression) {
            Err(ScheduleError::InvalidCron {
                expression: e,
                field: f,
                ..
            }) => {
                assert_eq!((e.as_str(), f.as_str()), (expression, field));
                let message = Schedule::cron(expression).unwrap_err().to_string();
                assert!(message.contains(expression), "{message}");
                assert!(message.contains(field), "{message}");
            }
            other => panic!("`{expression}`: {other:?}"),
        }
    }
    assert!(Schedule::cron("@daily").is_ok());
    assert!(Schedule::cron("0 9 * * MON-FRI").is_ok());
}

#[test]
fn an_unknown_time_zone_is_an_error_naming_it() {
    let err = Schedule::cron("0 3 * * *")
        .unwrap()
        .timezone("Mars/Olympus_Mons")
        .unwrap_err();
    assert_eq!(
        err,
        ScheduleError::UnknownTimeZone("Mars/Olympus_Mons".into())
    );
    assert!(err.to_string().contains("Mars/Olympus_Mons"));
}

#[test]
fn a_timetable_with_no_fire_left_has_no_first_fire() {
    let now = SystemTime::now();
    assert_eq!(Schedule::cron("0 0 30 2 *").unwrap().first_fire(now), None);
    let over = Schedule::every(secs(1)).end_at(now - secs(1));
    assert_eq!(over.first_fire(now), None);
}
