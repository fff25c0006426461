-- The sagas in flight, for the in-flight count and the listings of active
-- sagas: an index of the few rows not ended, whatever the number of ended
-- ones. The queries spell the same predicate out (activeRows in read.go),
-- so the planner can prove they read within it.

-- +goose Up
CREATE INDEX sagas_active_idx ON sagas (created_at DESC, id DESC)
    WHERE state NOT IN ('succeeded', 'failed', 'rejected', 'cancelled', 'rolled_back', 'rollback_failed', 'checked');

-- +goose Down
DROP INDEX sagas_active_idx;
