-- taskrunner durable store, schema version 10 (PostgreSQL): a queue's global rate limit. One
-- row per claim of a rate-limited queue (its time and how many runs it took), written in the
-- claim's transaction (under the queue's advisory lock) and pruned once older than the window.
CREATE TABLE taskrunner_claim_times (
    queue TEXT    NOT NULL,
    at    BIGINT  NOT NULL,
    runs  INTEGER NOT NULL
);
CREATE INDEX taskrunner_claim_times_queue ON taskrunner_claim_times (queue, at);
