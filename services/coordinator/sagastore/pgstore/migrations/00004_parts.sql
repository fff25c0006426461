-- A saga's parts that grow with its targets, kept apart from its document
-- so that a transition writes what it changed, not the whole fleet: each
-- step in its own row (doc), the targets and batches once, at creation
-- (spread), the roll-back plan only when it changes (plan). The document
-- keeps the rest. Rows written before this are split here. A coordinator
-- of an earlier version reads the document whole and cannot read a saga
-- split: stop every coordinator before starting one of this version.

-- +goose Up
ALTER TABLE saga_steps ADD COLUMN doc jsonb;
UPDATE saga_steps st SET doc = e.step
    FROM (SELECT s.id, x AS step FROM sagas s,
            jsonb_array_elements(CASE jsonb_typeof(s.doc->'steps') WHEN 'array' THEN s.doc->'steps' ELSE '[]' END) x) e
    WHERE st.saga_id = e.id AND st.step_id = e.step->>'id';
ALTER TABLE sagas ADD COLUMN spread jsonb, ADD COLUMN plan jsonb;
UPDATE sagas SET spread = jsonb_build_object('targets', doc->'request'->'spec'->'targets', 'batches', doc->'batches'),
    plan = doc->'plan',
    doc = (doc - 'steps' - 'batches' - 'plan') #- '{request,spec,targets}';

-- +goose Down
UPDATE sagas s SET doc = jsonb_set(s.doc || jsonb_build_object(
        'steps', coalesce((SELECT jsonb_agg(st.doc ORDER BY st.position) FROM saga_steps st WHERE st.saga_id = s.id), '[]'),
        'batches', s.spread->'batches', 'plan', s.plan),
    '{request,spec,targets}', coalesce(s.spread->'targets', 'null'));
ALTER TABLE sagas DROP COLUMN spread, DROP COLUMN plan;
ALTER TABLE saga_steps DROP COLUMN doc;
