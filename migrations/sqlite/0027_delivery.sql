-- Direct delivery (issue 15): a delivery still being tried after
-- `outbound.delay_notice_after` tells its sender once ("delayed" DSN); this
-- marks that it did, so a restart or a second worker never tells twice.
ALTER TABLE outbound ADD COLUMN delay_notified INTEGER NOT NULL DEFAULT 0;
