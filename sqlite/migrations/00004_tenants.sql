-- Tenants: every image, task, batch and API key belongs to one, and a key sees only its own
-- tenant's rows. Rows made before tenants existed belong to the default tenant. Limits of 0 (or
-- NULL) mean unlimited.

-- +goose Up
CREATE TABLE tenants (
    id           TEXT PRIMARY KEY,
    quota_bytes  INTEGER,
    quota_images INTEGER,
    rate_limit   INTEGER,
    burst        INTEGER,
    concurrency  INTEGER,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
INSERT INTO tenants (id, created_at, updated_at)
VALUES ('default', strftime('%Y-%m-%dT%H:%M:%S.000000Z', 'now'), strftime('%Y-%m-%dT%H:%M:%S.000000Z', 'now'));

ALTER TABLE images ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE tasks ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE batches ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE api_keys ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';

-- Per-tenant lists newest first (images, tasks by status and by batch, batches) and usage sums
-- (the covering index answers sum(bytes) without reading the rows).
CREATE INDEX images_tenant_created ON images (tenant, created_at, id);
CREATE INDEX images_tenant_usage ON images (tenant, bytes);
CREATE INDEX tasks_tenant_created ON tasks (tenant, created_at, id);
CREATE INDEX tasks_tenant_status_created ON tasks (tenant, status, created_at, id);
CREATE INDEX batches_tenant_created ON batches (tenant, created_at, id);
CREATE INDEX api_keys_tenant ON api_keys (tenant);

-- Idempotency keys are per tenant: one tenant's key neither replays nor blocks another's.
DROP INDEX tasks_idempotency_key;
CREATE UNIQUE INDEX tasks_idempotency_key ON tasks (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
DROP INDEX batches_idempotency_key;
CREATE UNIQUE INDEX batches_idempotency_key ON batches (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- +goose Down
DROP INDEX batches_idempotency_key;
CREATE UNIQUE INDEX batches_idempotency_key ON batches (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
DROP INDEX tasks_idempotency_key;
CREATE UNIQUE INDEX tasks_idempotency_key ON tasks (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
DROP INDEX api_keys_tenant;
DROP INDEX batches_tenant_created;
DROP INDEX tasks_tenant_status_created;
DROP INDEX tasks_tenant_created;
DROP INDEX images_tenant_usage;
DROP INDEX images_tenant_created;
ALTER TABLE api_keys DROP COLUMN tenant;
ALTER TABLE batches DROP COLUMN tenant;
ALTER TABLE tasks DROP COLUMN tenant;
ALTER TABLE images DROP COLUMN tenant;
DROP TABLE tenants;
