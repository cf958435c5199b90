-- taskrunner durable store: run streams (PostgreSQL). Each run's log of events, addressed by
-- offset (`seq`: 0, 1, 2, ... a run; no gap, never reused). `TaskContext::emit` appends
-- `emit` rows while it holds the run's row (`FOR NO KEY UPDATE`, fenced by the claim); the
-- trigger below appends a `status` row whenever a run's status changes and a `retry` row
-- when a claimed run starts another attempt, under the row lock of the update that changed
-- it. So offsets are taken one writer at a time and commit in order: a reader never sees
-- offset n + 1 without n. Each append notifies `taskrunner_events` with the run's id, for
-- readers in other processes. Rows go with their run.
CREATE TABLE taskrunner_run_events (
    run_id     BIGINT  NOT NULL REFERENCES taskrunner_runs (id) ON DELETE CASCADE,
    seq        BIGINT  NOT NULL,                 -- the event's offset in its run's log
    at         BIGINT  NOT NULL,                 -- ms since the Unix epoch
    kind       TEXT    NOT NULL CHECK (kind IN ('emit', 'status', 'retry')),
    topic      TEXT,                             -- emit: its topic; status: the new status
    value      TEXT,                             -- emit: JSON; retry: the attempt's number
    emit_index BIGINT,                           -- emit: the n-th emit of the run, from 0
    PRIMARY KEY (run_id, seq)
);
-- A replayed attempt skips the emits already stored: found by the run's highest emit_index.
CREATE UNIQUE INDEX taskrunner_run_events_emit ON taskrunner_run_events (run_id, emit_index)
    WHERE emit_index IS NOT NULL;
CREATE FUNCTION taskrunner_runs_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO taskrunner_run_events (run_id, seq, at, kind, topic)
        VALUES (NEW.id,
                (SELECT coalesce(max(seq) + 1, 0) FROM taskrunner_run_events WHERE run_id = NEW.id),
                taskrunner_now_ms(), 'status',
                CASE WHEN NEW.status = 'pending' AND NEW.scheduled_at > taskrunner_now_ms()
                     THEN 'delayed' ELSE NEW.status END);
    ELSIF NEW.status = 'running' AND NEW.claim_token = OLD.claim_token
          AND NEW.attempts > OLD.attempts THEN
        INSERT INTO taskrunner_run_events (run_id, seq, at, kind, value)
        VALUES (NEW.id,
                (SELECT coalesce(max(seq) + 1, 0) FROM taskrunner_run_events WHERE run_id = NEW.id),
                taskrunner_now_ms(), 'retry', NEW.attempts::text);
    ELSE
        RETURN NULL;
    END IF;
    PERFORM pg_notify('taskrunner_events', NEW.id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER taskrunner_runs_event AFTER UPDATE OF status, attempts ON taskrunner_runs
FOR EACH ROW EXECUTE FUNCTION taskrunner_runs_event();
