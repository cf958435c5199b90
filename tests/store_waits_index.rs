//! Waiting runs cost no polling each: with 1,000 runs waiting in a queue, the claim (which
//! also takes the waiting runs whose deadline or wake time passed) and the next-due query
//! read indexes only, never the whole runs table, and neither walks past the waiting runs
//! to find the ready ones. Both backends.
#![cfg(all(feature = "sqlite", feature = "postgres"))]

#[macro_use]
mod store_support;

use std::time::Duration;

use store_support::{Place, TestDb};

/// 1,000 runs waiting for a signal (due in the year 9999), 5,000 ended ones, one ready run,
/// and one whose wait timed out (due in the past), all in queue `agents`.
async fn fill(db: &TestDb) {
    let sql = match &db.place {
        Place::Sqlite(_) => {
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 5000) \
             INSERT INTO taskrunner_runs (name, queue, input, scheduled_at, created_at, status, \
               wait_kind, wait_signal) \
             SELECT 'w', 'agents', 'null', \
               CASE WHEN x <= 1000 THEN 253402300799999 ELSE 0 END, 0, \
               CASE WHEN x <= 1000 THEN 'pending' ELSE 'completed' END, \
               CASE WHEN x <= 1000 THEN 'signal' END, CASE WHEN x <= 1000 THEN 'go' END \
             FROM n; \
             INSERT INTO taskrunner_runs (name, queue, input, scheduled_at, created_at) \
             VALUES ('w', 'agents', '\"ready\"', 0, 0); \
             INSERT INTO taskrunner_runs (name, queue, input, scheduled_at, created_at, wait_kind) \
             VALUES ('w', 'agents', '\"timed out\"', 1, 0, 'sleep'); \
             ANALYZE;"
        }
        Place::Pg { .. } => {
            "INSERT INTO taskrunner_runs (name, queue, input, scheduled_at, created_at, \
               wait_kind, wait_signal) \
             SELECT 'w', 'agents', 'null', 253402300799999, 0, 'signal', 'go' \
             FROM generate_series(1, 1000); \
             INSERT INTO taskrunner_runs (name, queue, input, scheduled_at, created_at, status) \
             SELECT 'w', 'agents', 'null', 0, 0, 'completed' FROM generate_series(1, 5000); \
             INSERT INTO taskrunner_runs (name, queue, input, scheduled_at, created_at) \
             VALUES ('w', 'agents', '\"ready\"', 0, 0); \
             INSERT INTO taskrunner_runs (name, queue, input, scheduled_at, created_at, wait_kind) \
             VALUES ('w', 'agents', '\"timed out\"', 1, 0, 'sleep'); \
             ANALYZE taskrunner_runs;"
        }
    };
    db.execute(sql).await;
}

/// Each access to `taskrunner_runs` in `plan` is an index search (SQLite `SEARCH ... USING
/// INDEX` or by id; PostgreSQL no `Seq Scan`), and both the claim and the waiting index are
/// read.
fn assert_indexed(what: &str, plan: &str, sqlite: bool, indexes: &[&str]) {
    for line in plan.lines() {
        if sqlite {
            assert!(
                !line.contains("SCAN taskrunner_runs"),
                "{what} scans the runs table (or a whole index of it):\n{plan}"
            );
            if line.contains("taskrunner_runs ") {
                assert!(
                    line.contains("SEARCH")
                        && (line.contains("INDEX") || line.contains("INTEGER PRIMARY KEY")),
                    "{what} reads the runs table without an index search:\n{plan}"
                );
            }
        } else {
            assert!(
                !line.contains("Seq Scan on taskrunner_runs"),
                "{what} scans the runs table:\n{plan}"
            );
        }
    }
    for index in indexes {
        assert!(plan.contains(index), "{what} does not use {index}:\n{plan}");
    }
}

async fn the_claim_and_the_due_scan_use_indexes_with_1000_waiting(db: TestDb) {
    fill(&db).await;
    let sqlite = matches!(db.place, Place::Sqlite(_));
    let names = vec!["w".to_owned()];
    let plans = db.store.due_plans("agents", &names).await.unwrap();
    let both = ["taskrunner_runs_claim", "taskrunner_runs_waiting"];
    assert_indexed("the claim", &plans[0], sqlite, &both);
    assert_indexed("the next-due query", &plans[1], sqlite, &both);
    if !sqlite {
        // "Now" bounds the waiting index's scan (an index condition, not a filter).
        assert!(
            plans[0]
                .lines()
                .skip_while(|l| !l.contains("taskrunner_runs_waiting"))
                .nth(1)
                .is_some_and(|l| l.contains("Index Cond") && l.contains("scheduled_at")),
            "the due waiting runs are not bounded by the index:\n{}",
            plans[0]
        );
    }
    // And it does what it says: the ready run and the timed-out one are claimed, no waiting
    // one; the next due is the waiting runs' year-9999 deadline.
    let claimed = db
        .store
        .claim("agents", &names, 10, "me", Duration::from_secs(30), None)
        .await
        .unwrap();
    let mut inputs: Vec<_> = claimed.iter().map(|c| c.input.clone()).collect();
    inputs.sort();
    assert_eq!(inputs, ["\"ready\"", "\"timed out\""]);
    let again = db
        .store
        .claim("agents", &names, 10, "me", Duration::from_secs(30), None)
        .await
        .unwrap();
    assert!(again.is_empty(), "a waiting run was claimed: {again:?}");
}

conformance!(the_claim_and_the_due_scan_use_indexes_with_1000_waiting);
