-- Sealpost schema, SQLite dialect. Keep in step with ../postgres/0001_initial.sql.
-- No column holds PHI: subjects, bodies and attachment names live only in sealed blobs.

CREATE TABLE practices (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    domain      TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    email          TEXT    NOT NULL UNIQUE,
    full_name      TEXT    NOT NULL DEFAULT '',
    phone          TEXT    NOT NULL DEFAULT '',
    role           TEXT    NOT NULL,
    practice_id    INTEGER REFERENCES practices(id),
    paid           INTEGER NOT NULL DEFAULT 0,
    user_manager   INTEGER NOT NULL DEFAULT 0,
    status         TEXT    NOT NULL,
    password_hash  TEXT,
    profile        TEXT    NOT NULL DEFAULT '{}',
    failed_logins  INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL
);

CREATE TABLE contacts (
    practice_id   INTEGER NOT NULL REFERENCES practices(id),
    user_id       INTEGER NOT NULL REFERENCES users(id),
    relationship  TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (practice_id, user_id)
);

CREATE TABLE spool (
    id           TEXT    PRIMARY KEY,
    mail_from    TEXT    NOT NULL,
    rcpt_to      TEXT    NOT NULL,
    sender_id    INTEGER NOT NULL REFERENCES users(id),
    kek_id       TEXT    NOT NULL,
    wrapped_key  BLOB    NOT NULL,
    size         INTEGER NOT NULL,
    received_at  INTEGER NOT NULL
);

CREATE TABLE messages (
    id                TEXT    PRIMARY KEY,
    sender_id         INTEGER NOT NULL REFERENCES users(id),
    practice_id       INTEGER NOT NULL REFERENCES practices(id),
    kek_id            TEXT    NOT NULL,
    wrapped_key       BLOB,
    sealed_subject    BLOB,
    size              INTEGER NOT NULL,
    attachment_count  INTEGER NOT NULL DEFAULT 0,
    state             TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL
);
CREATE INDEX messages_sender ON messages (sender_id, created_at);
CREATE INDEX messages_expiry ON messages (state, expires_at);

CREATE TABLE message_recipients (
    message_id  TEXT    NOT NULL REFERENCES messages(id),
    user_id     INTEGER NOT NULL REFERENCES users(id),
    state       TEXT    NOT NULL,
    read_at     INTEGER,
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX message_recipients_user ON message_recipients (user_id);

CREATE TABLE tokens (
    hash          BLOB    PRIMARY KEY,
    purpose       TEXT    NOT NULL,
    user_id       INTEGER NOT NULL REFERENCES users(id),
    message_id    TEXT,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    used_at       INTEGER,
    last_seen_at  INTEGER NOT NULL
);

CREATE TABLE mail_jobs (
    id          INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    message_id  TEXT,
    created_at  INTEGER NOT NULL,
    done_at     INTEGER
);
CREATE INDEX mail_jobs_pending ON mail_jobs (done_at);

CREATE TABLE outbound (
    id               TEXT    PRIMARY KEY,
    blob             TEXT    NOT NULL,
    mail_from        TEXT    NOT NULL,
    rcpt_to          TEXT    NOT NULL,
    kek_id           TEXT    NOT NULL,
    wrapped_key      BLOB    NOT NULL,
    strip_markers    INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    state            TEXT    NOT NULL,
    created_at       INTEGER NOT NULL
);
CREATE INDEX outbound_due ON outbound (state, next_attempt_at);

CREATE TABLE audit (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    object     TEXT    NOT NULL,
    client     TEXT    NOT NULL,
    prev_hash  BLOB    NOT NULL,
    hash       BLOB    NOT NULL
);
