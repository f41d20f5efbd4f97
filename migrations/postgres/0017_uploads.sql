-- Staged uploads (issue 11, item 4): files sent from the portal before their
-- message exists. The file name is sealed under the upload's own data key; the
-- content lives in the blob store as sealed pieces (one per PATCH that sealed
-- something), which read in order make one sealed stream.
CREATE TABLE uploads (
    id           TEXT    PRIMARY KEY,
    owner_id     BIGINT  NOT NULL REFERENCES users(id),
    kek_id       TEXT    NOT NULL,
    wrapped_key  BYTEA   NOT NULL,
    sealed_name  BYTEA   NOT NULL,
    length       BIGINT  NOT NULL,
    received     BIGINT  NOT NULL DEFAULT 0,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
);
CREATE INDEX uploads_owner ON uploads (owner_id);
CREATE INDEX uploads_updated ON uploads (updated_at);

CREATE TABLE upload_pieces (
    upload_id  TEXT    NOT NULL REFERENCES uploads(id),
    start      BIGINT  NOT NULL,
    blob_key   TEXT    NOT NULL,
    PRIMARY KEY (upload_id, start)
);
