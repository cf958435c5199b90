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
-- Appends a claimed run's emits in one round trip: holds the run's row (fenced by the claim
-- token; -1 if it does not hold), skips the emits an earlier attempt stored, takes the next
-- offsets, notifies; returns the log's next offset. Each statement takes a fresh snapshot,
-- so the offsets read after the lock include everything committed before it.
CREATE FUNCTION taskrunner_append_emits(p_run BIGINT, p_token BIGINT, p_at BIGINT[],
    p_topic TEXT[], p_value TEXT[], p_idx BIGINT[]) RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    next_seq BIGINT;
    stored   BIGINT;
    added    BIGINT;
BEGIN
    PERFORM 1 FROM taskrunner_runs
    WHERE id = p_run AND claim_token = p_token AND status = 'running' FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN -1;
    END IF;
    SELECT coalesce(max(seq) + 1, 0) INTO next_seq
    FROM taskrunner_run_events WHERE run_id = p_run;
    SELECT coalesce(max(emit_index) + 1, 0) INTO stored
    FROM taskrunner_run_events WHERE run_id = p_run AND emit_index IS NOT NULL;
    INSERT INTO taskrunner_run_events (run_id, seq, at, kind, topic, value, emit_index)
    SELECT p_run, next_seq + row_number() OVER (ORDER BY o) - 1, at, 'emit', topic, value, idx
    FROM UNNEST(p_at, p_topic, p_value, p_idx) WITH ORDINALITY AS e(at, topic, value, idx, o)
    WHERE idx >= stored;
    GET DIAGNOSTICS added = ROW_COUNT;
    IF added > 0 THEN
        PERFORM pg_notify('taskrunner_events', p_run::text);
    END IF;
    RETURN next_seq + added;
END
$$;
