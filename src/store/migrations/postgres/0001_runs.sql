-- taskrunner durable store, schema version 1 (PostgreSQL). Times are milliseconds since the
-- Unix epoch, read from the database's clock, so that processes on several machines agree.
CREATE FUNCTION taskrunner_now_ms() RETURNS BIGINT LANGUAGE sql VOLATILE AS
    $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT $$;
CREATE SEQUENCE taskrunner_runs_id_seq;
CREATE TABLE taskrunner_runs (
    id               BIGINT  PRIMARY KEY DEFAULT nextval('taskrunner_runs_id_seq'),
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
    scheduled_at     BIGINT  NOT NULL,
    created_at       BIGINT  NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    claim_token      BIGINT  NOT NULL DEFAULT 0,          -- fencing: +1 on every claim
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    notify           BOOLEAN NOT NULL DEFAULT FALSE
);
ALTER SEQUENCE taskrunner_runs_id_seq OWNED BY taskrunner_runs.id;
-- The claim order: priority, then scheduled time, then submission order (FOR UPDATE SKIP LOCKED).
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
