-- API keys: the key is shown once at creation; the table keeps its prefix (to find the row) and
-- the hex SHA-256 of its secret. Limits of 0 mean the server's defaults.

-- +goose Up
CREATE TABLE api_keys (
    id           text COLLATE "C" PRIMARY KEY,
    name         text NOT NULL,
    prefix       text COLLATE "C" NOT NULL,
    hash         text NOT NULL,
    admin        boolean NOT NULL DEFAULT false,
    rate_limit   integer NOT NULL DEFAULT 0,
    burst        integer NOT NULL DEFAULT 0,
    concurrency  integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    CONSTRAINT api_keys_prefix UNIQUE (prefix)
);

-- +goose Down
DROP TABLE api_keys;
