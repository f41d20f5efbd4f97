-- The profile (issue 13): an email change waits for the new address to confirm
-- it (the address it would become, until then), and every request for a
-- set-password link is remembered per address, so "Forgot your password?" and
-- "Send me a new link" can say when a link went out and when the next may.
ALTER TABLE users ADD COLUMN pending_email TEXT;

CREATE TABLE link_requests (
    -- `addr:` and the SHA-256 (hex) of the lower-cased address: the same for
    -- addresses with and without an account, and no address in clear.
    scope        TEXT    PRIMARY KEY,
    requested_at INTEGER NOT NULL
);

-- What a practice tells its users about itself (website, phone in E.164,
-- address), as JSON: shown on every member's profile, changed only by the
-- practice's User Manager.
ALTER TABLE practices ADD COLUMN details TEXT NOT NULL DEFAULT '{}';
