//! The query plans of the statements that find due runs, for the test that asserts they read
//! indexes (never the whole runs table) however many runs wait.

use sqlx::Row;

use super::{db, manage, SqliteStore};
use crate::store::dialect::Dialect;
use crate::store::StoreError;

impl SqliteStore {
    /// `EXPLAIN QUERY PLAN` of the claim and of `next_due`, as run for `queue` and `names`.
    pub(crate) async fn due_plans(
        &self,
        queue: &str,
        names: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let names = serde_json::to_string(names).unwrap_or_default();
        let now = self.now();
        let mut conn = self.inner.readers.acquire().await.map_err(db)?;
        let claim = sqlx::query(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {}",
            <Self as Dialect>::CLAIM
        )))
        .bind("plan")
        .bind(1_i64)
        .bind(queue)
        .bind(&names)
        .bind(10_i64)
        .bind(now)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        let next = sqlx::query(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {}",
            manage::NEXT_DUE
        )))
        .bind(queue)
        .bind(now)
        .bind(&names)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        [claim, next]
            .iter()
            .map(|rows| {
                rows.iter()
                    .map(|r| r.try_get::<String, _>("detail"))
                    .collect::<Result<Vec<_>, _>>()
                    .map(|lines| lines.join("\n"))
            })
            .collect::<Result<_, _>>()
            .map_err(db)
    }
}
