-- Two-step verification: each user's method and the User Manager's switch, one-time
-- phone codes (stored hashed), remembered devices (hashed tokens), and the queue of
-- text/voice messages (sealed: they carry a code).
ALTER TABLE users ADD COLUMN two_step_off INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN two_step_method TEXT;
ALTER TABLE users ADD COLUMN totp_secret BLOB;
ALTER TABLE users ADD COLUMN totp_pending BLOB;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;
ALTER TABLE users ADD COLUMN two_step_failures INTEGER NOT NULL DEFAULT 0;

CREATE TABLE two_step_codes (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    purpose     TEXT    NOT NULL,
    phone       TEXT    NOT NULL,
    salt        BLOB    NOT NULL,
    code_hash   BLOB    NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX two_step_codes_user ON two_step_codes (user_id, purpose, id);

CREATE TABLE remembered_devices (
    hash        BLOB    PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX remembered_devices_user ON remembered_devices (user_id);

CREATE TABLE sms_jobs (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    sealed      BLOB    NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    next_at     INTEGER NOT NULL,
    done_at     INTEGER
);
CREATE INDEX sms_jobs_pending ON sms_jobs (done_at, next_at);
