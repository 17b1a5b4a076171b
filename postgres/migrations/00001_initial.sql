-- Times are timestamptz: microsecond precision, UTC on the way in and out. Ids are COLLATE "C"
-- so that they compare bytewise: list cursors then mean the same whatever the database's locale.

-- +goose Up
CREATE TABLE images (
    id           text COLLATE "C" PRIMARY KEY,
    key          text NOT NULL,
    format       text NOT NULL,
    content_type text NOT NULL,
    width        integer NOT NULL,
    height       integer NOT NULL,
    bytes        bigint NOT NULL,
    sha256       text NOT NULL DEFAULT '',
    filename     text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- A UNIQUE constraint lets any number of rows have no key (NULLs are distinct), and the store
-- recognises a replayed key by this constraint's name.
CREATE TABLE batches (
    id              text COLLATE "C" PRIMARY KEY,
    total           integer NOT NULL,
    correlation_id  text NOT NULL DEFAULT '',
    callback_url    text NOT NULL DEFAULT '',
    idempotency_key text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT batches_idempotency_key UNIQUE (idempotency_key)
);

-- seq keeps insertion order, which is the order of a batch's tasks. image_id has no foreign
-- key: a task and its result outlive the deletion of its original.
CREATE TABLE tasks (
    id              text COLLATE "C" PRIMARY KEY,
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    type            text NOT NULL,
    status          text NOT NULL
                    CHECK (status IN ('queued', 'processing', 'completed', 'failed', 'cancelled')),
    image_id        text NOT NULL,
    ops             jsonb NOT NULL,
    batch_id        text COLLATE "C" REFERENCES batches (id) ON DELETE CASCADE,
    attempts        integer NOT NULL DEFAULT 0,
    max_attempts    integer NOT NULL DEFAULT 0,
    worker_id       text NOT NULL DEFAULT '',
    correlation_id  text NOT NULL DEFAULT '',
    callback_url    text NOT NULL DEFAULT '',
    idempotency_key text,
    run_after       timestamptz NOT NULL,
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    result          jsonb,
    error_code      text,
    error_message   text,
    CONSTRAINT tasks_idempotency_key UNIQUE (idempotency_key)
);

-- Claiming walks the queued tasks oldest first (FOR UPDATE SKIP LOCKED skips those another
-- worker is taking); sweeping finds processing tasks by lease.
CREATE INDEX tasks_claim ON tasks (created_at, seq) WHERE status = 'queued';
CREATE INDEX tasks_lease ON tasks (lease_until) WHERE status = 'processing';
-- Listing newest first, unfiltered, by status and by batch (which also serves the foreign key).
CREATE INDEX tasks_created ON tasks (created_at, id);
CREATE INDEX tasks_status_created ON tasks (status, created_at, id);
CREATE INDEX tasks_batch_created ON tasks (batch_id, created_at, id);

-- +goose Down
DROP TABLE tasks;
DROP TABLE batches;
DROP TABLE images;
