-- Key rotation (issue 17): one row per `sealpost keys rotate`, naming the new
-- key-encryption key. `rewrapped` counts the data keys moved to it so far, in the
-- same transaction as each batch, so an interrupted rotation resumes where it
-- stopped and shows its progress; `finished_at` is set when no data key is left
-- under an older KEK.
CREATE TABLE kek_rotations (
    kek_id       TEXT    PRIMARY KEY,
    started_at   BIGINT  NOT NULL,
    finished_at  BIGINT,
    rewrapped    BIGINT  NOT NULL DEFAULT 0
);
