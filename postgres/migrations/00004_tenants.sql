-- Tenants: every image, task, batch and API key belongs to one, and a key sees only its own
-- tenant's rows. Rows made before tenants existed belong to the default tenant. Limits of 0 (or
-- NULL) mean unlimited.

-- +goose Up
CREATE TABLE tenants (
    id           text COLLATE "C" PRIMARY KEY,
    quota_bytes  bigint,
    quota_images bigint,
    rate_limit   integer,
    burst        integer,
    concurrency  integer,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tenants (id) VALUES ('default');

ALTER TABLE images ADD COLUMN tenant text COLLATE "C" NOT NULL DEFAULT 'default';
ALTER TABLE tasks ADD COLUMN tenant text COLLATE "C" NOT NULL DEFAULT 'default';
ALTER TABLE batches ADD COLUMN tenant text COLLATE "C" NOT NULL DEFAULT 'default';
ALTER TABLE api_keys ADD COLUMN tenant text COLLATE "C" NOT NULL DEFAULT 'default';

-- Per-tenant lists newest first (images, tasks by status and by batch, batches) and usage sums
-- (the covering index answers sum(bytes) with an index-only scan).
CREATE INDEX images_tenant_created ON images (tenant, created_at, id);
CREATE INDEX images_tenant_usage ON images (tenant) INCLUDE (bytes);
CREATE INDEX tasks_tenant_created ON tasks (tenant, created_at, id);
CREATE INDEX tasks_tenant_status_created ON tasks (tenant, status, created_at, id);
CREATE INDEX batches_tenant_created ON batches (tenant, created_at, id);
CREATE INDEX api_keys_tenant ON api_keys (tenant);

-- Idempotency keys are per tenant: one tenant's key neither replays nor blocks another's. The
-- constraints keep their names, by which the store recognises a replayed key.
ALTER TABLE tasks DROP CONSTRAINT tasks_idempotency_key,
    ADD CONSTRAINT tasks_idempotency_key UNIQUE (tenant, idempotency_key);
ALTER TABLE batches DROP CONSTRAINT batches_idempotency_key,
    ADD CONSTRAINT batches_idempotency_key UNIQUE (tenant, idempotency_key);

-- +goose Down
ALTER TABLE batches DROP CONSTRAINT batches_idempotency_key,
    ADD CONSTRAINT batches_idempotency_key UNIQUE (idempotency_key);
ALTER TABLE tasks DROP CONSTRAINT tasks_idempotency_key,
    ADD CONSTRAINT tasks_idempotency_key UNIQUE (idempotency_key);
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
