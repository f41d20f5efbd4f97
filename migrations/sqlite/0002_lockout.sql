-- Per-account lockout after repeated failed sign-ins; cleared by a password reset.
ALTER TABLE users ADD COLUMN locked_at INTEGER;
