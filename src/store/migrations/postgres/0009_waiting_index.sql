-- taskrunner durable store (PostgreSQL): waiting runs out of the claim's index.
-- A waiting run is still stored `pending`, with `wait_kind` set ('signal' | 'sleep' |
-- 'children') and `scheduled_at` = its deadline or wake time (far in the future while it
-- waits for children). The claim index holds only runs that are not waiting, so a claim
-- never walks past waiting runs; the waiting ones have an index of their own on
-- (queue, scheduled_at), which finds the due ones (a deadline or wake time passed) and the
-- next one to wake. A signal or a run's last awaited child makes a waiting run claimable at
-- once: `wait_kind` cleared, due now. Queries bound `scheduled_at` by
-- `(SELECT taskrunner_now_ms())`, computed once per statement, so the bound is an index
-- condition (the function itself is volatile).
DROP INDEX taskrunner_runs_claim;
CREATE INDEX taskrunner_runs_claim ON taskrunner_runs (queue, priority DESC, scheduled_at, id)
    WHERE status = 'pending' AND wait_kind IS NULL;
CREATE INDEX taskrunner_runs_waiting ON taskrunner_runs (queue, scheduled_at)
    WHERE status = 'pending' AND wait_kind IS NOT NULL;
-- A run's end counts down the awaited runs of every run parked joining it; the last one makes
-- the joiner claimable (its wait over) and wakes the claimers of its queue.
CREATE OR REPLACE FUNCTION taskrunner_runs_child_done() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    woken RECORD;
BEGIN
    FOR woken IN
        UPDATE taskrunner_runs SET wait_children = wait_children - 1,
            scheduled_at = CASE WHEN wait_children <= 1 THEN taskrunner_now_ms()
                ELSE scheduled_at END,
            wait_kind = CASE WHEN wait_children <= 1 THEN NULL ELSE wait_kind END
        WHERE id IN (SELECT w.run_id FROM taskrunner_waits w WHERE w.kind = 'join'
                AND NOT w.done AND w.name = NEW.id::text AND w.idx = 0)
            AND status = 'pending' AND wait_kind = 'children' AND wait_children > 0
        RETURNING queue, wait_children
    LOOP
        IF woken.wait_children <= 0 THEN
            PERFORM pg_notify('taskrunner_runs', woken.queue);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
-- Run streams: a run that parks records `waiting` (not `delayed`); its resume is the
-- `running` of the claim that takes it again.
CREATE OR REPLACE FUNCTION taskrunner_runs_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO taskrunner_run_events (run_id, seq, at, kind, topic)
        VALUES (NEW.id,
                (SELECT coalesce(max(seq) + 1, 0) FROM taskrunner_run_events WHERE run_id = NEW.id),
                taskrunner_now_ms(), 'status',
                CASE WHEN NEW.status = 'pending' AND NEW.wait_kind IS NOT NULL THEN 'waiting'
                     WHEN NEW.status = 'pending' AND NEW.scheduled_at > taskrunner_now_ms()
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
