-- taskrunner durable store, schema version 3 (SQLite): durable notifications.
-- A run submitted with `RunOptions::notify` deposits one row here when it ends (in the same
-- transaction as its end, by the trigger below); `drain_run_notifications` deletes and
-- returns rows in one transaction, so each is handed to exactly one drainer.
CREATE TABLE taskrunner_notifications (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    queue       TEXT    NOT NULL,
    call_id     TEXT,
    status      TEXT    NOT NULL,
    text        TEXT    NOT NULL,                     -- the output (JSON) or the error
    finished_at INTEGER NOT NULL
);
CREATE TRIGGER taskrunner_runs_notify AFTER UPDATE OF status ON taskrunner_runs
WHEN NEW.notify AND NEW.status IN ('completed', 'failed', 'cancelled')
    AND OLD.status NOT IN ('completed', 'failed', 'cancelled')
BEGIN
    INSERT INTO taskrunner_notifications (run_id, name, queue, call_id, status, text, finished_at)
    VALUES (NEW.id, NEW.name, NEW.queue, NEW.call_id, NEW.status,
            coalesce(NEW.output, NEW.error, ''), coalesce(NEW.finished_at, 0));
END;
