//! The schema's migrations, applied the same way on every backend: each backend's
//! `migrate.rs` lists its `MIGRATIONS` (one SQL file a version), opens the transaction
//! (with the lock its database needs) and expands `migrations_on!` for the steps between.

/// Defines `apply(tx, migrations, db)` on database `$db`, whose version column has SQL type
/// `$version` (a literal): in transaction `tx`, creates `taskrunner_schema` if missing,
/// refuses a schema newer than `migrations` ([`StoreError::SchemaTooNew`]), runs the missing
/// migrations in order and records the version (the position of the last + 1). The caller
/// commits.
///
/// [`StoreError::SchemaTooNew`]: crate::store::StoreError::SchemaTooNew
macro_rules! migrations_on {
    ($db:ty, $version:literal) => {
        async fn apply(
            tx: &mut sqlx::Transaction<'_, $db>,
            migrations: &[&'static str],
            db: impl Fn(sqlx::Error) -> $crate::store::StoreError,
        ) -> Result<(), $crate::store::StoreError> {
            sqlx::raw_sql(concat!(
                "CREATE TABLE IF NOT EXISTS taskrunner_schema (version ",
                $version,
                " NOT NULL)"
            ))
            .execute(&mut **tx)
            .await
            .map_err(&db)?;
            let found: Option<i64> =
                sqlx::query_scalar("SELECT max(version) FROM taskrunner_schema")
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(&db)?;
            let found = found.unwrap_or(0);
            let supported = migrations.len() as i64;
            if found > supported {
                return Err($crate::store::StoreError::SchemaTooNew { found, supported });
            }
            for sql in &migrations[found as usize..] {
                sqlx::raw_sql(*sql).execute(&mut **tx).await.map_err(&db)?;
            }
            if found < supported {
                sqlx::query("DELETE FROM taskrunner_schema")
                    .execute(&mut **tx)
                    .await
                    .map_err(&db)?;
                sqlx::query("INSERT INTO taskrunner_schema (version) VALUES ($1)")
                    .bind(supported)
                    .execute(&mut **tx)
                    .await
                    .map_err(&db)?;
            }
            Ok(())
        }
    };
}
pub(crate) use migrations_on;
