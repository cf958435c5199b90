-- taskrunner durable store, schema version 5 (PostgreSQL): how many times each run was recovered
-- after the process running it was lost (a recovery is not a retry: it uses none of the
-- run's attempts; the definition's max_recoveries bounds it).
ALTER TABLE taskrunner_runs ADD COLUMN recoveries INTEGER NOT NULL DEFAULT 0;
