-- taskrunner durable store, schema version 11 (PostgreSQL): the order a run's steps were first
-- stored in. Ordering by `started_at` alone tied (or, with sub-millisecond steps, swapped)
-- steps run one after another within one millisecond. `seq` is one more than the run's
-- highest at a step's first write and never changes after; rows written before this version
-- keep 0 and order as before (by `started_at`, then name).
ALTER TABLE taskrunner_steps ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
