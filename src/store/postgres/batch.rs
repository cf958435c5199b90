//! Submitting a batch of runs to PostgreSQL in one transaction, deduplicated.

use super::*;

impl PgStore {
    /// Many runs in one transaction: ids drawn from the sequence first, so that the rows
    /// deduplicated away (by `ON CONFLICT`) are known by id and resolved to the runs holding
    /// their keys.
    pub(super) async fn submit_batch(&self, runs: &[NewRun]) -> Result<Vec<RunId>, StoreError> {
        let db = |e| self.db(e);
        let mut tx = self.inner.pool.begin().await.map_err(db)?;
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "SELECT nextval('taskrunner_runs_id_seq') FROM generate_series(1, $1)",
        )
        .bind(runs.len() as i64)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        ids.sort_unstable();
        let column = |f: &dyn Fn(&NewRun) -> Option<String>| runs.iter().map(f).collect::<Vec<_>>();
        let inserted: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO taskrunner_runs (id, name, queue, priority, input, max_attempts, call_id, \
               dedup_key, notify, scheduled_at, created_at, cost) \
             SELECT u.id, u.name, u.queue, u.priority, u.input, u.max_attempts, u.call_id, \
               u.dedup_key, u.notify, t.now + u.delay, t.now, u.cost \
             FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::int4[], \
               $7::text[], $8::text[], $9::bool[], $10::int8[], $11::int8[]) \
               AS u(id, name, queue, priority, input, max_attempts, call_id, dedup_key, notify, delay, \
                 cost), \
               (SELECT taskrunner_now_ms() AS now) AS t \
             ORDER BY u.id \
             ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL \
               AND status IN ('pending', 'running') DO NOTHING \
             RETURNING id",
        )
        .bind(&ids)
        .bind(runs.iter().map(|r| r.name.clone()).collect::<Vec<_>>())
        .bind(runs.iter().map(|r| r.queue.clone()).collect::<Vec<_>>())
        .bind(runs.iter().map(|r| r.priority).collect::<Vec<_>>())
        .bind(runs.iter().map(|r| r.input.clone()).collect::<Vec<_>>())
        .bind(runs.iter().map(|r| r.max_attempts).collect::<Vec<_>>())
        .bind(column(&|r| r.call_id.clone()))
        .bind(column(&|r| r.dedup_key.clone()))
        .bind(runs.iter().map(|r| r.notify).collect::<Vec<_>>())
        .bind(runs.iter().map(|r| r.delay_ms).collect::<Vec<_>>())
        .bind(runs.iter().map(|r| r.cost).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let mut result: Vec<RunId> = ids.iter().map(|id| RunId::from_i64(*id)).collect();
        if inserted.len() < runs.len() {
            // Deduplicated: hand back the unfinished run holding each key.
            let inserted: HashSet<i64> = inserted.into_iter().collect();
            let keys: Vec<String> = runs
                .iter()
                .zip(&ids)
                .filter(|(_, id)| !inserted.contains(id))
                .filter_map(|(run, _)| run.dedup_key.clone())
                .collect();
            let existing: Vec<(i64, String)> = sqlx::query_as(
                "SELECT id, dedup_key FROM taskrunner_runs WHERE dedup_key = ANY($1) \
                 AND status IN ('pending', 'running')",
            )
            .bind(&keys)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            for (i, run) in runs.iter().enumerate() {
                if inserted.contains(&ids[i]) {
                    continue;
                }
                let found = existing
                    .iter()
                    .find(|(_, key)| Some(key) == run.dedup_key.as_ref());
                match found {
                    Some((id, _)) => result[i] = RunId::from_i64(*id),
                    None => {
                        return Err(StoreError::Database(format!(
                            "the run holding dedup key `{}` finished while this submit ran: \
                             submit again",
                            run.dedup_key.as_deref().unwrap_or_default()
                        )))
                    }
                }
            }
        }
        let mut queues: Vec<&str> = runs.iter().map(|r| r.queue.as_str()).collect();
        queues.sort_unstable();
        queues.dedup();
        sqlx::query("SELECT pg_notify($1, q) FROM UNNEST($2::text[]) AS q")
            .bind(RUNS_CHANNEL)
            .bind(&queues)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(result)
    }
}
