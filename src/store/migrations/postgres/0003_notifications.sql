-- taskrunner durable store, schema version 3 (PostgreSQL): durable notifications.
-- A run submitted with `RunOptions::notify` deposits one row here when it ends (in the same
-- transaction as its end, by the trigger below); `drain_run_notifications` deletes and
-- returns rows claimed with FOR UPDATE SKIP LOCKED, so each is handed to exactly one drainer.
CREATE TABLE taskrunner_notifications (
    id          BIGSERIAL PRIMARY KEY,
    run_id      BIGINT  NOT NULL,
    name        TEXT    NOT NULL,
    queue       TEXT    NOT NULL,
    call_id     TEXT,
    status      TEXT    NOT NULL,
    text        TEXT    NOT NULL,                     -- the output (JSON) or the error
    finished_at BIGINT  NOT NULL
);
CREATE FUNCTION taskrunner_runs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO taskrunner_notifications (run_id, name, queue, call_id, status, text, finished_at)
    VALUES (NEW.id, NEW.name, NEW.queue, NEW.call_id, NEW.status,
            coalesce(NEW.output, NEW.error, ''), coalesce(NEW.finished_at, taskrunner_now_ms()));
    RETURN NULL;
END
$$;
CREATE TRIGGER taskrunner_runs_notify AFTER UPDATE OF status ON taskrunner_runs
FOR EACH ROW
WHEN (NEW.notify AND NEW.status IN ('completed', 'failed', 'cancelled')
      AND OLD.status NOT IN ('completed', 'failed', 'cancelled'))
EXECUTE FUNCTION taskrunner_runs_notify();
