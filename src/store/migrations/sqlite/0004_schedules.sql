-- taskrunner durable store, schema version 4 (SQLite): durable schedules
-- (`TaskRunner::schedule_run`). Each fire is a compare-and-swap of `next_fire_at` (the
-- nominal time due) in the same transaction that inserts its run, so each occurrence fires
-- once, whichever process gets there first.
CREATE TABLE taskrunner_schedules (
    name         TEXT    PRIMARY KEY,
    def_name     TEXT    NOT NULL,                    -- the TaskDef its runs are of
    queue        TEXT    NOT NULL,
    priority     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 1,
    input        TEXT    NOT NULL,                    -- JSON, the same for every run
    spec         TEXT    NOT NULL,                    -- JSON: the timetable and options
    origin       INTEGER NOT NULL,                    -- creation, ms (Schedule::every counts from it)
    status       TEXT    NOT NULL DEFAULT 'active'
                 CHECK (status IN ('active', 'paused', 'stopped')),
    next_fire_at INTEGER,                             -- nominal time of the next fire, ms
    due_at       INTEGER,                             -- next_fire_at + its jitter
    last_fire_at INTEGER,
    last_run_id  INTEGER,
    runs         INTEGER NOT NULL DEFAULT 0,
    failures     INTEGER NOT NULL DEFAULT 0,
    skipped      INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    created_at   INTEGER NOT NULL
);
CREATE INDEX taskrunner_schedules_due ON taskrunner_schedules (due_at) WHERE status = 'active';
ALTER TABLE taskrunner_runs ADD COLUMN schedule TEXT;   -- the durable schedule that fired it
CREATE TRIGGER taskrunner_runs_schedule_failed AFTER UPDATE OF status ON taskrunner_runs
WHEN NEW.schedule IS NOT NULL AND NEW.status = 'failed' AND OLD.status <> 'failed'
BEGIN
    UPDATE taskrunner_schedules SET failures = failures + 1, last_error = NEW.error
    WHERE name = NEW.schedule;
END;
