-- taskrunner durable store (SQLite): waiting runs out of the claim's index.
-- A waiting run is still stored `pending`, with `wait_kind` set ('signal' | 'sleep' |
-- 'children') and `scheduled_at` = its deadline or wake time (far in the future while it
-- waits for children). The claim index holds only runs that are not waiting, so a claim
-- never walks past waiting runs; the waiting ones have an index of their own on
-- (queue, scheduled_at), which finds the due ones (a deadline or wake time passed) and the
-- next one to wake. A signal or a run's last awaited child makes a waiting run claimable at
-- once: `wait_kind` cleared, due now.
DROP INDEX taskrunner_runs_claim;
CREATE INDEX taskrunner_runs_claim ON taskrunner_runs (queue, priority DESC, scheduled_at, id)
    WHERE status = 'pending' AND wait_kind IS NULL;
CREATE INDEX taskrunner_runs_waiting ON taskrunner_runs (queue, scheduled_at)
    WHERE status = 'pending' AND wait_kind IS NOT NULL;
-- A run's end counts down the awaited runs of every run parked joining it; the last one makes
-- the joiner claimable (its wait over), due at the ended run's `finished_at`.
DROP TRIGGER taskrunner_runs_child_done;
CREATE TRIGGER taskrunner_runs_child_done AFTER UPDATE OF status ON taskrunner_runs
WHEN NEW.status IN ('completed', 'failed', 'cancelled')
    AND OLD.status NOT IN ('completed', 'failed', 'cancelled')
BEGIN
    UPDATE taskrunner_runs SET wait_children = wait_children - 1,
        scheduled_at = CASE WHEN wait_children <= 1
            THEN coalesce(NEW.finished_at,
                CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
            ELSE scheduled_at END,
        wait_kind = CASE WHEN wait_children <= 1 THEN NULL ELSE wait_kind END
    WHERE id IN (SELECT w.run_id FROM taskrunner_waits w WHERE w.kind = 'join'
            AND w.done = 0 AND w.name = CAST(NEW.id AS TEXT) AND w.idx = 0)
        AND status = 'pending' AND wait_kind = 'children' AND wait_children > 0;
END;
-- Run streams: a run that parks records `waiting` (not `delayed`); its resume is the
-- `running` of the claim that takes it again.
DROP TRIGGER taskrunner_runs_status_event;
CREATE TRIGGER taskrunner_runs_status_event AFTER UPDATE OF status ON taskrunner_runs
WHEN NEW.status IS NOT OLD.status
BEGIN
    INSERT INTO taskrunner_run_events (run_id, seq, at, kind, topic)
    VALUES (NEW.id,
            (SELECT coalesce(max(seq) + 1, 0) FROM taskrunner_run_events WHERE run_id = NEW.id),
            CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), 'status',
            CASE WHEN NEW.status = 'pending' AND NEW.wait_kind IS NOT NULL THEN 'waiting'
                 WHEN NEW.status = 'pending' AND NEW.scheduled_at >
                      CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)
                 THEN 'delayed' ELSE NEW.status END);
END;
