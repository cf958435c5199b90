//! The PgStore's schema: the migrations this build ships, applied once under an advisory lock.

use super::{PgStore, LOCK_CLASS};
use crate::store::StoreError;

/// The schema versions this build ships, oldest first; the version is the position + 1.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/postgres/0001_runs.sql"),
    include_str!("../migrations/postgres/0002_steps.sql"),
    include_str!("../migrations/postgres/0003_notifications.sql"),
    include_str!("../migrations/postgres/0004_schedules.sql"),
    include_str!("../migrations/postgres/0005_recoveries.sql"),
    include_str!("../migrations/postgres/0006_waits.sql"),
    include_str!("../migrations/postgres/0007_dashboard.sql"),
    include_str!("../migrations/postgres/0008_run_events.sql"),
    include_str!("../migrations/postgres/0009_waiting_index.sql"),
    include_str!("../migrations/postgres/0010_limits.sql"),
    include_str!("../migrations/postgres/0011_step_order.sql"),
    include_str!("../migrations/postgres/0012_budgets.sql"),
];

crate::store::migrate::migrations_on!(sqlx::Postgres, "BIGINT");

impl PgStore {
    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
        let db = |e| self.db(e);
        let mut tx = self.inner.pool.begin().await.map_err(db)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, 0)")
            .bind(LOCK_CLASS)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        apply(&mut tx, MIGRATIONS, db).await?;
        tx.commit().await.map_err(db)
    }
}
