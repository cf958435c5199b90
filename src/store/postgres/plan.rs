//! The query plans of the statements that find due runs, for the test that asserts they read
//! indexes (never the whole runs table) however many runs wait.

use super::{manage, PgStore};
use crate::store::dialect::Dialect;
use crate::store::StoreError;

impl PgStore {
    /// `EXPLAIN` of the claim and of `next_due`, as run for `queue` and `names` (not run).
    pub(crate) async fn due_plans(
        &self,
        queue: &str,
        names: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let db = |e| self.db(e);
        let claim: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "EXPLAIN {}",
            <Self as Dialect>::CLAIM
        )))
        .bind("plan")
        .bind(1_i64)
        .bind(queue)
        .bind(names)
        .bind(10_i64)
        .fetch_all(&self.inner.pool)
        .await
        .map_err(db)?;
        let next: Vec<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {}", manage::NEXT_DUE)))
                .bind(queue)
                .bind(names)
                .fetch_all(&self.inner.pool)
                .await
                .map_err(db)?;
        Ok(vec![claim.join("\n"), next.join("\n")])
    }
}
