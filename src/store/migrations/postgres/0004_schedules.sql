-- taskrunner durable store, schema version 4 (PostgreSQL): durable schedules
-- (`TaskRunner::schedule_run`). Each fire is a compare-and-swap of `next_fire_at` (the
-- nominal time due), under the schedule row's lock, in the same transaction that inserts its
-- run, so each occurrence fires once, whichever process gets there first.
CREATE TABLE taskrunner_schedules (
    name         TEXT    PRIMARY KEY,
    def_name     TEXT    NOT NULL,                    -- the TaskDef its runs are of
    queue        TEXT    NOT NULL,
    priority     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 1,
    input        TEXT    NOT NULL,                    -- JSON, the same for every run
    spec         TEXT    NOT NULL,                    -- JSON: the timetable and options
    origin       BIGINT  NOT NULL,                    -- creation, ms (Schedule::every counts from it)
    status       TEXT    NOT NULL DEFAULT 'active'
                 CHECK (status IN ('active', 'paused', 'stopped')),
    next_fire_at BIGINT,                              -- nominal time of the next fire, ms
    due_at       BIGINT,                              -- next_fire_at + its jitter
    last_fire_at BIGINT,
    last_run_id  BIGINT,
    runs         BIGINT  NOT NULL DEFAULT 0,
    failures     BIGINT  NOT NULL DEFAULT 0,
    skipped      BIGINT  NOT NULL DEFAULT 0,
    last_error   TEXT,
    created_at   BIGINT  NOT NULL
);
CREATE INDEX taskrunner_schedules_due ON taskrunner_schedules (due_at) WHERE status = 'active';
ALTER TABLE taskrunner_runs ADD COLUMN schedule TEXT;   -- the durable schedule that fired it
CREATE FUNCTION taskrunner_runs_schedule_failed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE taskrunner_schedules SET failures = failures + 1, last_error = NEW.error
    WHERE name = NEW.schedule;
    RETURN NULL;
END
$$;
CREATE TRIGGER taskrunner_runs_schedule_failed AFTER UPDATE OF status ON taskrunner_runs
FOR EACH ROW
WHEN (NEW.schedule IS NOT NULL AND NEW.status = 'failed' AND OLD.status <> 'failed')
EXECUTE FUNCTION taskrunner_runs_schedule_failed();
