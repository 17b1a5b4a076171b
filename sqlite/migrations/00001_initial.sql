-- Times are TEXT in one fixed-width UTC layout (2006-01-02T15:04:05.000000Z) so that they sort
-- and compare as strings and stay readable in the sqlite3 shell.

-- +goose Up
CREATE TABLE images (
    id           TEXT PRIMARY KEY,
    key          TEXT NOT NULL,
    format       TEXT NOT NULL,
    content_type TEXT NOT NULL,
    width        INTEGER NOT NULL,
    height       INTEGER NOT NULL,
    bytes        INTEGER NOT NULL,
    sha256       TEXT NOT NULL DEFAULT '',
    filename     TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL
);

CREATE TABLE batches (
    id              TEXT PRIMARY KEY,
    total           INTEGER NOT NULL,
    correlation_id  TEXT NOT NULL DEFAULT '',
    callback_url    TEXT NOT NULL DEFAULT '',
    idempotency_key TEXT,
    created_at      TEXT NOT NULL
);

CREATE UNIQUE INDEX batches_idempotency_key ON batches (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- seq keeps insertion order, which is the order of a batch's tasks. image_id has no foreign
-- key: a task and its result outlive the deletion of its original.
CREATE TABLE tasks (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    type            TEXT NOT NULL,
    status          TEXT NOT NULL
                    CHECK (status IN ('queued', 'processing', 'completed', 'failed', 'cancelled')),
    image_id        TEXT NOT NULL,
    ops             TEXT NOT NULL,
    batch_id        TEXT REFERENCES batches (id) ON DELETE CASCADE,
    attempts        INTEGER NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL DEFAULT 0,
    worker_id       TEXT NOT NULL DEFAULT '',
    correlation_id  TEXT NOT NULL DEFAULT '',
    callback_url    TEXT NOT NULL DEFAULT '',
    idempotency_key TEXT,
    run_after       TEXT NOT NULL,
    lease_until     TEXT,
    created_at      TEXT NOT NULL,
    started_at      TEXT,
    finished_at     TEXT,
    result          TEXT,
    error_code      TEXT,
    error_message   TEXT
);

CREATE UNIQUE INDEX tasks_idempotency_key ON tasks (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Claiming: the oldest runnable queued task of some types; sweeping: processing tasks by lease.
CREATE INDEX tasks_claim ON tasks (status, type, run_after, created_at);
CREATE INDEX tasks_lease ON tasks (lease_until) WHERE status = 'processing';
-- Listing newest first, unfiltered, by status and by batch.
CREATE INDEX tasks_created ON tasks (created_at, id);
CREATE INDEX tasks_status_created ON tasks (status, created_at, id);
CREATE INDEX tasks_batch_created ON tasks (batch_id, created_at, id);

-- +goose Down
DROP TABLE tasks;
DROP TABLE batches;
DROP TABLE images;
