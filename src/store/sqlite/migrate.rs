//! The SqliteStore's schema: the migrations this build ships, applied in one `BEGIN IMMEDIATE`
//! transaction.

use sqlx::sqlite::SqlitePool;

use super::db;
use crate::store::StoreError;

/// The schema versions this build ships, oldest first; the version is the position + 1.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_runs.sql"),
    include_str!("../migrations/sqlite/0002_steps.sql"),
    include_str!("../migrations/sqlite/0003_notifications.sql"),
    include_str!("../migrations/sqlite/0004_schedules.sql"),
    include_str!("../migrations/sqlite/0005_recoveries.sql"),
    include_str!("../migrations/sqlite/0006_waits.sql"),
    include_str!("../migrations/sqlite/0007_dashboard.sql"),
    include_str!("../migrations/sqlite/0008_run_events.sql"),
    include_str!("../migrations/sqlite/0009_waiting_index.sql"),
];

pub(super) async fn migrate(writer: &SqlitePool) -> Result<(), StoreError> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS taskrunner_schema (version INTEGER NOT NULL)")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let found: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM taskrunner_schema")
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
    let found = found.unwrap_or(0);
    let supported = MIGRATIONS.len() as i64;
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    for sql in &MIGRATIONS[found as usize..] {
        sqlx::raw_sql(*sql).execute(&mut *tx).await.map_err(db)?;
    }
    if found < supported {
        sqlx::query("DELETE FROM taskrunner_schema")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("INSERT INTO taskrunner_schema (version) VALUES ($1)")
            .bind(supported)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}
