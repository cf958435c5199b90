-- taskrunner durable store, schema version 2 (PostgreSQL): durable steps (`TaskContext::step`).
-- One row a step of a run: the n-th call of a step name in a run is (name, idx = n - 1).
-- A completed step's output is returned to later attempts instead of running it again; a
-- failed one only records its error (the next attempt runs it again).
CREATE TABLE taskrunner_steps (
    run_id      BIGINT  NOT NULL REFERENCES taskrunner_runs (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    idx         INTEGER NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('completed', 'failed')),
    output      TEXT,                                -- JSON, for a completed step
    error       TEXT,                                -- the last failure's message
    attempts    INTEGER NOT NULL DEFAULT 1,          -- times it ran (failures included)
    claim_token BIGINT  NOT NULL,                    -- the claim that wrote it (fencing)
    started_at  BIGINT  NOT NULL,
    finished_at BIGINT  NOT NULL,
    PRIMARY KEY (run_id, name, idx)
);
