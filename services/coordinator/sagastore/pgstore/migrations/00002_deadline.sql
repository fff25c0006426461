-- The deadline a saga waits for, so that the coordinator can find sagas
-- whose deadline passed without its timer being handled.

-- +goose Up
ALTER TABLE sagas ADD COLUMN deadline timestamptz;
UPDATE sagas SET deadline = (doc->>'deadline')::timestamptz WHERE doc ? 'deadline';
CREATE INDEX sagas_deadline_idx ON sagas (deadline) WHERE deadline IS NOT NULL;

-- +goose Down
DROP INDEX sagas_deadline_idx;
ALTER TABLE sagas DROP COLUMN deadline;
