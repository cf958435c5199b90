-- taskrunner durable store (SQLite): runs that wait without holding a worker (signals,
-- durable sleeps, child runs).
-- A waiting run is stored `pending` with `wait_kind` set and `scheduled_at` = when it is due
-- (a signal's deadline, a wake time; far in the future while it waits for children): the
-- claim's own query and index find it once due, and a signal or its last child's end makes
-- it due at once by moving `scheduled_at` to now. It holds no lease and no slot meanwhile.
ALTER TABLE taskrunner_runs ADD COLUMN parent_id INTEGER;          -- the run that spawned it
ALTER TABLE taskrunner_runs ADD COLUMN wait_kind TEXT;             -- 'signal' | 'sleep' | 'children'
ALTER TABLE taskrunner_runs ADD COLUMN wait_signal TEXT;           -- the signal's name
ALTER TABLE taskrunner_runs ADD COLUMN wait_children INTEGER NOT NULL DEFAULT 0;   -- children left
CREATE INDEX taskrunner_runs_parent ON taskrunner_runs (parent_id) WHERE parent_id IS NOT NULL;
-- What a run's waits recorded, replayed like steps: the n-th wait of a kind and name is
-- (kind, name, idx = n - 1). `until_at` is stored at the first wait (deadlines are absolute);
-- `value` is the consumed signal (JSON), the spawned child's id, or a joined child's outcome.
CREATE TABLE taskrunner_waits (
    run_id     INTEGER NOT NULL REFERENCES taskrunner_runs (id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL CHECK (kind IN ('signal', 'sleep', 'spawn', 'join')),
    name       TEXT    NOT NULL,                     -- signal name, '', def name, child id
    idx        INTEGER NOT NULL,
    until_at   INTEGER,
    done       INTEGER NOT NULL DEFAULT 0,
    value      TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, kind, name, idx)
);
-- The mailbox: signals sent to a run, consumed in order (by id), each once.
CREATE TABLE taskrunner_signals (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      INTEGER NOT NULL REFERENCES taskrunner_runs (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    value       TEXT    NOT NULL,                    -- JSON
    sent_at     INTEGER NOT NULL,
    consumed_at INTEGER
);
CREATE INDEX taskrunner_signals_mailbox ON taskrunner_signals (run_id, name, id)
    WHERE consumed_at IS NULL;
-- Who waits on a run: the unfinished join records naming it, found by the run's id.
CREATE INDEX taskrunner_waits_joining ON taskrunner_waits (name) WHERE kind = 'join' AND done = 0;
-- A run's end counts down the awaited runs of every run parked joining it (its parent or any
-- other run), in the same transaction; the last one makes the joiner due, at the ended run's
-- `finished_at` (the store's clock, not this process's).
CREATE TRIGGER taskrunner_runs_child_done AFTER UPDATE OF status ON taskrunner_runs
WHEN NEW.status IN ('completed', 'failed', 'cancelled')
    AND OLD.status NOT IN ('completed', 'failed', 'cancelled')
BEGIN
    UPDATE taskrunner_runs SET wait_children = wait_children - 1,
        scheduled_at = CASE WHEN wait_children <= 1
            THEN coalesce(NEW.finished_at,
                CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
            ELSE scheduled_at END
    WHERE id IN (SELECT w.run_id FROM taskrunner_waits w WHERE w.kind = 'join'
            AND w.done = 0 AND w.name = CAST(NEW.id AS TEXT) AND w.idx = 0)
        AND status = 'pending' AND wait_kind = 'children' AND wait_children > 0;
END;
