-- taskrunner durable store (SQLite): the dashboard's indexes. Each list filter walks its own
-- index newest first (ORDER BY id DESC, keyset pages on id), the queue list is a skip scan of
-- (queue, id), and a queue's recent ends are read by (queue, status, finished_at).
CREATE INDEX IF NOT EXISTS taskrunner_runs_status_id ON taskrunner_runs (status, id);
CREATE INDEX IF NOT EXISTS taskrunner_runs_name_id ON taskrunner_runs (name, id);
CREATE INDEX IF NOT EXISTS taskrunner_runs_queue_id ON taskrunner_runs (queue, id);
CREATE INDEX IF NOT EXISTS taskrunner_runs_created ON taskrunner_runs (created_at, id);
-- The overview's links (a queue's failed runs) and a status with a name.
CREATE INDEX IF NOT EXISTS taskrunner_runs_status_queue_id ON taskrunner_runs (status, queue, id);
CREATE INDEX IF NOT EXISTS taskrunner_runs_status_name_id ON taskrunner_runs (status, name, id);
CREATE INDEX IF NOT EXISTS taskrunner_runs_queue_ended ON taskrunner_runs (queue, status, finished_at)
    WHERE finished_at IS NOT NULL;
