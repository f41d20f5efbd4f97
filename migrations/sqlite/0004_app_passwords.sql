-- Per-user passwords for mail clients (SMTP submission, later IMAP), stored hashed.
CREATE TABLE app_passwords (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id),
    label         TEXT    NOT NULL,
    hash          BLOB    NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);
CREATE INDEX app_passwords_user ON app_passwords (user_id);
