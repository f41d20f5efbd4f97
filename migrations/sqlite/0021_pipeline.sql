-- The concurrent pipeline (issue 14). Workers claim rows before working on them:
-- a claim lasts until `claimed_until` (Unix seconds), so two workers never take
-- the same job, and a job whose worker died is taken again once its claim lapses.
ALTER TABLE mail_jobs ADD COLUMN claimed_until INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbound ADD COLUMN claimed_until INTEGER NOT NULL DEFAULT 0;

-- A mail the gateway writes itself (a notification, a bounce) is small: it is
-- kept sealed in its queue row instead of a spool file of its own (no file to
-- create, fsync and delete per notification). `blob` is then empty.
ALTER TABLE outbound ADD COLUMN body BLOB;

-- One invitation per recipient and practice, reused until used or expired: the
-- link is recomputed from this nonce with a key from the key folder (the table
-- still holds only the link's hash).
ALTER TABLE tokens ADD COLUMN reuse_nonce BLOB;

-- Indexes for the claims and for what each delivery looks up.
DROP INDEX mail_jobs_pending;
CREATE INDEX mail_jobs_pending ON mail_jobs (id) WHERE done_at IS NULL;
CREATE INDEX spool_due ON spool (received_at, id) WHERE quarantined_at IS NULL;
CREATE INDEX outbound_blob ON outbound (blob, state);
CREATE INDEX tokens_reusable ON tokens (user_id, purpose, expires_at) WHERE reuse_nonce IS NOT NULL AND used_at IS NULL;
