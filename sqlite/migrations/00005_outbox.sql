-- The outbox: webhook deliveries, written in the same transaction as the outcome they tell of,
-- and events that could not reach the broker. A sender claims due rows by moving
-- next_attempt_at past its lease and stamping its claim token, so two senders never hold one
-- row; a dead sender's rows come due again when the lease runs out.

-- +goose Up
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    tenant          TEXT NOT NULL DEFAULT '',
    kind            TEXT NOT NULL,
    event           TEXT NOT NULL,
    task_id         TEXT,
    batch_id        TEXT,
    url             TEXT NOT NULL DEFAULT '',
    webhook_id      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    correlation_id  TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    claim           TEXT NOT NULL DEFAULT '',
    last_error      TEXT NOT NULL DEFAULT '',
    last_status     INTEGER NOT NULL DEFAULT 0,
    pending_since   TEXT NOT NULL,
    delivered_at    TEXT,
    created_at      TEXT NOT NULL
);
CREATE UNIQUE INDEX deliveries_webhook_id ON deliveries (webhook_id);
CREATE INDEX deliveries_due ON deliveries (kind, next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_task ON deliveries (task_id, created_at) WHERE task_id IS NOT NULL;

-- +goose Down
DROP INDEX deliveries_task;
DROP INDEX deliveries_due;
DROP INDEX deliveries_webhook_id;
DROP TABLE deliveries;
