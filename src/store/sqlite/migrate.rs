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
    include_str!("../migrations/sqlite/0010_limits.sql"),
    include_str!("../migrations/sqlite/0011_step_order.sql"),
    include_str!("../migrations/sqlite/0012_budgets.sql"),
];

crate::store::migrate::migrations_on!(sqlx::Sqlite, "INTEGER");

pub(super) async fn migrate(writer: &SqlitePool) -> Result<(), StoreError> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    apply(&mut tx, MIGRATIONS, db).await?;
    tx.commit().await.map_err(db)
}
