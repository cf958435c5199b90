-- taskrunner durable store, schema version 1 (SQLite). Times are milliseconds since the Unix epoch.
CREATE TABLE taskrunner_runs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after pruning
    name             TEXT    NOT NULL,
    queue            TEXT    NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    status           TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    input            TEXT    NOT NULL,                    -- JSON
    output           TEXT,                                -- JSON
    error            TEXT,
    error_kind       TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 1,
    call_id          TEXT,
    dedup_key        TEXT,
    scheduled_at     INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    claim_token      INTEGER NOT NULL DEFAULT 0,          -- fencing: +1 on every claim
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    notify           INTEGER NOT NULL DEFAULT 0
);
-- The claim order: priority, then scheduled time, then submission order.
CREATE INDEX taskrunner_runs_claim ON taskrunner_runs (queue, priority DESC, scheduled_at, id)
    WHERE status = 'pending';
CREATE INDEX taskrunner_runs_running ON taskrunner_runs (queue, lease_expires_at)
    WHERE status = 'running';
CREATE INDEX taskrunner_runs_owner ON taskrunner_runs (lease_owner)
    WHERE status = 'running';
CREATE INDEX taskrunner_runs_finished ON taskrunner_runs (finished_at)
    WHERE finished_at IS NOT NULL;
-- One unfinished run per deduplication key.
CREATE UNIQUE INDEX taskrunner_runs_dedup ON taskrunner_runs (dedup_key)
    WHERE dedup_key IS NOT NULL AND status IN ('pending', 'running');
