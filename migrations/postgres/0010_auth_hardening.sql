-- Sign-in hardening (issue 8).
--
-- Failed sign-ins and lockouts by scope: `pw:user:<id>` for an account's password,
-- `pw:addr:<sha256 hex>` for an address with no account (counted exactly like a real
-- one, so the answers can't tell them apart), `2fa:user:<id>` for a user's second
-- step. A lockout is temporary: 15 minutes, doubling with each one in a row.
CREATE TABLE signin_locks (
    scope         TEXT    PRIMARY KEY,
    failures      BIGINT NOT NULL DEFAULT 0,
    lockouts      BIGINT NOT NULL DEFAULT 0,
    locked_until  BIGINT,
    updated_at    BIGINT NOT NULL
);
-- Accounts locked under the old rule (until a reset) carry over as one lockout so far.
INSERT INTO signin_locks (scope, failures, lockouts, locked_until, updated_at)
    SELECT 'pw:user:' || id::text, 0, 1, locked_at + 900, locked_at FROM users WHERE locked_at IS NOT NULL;

-- Wrong codes given against a pending sign-in or a set-password link: a few void it.
ALTER TABLE tokens ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
CREATE INDEX tokens_user ON tokens (user_id, purpose);

-- Against toll fraud, codes are capped per number (in international digits) and,
-- to numbers being set up, in all: both count recent codes.
ALTER TABLE two_step_codes ADD COLUMN destination TEXT;
CREATE INDEX two_step_codes_destination ON two_step_codes (destination, created_at);
CREATE INDEX two_step_codes_created ON two_step_codes (created_at);
