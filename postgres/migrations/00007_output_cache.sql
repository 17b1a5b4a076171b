-- The processed-output cache: one row per stored output of a synchronous pipeline, keyed by the
-- hash of tenant, content, canonical pipeline and engine. Indexes find the entries of a
-- tenant's content (an image's deletion removes them), old entries (retention) and whether a
-- blob key is referenced (the orphan sweep); images by tenant and content tell whether another
-- image still holds the content.

-- +goose Up
CREATE TABLE output_cache (
    key          text COLLATE "C" PRIMARY KEY,
    tenant       text NOT NULL,
    image_sha256 text NOT NULL,
    blob_key     text COLLATE "C" NOT NULL,
    format       text NOT NULL,
    content_type text NOT NULL,
    width        integer NOT NULL,
    height       integer NOT NULL,
    bytes        bigint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX output_cache_content ON output_cache (tenant, image_sha256);
CREATE INDEX output_cache_created ON output_cache (created_at);
CREATE INDEX output_cache_blob ON output_cache (blob_key);
CREATE INDEX images_content ON images (tenant, sha256);

-- +goose Down
DROP INDEX images_content;
DROP TABLE output_cache;
