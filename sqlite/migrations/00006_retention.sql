-- Retention: when and why a task's result image was deleted; the trash of blobs no row
-- references any more, written in the same transaction as the change that dereferenced them and
-- emptied by the retention sweeper; named leases, so that one process at a time sweeps.
-- Indexes find old finished tasks, old images, the results made from an image, and whether a
-- blob key is referenced.

-- +goose Up
ALTER TABLE tasks ADD COLUMN result_expired_at TEXT;
ALTER TABLE tasks ADD COLUMN result_expired_reason TEXT;
CREATE INDEX tasks_finished ON tasks (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX tasks_image ON tasks (image_id);
CREATE INDEX tasks_result_key ON tasks (json_extract(result, '$.output.key'));
CREATE INDEX images_created ON images (created_at);
CREATE INDEX images_key ON images (key);

CREATE TABLE blob_trash (
    key        TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX blob_trash_created ON blob_trash (created_at);

CREATE TABLE leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  TEXT NOT NULL
);

-- +goose Down
DROP TABLE leases;
DROP TABLE blob_trash;
DROP INDEX images_key;
DROP INDEX images_created;
DROP INDEX tasks_result_key;
DROP INDEX tasks_image;
DROP INDEX tasks_finished;
ALTER TABLE tasks DROP COLUMN result_expired_reason;
ALTER TABLE tasks DROP COLUMN result_expired_at;
