-- The coordinator's sagas, their steps, their audit log and the
-- transactional outbox. See the pgstore package doc for what each holds.

-- +goose Up
CREATE TABLE sagas (
    id           text PRIMARY KEY,
    revision     bigint      NOT NULL,
    state        text        NOT NULL,
    kind         text        NOT NULL,
    team         text        NOT NULL,
    environment  text        NOT NULL,
    software     text        NOT NULL,
    from_version text        NOT NULL,
    to_version   text        NOT NULL,
    digest       text        NOT NULL,
    name         text        NOT NULL,
    reason       text        NOT NULL,
    batch        integer     NOT NULL,
    batches      integer     NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    doc          jsonb       NOT NULL
);
CREATE INDEX sagas_created_idx     ON sagas (created_at DESC, id DESC);
CREATE INDEX sagas_state_idx       ON sagas (state, created_at DESC);
CREATE INDEX sagas_team_idx        ON sagas (team, created_at DESC);
CREATE INDEX sagas_environment_idx ON sagas (environment, created_at DESC);
CREATE INDEX sagas_software_idx    ON sagas (software, created_at DESC);
CREATE INDEX sagas_digest_idx      ON sagas (digest) WHERE digest <> '';

CREATE TABLE saga_steps (
    saga_id       text        NOT NULL REFERENCES sagas (id) ON DELETE CASCADE,
    step_id       text        NOT NULL,
    position      integer     NOT NULL,
    phase         text        NOT NULL,
    action        text        NOT NULL,
    target        text        NOT NULL,
    batch         integer     NOT NULL,
    attempt       integer     NOT NULL,
    status        text        NOT NULL,
    compensates   text,
    dispatched_at timestamptz,
    deadline      timestamptz,
    started_at    timestamptz,
    heartbeat_at  timestamptz,
    finished_at   timestamptz,
    done          integer,
    late          text,
    progress      text,
    reason        text,
    error         text,
    output        jsonb,
    report        jsonb,
    PRIMARY KEY (saga_id, step_id)
);
CREATE INDEX saga_steps_target_idx ON saga_steps (target, dispatched_at DESC);
CREATE INDEX saga_steps_status_idx ON saga_steps (phase, status);

CREATE TABLE saga_audit (
    position  bigserial   PRIMARY KEY,
    id        text        NOT NULL UNIQUE,
    saga_id   text        NOT NULL,
    seq       integer     NOT NULL,
    at        timestamptz NOT NULL,
    direction text        NOT NULL,
    type      text        NOT NULL,
    subject   text        NOT NULL,
    note      text,
    event     json
);
CREATE INDEX saga_audit_saga_idx ON saga_audit (saga_id, position);

CREATE TABLE saga_outbox (
    id              text        PRIMARY KEY,
    position        bigserial   NOT NULL UNIQUE,
    saga_id         text        NOT NULL REFERENCES sagas (id) ON DELETE CASCADE,
    subject         text        NOT NULL,
    data            bytea       NOT NULL,
    schedule_at     timestamptz,
    schedule_target text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX saga_outbox_saga_idx   ON saga_outbox (saga_id, position);
CREATE INDEX saga_outbox_unsent_idx ON saga_outbox (saga_id, position) WHERE sent_at IS NULL;

-- +goose Down
DROP TABLE saga_outbox;
DROP TABLE saga_audit;
DROP TABLE saga_steps;
DROP TABLE sagas;
