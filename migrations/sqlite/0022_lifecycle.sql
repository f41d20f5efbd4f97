-- A message's lifecycle (issue 12): when it ended (deleted for everyone or
-- expired). The row stays as its tombstone: ids, sender, practice, sizes and
-- times, never its key, subject or content.
ALTER TABLE messages ADD COLUMN ended_at INTEGER;

-- A practice's own retention in days; NULL means the configured default
-- (`messages.retention_days`).
ALTER TABLE practices ADD COLUMN retention_days INTEGER;

-- Read receipts look up the audit entries of one message (and its attachments).
CREATE INDEX audit_object ON audit (object);
