-- taskrunner durable store, schema version 12 (SQLite): a queue's global budget and pauses.
-- `cost` is a run's estimate (RunOptions::cost), `charged` the units charged for it across
-- its claims (the estimate each claim reserved, replaced by what its handler charged).
-- `taskrunner_charges` holds one row per charged attempt of a queue with a global budget
-- (written by the claim with the estimate, replaced by `ctx.charge`), counted by the claims
-- while younger than the window and pruned once older. `taskrunner_queue_pauses` holds the
-- time until which a queue claims nothing (`ctx.pause_queue_for`).
ALTER TABLE taskrunner_runs ADD COLUMN cost INTEGER;
ALTER TABLE taskrunner_runs ADD COLUMN charged INTEGER;
CREATE TABLE taskrunner_charges (
    queue   TEXT    NOT NULL,
    run_id  INTEGER NOT NULL,
    token   INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    units   INTEGER NOT NULL,
    PRIMARY KEY (run_id, token, attempt)
);
CREATE INDEX taskrunner_charges_queue ON taskrunner_charges (queue, at);
CREATE TABLE taskrunner_queue_pauses (
    queue    TEXT    NOT NULL PRIMARY KEY,
    until_at INTEGER NOT NULL
);
