-- taskrunner durable store: run streams (SQLite). Each run's log of events, addressed by
-- offset (`seq`: 0, 1, 2, ... a run; no gap, never reused). `TaskContext::emit` appends
-- `emit` rows, fenced by the run's claim, under the one writer's lock; the triggers below
-- append a `status` row whenever a run's status changes and a `retry` row when a claimed run
-- starts another attempt, in the transaction that changed it. Rows go with their run.
CREATE TABLE taskrunner_run_events (
    run_id     INTEGER NOT NULL REFERENCES taskrunner_runs (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,                 -- the event's offset in its run's log
    at         INTEGER NOT NULL,                 -- ms since the Unix epoch
    kind       TEXT    NOT NULL CHECK (kind IN ('emit', 'status', 'retry')),
    topic      TEXT,                             -- emit: its topic; status: the new status
    value      TEXT,                             -- emit: JSON; retry: the attempt's number
    emit_index INTEGER,                          -- emit: the n-th emit of the run, from 0
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
-- A replayed attempt skips the emits already stored: found by the run's highest emit_index.
CREATE UNIQUE INDEX taskrunner_run_events_emit ON taskrunner_run_events (run_id, emit_index)
    WHERE emit_index IS NOT NULL;
CREATE TRIGGER taskrunner_runs_status_event AFTER UPDATE OF status ON taskrunner_runs
WHEN NEW.status IS NOT OLD.status
BEGIN
    INSERT INTO taskrunner_run_events (run_id, seq, at, kind, topic)
    VALUES (NEW.id,
            (SELECT coalesce(max(seq) + 1, 0) FROM taskrunner_run_events WHERE run_id = NEW.id),
            CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), 'status',
            CASE WHEN NEW.status = 'pending' AND NEW.scheduled_at >
                      CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)
                 THEN 'delayed' ELSE NEW.status END);
END;
CREATE TRIGGER taskrunner_runs_retry_event AFTER UPDATE OF attempts ON taskrunner_runs
WHEN NEW.status = 'running' AND OLD.status = 'running'
    AND NEW.claim_token = OLD.claim_token AND NEW.attempts > OLD.attempts
BEGIN
    INSERT INTO taskrunner_run_events (run_id, seq, at, kind, value)
    VALUES (NEW.id,
            (SELECT coalesce(max(seq) + 1, 0) FROM taskrunner_run_events WHERE run_id = NEW.id),
            CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), 'retry',
            CAST(NEW.attempts AS TEXT));
END;
