-- Passkeys (WebAuthn credentials) for signing in, and the short-lived state of
-- each registration or sign-in ceremony (single use, bound to a browser cookie).
CREATE TABLE passkeys (
    id             INTEGER PRIMARY KEY,
    user_id        INTEGER NOT NULL REFERENCES users(id),
    -- The WebAuthn user handle (a random UUID, the same for all of a user's passkeys).
    user_handle    TEXT    NOT NULL,
    credential_id  BLOB    NOT NULL UNIQUE,
    label          TEXT    NOT NULL,
    -- webauthn-rs's Passkey as JSON: the public key and signature counter.
    credential     TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    last_used_at   INTEGER
);
CREATE INDEX passkeys_user ON passkeys (user_id);

CREATE TABLE passkey_ceremonies (
    hash        BLOB    PRIMARY KEY,
    kind        TEXT    NOT NULL,
    user_id     INTEGER REFERENCES users(id),
    state       TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL
);
