-- The W3C traceparent of the request that created a task, so a worker that claims the task from
-- the database continues the request's trace. Empty when the request was not traced.

-- +goose Up
ALTER TABLE tasks ADD COLUMN trace_parent TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE tasks DROP COLUMN trace_parent;
