-- The outbox: webhook deliveries, written in the same transaction as the outcome they tell of,
-- and events that could not reach the broker. A sender claims due rows (FOR UPDATE SKIP
-- LOCKED) by moving next_attempt_at past its lease and stamping its claim token, so two
-- senders never hold one row; a dead sender's rows come due again when the lease runs out.

-- +goose Up
CREATE TABLE deliveries (
    id              text COLLATE "C" PRIMARY KEY,
    tenant          text COLLATE "C" NOT NULL DEFAULT '',
    kind            text NOT NULL,
    event           text NOT NULL,
    task_id         text COLLATE "C",
    batch_id        text COLLATE "C",
    url             text NOT NULL DEFAULT '',
    webhook_id      text COLLATE "C" NOT NULL,
    payload         text NOT NULL,
    correlation_id  text NOT NULL DEFAULT '',
    status          text NOT NULL DEFAULT 'pending',
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    claim           text NOT NULL DEFAULT '',
    last_error      text NOT NULL DEFAULT '',
    last_status     integer NOT NULL DEFAULT 0,
    pending_since   timestamptz NOT NULL,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX deliveries_webhook_id ON deliveries (webhook_id);
CREATE INDEX deliveries_due ON deliveries (kind, next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_task ON deliveries (task_id, created_at) WHERE task_id IS NOT NULL;

-- +goose Down
DROP INDEX deliveries_task;
DROP INDEX deliveries_due;
DROP INDEX deliveries_webhook_id;
DROP TABLE deliveries;
