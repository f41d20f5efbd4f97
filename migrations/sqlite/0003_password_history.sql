-- Password age (forced change) and history (no reuse of recent passwords).
ALTER TABLE users ADD COLUMN password_changed_at INTEGER;

CREATE TABLE password_history (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    hash        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX password_history_user ON password_history (user_id, id);
