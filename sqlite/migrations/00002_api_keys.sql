-- API keys: the key is shown once at creation; the table keeps its prefix (to find the row) and
-- the hex SHA-256 of its secret. Limits of 0 mean the server's defaults.

-- +goose Up
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL UNIQUE,
    hash         TEXT NOT NULL,
    admin        INTEGER NOT NULL DEFAULT 0,
    rate_limit   INTEGER NOT NULL DEFAULT 0,
    burst        INTEGER NOT NULL DEFAULT 0,
    concurrency  INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);

-- +goose Down
DROP TABLE api_keys;
