-- Sealing a spooled message is tried a bounded number of times (issue 9): each
-- attempt is counted before it starts, so even one that kills the process counts,
-- and the next one waits. A message that keeps failing is quarantined: it stays
-- in the spool, sealed as it arrived, but the sealer passes it by.
ALTER TABLE spool ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE spool ADD COLUMN next_attempt_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE spool ADD COLUMN quarantined_at BIGINT;
